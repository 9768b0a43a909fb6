/* keeper.h: the keeper, and the hand-off of a connection between a worker and the keeper.
 *
 * A worker whose connection only waits (between exchanges, before the first byte, or in a
 * request head that has stalled) hands the pair of sockets, with the little state it needs,
 * to the keeper over a SOCK_SEQPACKET socket (SCM_RIGHTS), and goes back to work.  The
 * keeper waits on every pair it holds at once.  When one has something to say, it goes
 * back, the same way, over a second channel that every worker reads and the first idle one
 * takes; the worker carries on as if it had never left.  A pair that closes or times out in
 * the keeper ends there, through the same accounting as in a worker.
 *
 *      worker --park channel--> keeper --hand-back channel--> any idle worker
 *
 * The master makes both channels before the first fork and holds all four ends, so that a
 * message in flight outlives a keeper that dies and a re-exec (USR2). */
#ifndef SIDEMETER_KEEPER_H
#define SIDEMETER_KEEPER_H

#include <stdint.h>

#include "account.h"
#include "log.h"
#include "observer.h"
#include "shm_stats.h"

#define PARK_VERSION 1u

/* What travels with a pair, both ways.  Only pk_linelen bytes of pk_line are sent. */
struct park_msg {
	uint32_t pk_version;		/* PARK_VERSION */
	uint32_t pk_linelen;		/* bytes of the observer's unfinished line, in pk_line */
	struct conn_books pk_books;
	int64_t pk_last_io;		/* last byte either way */
	int64_t pk_last_in;		/* last byte from the client */
	char pk_route[SHM_ROUTE_LEN];	/* the route of the request in flight, by name ("" none) */
	struct obs_saved pk_obs;
	char pk_line[OBS_LINE_MAX];
};

/* ---- the hand-off (worker and keeper) ---- */

/* Send pm with the client and application sockets on a channel, without waiting.  On
 * success the descriptors are in flight and the caller closes its own.  0, or -1 with
 * errno (EAGAIN: the channel is full). */
int keeper_send(int chan, const struct park_msg *pm, int cfd, int ufd);

/* Take one message and its two sockets from a channel, without waiting.  1: got one; 0:
 * none there (another process may have taken it); -1: a broken message (its descriptors,
 * if any came, are closed). */
int keeper_recv(int chan, struct park_msg *pm, int *cfd, int *ufd);

/* ---- the keeper process ---- */

struct keeper_env {
	int ke_park_fd;			/* read: pairs from the workers */
	int ke_back_fd;			/* write: pairs for the workers */
	int ke_alive_fd;		/* read end of the master's pipe: EOF means the master died */
	struct shm_header *ke_shm;
	unsigned ke_slot;
};

/* Run the keeper in the child just forked; never returns.  SIGQUIT: close the idle pairs,
 * hand the others back, leave. */
void keeper_run(const struct keeper_env *env) LOG_NORETURN;

#endif
