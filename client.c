/* client.c: `sidemeter top` and `sidemeter tap`, their flags, and the little HTTP client
 * both use to reach the metrics port (contract in include/client.h).  The tap's stream is
 * asked for in HTTP/1.0, so it comes as bare lines that end with the connection.
 *
 * It touches: a socket to the metrics port, stdout and stderr; nothing of the server's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "client.h"
#include "json.h"
#include "net.h"
#include "relay.h"

#define DEFAULT_METRICS "127.0.0.1:9145"
#define LINE_MAX_BYTES 16384	/* a tap line at most (the server's are at most 8 KiB) */

/* A subcommand is the first word, before any flag: "sidemeter top", never a flag's value. */
int client_is_subcommand(int argc, char **argv)
{
	return argc > 1 && (strcmp(argv[1], "top") == 0 || strcmp(argv[1], "tap") == 0);
}

/* Text from the server (paths, user agents) goes to a terminal: control bytes, C0 and C1
 * alike, become '?', so that no request can move the cursor or retitle the window. */
void client_safe(char *s)
{
	unsigned char *p = (unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			p[0] = p[1] = '?';	/* U+0080-U+009F, the C1 controls */
	}
}

/* ---- the metrics port's address ---- */

/* ADDR as a client reaches it: a wildcard host (0.0.0.0, ::, *, none) is this machine. */
static int metrics_addr(const char *text, struct net_addr *na, char *err, size_t errlen)
{
	char local[300];
	const char *colon = strrchr(text, ':');

	if (strcmp(text, "off") == 0) {
		snprintf(err, errlen, "the metrics port is off (--metrics off); top and tap need it");
		return -1;
	}
	if (colon != NULL && (colon == text || strncmp(text, "*:", 2) == 0 ||
	    strncmp(text, "0.0.0.0:", 8) == 0)) {
		snprintf(local, sizeof(local), "127.0.0.1%s", colon);
		text = local;
	} else if (strncmp(text, "[::]:", 5) == 0) {
		snprintf(local, sizeof(local), "[::1]%s", text + 4);
		text = local;
	}
	return net_parse_addr(na, text, 0, err, errlen);
}

/* ---- HTTP ---- */

/* Connect and send a GET.  HTTP/1.0: the answer ends with the connection (no chunks to
 * decode for /stats.json), and /tap streams bare lines to a 1.0 client. */
static int ask(const struct net_addr *na, const char *path, int timeout_ms, char *err,
    size_t errlen)
{
	char req[2048];
	size_t n;
	int fd = net_connect(na, timeout_ms);

	if (fd == -1) {
		snprintf(err, errlen, "cannot reach sidemeter's metrics port at %s: %s", na->na_text,
		    strerror(errno));
		return -1;
	}
	n = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n"
	    "User-Agent: sidemeter-client\r\n\r\n", path, na->na_text);
	if (n >= sizeof(req)) {
		snprintf(err, errlen, "the request is too long");
		close(fd);
		return -1;
	}
	if (net_write_all(fd, req, n, timeout_ms) == -1) {
		snprintf(err, errlen, "sending to %s: %s", na->na_text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Read the response head from fd into buf[cap]: the status, with *used the bytes read and
 * *body_at where the body starts; -1 with err. */
static int read_head(int fd, char *buf, size_t cap, size_t *used, size_t *body_at,
    const struct net_addr *na, char *err, size_t errlen)
{
	size_t n = 0;
	char *end;
	unsigned status;

	for (;;) {
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "%s: %s", na->na_text,
			    r == 0 ? "the connection closed before an answer" : strerror(errno));
			return -1;
		}
		n += (size_t)r;
		buf[n] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
		if (n + 1 == cap) {
			snprintf(err, errlen, "%s: the answer's head is too long", na->na_text);
			return -1;
		}
	}
	if (sscanf(buf, "HTTP/1.%*c %3u", &status) != 1) {
		snprintf(err, errlen, "%s does not answer HTTP: is it sidemeter's metrics port?",
		    na->na_text);
		return -1;
	}
	*used = n;
	*body_at = (size_t)(end + 4 - buf);
	return (int)status;
}

/* A whole answer's body, read to the connection's end (with a page of 100 routes /stats.json
 * is a few hundred KiB; 64 MiB is refused as not ours). */
int client_get(const struct net_addr *na, const char *path, int timeout_ms, char **body,
    size_t *len, char *err, size_t errlen)
{
	size_t cap = 65536, n, at;
	char *buf;
	int fd, status;

	*body = NULL;
	*len = 0;
	fd = ask(na, path, timeout_ms, err, errlen);
	if (fd == -1)
		return -1;
	net_set_rcvtimeo(fd, timeout_ms);
	buf = malloc(cap);
	if (buf == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	status = read_head(fd, buf, cap, &n, &at, na, err, errlen);
	while (status > 0) {
		ssize_t r;

		if (n + 1 == cap) {
			char *bigger = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;

			if (bigger == NULL) {
				snprintf(err, errlen, "%s: the answer is too large", na->na_text);
				status = -1;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
		r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == 0)
			break;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", na->na_text, errno == EAGAIN ?
			    "no answer in time" : strerror(errno));
			status = -1;
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	if (status < 0) {
		free(buf);
		return -1;
	}
	memmove(buf, buf + at, n - at);
	buf[n - at] = '\0';
	*body = buf;
	*len = n - at;
	return status;
}

/* ---- flags ---- */

struct flags {
	const char *metrics;
	int once, json;
	enum top_sort sort;
	char query[1024];
	size_t qlen;
};

/* Append key=value to the query, the value percent-encoded (RFC 3986's unreserved, and the
 * few characters a route or a list needs, stay as they are so that the server's 400 quotes
 * the filter as it was typed). */
static int add_query(struct flags *fl, const char *key, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	int n = snprintf(fl->query + fl->qlen, sizeof(fl->query) - fl->qlen, "%s%s=",
	    fl->qlen ? "&" : "?", key);

	if (n < 0 || (size_t)n >= sizeof(fl->query) - fl->qlen)
		return -1;
	fl->qlen += (size_t)n;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (fl->qlen + 4 >= sizeof(fl->query))
			return -1;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("-._~/:,", c) != NULL) {
			fl->query[fl->qlen++] = (char)c;
		} else {
			fl->query[fl->qlen++] = '%';
			fl->query[fl->qlen++] = hex[c >> 4];
			fl->query[fl->qlen++] = hex[c & 15];
		}
	}
	fl->query[fl->qlen] = '\0';
	return 0;
}

static void usage(const char *cmd)
{
	if (strcmp(cmd, "top") == 0)
		printf("usage: sidemeter top [--metrics ADDR] [--once] [--sort rate|p99|errors|name]\n\n"
		    "A live view of a running sidemeter, refreshed every second: requests a second,\n"
		    "p50/p99, 5xx share, bytes a second, workers, connections, then its routes.\n"
		    "Keys: r sort by rate, p by p99, e by errors, n by name, q quit.\n\n"
		    "  --metrics ADDR   its metrics port; default SIDEMETER_METRICS, else %s\n"
		    "  --once           print the view once, without escape codes (takes a second:\n"
		    "                   the rates are measured over it), and exit\n"
		    "  --sort KEY       the route table's order to begin with (default rate)\n",
		    DEFAULT_METRICS);
	else
		printf("usage: sidemeter tap [--metrics ADDR] [filters] [--json]\n\n"
		    "Print the requests a running sidemeter relays, as they finish (its GET /tap),\n"
		    "one aligned line each: time, status, method, duration, response bytes, client,\n"
		    "path (query values and credentials redacted), and how it ended when not\n"
		    "normally.  It runs until interrupted or until sidemeter stops.\n\n"
		    "  --metrics ADDR   its metrics port; default SIDEMETER_METRICS, else %s\n"
		    "  --route ROUTE    only this route (as the metrics label it: /users/:id)\n"
		    "  --method M[,M]   only these methods (GET, POST, ..., OTHER)\n"
		    "  --code C[,C]     only these codes or classes (404, 5xx, 4xx,503)\n"
		    "  --min-ms N       only exchanges that took at least N ms\n"
		    "  --max-rps N      at most N lines a second (the rest are dropped, counted)\n"
		    "  --json           the lines as sidemeter sends them (JSON, one per line)\n",
		    DEFAULT_METRICS);
}

/* The subcommands' flags: --flag VALUE or --flag=VALUE, as the server's own.  0: parsed;
 * 1: --help printed (exit 0); 2: an error, already said (exit 2, as a bad flag of the
 * server's).  Each tap filter is a flag of its own that becomes one query parameter, so
 * the client knows their names and nothing of their grammar. */
static int parse_flags(const char *cmd, int argc, char **argv, struct flags *fl)
{
	static const struct { const char *name, *key; } tap_filters[] = {
		{ "route", "route" }, { "method", "method" }, { "code", "code" },
		{ "min-ms", "min_ms" }, { "max-rps", "max_rps" },
	};
	int top = strcmp(cmd, "top") == 0, i;
	size_t k;

	/* The sidecar's own variable, so that `kubectl exec ... sidemeter top` in its container
	 * finds the port with no flag; an empty one is as unset. */
	memset(fl, 0, sizeof(*fl));
	fl->metrics = getenv("SIDEMETER_METRICS");
	if (fl->metrics == NULL || fl->metrics[0] == '\0')
		fl->metrics = DEFAULT_METRICS;
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *v = NULL;
		size_t an = eq && strncmp(a, "--", 2) == 0 ? (size_t)(eq - a) : strlen(a);
		int takes;

#define IS(flag) (an == strlen(flag) && strncmp(a, flag, an) == 0)
		if (IS("--help") || IS("-h")) {
			usage(cmd);
			return 1;
		}
		takes = IS("--metrics") || (top && IS("--sort"));
		for (k = 0; !top && k < sizeof(tap_filters) / sizeof(tap_filters[0]); k++)
			if (an == 2 + strlen(tap_filters[k].name) && strncmp(a, "--", 2) == 0 &&
			    strncmp(a + 2, tap_filters[k].name, an - 2) == 0)
				takes = 1;
		if (takes) {
			v = eq && strncmp(a, "--", 2) == 0 ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (v == NULL) {
				fprintf(stderr, "sidemeter %s: %.*s needs a value (see --help)\n", cmd,
				    (int)an, a);
				return 2;
			}
		} else if (eq && strncmp(a, "--", 2) == 0) {
			fprintf(stderr, "sidemeter %s: %.*s takes no value\n", cmd, (int)an, a);
			return 2;
		}
		if (IS("--metrics")) {
			fl->metrics = v;
		} else if (top && IS("--once")) {
			fl->once = 1;
		} else if (!top && IS("--json")) {
			fl->json = 1;
		} else if (top && IS("--sort")) {
			if (strcmp(v, "rate") == 0)
				fl->sort = TOP_RATE;
			else if (strcmp(v, "p99") == 0)
				fl->sort = TOP_P99;
			else if (strcmp(v, "errors") == 0)
				fl->sort = TOP_ERRORS;
			else if (strcmp(v, "name") == 0)
				fl->sort = TOP_NAME;
			else {
				fprintf(stderr, "sidemeter top: --sort '%s' is not rate, p99, errors or name\n",
				    v);
				return 2;
			}
		} else if (v != NULL) {
			for (k = 0; strncmp(a + 2, tap_filters[k].name, an - 2) != 0; k++)
				;
			if (add_query(fl, tap_filters[k].key, v) == -1) {
				fprintf(stderr, "sidemeter tap: the filters are too long\n");
				return 2;
			}
		} else {
			fprintf(stderr, "sidemeter %s: unknown %s '%s' (see --help)\n", cmd,
			    strncmp(a, "-", 1) == 0 ? "option" : "argument", a);
			return 2;
		}
#undef IS
	}
	return 0;
}

/* ---- tap ---- */

/* One of the tap's JSON lines as an aligned line of text:
 *     18:32:20.584  404  GET         3.43ms       335  127.0.0.1:51160        /nope?token=…  */
static void print_line(char *line, size_t n)
{
	struct json *j = json_parse(line, n);
	const char *t, *reason;
	char when[16] = "?", status[8] = "-", who[64], path[1024];

	if (j == NULL) {
		line[n] = '\0';
		client_safe(line);
		printf("%s\n", line);	/* not JSON: as it came, made safe */
		return;
	}
	t = json_text(json_get(j, "time"), "");
	if (strlen(t) >= 23)
		snprintf(when, sizeof(when), "%.12s", t + 11);	/* HH:MM:SS.mmm */
	if (json_get(j, "status"))
		snprintf(status, sizeof(status), "%.0f", json_num(json_get(j, "status"), 0));
	snprintf(who, sizeof(who), "%s", json_text(json_get(j, "client"), "-"));
	snprintf(path, sizeof(path), "%s",
	    json_text(json_get(j, "path"), json_text(json_get(j, "route"), "-")));
	client_safe(who);
	client_safe(path);
	reason = json_text(json_get(j, "reason"), NULL);
	printf("%s  %3s  %-7.7s %9.2fms %9.0f  %-21s  %s", when, status,
	    json_text(json_get(j, "method"), "-"), json_num(json_get(j, "duration_s"), 0) * 1000,
	    json_num(json_get(j, "resp_bytes"), 0), who, path);
	if (reason)
		printf("  (%s)", reason);
	putchar('\n');
	json_free(j);
}

#define TAP_BUF (LINE_MAX_BYTES * 2)

/* Print every line the stream brings (n bytes of it already in buf), until it ends; 1 when
 * stdout went away. */
static int stream(int fd, char *buf, size_t n, const struct flags *fl)
{
	for (;;) {
		char *nl;
		ssize_t r;

		while ((nl = memchr(buf, '\n', n)) != NULL) {
			size_t len = (size_t)(nl - buf);

			if (fl->json)
				fwrite(buf, 1, len + 1, stdout);
			else
				print_line(buf, len);
			memmove(buf, nl + 1, n - len - 1);
			n -= len + 1;
		}
		if (fflush(stdout) == EOF)
			return 1;	/* the reader went away */
		if (n == TAP_BUF - 1)
			n = 0;		/* a line longer than any of ours: let it go */
		/* Blocking: the server sends when requests finish, and a quiet pod is quiet. */
		r = recv(fd, buf + n, TAP_BUF - 1 - n, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		n += (size_t)r;
	}
}

/* sidemeter tap: the filters travel as the query (the server checks them and says what is
 * wrong, so the client and the server cannot disagree on a filter's meaning).  Exit 0
 * when the stream ends (sidemeter stopped), 1 when it cannot be had, 2 for a refused
 * filter (as a bad flag). */
static int run_tap(const struct net_addr *na, const struct flags *fl)
{
	static char buf[TAP_BUF];
	char err[600], path[1100];
	size_t n, at;
	int fd, status, rc;
	ssize_t r;

	snprintf(path, sizeof(path), "/tap%s", fl->query);
	fd = ask(na, path, 2000, err, sizeof(err));
	status = fd == -1 ? -1 : read_head(fd, buf, TAP_BUF, &n, &at, na, err, sizeof(err));
	if (status == -1) {
		fprintf(stderr, "sidemeter tap: %s\n", err);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (status == 200) {
		memmove(buf, buf + at, n - at);
		rc = stream(fd, buf, n - at, fl);
		close(fd);
		return rc;
	}
	/* refused: the server's reason, as the message */
	while (n + 1 < TAP_BUF && (r = recv(fd, buf + n, TAP_BUF - 1 - n, 0)) > 0)
		n += (size_t)r;
	close(fd);
	while (n > at && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	client_safe(buf + at);
	fprintf(stderr, "sidemeter tap: %s\n", buf[at] ? buf + at : "refused");
	return status == 400 ? 2 : 1;
}

/* Both subcommands run in a pod's container beside the sidecar, or wherever the metrics
 * port can be reached: the port is their only link to the running sidemeter. */
int client_main(int argc, char **argv)
{
	const char *cmd = argv[1];
	struct net_addr na;
	struct flags fl;
	char err[400];
	int rc = parse_flags(cmd, argc, argv, &fl);

	if (rc != 0)
		return rc == 1 ? 0 : rc;
	if (metrics_addr(fl.metrics, &na, err, sizeof(err)) == -1) {
		fprintf(stderr, "sidemeter %s: --metrics %s: %s\n", cmd, fl.metrics, err);
		return 2;
	}
	if (strcmp(cmd, "top") == 0)
		return top_run(&na, fl.once, fl.sort);
	return run_tap(&na, &fl);
}
