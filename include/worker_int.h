/* worker_int.h: a worker's inside, shared by its three files and no one else: worker.c (a
 * connection's life: serve, park, resume, close, and the accept loop), worker_policy.c
 * (the relay policy: what the relay asks of a byte, an end and a tick) and worker_wait.c
 * (an idle worker waiting for work).  The contract for the master is include/worker.h. */
#ifndef SIDEMETER_WORKER_INT_H
#define SIDEMETER_WORKER_INT_H

#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

#include "observer.h"
#include "relay.h"
#include "shm_stats.h"
#include "worker.h"

#define LINGER_MS 2000		/* how long a closing client may still send before we close */
#define BACKOFF_MS 100		/* pause after an accept that failed for lack of resources */
#define ANSWER_MS 1000		/* time given to write a 502/504 */
#define PARK_RETRY_MS 1000	/* after the keeper had no room: keep it this long first */
#define DRAIN_HEAD_MS 2000	/* leaving: a request head in progress has this long to finish */

/* One client connection and its application connection. */
struct conn {
	int cn_fd[2];			/* RELAY_CLIENT, RELAY_UPSTREAM; -1 when closed */
	int64_t cn_accepted;
	int64_t cn_connected;		/* 0: the application was never reached */
	int64_t cn_last_io;		/* last byte either way */
	int64_t cn_last_in;		/* last byte from the client */
	uint32_t cn_requests;		/* exchanges reported on this connection */
	int cn_answered;		/* we wrote an answer of our own (502/504) */
	int cn_connect_errno;		/* why connecting failed */
	int64_t cn_park_after;		/* no hand-off to the keeper before this */
#define PARK_NOT_UNREAD INT64_MAX	/* ... nor before a byte has been read (it came back) */
	int cn_slow_tick;		/* the client socket's SO_RCVTIMEO is RELAY_TICK_MS now */
	uint32_t cn_stay_from;		/* cn_requests when this worker took the connection */
	int cn_asked;			/* idle_crowded() has looked during this stay */
	int64_t cn_head_asked;		/* head_crowded() looked when cn_last_in was this */
	struct sockaddr_storage cn_peer;	/* the client (for the access log); family 0: unknown */
	int cn_opaque;			/* enum opaque_reason once the observer stopped, else -1 */
	struct relay cn_relay;
	struct observer cn_obs;
};

/* The worker's own: one process, one connection at a time. */
extern struct conn conn;
extern struct shm_slot *w_slot;			/* its slot in the region */
extern const struct worker_env *w_env;
extern volatile sig_atomic_t w_quit;		/* SIGQUIT/TERM: finish and leave */
extern int64_t w_quit_seen;			/* when the relay first saw w_quit (0: not yet) */

/* ---- worker_policy.c ---- */

extern const struct relay_ops worker_relay_ops;

/* ---- worker_wait.c ---- */

/* An idle worker waits on three things: new connections, pairs the keeper hands back, and
 * the master's pipe.  On Linux each worker has an epoll set of them, the first two added
 * with EPOLLEXCLUSIVE: the kernel wakes one waiting worker per event, not every idle one,
 * and a busy worker (not waiting) takes no wake-up away from an idle one.  Elsewhere poll()
 * watches them, and every idle worker wakes. */
#define READY_ACCEPT 0x1
#define READY_BACK 0x2
#define READY_MASTER_GONE 0x4

/* Set up what an idle worker waits on (fatal if it cannot). */
void worker_wait_init(void);

/* Wait up to a second; returns the READY_ bits of what is ready. */
unsigned worker_wait(void);

/* Accept a connection from the non-blocking listen socket, if another worker has not
 * taken it first: a blocking socket, or -1 with errno.  peer gets the client's address
 * when the access log wants it (family 0 when not). */
int worker_accept(int lfd, struct sockaddr_storage *peer);

#endif
