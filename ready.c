/* ready.c: the readiness probe (contract in include/ready.h).
 * It touches: the pool's view (aggregate.h), one connect to the application a second. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "net.h"
#include "ready.h"

#define READY_CHECK_MS 1000		/* the application is probed at most this often */
#define READY_CONNECT_MS 200

static int ready_app;			/* the application accepted a connection */
static int64_t ready_checked;		/* when that was last tried */
static char ready_why[400];

static int stopping;		/* from TERM on */

/* From TERM on /readyz says 503, while the workers still serve through --drain-delay. */
void ready_set_stopping(void)
{
	stopping = 1;
}

int ready_stopping(void)
{
	return stopping;
}

/* XXX: the probe is a blocking connect of at most READY_CONNECT_MS; it can delay the
 * master's loop by that much, never a worker. */
int ready_app_up(int64_t now)
{
	int fd;

	if (ready_checked == 0 || now - ready_checked >= READY_CHECK_MS * NS_PER_MS) {
		ready_checked = now;
		fd = net_connect(&cfg.cf_upstream, READY_CONNECT_MS);
		ready_app = fd >= 0;
		if (fd >= 0)
			close(fd);
		else
			snprintf(ready_why, sizeof(ready_why), "the application at %s: %s",
			    cfg.cf_upstream.na_text, strerror(errno));
	}
	return ready_app;
}

/* /readyz: ready when not stopping, with a worker that takes connections, and the
 * application reachable.  A pod is taken out of its Service as soon as a stop begins (its
 * endpoints then drain), and never sent traffic it would only answer with 502s. */
int ready_check(int64_t now, char *why, size_t len)
{
	struct pool_view pv;

	if (stopping) {
		snprintf(why, len, "stopping");
		return 0;
	}
	aggregate_pool(&pv);
	if (pv.pv_state[WORKER_IDLE] + pv.pv_state[WORKER_BUSY] == 0) {
		snprintf(why, len, "no worker is ready");
		return 0;
	}
	if (!ready_app_up(now)) {
		snprintf(why, len, "%s", ready_why);
		return 0;
	}
	return 1;
}
