/* relay.h: the two-socket pump.  It moves bytes both ways between a client and the
 * application until both sides are done, passing a half-close on with shutdown(), and knows
 * nothing of HTTP: a policy given by the caller sees every chunk (or is told how many bytes
 * went by unseen) and, turn by turn, sets the deadline and what may be done faster. */
#ifndef SIDEMETER_RELAY_H
#define SIDEMETER_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"

#define RELAY_CLIENT 0		/* index of the client socket */
#define RELAY_UPSTREAM 1	/* index of the application socket */
#define RELAY_C2U 0		/* direction: read from the client, written to the application */
#define RELAY_U2C 1		/* direction: read from the application, written to the client */
#define RELAY_BUF (64 * 1024)
#define RELAY_TICK_MS 1000	/* the longest wait without a check */
#define RELAY_ALL UINT64_MAX	/* rp_unseen: every byte to the end of the stream */
/* What relay_pump() returns when the policy let go of the pair (ro_check returned
 * RELAY_HANDOFF): both sockets open, nothing read that is not written on, no end of
 * stream seen.  Not a close reason: the connection goes on elsewhere. */
#define RELAY_HANDOFF ((enum close_reason)CLOSE_MAX)

/* What the policy says before each wait.  The relay presets it (never, -1, 0 and 0). */
struct relay_plan {
	int64_t rp_deadline;		/* when ro_check must run again at the latest */
	/* The direction whose source speaks next when the policy knows it (a complete
	 * request: the application; a finished exchange: the client).  The relay then
	 * blocks in a read of that side instead of polling both: each socket must have the
	 * SO_RCVTIMEO given to relay_set_ticks() (RELAY_TICK_MS unless told otherwise) so
	 * that the read comes back to a check. */
	int rp_expect;
	/* Bytes that may move in each direction without being seen (a body of known
	 * length, a tunnel): on Linux they go through a pipe with splice(), never copied
	 * into user space, and ro_unseen() is told how many went. */
	uint64_t rp_unseen[2];
};

/* What the caller decides.  All callbacks get the current CLOCK_MONOTONIC time. */
struct relay_ops {
	/* A chunk just read in direction dir, before it is written on.  The bytes are
	 * read-only.  Returns CLOSE_NONE to go on, or why to stop after writing it. */
	enum close_reason (*ro_data)(void *ctx, int dir, const char *p, size_t n, int64_t now);
	/* n bytes moved in direction dir without ro_data seeing them (within rp_unseen). */
	void (*ro_unseen)(void *ctx, int dir, size_t n, int64_t now);
	/* End of stream read in direction dir, before the half-close is passed on.  Returns
	 * CLOSE_NONE to pass it on and go on, or why to stop without passing it on. */
	enum close_reason (*ro_eof)(void *ctx, int dir, int64_t now);
	/* Before every wait: CLOSE_NONE to go on, with the plan filled in; or why to stop now
	 * (RELAY_HANDOFF included). */
	enum close_reason (*ro_check)(void *ctx, int64_t now, struct relay_plan *plan);
};

struct relay_dir {
	char rd_buf[RELAY_BUF];
	size_t rd_off, rd_len;		/* bytes read but not yet written on */
	size_t rd_piped;		/* bytes spliced into the pipe, not yet written on */
	int rd_pipe[2];			/* for splice(); made when first needed, kept */
	int rd_eof;			/* end of stream read from the source */
	int rd_shut;			/* shutdown(SHUT_WR) passed to the destination */
};

struct relay {
	int rl_set_up;			/* relay_init() has run once: the pipe fields mean something */
	int rl_fd[2];			/* RELAY_CLIENT, RELAY_UPSTREAM */
	int rl_watch;			/* readable or hung up: stop with CLOSE_ABORTED (-1: none) */
	int rl_first_eof;		/* direction whose source closed first, -1 if none */
	int rl_tick_ms[2];		/* each socket's SO_RCVTIMEO: a blocking read's longest wait */
	uint64_t rl_bytes[2];		/* bytes written on, by direction */
	const struct relay_ops *rl_ops;
	void *rl_ctx;
	struct relay_dir rl_dir[2];
};

/* Make rl ready for a new pair of sockets (watch: -1 for none).  rl starts zeroed (static);
 * its pipes are kept from one connection to the next. */
void relay_init(struct relay *rl, int client_fd, int upstream_fd, int watch,
    const struct relay_ops *ops, void *ctx);

/* The SO_RCVTIMEO each socket has (relay_init() assumes RELAY_TICK_MS for both). */
void relay_set_ticks(struct relay *rl, int client_ms, int upstream_ms);

/* Pump until both directions are finished, a socket fails, the watch fd fires or the policy
 * stops it.  The sockets stay open (the caller closes them).  Returns why it ended, or
 * RELAY_HANDOFF. */
enum close_reason relay_pump(struct relay *rl);

/* The end of the stream was read from the source of direction dir; the half-close was
 * passed on to its destination. */
int relay_eof_read(const struct relay *rl, int dir);
int relay_shut(const struct relay *rl, int dir);

/* Bytes written on in each direction so far; set, for a connection carried on from
 * elsewhere (the keeper), so that the count goes on from where it stood. */
uint64_t relay_bytes(const struct relay *rl, int dir);
void relay_set_bytes(struct relay *rl, uint64_t c2u, uint64_t u2c);

/* The application's socket, once connected (relay_init() may be given -1 for it). */
void relay_set_upstream(struct relay *rl, int fd);

/* True when some bytes were read in direction dir but not written on yet. */
int relay_pending(const struct relay *rl, int dir);

/* True when the pair could be handed to another process as it is: nothing held in either
 * direction, no end of stream read or passed on. */
int relay_quiet(const struct relay *rl);


#endif
