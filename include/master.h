/* master.h: the master's state, shared by its three files and no one else: server.c (main,
 * signals, the loop, stopping, start-up), pool.c (forking, reaping and sizing the pool of
 * workers and the keeper) and reexec.c (USR2: the binary run again in place).  Workers and
 * the keeper never see it: what they share with the master is the region (shm_stats.h) and
 * the env structs they are forked with. */
#ifndef SIDEMETER_MASTER_H
#define SIDEMETER_MASTER_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm_stats.h"

#define START_FAILURES_MAX 5	/* workers dying before they are ready, in a row: give up */
#define CRASH_WINDOW_MS 10000	/* crashes counted over this window ... */
#define CRASH_FREE 20		/* ... are respawned at once up to this many, then backed off */
#define BACKOFF_MAX_MS 5000
#define RAMP_MAX 32		/* workers forked in one tick when none is idle */
#define RAMP_AFTER_MS 50	/* with a keeper: none idle this long before the pool grows */

/* The master's own view of a slot (the shared scoreboard is the workers' view). */
struct master_slot {
	pid_t ms_pid;			/* 0: free */
	unsigned ms_gen;
	int64_t ms_forked;
	int ms_ready;			/* seen accepting at least once */
	int ms_leaving;			/* sent SIGQUIT: an end we asked for */
	int ms_killed;			/* sent SIGKILL */
	int ms_wedged;			/* ... because its heartbeat stopped: a restart */
	int ms_foreign;			/* adopted on USR2 but writing another region */
	int64_t ms_kill_at;		/* still alive then: SIGKILL */
};

struct master {
	int m_listen_fd;
	int m_metrics_fd;		/* -1: --metrics off */
	int m_shm_fd;			/* the region's descriptor, for USR2 (-1: none) */
	char m_exe[PATH_MAX];		/* the binary to run again on USR2 */
	char **m_argv;
	int m_alive_r, m_alive_w;	/* workers hold the read end; EOF = master gone */
	int m_park[2];			/* workers write [0], the keeper reads [1] */
	int m_back[2];			/* the keeper writes [0], workers read [1] */
	int m_keeper_on;		/* http mode and --max-parked > 0 */
	unsigned m_keeper;		/* the keeper's slot */
	int64_t m_keeper_gone_by;	/* at a stop: workers are told to leave then at the latest */
	int m_sig_r, m_sig_w;		/* self-pipe: a signal wakes the poll */
	struct shm_header *m_shm;
	unsigned m_nslots;
	struct master_slot *m_slots;
	unsigned m_gen;			/* current generation; HUP bumps it */
	unsigned m_target;		/* workers kept at least (TTIN/TTOU) */
	unsigned m_ramp;		/* forks per tick while no worker is idle */
	unsigned m_shrink_now;		/* TTOU: idle workers to retire without waiting */
	unsigned m_start_failures;
	int64_t m_crashes[CRASH_FREE + 1];	/* ring of recent crash times */
	unsigned m_ncrash;
	int64_t m_respawn_at;		/* back-off: no fork before this */
	int64_t m_saturated_since;	/* no worker idle since then (0: one is) */
	int64_t m_next_probe;		/* --exit-when-upstream-down: the next connect to try */
	int64_t m_down_since;		/* ... the application unreachable since (0: up) */
	int m_seen_up;			/* ... it accepted once: only then may it be "gone" */
	int m_stopping;
	int m_quit_sent;
	int m_done;			/* stopping, and every worker is gone: finish() */
	int64_t m_drain_at;		/* TERM + --drain-delay: workers told to finish */
	int64_t m_kill_at;		/* TERM + delay + --drain-timeout: the rest is killed */
	int64_t m_next_drain;
	int64_t m_next_interval;	/* the summary line, and the interval's end */
	int64_t m_next_tick;		/* the next history point */
};

/* The one master of this process ("m", as every line of the master reads it). */
extern struct master m;

/* ---- pool.c ---- */

/* Keep the pool right (pool.c's header comment says how); on every turn of the loop. */
void pool_tick(int64_t now);

/* Reap every child that ended (waitpid -1: orphans too, as PID 1); one child's end. */
void pool_reap(int64_t now);
void pool_reaped(pid_t pid, int status, int64_t now);

/* Ask slot i's process to finish its connection and leave (SIGQUIT); SIGKILL every child. */
void pool_tell_to_leave(unsigned i, int64_t now);
void pool_kill_all(void);

/* Workers alive, of every generation (the keeper not counted). */
unsigned pool_live_workers(void);

/* ---- server.c, for reexec.c ---- */

/* Map a new region for m.m_nslots slots (fatal if it cannot). */
void master_map_shm(void);

/* ---- reexec.c ---- */

/* USR2: run the binary on disk again in place, if it passes --check; returns only if it
 * did not (the master carries on as it was). */
void master_reexec(void);

/* In the new image: take over what the previous one left in SIDEMETER_INHERIT.  0 if
 * there was nothing to inherit (a first start). */
int master_inherit(int64_t now);

#endif
