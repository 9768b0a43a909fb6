/* tap.c: GET /tap, the access log's lines streamed live (contract in include/tap.h).
 *
 * The master's drain formats each line once (accesslog.c) and hands it here; every client
 * whose filters it passes gets a copy in its own bounded queue, framed as an HTTP/1.1 chunk
 * (or bare, for HTTP/1.0, whose stream ends with the connection).  Queues are written as the
 * sockets take them, never waited on: a line that finds a queue full is dropped for that
 * client alone, and a client that took nothing for TAP_STUCK_MS is cut.
 *
 * It touches: its clients' sockets and queues.  Nothing in shared memory: the master sets
 * the header's sh_tapping from tap_clients(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <strings.h>

#include "clock.h"
#include "labels.h"
#include "tap.h"

struct tap_client {
	int tc_used;			/* 0: a free place */
	int tc_fd;
	int tc_chunked;			/* HTTP/1.1: one chunk a line */
	int tc_closing;			/* send what is queued, then close (HEAD, the end) */
	struct tap_filter tc_f;
	char *tc_q;			/* TAP_QUEUE bytes */
	size_t tc_len, tc_off;		/* queued; sent of them */
	int64_t tc_since;		/* when it last took bytes, or found bytes waiting */
	int64_t tc_window;		/* max_rps: the second being counted ... */
	unsigned tc_in_window;		/* ... and its lines */
};

static struct tap_client taps[TAP_CLIENTS];
static unsigned ntaps;			/* places in use: what sh_tapping is set from */
static struct tap_stats stats;		/* since the start, for /metrics */

/* ---- filters ----
 *
 * The query is parsed whole when the client connects; a line is matched against the parsed
 * filter (tap_matches()), never against text, so a line costs a few compares per client. */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode v[n] into out[len] (NUL-terminated); -1 if it does not fit or holds a NUL. */
static int decode(const char *v, size_t n, char *out, size_t len)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)v[i];

		if (c == '%' && i + 2 < n && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
			c = hexval(v[i + 1]) * 16 + hexval(v[i + 2]);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (c == 0 || k + 1 >= len)
			return -1;
		out[k++] = (char)c;
	}
	out[k] = '\0';
	return 0;
}

/* Digits only, at most max: a filter's number never takes a sign, a space or a unit. */
static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* code=404, code=5xx, code=4xx,503: classes and exact codes, any of them. */
static int parse_codes(char *v, struct tap_filter *f, char *why, size_t len)
{
	char *item, *save = NULL;
	unsigned c;

	for (item = strtok_r(v, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (strlen(item) == 3 && item[0] >= '1' && item[0] <= '5' &&
		    (item[1] | 0x20) == 'x' && (item[2] | 0x20) == 'x') {
			f->tf_classes |= 1u << (item[0] - '0');
		} else if (parse_uint(item, 599, &c) == 0 && c >= 100) {
			if (f->tf_ncodes == sizeof(f->tf_codes) / sizeof(f->tf_codes[0])) {
				snprintf(why, len, "code: at most %zu exact codes",
				    sizeof(f->tf_codes) / sizeof(f->tf_codes[0]));
				return -1;
			}
			f->tf_codes[f->tf_ncodes++] = c;
		} else {
			snprintf(why, len, "code: '%s' is neither a status (100-599) nor a class (1xx-5xx)",
			    item);
			return -1;
		}
	}
	return 0;
}

/* method=GET or method=GET,POST (OTHER for any method not named in the metrics). */
static int parse_methods(char *v, struct tap_filter *f, char *why, size_t len)
{
	char *item, *save = NULL;
	unsigned m;

	for (item = strtok_r(v, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		for (m = 0; m < METHOD_MAX; m++)
			if (strcasecmp(item, http_method_names[m]) == 0)
				break;
		if (m == METHOD_MAX) {
			snprintf(why, len, "method: '%s' is not one of the metrics' methods "
			    "(GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, OTHER)", item);
			return -1;
		}
		f->tf_methods |= 1u << m;
	}
	return 0;
}

/* One key=value of the query into the filter; why names the key and what is wrong with
 * the value, for the 400 that goes back. */
static int parse_one(const char *key, size_t kn, char *v, struct tap_filter *f, char *why,
    size_t len)
{
	unsigned u;

	if (kn == 5 && memcmp(key, "route", 5) == 0) {
		snprintf(f->tf_route, sizeof(f->tf_route), "%s", v);
		return 0;
	}
	if (kn == 6 && memcmp(key, "method", 6) == 0)
		return parse_methods(v, f, why, len);
	if (kn == 4 && memcmp(key, "code", 4) == 0)
		return parse_codes(v, f, why, len);
	if (kn == 6 && memcmp(key, "min_ms", 6) == 0) {
		if (parse_uint(v, 86400000u, &u) == -1) {
			snprintf(why, len, "min_ms: '%s' is not a number of milliseconds", v);
			return -1;
		}
		f->tf_min_ns = (int64_t)u * NS_PER_MS;
		return 0;
	}
	if (kn == 7 && memcmp(key, "max_rps", 7) == 0) {
		if (parse_uint(v, 1000000u, &u) == -1 || u == 0) {
			snprintf(why, len, "max_rps: '%s' is not a number of lines a second (1-1000000)", v);
			return -1;
		}
		f->tf_max_rps = u;
		return 0;
	}
	snprintf(why, len, "unknown filter '%.*s' (route, method, code, min_ms, max_rps)",
	    (int)(kn > 40 ? 40 : kn), key);
	return -1;
}

int tap_parse_filter(const char *query, size_t n, struct tap_filter *f, char *why, size_t len)
{
	size_t i = 0;

	memset(f, 0, sizeof(*f));
	f->tf_min_ns = -1;
	while (i < n) {
		const char *item = query + i, *amp = memchr(item, '&', n - i), *eq;
		size_t in = amp ? (size_t)(amp - item) : n - i;
		char v[sizeof(f->tf_route)];

		i += in + 1;
		if (in == 0)
			continue;
		eq = memchr(item, '=', in);
		if (eq == NULL || eq == item) {
			snprintf(why, len, "'%.*s' is not key=value", (int)(in > 40 ? 40 : in), item);
			return -1;
		}
		if (decode(eq + 1, in - (size_t)(eq + 1 - item), v, sizeof(v)) == -1) {
			snprintf(why, len, "the value of '%.*s' is too long or holds a NUL",
			    (int)(eq - item > 40 ? 40 : eq - item), item);
			return -1;
		}
		if (parse_one(item, (size_t)(eq - item), v, f, why, len) == -1)
			return -1;
	}
	return 0;
}

int tap_matches(const struct tap_filter *f, const struct tap_facts *t)
{
	unsigned i;

	if (f->tf_route[0] && (t->tf_route == NULL || strcmp(f->tf_route, t->tf_route) != 0))
		return 0;
	if (f->tf_methods && (t->tf_method < 0 || !(f->tf_methods & (1u << t->tf_method))))
		return 0;
	if (f->tf_min_ns >= 0 && t->tf_dur_ns < (uint64_t)f->tf_min_ns)
		return 0;
	if (f->tf_classes == 0 && f->tf_ncodes == 0)
		return 1;
	if (t->tf_code >= 100 && t->tf_code <= 599 && (f->tf_classes & (1u << (t->tf_code / 100))))
		return 1;
	for (i = 0; i < f->tf_ncodes; i++)
		if (f->tf_codes[i] == t->tf_code)
			return 1;
	return 0;
}

/* ---- clients ---- */

/* Into the queue; the caller has made room (room()). */
static void put(struct tap_client *tc, const char *p, size_t n)
{
	memcpy(tc->tc_q + tc->tc_len, p, n);
	tc->tc_len += n;
}

static void client_close(struct tap_client *tc)
{
	close(tc->tc_fd);
	tc->tc_used = 0;
	free(tc->tc_q);
	tc->tc_q = NULL;
	ntaps--;
}

/* The metrics responder hands a GET /tap over with its socket: 0 when the tap took it (the
 * headers are queued and go out with the first write), else the status to answer with and
 * why.  The filters are checked first, so a bad one costs no place. */
unsigned tap_open(int fd, const char *query, size_t n, int http10, int head, int64_t now,
    char *why, size_t len)
{
	struct tap_client *tc = NULL;
	struct tap_filter f;
	char hdr[256];
	int hn;
	unsigned i;

	if (tap_parse_filter(query, n, &f, why, len) == -1)
		return 400;
	for (i = 0; i < TAP_CLIENTS && tc == NULL; i++)
		if (!taps[i].tc_used)
			tc = &taps[i];
	if (tc == NULL) {
		snprintf(why, len, "%u tap clients already listen; try again later", TAP_CLIENTS);
		return 503;
	}
	/* The kernel's buffer bounded too: a stuck client holds TAP_QUEUE and this, not the
	 * megabytes a buffer grows to by itself. */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ TAP_SNDBUF }, sizeof(int));
	tc->tc_q = malloc(TAP_QUEUE);
	if (tc->tc_q == NULL) {
		snprintf(why, len, "out of memory");
		return 503;
	}
	tc->tc_used = 1;
	tc->tc_fd = fd;
	tc->tc_f = f;
	tc->tc_chunked = !http10;
	tc->tc_closing = head;
	tc->tc_len = tc->tc_off = 0;
	tc->tc_since = now;
	tc->tc_window = 0;
	tc->tc_in_window = 0;
	ntaps++;
	/* X-Accel-Buffering: no, so that a proxy in front (nginx) passes lines as they come. */
	hn = snprintf(hdr, sizeof(hdr), "HTTP/1.%c 200 OK\r\n"
	    "Content-Type: application/x-ndjson; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n%s\r\n", http10 ? '0' : '1',
	    http10 ? "Connection: close\r\n" : "Transfer-Encoding: chunked\r\n");
	put(tc, hdr, (size_t)hn);
	return 0;
}

unsigned tap_clients(void)
{
	return ntaps;
}

static void client_write(struct tap_client *tc, int64_t now);

/* Room for n more bytes in tc's queue, moving what is unsent to the front if need be. */
static int room(struct tap_client *tc, size_t n)
{
	if (tc->tc_len + n <= TAP_QUEUE)
		return 1;
	if (tc->tc_off > 0) {
		memmove(tc->tc_q, tc->tc_q + tc->tc_off, tc->tc_len - tc->tc_off);
		tc->tc_len -= tc->tc_off;
		tc->tc_off = 0;
	}
	return tc->tc_len + n <= TAP_QUEUE;
}

/* One formatted line, to every client whose filters it passes.  The line is copied into
 * each queue rather than shared: queues drain at their clients' own pace, and a copy of a
 * few hundred bytes is cheaper than reference counts across eight queues. */
void tap_feed(const struct tap_facts *t, const char *line, size_t n, int64_t now)
{
	char size[16];
	size_t need;
	unsigned i;
	int sn;

	if (ntaps == 0)
		return;
	sn = snprintf(size, sizeof(size), "%zx\r\n", n);
	for (i = 0; i < TAP_CLIENTS; i++) {
		struct tap_client *tc = &taps[i];

		if (!tc->tc_used || tc->tc_closing || !tap_matches(&tc->tc_f, t))
			continue;
		/* max_rps: a fixed one-second window, which is all a person reading a terminal
		 * needs; what it refuses is counted apart from what a full queue drops. */
		if (tc->tc_f.tf_max_rps) {
			if (now - tc->tc_window >= NS_PER_S) {
				tc->tc_window = now;
				tc->tc_in_window = 0;
			}
			if (tc->tc_in_window >= tc->tc_f.tf_max_rps) {
				stats.ts_dropped_rate++;
				continue;
			}
			tc->tc_in_window++;
		}
		need = n + (tc->tc_chunked ? (size_t)sn + 2 : 0);
		if (!room(tc, need)) {
			client_write(tc, now);	/* full: what the socket takes now, first */
			if (!tc->tc_used)
				continue;	/* it went away */
			if (!room(tc, need)) {
				stats.ts_dropped_slow++;
				continue;
			}
		}
		if (tc->tc_off == tc->tc_len)
			tc->tc_since = now;	/* the stuck clock starts when something waits */
		if (tc->tc_chunked)
			put(tc, size, (size_t)sn);
		put(tc, line, n);
		if (tc->tc_chunked)
			put(tc, "\r\n", 2);
		stats.ts_lines++;
	}
}

/* Every client is polled for input (its close ends the stream), and for output while its
 * queue holds bytes; the stuck deadline of the oldest waiting bytes bounds the wait. */
int tap_pollfds(struct pollfd *pfd, int64_t *deadline)
{
	int n = 0;
	unsigned i;

	for (i = 0; i < TAP_CLIENTS; i++) {
		struct tap_client *tc = &taps[i];

		if (!tc->tc_used)
			continue;
		pfd[n].fd = tc->tc_fd;
		pfd[n].events = POLLIN;
		if (tc->tc_off < tc->tc_len) {
			pfd[n].events |= POLLOUT;
			if (tc->tc_since + TAP_STUCK_MS * NS_PER_MS < *deadline)
				*deadline = tc->tc_since + TAP_STUCK_MS * NS_PER_MS;
		}
		pfd[n++].revents = 0;
	}
	return n;
}

/* Whatever the socket takes now.  Taking any byte resets the stuck clock: a slow reader is
 * slow, not stuck, and keeps its stream (it loses lines instead). */
static void client_write(struct tap_client *tc, int64_t now)
{
	while (tc->tc_off < tc->tc_len) {
		ssize_t w = send(tc->tc_fd, tc->tc_q + tc->tc_off, tc->tc_len - tc->tc_off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0) {
			client_close(tc);
			return;
		}
		tc->tc_off += (size_t)w;
		tc->tc_since = now;
	}
	tc->tc_off = tc->tc_len = 0;
	if (tc->tc_closing)
		client_close(tc);
}

/* A tap client says nothing more after its request: what it sends is read and let go; its
 * end (or an error) ends the stream. */
static void client_read(struct tap_client *tc)
{
	char junk[512];
	ssize_t r = recv(tc->tc_fd, junk, sizeof(junk), MSG_DONTWAIT);

	if (r == 0 || (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		client_close(tc);
}

void tap_serve(const struct pollfd *pfd, int n, int64_t now)
{
	unsigned i;
	int k;

	for (k = 0; k < n; k++) {
		if (pfd[k].revents == 0)
			continue;
		for (i = 0; i < TAP_CLIENTS; i++) {
			struct tap_client *tc = &taps[i];

			if (!tc->tc_used || tc->tc_fd != pfd[k].fd)
				continue;
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				client_read(tc);
			if (tc->tc_used && (pfd[k].revents & POLLOUT))
				client_write(tc, now);
			break;
		}
	}
	for (i = 0; i < TAP_CLIENTS; i++) {
		struct tap_client *tc = &taps[i];

		if (!tc->tc_used)
			continue;
		/* A line just queued goes out now, not after the next poll. */
		if (tc->tc_off < tc->tc_len)
			client_write(tc, now);
		if (tc->tc_used && tc->tc_off < tc->tc_len &&
		    now - tc->tc_since >= TAP_STUCK_MS * NS_PER_MS) {
			/* A reset, not a FIN that would wait behind the unsent bytes for a window
			 * that does not open: the socket's memory is freed now. */
			struct linger lg = { 1, 0 };

			setsockopt(tc->tc_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			stats.ts_cut++;
			client_close(tc);
		}
	}
}

/* TERM or USR2: every stream ends properly (the last chunk, so that curl exits 0), as far
 * as each socket takes it now; the master does not wait for a slow one. */
void tap_close_all(void)
{
	int64_t now = clock_mono_ns();
	unsigned i;

	for (i = 0; i < TAP_CLIENTS; i++) {
		struct tap_client *tc = &taps[i];

		if (!tc->tc_used)
			continue;
		if (tc->tc_chunked && !tc->tc_closing && room(tc, 5))
			put(tc, "0\r\n\r\n", 5);
		tc->tc_closing = 1;
		client_write(tc, now);
		if (tc->tc_used)
			client_close(tc);
	}
}

/* In a forked child: its copies of the clients' sockets closed, nothing sent (the stream
 * is the master's), so a client's connection ends when the master closes it. */
void tap_forget(void)
{
	unsigned i;

	for (i = 0; i < TAP_CLIENTS; i++)
		if (taps[i].tc_used) {
			close(taps[i].tc_fd);
			taps[i].tc_used = 0;
		}
	ntaps = 0;
}

void tap_get_stats(struct tap_stats *ts)
{
	*ts = stats;
}
