/* metrics.h: the metrics port, served by the master with non-blocking sockets inside its
 * loop: /metrics (render.h), /healthz, /readyz (ready.h), /stats.json, /tap (tap.h) and the
 * status page.  A slow or hostile client holds up nothing but itself: requests are
 * bounded in size and time, GET/HEAD only, and the number of clients is capped (when every
 * place is taken, the client silent longest gives its place up). */
#ifndef SIDEMETER_METRICS_H
#define SIDEMETER_METRICS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define METRICS_CLIENTS 16	/* clients served at once */

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

/* Was POST /quitquitquit asked since the last call (from loopback)?  Job mode: the master
 * then stops as on TERM. */
int metrics_take_quit(void);

#endif
