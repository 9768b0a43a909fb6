/* account.h: how the events of a connection become counts and records in a shared-memory
 * slot.  The worker and the keeper both end connections and report exchanges; both do it
 * through these, so a connection is counted the same wherever it ends. */
#ifndef SIDEMETER_ACCOUNT_H
#define SIDEMETER_ACCOUNT_H

#include <stdint.h>
#include <sys/socket.h>

#include "labels.h"
#include "observer.h"
#include "shm_stats.h"

/* A connection's books: what its record needs when it ends, carried with it when it moves
 * between a worker and the keeper. */
struct conn_books {
	int64_t cb_accepted;		/* CLOCK_MONOTONIC ns */
	int64_t cb_connected;		/* 0: the application was never reached */
	uint64_t cb_bytes[2];		/* relayed so far: client to application, back */
	uint32_t cb_requests;		/* exchanges reported on it */
	uint32_t cb_pad;
};

/* ---- reporting into slot sl (the caller is its only writer) ---- */

/* An exchange the observer reported (why < 0: complete; else enum incomplete_reason): the
 * exact count first, then the sample, if the ring has room; and if it is complete and tr
 * (its trace context, or NULL) is given, an exemplar after it. */
void account_exchange(struct shm_slot *sl, const struct obs_exchange *ex,
    const struct obs_trace *tr, int why);

/* ---- the access log and the tap: lines into slot sl's log ring ---- */

/* Who wants lines now: a sum of these, 0 for no one (then none is written, and the client's
 * address and the request's strings need not be captured). */
#define LOG_WANT_FILE 1u	/* --access-log is on (its --access-log-filter applies here) */
#define LOG_WANT_TAP 2u		/* a /tap client listens (the master says so in the header) */
unsigned account_log_wants(const struct shm_header *sh);

/* The exchange's line (number: its place on the connection, from 1); om, tr, peer may be
 * NULL (not captured, no trace context, the address unknown). */
void account_log_exchange(struct shm_slot *sl, unsigned wants, const struct obs_exchange *ex,
    const struct obs_meta *om, const struct obs_trace *tr, int why, const struct sockaddr *peer,
    uint32_t number);

/* A connection that ended at now without an exchange (a timeout before any request, an
 * opaque stream: opaque is its enum opaque_reason, or -1): its line.  One that closed
 * without sending a byte has none. */
void account_log_conn(struct shm_slot *sl, unsigned wants, const struct conn_books *cb,
    enum close_reason why, int64_t now, const struct sockaddr *peer, int opaque);

/* A connection ended at now: its reason counted and its record published. */
void account_conn_end(struct shm_slot *sl, const struct conn_books *cb, enum close_reason why,
    int64_t now);

/* What a connection's end means for a request still in flight. */
enum incomplete_reason account_incomplete_of(enum close_reason why);

#endif
