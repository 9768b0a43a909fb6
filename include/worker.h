/* worker.h: a worker's life.  It accepts on the inherited listen socket, serves one
 * connection at a time with blocking sockets, and reports into its shared-memory slot. */
#ifndef SIDEMETER_WORKER_H
#define SIDEMETER_WORKER_H

#include "log.h"
#include "shm_stats.h"

/* What the master hands a worker at fork. */
struct worker_env {
	int we_listen_fd;		/* the listen socket, shared by every worker */
	int we_alive_fd;		/* read end of the master's pipe: EOF means the master died */
	int we_park_fd;			/* write: pairs for the keeper */
	int we_back_fd;			/* read: pairs the keeper hands back */
	int we_keeper;			/* a keeper runs (http mode, --max-parked > 0) */
	int we_client_tick_ms;		/* the SO_RCVTIMEO accepted sockets have */
	struct shm_header *we_shm;
	unsigned we_slot;
};

/* Run a worker in the child just forked; never returns (exit 0: asked to leave; 1: could
 * not start). */
void worker_run(const struct worker_env *env) LOG_NORETURN;

/* The signal dispositions of every child of the master (a worker, the keeper): QUIT, TERM
 * and INT call quit (a flag: the master decides when to leave), the master's other
 * signals are ignored, SIGCHLD is the default.  The mask is left to the caller. */
void worker_signals(void (*quit)(int));

#endif
