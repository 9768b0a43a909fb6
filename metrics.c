/* metrics.c: the metrics port's HTTP responder (contract in include/metrics.h): accepts,
 * reads a request head, routes it to a page (render.h), the readiness probe (ready.h) or
 * the tap (tap.h), and writes the answer, all without blocking, inside the master's loop.
 * It touches: its own sockets and clients; the pages it serves are rendered elsewhere. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "ready.h"
#include "render.h"
#include "tap.h"

#define REQUEST_MAX 4096		/* a request head larger than this gets a 431 */
#define CLIENT_MS 5000			/* a client has this long to ask and be answered */
#define ACCEPT_PAUSE_MS 100		/* rest after an accept that found no descriptor */

extern const char *const status_html[];	/* status.html, compiled in */

/* POST /quitquitquit: the master stops as on TERM; it takes the request once. */
static int quit_requested;

int metrics_take_quit(void)
{
	int q = quit_requested;

	quit_requested = 0;
	return q;
}

/* A client of the port: it reads one request head, gets one answer and is closed
 * (Connection: close).  Scrapers open a connection a scrape, so keep-alive would save
 * little and cost a state per idle scraper. */
struct client {
	int cl_fd;			/* -1: a free place */
	int64_t cl_deadline;
	size_t cl_in;
	char cl_req[REQUEST_MAX];
	struct buf cl_out;
	size_t cl_off;			/* bytes of cl_out sent */
	int cl_writing;
};

static struct client clients[METRICS_CLIENTS];
static int metrics_fd = -1;
static int64_t accept_paused_until;	/* out of descriptors: the listen socket rests */

void metrics_init(int listen_fd)
{
	unsigned i;

	metrics_fd = listen_fd;
	if (net_set_nonblock(listen_fd, 1) == -1)
		fatal("fcntl O_NONBLOCK on the metrics socket");
	for (i = 0; i < METRICS_CLIENTS; i++)
		clients[i].cl_fd = -1;
	render_init();
}

static void client_close(struct client *cl)
{
	close(cl->cl_fd);
	cl->cl_fd = -1;
	buf_free(&cl->cl_out);
}

void metrics_forget(void)
{
	unsigned i;

	for (i = 0; i < METRICS_CLIENTS; i++)
		if (clients[i].cl_fd >= 0)
			client_close(&clients[i]);
	tap_forget();
}

/* The whole answer is built before the first byte goes: its length is known (no chunking
 * to a scraper) and a slow reader costs memory of its own, not time of the master's. */
static void respond(struct client *cl, unsigned code, const char *type, const struct buf *body,
    int head)
{
	static const struct { unsigned c; const char *t; } texts[] = {
		{ 200, "OK" }, { 400, "Bad Request" }, { 403, "Forbidden" }, { 404, "Not Found" },
		{ 405, "Method Not Allowed" }, { 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 503, "Service Unavailable" },
	};
	const char *text = "";
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].c == code)
			text = texts[i].t;
	buf_printf(&cl->cl_out, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n", code, text, type,
	    body ? body->b_len : 0, code == 405 ? "Allow: GET, HEAD, POST\r\n" : "");
	if (body && !head)
		buf_append(&cl->cl_out, body->b_data, body->b_len);
	cl->cl_writing = 1;
	cl->cl_off = 0;
}

/* A short text answer: errors, /healthz and /readyz, and the quit's acknowledgement. */
static void respond_text(struct client *cl, unsigned code, const char *text, int head)
{
	struct buf b = { NULL, 0, 0, 0 };

	buf_printf(&b, "%s\n", text);
	respond(cl, code, "text/plain; charset=utf-8", &b, head);
	buf_free(&b);
}

/* The q of a media range's parameters ("; q=0.5; version=1.0.0"), or -1 when it names a
 * version other than the one wanted (NULL: any will do; no version named: the one wanted). */
static double media_q(const char *p, size_t n, const char *version)
{
	double q = 1;
	int version_ok = 1;

	while (n > 0) {
		size_t e = 0, k;
		const char *a;

		while (e < n && p[e] != ';')
			e++;
		a = p;
		k = e;
		while (k > 0 && (*a == ' ' || *a == '\t' || *a == ';'))
			a++, k--;
		while (k > 0 && (a[k - 1] == ' ' || a[k - 1] == '\t'))
			k--;
		if (k > 2 && (a[0] | 0x20) == 'q' && a[1] == '=')
			q = strtod(a + 2, NULL);
		else if (version && k >= 8 && strncasecmp(a, "version=", 8) == 0)
			version_ok = k - 8 == strlen(version) && memcmp(a + 8, version, k - 8) == 0;
		p += e < n ? e + 1 : e;
		n -= e < n ? e + 1 : e;
	}
	return version_ok ? q : -1;
}

/* Does the scrape's Accept prefer OpenMetrics 1.0 to the text format?  Prometheus asks
 * "application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...".
 * No Accept, or one that names only the text format or any type (curl's default), gets the
 * text format, which every scraper reads; a tie goes to OpenMetrics, named as well. */
static int wants_openmetrics(const char *req, size_t len)
{
	const char *p = req, *end = req + len;
	double om_q = 0, text_q = 0;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *v;

		if (eol == NULL)
			break;
		if (eol - p > 7 && strncasecmp(p, "accept:", 7) == 0) {
			for (v = p + 7; v < eol;) {
				const char *c = memchr(v, ',', (size_t)(eol - v)), *t, *semi;
				size_t n, tn;
				double q;

				if (c == NULL)
					c = eol;
				t = v;
				while (t < c && (*t == ' ' || *t == '\t'))
					t++;
				n = (size_t)(c - t);
				while (n > 0 && (t[n - 1] == '\r' || t[n - 1] == ' '))
					n--;
				semi = memchr(t, ';', n);
				tn = semi ? (size_t)(semi - t) : n;
				if (tn == 28 && strncasecmp(t, "application/openmetrics-text", 28) == 0) {
					q = media_q(t + tn, n - tn, "1.0.0");
					if (q > om_q)
						om_q = q;
				} else if ((tn == 10 && strncasecmp(t, "text/plain", 10) == 0) ||
				    (tn == 6 && strncasecmp(t, "text/*", 6) == 0) ||
				    (tn == 3 && memcmp(t, "*/*", 3) == 0)) {
					q = media_q(t + tn, n - tn, NULL);
					if (q > text_q)
						text_q = q;
				}
				v = c + 1;
			}
		}
		p = eol + 1;
	}
	return om_q > 0 && om_q >= text_q;
}

/* One request, routed by its path (the query only matters to /tap).  The method is checked
 * before the path so that a scraper's typo gets a 405 or 404 that says which. */
static void handle(struct client *cl, int64_t now)
{
	struct buf body = { NULL, 0, 0, 0 };
	const char *req = cl->cl_req, *sp1, *sp2;
	char path[64], why[400];
	size_t plen;
	int head, post;

	sp1 = memchr(req, ' ', cl->cl_in);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', cl->cl_in - (size_t)(sp1 + 1 - req)) : NULL;
	if (sp1 == NULL || sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		respond_text(cl, 400, "bad request", 0);
		return;
	}
	head = sp1 - req == 4 && memcmp(req, "HEAD", 4) == 0;
	post = sp1 - req == 4 && memcmp(req, "POST", 4) == 0;
	if (!head && !post && !(sp1 - req == 3 && memcmp(req, "GET", 3) == 0)) {
		respond_text(cl, 405, "only GET and HEAD (and POST /quitquitquit)", 0);
		return;
	}
	for (plen = 0; sp1 + 1 + plen < sp2 && sp1[1 + plen] != '?'; plen++)
		;
	if (plen >= sizeof(path)) {
		respond_text(cl, 404, "not found", head);
		return;
	}
	memcpy(path, sp1 + 1, plen);
	path[plen] = '\0';

	/* Job mode: the application is done, and so is its sidecar.  Only from the pod itself. */
	if (post || strcmp(path, "/quitquitquit") == 0) {
		if (!post || strcmp(path, "/quitquitquit") != 0)
			respond_text(cl, 405, "POST is for /quitquitquit only; /quitquitquit takes POST", head);
		else if (!net_peer_loopback(cl->cl_fd))
			respond_text(cl, 403, "only a client on loopback may stop sidemeter", 0);
		else {
			quit_requested = 1;
			respond_text(cl, 200, "stopping: draining, then exit 0", 0);
		}
		return;
	}

	if (strcmp(path, "/metrics") == 0) {
		int openmetrics = wants_openmetrics(req, cl->cl_in);

		render_prometheus(&body, openmetrics);
		if (body.b_failed)
			respond_text(cl, 500, "out of memory rendering the page", head);
		else
			respond(cl, 200, openmetrics ?
			    "application/openmetrics-text; version=1.0.0; charset=utf-8" :
			    "text/plain; version=0.0.4; charset=utf-8", &body, head);
	} else if (strcmp(path, "/healthz") == 0) {
		respond_text(cl, 200, "ok", head);
	} else if (strcmp(path, "/readyz") == 0) {
		if (ready_check(now, why, sizeof(why)))
			respond_text(cl, 200, "ready", head);
		else {
			buf_printf(&body, "not ready: %s", why);
			respond_text(cl, 503, body.b_data ? body.b_data : "not ready", head);
		}
	} else if (strcmp(path, "/tap") == 0) {
		const char *q = sp1 + 1 + plen;
		size_t qn = (size_t)(sp2 - q);
		unsigned code;

		if (qn > 0) {	/* past the '?' */
			q++;
			qn--;
		}
		code = tap_open(cl->cl_fd, q, qn, sp2[8] == '0', head, now, why, sizeof(why));
		if (code == 0) {
			cl->cl_fd = -1;	/* the tap's now */
			buf_free(&cl->cl_out);
		} else {
			respond_text(cl, code, why, head);
		}
	} else if (strcmp(path, "/stats.json") == 0) {
		render_stats(&body);
		respond(cl, body.b_failed ? 500 : 200, "application/json", &body, head);
	} else if (strcmp(path, "/") == 0) {
		const char *const *line;

		for (line = status_html; *line; line++)
			buf_append(&body, *line, strlen(*line));
		respond(cl, 200, "text/html; charset=utf-8", &body, head);
	} else {
		respond_text(cl, 404, "not found", head);
	}
	buf_free(&body);
}

/* The master's poll set gets one entry a client (reading or writing) and the listen socket;
 * the nearest client deadline bounds the master's wait. */
int metrics_pollfds(struct pollfd *pfd, int64_t *deadline)
{
	int n = 0;
	unsigned i;

	if (metrics_fd < 0)
		return 0;
	for (i = 0; i < METRICS_CLIENTS; i++) {
		struct client *cl = &clients[i];

		if (cl->cl_fd < 0)
			continue;
		pfd[n].fd = cl->cl_fd;
		pfd[n].events = cl->cl_writing ? POLLOUT : POLLIN;
		pfd[n++].revents = 0;
		if (cl->cl_deadline < *deadline)
			*deadline = cl->cl_deadline;
	}
	/* A connection left in the backlog for want of a descriptor keeps the socket readable:
	 * polling it then would spin. */
	if (accept_paused_until == 0) {
		pfd[n].fd = metrics_fd;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	} else if (accept_paused_until < *deadline) {
		*deadline = accept_paused_until;
	}
	return n;
}

/* A free place, or the place of the client that has said least for longest: with every
 * place taken by clients that send nothing, a scraper still gets in.  Clients being
 * answered are never evicted. */
static struct client *place(void)
{
	struct client *oldest = NULL;
	unsigned i;

	for (i = 0; i < METRICS_CLIENTS; i++) {
		struct client *cl = &clients[i];

		if (cl->cl_fd < 0)
			return cl;
		if (!cl->cl_writing && (oldest == NULL || cl->cl_deadline < oldest->cl_deadline))
			oldest = cl;
	}
	if (oldest != NULL)
		client_close(oldest);
	return oldest;
}

/* METRICS_CLIENTS is small: a linear search is cheaper than any index. */
static struct client *client_of(int fd)
{
	unsigned i;

	for (i = 0; i < METRICS_CLIENTS; i++)
		if (clients[i].cl_fd == fd)
			return &clients[i];
	return NULL;
}

/* Everything the backlog holds, each into a place; out of descriptors, the listen socket
 * rests ACCEPT_PAUSE_MS (a test shows the master then uses no CPU and recovers). */
static void accept_clients(int64_t now)
{
	struct client *cl;
	int fd;

	for (;;) {
		fd = net_accept(metrics_fd, NULL, 1);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_paused_until = now + ACCEPT_PAUSE_MS * NS_PER_MS;
			return;
		}
		cl = place();
		if (cl == NULL) {
			close(fd);	/* every place is sending an answer: come back later */
			return;
		}
		cl->cl_fd = fd;
		cl->cl_in = 0;
		cl->cl_writing = 0;
		cl->cl_deadline = now + CLIENT_MS * NS_PER_MS;
		memset(&cl->cl_out, 0, sizeof(cl->cl_out));
	}
}

/* Does p[0..n) hold the empty line that ends a request head?  LF LF counts too: a hand-
 * typed request (nc) ends lines with LF alone. */
static int has_empty_line(const char *p, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (p[i] == '\n' && (p[i - 1] == '\n' || (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')))
			return 1;
	return 0;
}

static void client_read(struct client *cl, int64_t now)
{
	ssize_t n = recv(cl->cl_fd, cl->cl_req + cl->cl_in, sizeof(cl->cl_req) - cl->cl_in, 0);

	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		client_close(cl);
		return;
	}
	if (n < 0)
		return;
	cl->cl_in += (size_t)n;
	/* A request head ends with an empty line; the request line is all we need. */
	if (has_empty_line(cl->cl_req, cl->cl_in))
		handle(cl, now);
	else if (cl->cl_in == sizeof(cl->cl_req))
		respond_text(cl, 431, "request too large", 0);
}

/* As much as the socket takes; done, the connection closes (the answer said so). */
static void client_write(struct client *cl)
{
	ssize_t n = send(cl->cl_fd, cl->cl_out.b_data + cl->cl_off, cl->cl_out.b_len - cl->cl_off,
	    MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->cl_off += (size_t)n;
	if (cl->cl_off == cl->cl_out.b_len)
		client_close(cl);
}

/* What the master's poll found on the port's descriptors, then the clients whose time is
 * up (CLIENT_MS to ask and be answered: a client that trickles cannot hold a place). */
void metrics_serve(const struct pollfd *pfd, int n, int64_t now)
{
	struct client *cl;
	unsigned i;
	int k;

	for (k = 0; k < n; k++) {
		if (pfd[k].revents == 0)
			continue;
		if (pfd[k].fd == metrics_fd) {
			accept_clients(now);
			continue;
		}
		cl = client_of(pfd[k].fd);
		if (cl == NULL)
			continue;
		if (cl->cl_writing)
			client_write(cl);
		else
			client_read(cl, now);
		/* a request answered at once may be sent at once */
		if (cl->cl_fd >= 0 && cl->cl_writing)
			client_write(cl);
	}
	for (i = 0; i < METRICS_CLIENTS; i++)
		if (clients[i].cl_fd >= 0 && now >= clients[i].cl_deadline)
			client_close(&clients[i]);
	if (accept_paused_until && now >= accept_paused_until)
		accept_paused_until = 0;
}
