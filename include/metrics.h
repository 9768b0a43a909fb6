/* metrics.h: the metrics port, served by the master with non-blocking sockets inside its
 * loop: /metrics (Prometheus text format 0.0.4), /healthz, /readyz, /stats.json and the
 * status page.  A slow or hostile client holds up nothing but itself: requests are
 * bounded in size and time, GET/HEAD only, and the number of clients is capped (when every
 * place is taken, the client silent longest gives its place up). */
#ifndef SIDEMETER_METRICS_H
#define SIDEMETER_METRICS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_CLIENTS 16	/* clients served at once */

struct buf {
	char *b_data;
	size_t b_len, b_cap;
	int b_failed;		/* an allocation failed: the content is cut */
};

/* ---- the port ---- */

/* Serve on a listening socket (made non-blocking here). */
void metrics_init(int listen_fd);

/* Add the port's descriptors to pfd (room for METRICS_CLIENTS + 1); returns how many.
 * *deadline is lowered to the earliest client timeout. */
int metrics_pollfds(struct pollfd *pfd, int64_t *deadline);

/* Act on what poll() said of the descriptors metrics_pollfds() gave, and on timeouts. */
void metrics_serve(const struct pollfd *pfd, int n, int64_t now);

/* In a child just forked: close the master's descriptors of the port's clients (a copy held
 * here would keep a connection open after the master has ended it). */
void metrics_forget(void);

/* From TERM on, /readyz answers 503. */
void metrics_set_stopping(void);

/* Does the application accept a TCP connection?  Probed at most once a second, for
 * /readyz, sidemeter_upstream_up and --exit-when-upstream-down alike. */
int metrics_app_up(int64_t now);

/* Was POST /quitquitquit asked since the last call (from loopback)?  Job mode: the master
 * then stops as on TERM. */
int metrics_take_quit(void);

/* ---- the pages, also for the tests ---- */

void metrics_render_prometheus(struct buf *b, int openmetrics);
void metrics_render_stats(struct buf *b);

/* A growing buffer; buf_free() releases it. */
void buf_printf(struct buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void buf_append(struct buf *b, const char *p, size_t n);
void buf_free(struct buf *b);

#endif
