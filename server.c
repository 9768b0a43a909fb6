/* server.c: main and the master.  The master binds the listen socket once, maps the shared
 * memory, makes the keeper's two channels, forks the keeper and the workers, and then runs
 * one loop: wait with a deadline; then reap, stop, drain (the one drain of the rings, before
 * anything reads the aggregate), rotate, resize, respawn, dump, serve the port, in that
 * order.  Signal handlers only set flags.
 *
 * It touches: every slot's scoreboard row when it forks into or empties the slot, a slot's
 * counters to close the books of a worker that died with a connection, the header's master
 * fields (sh_restarts, sh_hurry, sh_tapping, ...); never a ring's head or a connection. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accesslog.h"
#include "aggregate.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "dump.h"
#include "keeper.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "ready.h"
#include "relay.h"
#include "shm_stats.h"
#include "tap.h"
#include "worker.h"

#define TICK_BUSY_MS 20		/* drain period while records flow */
#define TICK_IDLE_MS 50	/* drain period when quiet: a ring fills no faster than this */
#define START_FAILURES_MAX 5	/* workers dying before they are ready, in a row: give up */
#define CRASH_WINDOW_MS 10000	/* crashes counted over this window ... */
#define CRASH_FREE 20		/* ... are respawned at once up to this many, then backed off */
#define BACKOFF_MAX_MS 5000
#define RAMP_MAX 32		/* workers forked in one tick when none is idle */
#define RAMP_AFTER_MS 50	/* with a keeper: none idle this long before the pool grows */
#define KEEPER_FIRST_MS 2000	/* at a stop, the keeper's time to leave before the workers */
#define CHANNEL_BUF (4 << 20)	/* socket buffer asked for each keeper channel */

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

static struct master {
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
} m;

static volatile sig_atomic_t sig_stop, sig_hup, sig_usr1, sig_usr2, sig_chld, sig_ttin,
    sig_ttou, sig_any;

static void on_signal(int sig)
{
	int saved = errno;
	ssize_t r;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		sig_stop++;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	case SIGUSR1:
		sig_usr1 = 1;
		break;
	case SIGUSR2:
		sig_usr2 = 1;
		break;
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGTTIN:
		sig_ttin++;
		break;
	case SIGTTOU:
		sig_ttou++;
		break;
	}
	sig_any = 1;
	r = write(m.m_sig_w, "", 1);	/* full pipe: a wake-up is already pending */
	(void)r;
	errno = saved;
}

struct flags {
	int f_stop, f_hup, f_usr1, f_usr2, f_chld, f_ttin, f_ttou;
};

/* Copy and clear the flags with signals blocked, so none is lost in between.  Most
 * wake-ups are timers: then there is nothing to take. */
static void take_signals(struct flags *f)
{
	sigset_t all, old;
	char sink[64];

	memset(f, 0, sizeof(*f));
	if (!sig_any)
		return;
	while (read(m.m_sig_r, sink, sizeof(sink)) > 0)
		;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	f->f_stop = sig_stop;
	f->f_hup = sig_hup;
	f->f_usr1 = sig_usr1;
	f->f_usr2 = sig_usr2;
	f->f_chld = sig_chld;
	f->f_ttin = sig_ttin;
	f->f_ttou = sig_ttou;
	sig_stop = sig_hup = sig_usr1 = sig_usr2 = sig_chld = sig_ttin = sig_ttou = sig_any = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void setup_signals(void)
{
	static const int caught[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD,
		SIGTTIN, SIGTTOU };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	for (i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		if (sigaction(caught[i], &sa, NULL) == -1)
			fatal("sigaction %d", caught[i]);
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);	/* meant for workers; a stray one must not kill us */
}

/* ---- workers: fork, reap, signal ------------------------------------------------------ */

static struct shm_slot *slot_at(unsigned i)
{
	return shm_stats_slot(m.m_shm, i);
}

/* Fork a child into slot i: a worker, or the keeper.  0, or -1 if fork failed. */
static int fork_into(unsigned i, int64_t now)
{
	struct worker_env env;
	struct keeper_env kenv;
	sigset_t all, old;
	pid_t pid;

	score_prepare(slot_at(i), m.m_gen, now);
	aggregate_use_slot(i);

	env.we_listen_fd = m.m_listen_fd;
	env.we_alive_fd = m.m_alive_r;
	env.we_park_fd = m.m_park[0];
	env.we_back_fd = m.m_back[1];
	env.we_keeper = m.m_keeper_on;
	env.we_client_tick_ms = m.m_keeper_on ? (int)cfg.cf_park_after_ms : RELAY_TICK_MS;
	env.we_shm = m.m_shm;
	env.we_slot = i;
	kenv.ke_park_fd = m.m_park[1];
	kenv.ke_back_fd = m.m_back[0];
	kenv.ke_alive_fd = m.m_alive_r;
	kenv.ke_shm = m.m_shm;
	kenv.ke_slot = i;

	/* The child must not run our handlers before it has installed its own. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0) {
		close(m.m_sig_r);
		close(m.m_sig_w);
		close(m.m_alive_w);
		if (m.m_metrics_fd >= 0)
			close(m.m_metrics_fd);
		if (m.m_shm_fd >= 0)
			close(m.m_shm_fd);	/* the mapping stays; the descriptor is the master's */
		dump_forget();
		metrics_forget();
		accesslog_forget();
		if (i == m.m_keeper) {
			close(m.m_listen_fd);	/* the keeper never accepts */
			keeper_run(&kenv);
		}
		worker_run(&env);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		log_warn("fork");
		score_clear(slot_at(i));
		return -1;
	}
	memset(&m.m_slots[i], 0, sizeof(m.m_slots[i]));
	m.m_slots[i].ms_pid = pid;
	m.m_slots[i].ms_gen = m.m_gen;
	m.m_slots[i].ms_forked = now;
	return 0;
}

/* A worker into the first free slot (the keeper's is not one). */
static int spawn(int64_t now)
{
	unsigned i;

	for (i = 0; i < m.m_nslots && (m.m_slots[i].ms_pid != 0 || i == m.m_keeper); i++)
		;
	if (i == m.m_nslots)
		return -1;
	return fork_into(i, now);
}

static void tell_to_leave(unsigned i, int64_t now)
{
	struct master_slot *ms = &m.m_slots[i];

	if (ms->ms_pid == 0 || ms->ms_leaving)
		return;
	ms->ms_leaving = 1;
	ms->ms_kill_at = now + cfg.cf_drain_ms * NS_PER_MS;
	kill(ms->ms_pid, SIGQUIT);
}

static unsigned slot_of(pid_t pid)
{
	unsigned i;

	for (i = 0; i < m.m_nslots; i++)
		if (m.m_slots[i].ms_pid == pid)
			return i;
	return m.m_nslots;
}

static void note_crash(int64_t now)
{
	unsigned recent = 0, k;

	m.m_crashes[m.m_ncrash++ % (CRASH_FREE + 1)] = now;
	for (k = 0; k < CRASH_FREE + 1 && k < m.m_ncrash; k++)
		if (now - m.m_crashes[k] < CRASH_WINDOW_MS * NS_PER_MS)
			recent++;
	if (recent > CRASH_FREE) {
		int64_t delay = m.m_respawn_at > now ? 2 * (m.m_respawn_at - now) : 100 * NS_PER_MS;

		if (delay > BACKOFF_MAX_MS * NS_PER_MS)
			delay = BACKOFF_MAX_MS * NS_PER_MS;
		m.m_respawn_at = now + delay;
		log_warnx("%u workers crashed within %ds: next fork in %.1fs", recent,
		    CRASH_WINDOW_MS / 1000, (double)delay / 1e9);
	}
}

/* The keeper ended.  What it held ended with it: each connection is counted as aborted, and
 * each request head in progress as cut short, in its slot (which has no writer now). */
static void keeper_reaped(int status, const char *how, int64_t now)
{
	struct shm_slot *sl = shm_stats_slot(m.m_shm, m.m_keeper);
	uint32_t held = atomic_load_explicit(&m.m_shm->sh_held, memory_order_relaxed);
	uint32_t heads = atomic_load_explicit(&m.m_shm->sh_held_requests, memory_order_relaxed);
	struct master_slot *ms = &m.m_slots[m.m_keeper];

	shm_stats_add(sl, CTR_CLOSE + CLOSE_ABORTED, held);
	shm_stats_add(sl, CTR_INCOMPLETE + INCOMPLETE_ABORTED, heads);
	atomic_store_explicit(&m.m_shm->sh_held, 0, memory_order_relaxed);
	atomic_store_explicit(&m.m_shm->sh_held_requests, 0, memory_order_relaxed);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !ms->ms_killed)
		return;
	log_warnx("the keeper (pid %ld) %s%s; %u connections it held are lost",
	    (long)ms->ms_pid, how, ms->ms_leaving || m.m_stopping ? " while leaving" : "", held);
	if (ms->ms_leaving || m.m_stopping)
		return;
	m.m_shm->sh_restarts++;
	note_crash(now);
}

/* Book a child's end: say how it ended, count a restart when it was not planned, and free
 * its slot. */
static void reaped(pid_t pid, int status, int64_t now)
{
	unsigned i = slot_of(pid);
	enum worker_state st;
	struct master_slot *ms;
	struct shm_slot *sl;
	char how[64];
	int ready;

	if (i == m.m_nslots)
		return;		/* an orphan we inherited as PID 1 */
	ms = &m.m_slots[i];
	sl = shm_stats_slot(m.m_shm, i);
	st = score_state(sl);
	ready = ms->ms_ready || st == WORKER_IDLE || st == WORKER_BUSY || st == WORKER_LEAVING;
	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "was killed by signal %d (status %d)", WTERMSIG(status),
		    128 + WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "ended (status 0x%x)", (unsigned)status);

	if (i == m.m_keeper) {
		keeper_reaped(status, how, now);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !ms->ms_killed) {
		/* a planned end: asked to leave, or the master's pipe looked closed */
	} else if ((ms->ms_leaving || m.m_stopping) && !ms->ms_wedged) {
		log_warnx("worker %u (pid %ld) %s while leaving", i, (long)pid, how);
	} else {
		log_warnx("worker %u (pid %ld) %s%s", i, (long)pid, how,
		    ready ? "" : " before it was ready");
		m.m_shm->sh_restarts++;
		if (!ready)
			m.m_start_failures++;
		note_crash(now);
	}
	/* The slot has no writer now: the master may close the books of a connection the
	 * worker took down with it. */
	if (score_conn_start(sl) != 0)
		shm_stats_add(sl, CTR_CLOSE + CLOSE_ABORTED, 1);
	score_clear(sl);
	ms->ms_pid = 0;
}

static void kill_all(void)
{
	unsigned i;

	for (i = 0; i < m.m_nslots; i++)
		if (m.m_slots[i].ms_pid) {
			m.m_slots[i].ms_killed = 1;
			kill(m.m_slots[i].ms_pid, SIGKILL);
		}
}

/* Workers keep dying before they are ready.  If an older generation is still serving (a
 * HUP or USR2 that brought bad workers), it carries on; otherwise nothing can serve, and
 * the master exits non-zero so that its supervisor's back-off applies. */
static void start_failed(void)
{
	unsigned i, gen = 0;
	int found = 0;

	for (i = 0; i < m.m_nslots; i++) {
		struct master_slot *ms = &m.m_slots[i];

		if (ms->ms_pid && ms->ms_ready && !ms->ms_leaving && ms->ms_gen != m.m_gen &&
		    i != m.m_keeper && (!found || ms->ms_gen > gen)) {
			gen = ms->ms_gen;
			found = 1;
		}
	}
	if (found) {
		log_warnx("workers of generation %u died %u times before they were ready: "
		    "generation %u carries on", m.m_gen, m.m_start_failures, gen);
		m.m_gen = gen;
		m.m_start_failures = 0;
		return;
	}
	log_warnx("%u workers in a row died before they were ready: giving up",
	    m.m_start_failures);
	kill_all();
	while (wait(NULL) > 0 || errno == EINTR)
		;
	exit(1);
}

/* Trust waitpid over our own bookkeeping: every child that ended is reaped here, ours or
 * not (as PID 1 we inherit orphans). */
static void reap(int64_t now)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		reaped(pid, status, now);
	if (m.m_start_failures >= START_FAILURES_MAX)
		start_failed();
}

static unsigned live_workers(void)
{
	unsigned i, n = 0;

	for (i = 0; i < m.m_nslots; i++)
		n += m.m_slots[i].ms_pid != 0;
	return n;
}

/* ---- the pool -------------------------------------------------------------------------- */

/* Kill what stopped beating, keep the current generation at its target, grow it while no
 * worker is idle, shrink it when workers idle too long, and retire older generations once
 * the current one is ready. */
static void pool(int64_t now)
{
	unsigned i, cur = 0, ready = 0, idle = 0, starting = 0, tied = 0, want;
	int64_t hb_limit = cfg.cf_heartbeat_ms * NS_PER_MS;
	int64_t idle_limit = cfg.cf_idle_worker_ms * NS_PER_MS;

	for (i = 0; i < m.m_nslots; i++) {
		struct master_slot *ms = &m.m_slots[i];
		struct score_row row;
		enum worker_state st;
		int64_t hb;

		if (ms->ms_pid == 0)
			continue;
		score_read(slot_at(i), &row);
		st = row.sr_state;
		hb = row.sr_heartbeat;
		if (!ms->ms_killed && !ms->ms_foreign && now - hb > hb_limit) {
			log_warnx("%s %u (pid %ld) silent for %.1fs: killing it",
			    i == m.m_keeper ? "keeper" : "worker", i, (long)ms->ms_pid,
			    (double)(now - hb) / 1e9);
			ms->ms_killed = ms->ms_wedged = 1;
			kill(ms->ms_pid, SIGKILL);
			continue;
		}
		if (i == m.m_keeper)
			continue;	/* not a worker: no generation, no pool */
		if (ms->ms_leaving) {
			if (now >= ms->ms_kill_at && !ms->ms_killed) {
				log_warnx("worker %u (pid %ld) still busy after --drain-timeout: killing it",
				    i, (long)ms->ms_pid);
				ms->ms_killed = 1;
				kill(ms->ms_pid, SIGKILL);
			}
			continue;
		}
		if (ms->ms_gen != m.m_gen)
			continue;
		cur++;
		if (st == WORKER_STARTING) {
			starting++;
			continue;
		}
		if (!ms->ms_ready) {
			ms->ms_ready = 1;
			m.m_start_failures = 0;
		}
		ready++;
		idle += st == WORKER_IDLE;
		/* Busy with one connection for RAMP_AFTER_MS already: tied up (a slow
		 * application, a client that keeps it), not churning through short ones. */
		tied += st == WORKER_BUSY && now - row.sr_last_busy >= RAMP_AFTER_MS * NS_PER_MS;
	}

	/* No worker idle while connections wait: workers hand idle connections to the keeper
	 * at once instead of after --park-after, which frees them for the waiting ones. */
	atomic_store_explicit(&m.m_shm->sh_hurry, m.m_keeper_on && idle == 0 &&
	    aggregate_listen_queue() > 0, memory_order_relaxed);

	/* Older generations leave once the current one can take the load.  The keeper stays:
	 * what it holds goes to the new generation. */
	if (ready >= m.m_target || (cur > 0 && ready == cur && starting == 0))
		for (i = 0; i < m.m_nslots; i++)
			if (m.m_slots[i].ms_pid && m.m_slots[i].ms_gen != m.m_gen && i != m.m_keeper)
				tell_to_leave(i, now);

	/* Shrink: idle workers above the target retire once idle long enough (at once after
	 * TTOU). */
	for (i = 0; i < m.m_nslots && cur > m.m_target && idle > 0; i++) {
		struct master_slot *ms = &m.m_slots[i];
		struct score_row row;

		if (ms->ms_pid == 0 || ms->ms_leaving || ms->ms_gen != m.m_gen || i == m.m_keeper)
			continue;
		score_read(slot_at(i), &row);
		if (row.sr_state != WORKER_IDLE ||
		    (m.m_shrink_now == 0 && now - row.sr_last_busy < idle_limit))
			continue;
		tell_to_leave(i, now);
		if (m.m_shrink_now > 0)
			m.m_shrink_now--;
		cur--;
		idle--;
	}
	if (cur <= m.m_target)
		m.m_shrink_now = 0;

	/* Grow: up to the target at once; past it, ramp up while nothing is idle.  With a
	 * keeper a worker is seldom busy for long with a connection that only waits, so a
	 * moment with no worker idle is not yet a reason: it must last RAMP_AFTER_MS, and
	 * only workers tied up that long are replaced.  A burst of short connections keeps
	 * every worker busy too, but more workers would not serve it sooner: the machine's
	 * CPU is what it waits for, and the burst would leave --max-workers behind. */
	want = cur < m.m_target ? m.m_target - cur : 0;
	if (want == 0 && idle == 0 && starting == 0 && cur > 0) {
		if (m.m_saturated_since == 0)
			m.m_saturated_since = now;
		if (!m.m_keeper_on) {
			want = m.m_ramp;
		} else if (now - m.m_saturated_since >= RAMP_AFTER_MS * NS_PER_MS) {
			want = m.m_ramp < tied ? m.m_ramp : tied;
		}
		if (want > 0)
			m.m_ramp = m.m_ramp < RAMP_MAX ? m.m_ramp * 2 : RAMP_MAX;
	} else if (idle > 0) {
		m.m_ramp = 1;
		m.m_saturated_since = 0;
	}
	/* Workers of older generations on their way out do not count against the maximum. */
	if (cur + want > cfg.cf_max_workers)
		want = cfg.cf_max_workers - cur;
	if (now < m.m_respawn_at)
		return;
	if (m.m_keeper_on && m.m_slots[m.m_keeper].ms_pid == 0 && !m.m_stopping &&
	    fork_into(m.m_keeper, now) == 0)
		log_info("keeper started (pid %ld), holding at most %u connections",
		    (long)m.m_slots[m.m_keeper].ms_pid, m.m_shm->sh_max_parked);
	while (want-- > 0)
		if (spawn(now) == -1)
			break;
}

/* ---- stopping -------------------------------------------------------------------------- */

/* The last of it: what the loop's drain took from the rings goes out (the access log, the
 * tap's ends, the last summary line), then exit. */
static void finish(int64_t now)
{
	accesslog_flush_until(now + NS_PER_S);
	tap_close_all();
	if (cfg.cf_dump_interval_ms > 0) {
		/* a log reader that does not read gets a second, not the power to keep us */
		dump_flush_until(now + NS_PER_S);
		dump_write(now);
		dump_flush_until(now + 2 * NS_PER_S);
	}
	log_info("stopped");
	exit(0);
}

/* TERM/INT: keep serving for --drain-delay, then every worker finishes what it has, for at
 * most --drain-timeout; what is left is killed.  A second signal skips the wait. */
static void stop(int64_t now, int again)
{
	unsigned i;

	if (!m.m_stopping) {
		m.m_stopping = 1;
		ready_set_stopping();
		m.m_drain_at = now + cfg.cf_drain_delay_ms * NS_PER_MS;
		m.m_kill_at = m.m_drain_at + cfg.cf_drain_ms * NS_PER_MS;
		log_info("stopping: draining for up to %.1fs",
		    (double)(cfg.cf_drain_delay_ms + cfg.cf_drain_ms) / 1000);
	} else if (again) {
		log_info("stopping now");
		m.m_drain_at = m.m_kill_at = now;
	}
	if (!m.m_quit_sent && now >= m.m_drain_at) {
		/* The keeper goes first: it closes the idle connections it holds and hands the
		 * ones in a request head back to workers that still take them. */
		if (m.m_slots[m.m_keeper].ms_pid && !m.m_slots[m.m_keeper].ms_leaving) {
			tell_to_leave(m.m_keeper, now);
			m.m_keeper_gone_by = now + KEEPER_FIRST_MS * NS_PER_MS;
		}
		if (m.m_slots[m.m_keeper].ms_pid == 0 || now >= m.m_keeper_gone_by) {
			m.m_quit_sent = 1;
			for (i = 0; i < m.m_nslots; i++)
				tell_to_leave(i, now);
		}
	}
	if (m.m_quit_sent && now >= m.m_kill_at) {
		for (i = 0; i < m.m_nslots; i++)
			if (m.m_slots[i].ms_pid)
				log_warnx("worker %u (pid %ld) still busy after --drain-timeout: killing it",
				    i, (long)m.m_slots[i].ms_pid);
		kill_all();
		while (live_workers() > 0) {
			int status;
			pid_t pid = waitpid(-1, &status, 0);

			if (pid > 0)
				reaped(pid, status, now);
			else if (errno != EINTR)
				break;
		}
	}
	if (m.m_quit_sent && live_workers() == 0)
		m.m_done = 1;	/* the loop drains what they left, then finishes */
}

/* ---- USR2: a new binary, in place ------------------------------------------------------ */

/* The master execs the binary on disk again and keeps its PID (it may be PID 1 in a pod),
 * its workers, the listen socket and the shared memory: they pass through exec in
 * SIDEMETER_INHERIT.  The new image starts a new generation of workers; the old ones leave
 * once it is ready, or carry on if it cannot start.  A binary that does not pass --check
 * with the same arguments is not run at all. */

#define CHECK_WAIT_MS 5000
#define INHERIT_ENV "SIDEMETER_INHERIT"

static int check_binary(void)
{
	char *args[256];
	int i, n, status = 0, devnull;
	int64_t until = clock_mono_ns() + CHECK_WAIT_MS * NS_PER_MS;
	pid_t pid, got;

	for (n = 0; m.m_argv[n] && n < 254; n++)
		args[n] = m.m_argv[n];
	args[n++] = (char *)(uintptr_t)"--check";
	args[n] = NULL;
	pid = fork();
	if (pid == -1) {
		log_warn("USR2: fork");
		return -1;
	}
	if (pid == 0) {
		devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		execv(m.m_exe, args);
		_exit(127);
	}
	for (i = 0;; i++) {
		got = waitpid(pid, &status, WNOHANG);
		if (got == pid)
			break;
		if (clock_mono_ns() >= until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			log_warnx("USR2: %s --check did not finish within %ds: carrying on", m.m_exe,
			    CHECK_WAIT_MS / 1000);
			return -1;
		}
		poll(NULL, 0, 20);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_warnx("USR2: %s --check failed (%s %d): carrying on", m.m_exe,
		    WIFEXITED(status) ? "status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -1;
	}
	return 0;
}

static void set_inheritable(int on)
{
	int fds[] = { m.m_listen_fd, m.m_metrics_fd, m.m_alive_r, m.m_alive_w, m.m_shm_fd,
		m.m_park[0], m.m_park[1], m.m_back[0], m.m_back[1] };
	size_t i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		int fl;

		if (fds[i] < 0 || (fl = fcntl(fds[i], F_GETFD)) == -1)
			continue;
		fcntl(fds[i], F_SETFD, on ? fl & ~FD_CLOEXEC : fl | FD_CLOEXEC);
	}
}

static void reexec(void)
{
	char env[8192];
	size_t n;
	unsigned i;
	sigset_t all, old;

	if (m.m_shm_fd < 0) {
		log_warnx("USR2: this system keeps no shared memory across exec: not supported");
		return;
	}
	if (check_binary() == -1)
		return;
	n = (size_t)snprintf(env, sizeof(env), "listen=%d metrics=%d alive=%d,%d shm=%d gen=%u "
	    "park=%d,%d back=%d,%d workers=", m.m_listen_fd, m.m_metrics_fd, m.m_alive_r,
	    m.m_alive_w, m.m_shm_fd, m.m_gen, m.m_park[0], m.m_park[1], m.m_back[0], m.m_back[1]);
	for (i = 0; i < m.m_nslots && n < sizeof(env) - 64; i++) {
		const struct master_slot *ms = &m.m_slots[i];

		if (ms->ms_pid)
			n += (size_t)snprintf(env + n, sizeof(env) - n, "%ld:%u:%u:%d,",
			    (long)ms->ms_pid, i, ms->ms_gen, ms->ms_leaving);
	}
	log_info("USR2: %s passed --check: re-executing", m.m_exe);
	dump_flush_until(clock_mono_ns() + NS_PER_S);	/* the new image starts a line afresh */
	accesslog_flush_until(clock_mono_ns() + NS_PER_S);	/* ... and with an empty queue */
	tap_close_all();	/* the streams end; a tap client asks the new image again */
	set_inheritable(1);
	setenv(INHERIT_ENV, env, 1);
	/* Signals wait until the new image has its handlers. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	execv(m.m_exe, m.m_argv);
	sigprocmask(SIG_SETMASK, &old, NULL);
	log_warn("USR2: exec %s", m.m_exe);
	unsetenv(INHERIT_ENV);
	set_inheritable(0);
}

/* ---- job mode ---------------------------------------------------------------------------- */

/* --exit-when-upstream-down: a Job's application ends, and its sidecar must end with it.
 * Once a second, the readiness probe's answer (one connect a second serves both); once
 * the application has been up and then down for that long, stop as on TERM. */
#define PROBE_MS 1000

static void watch_upstream(int64_t now)
{
	if (cfg.cf_exit_down_ms == 0 || m.m_stopping || now < m.m_next_probe)
		return;
	m.m_next_probe = now + PROBE_MS * NS_PER_MS;
	if (ready_app_up(now)) {
		m.m_seen_up = 1;
		m.m_down_since = 0;
		return;
	}
	if (!m.m_seen_up)
		return;
	if (m.m_down_since == 0)
		m.m_down_since = now;
	if (now - m.m_down_since >= cfg.cf_exit_down_ms * NS_PER_MS) {
		log_info("the application at %s has been unreachable for %.1fs: stopping",
		    cfg.cf_upstream.na_text, (double)(now - m.m_down_since) / 1e9);
		m.m_shm->sh_upstream_down_exits++;
		stop(now, 0);
	}
}

/* ---- the loop -------------------------------------------------------------------------- */

static int64_t earliest(int64_t a, int64_t b)
{
	return b > 0 && b < a ? b : a;
}

/* The interval: --dump-interval, or 10 s when the line is off (the status page and
 * /stats.json still show the last interval). */
static int64_t interval_ns(void)
{
	return (cfg.cf_dump_interval_ms > 0 ? cfg.cf_dump_interval_ms : 10000) * NS_PER_MS;
}

static void end_interval(int64_t now)
{
	if (cfg.cf_dump_interval_ms > 0)
		dump_write(now);
	aggregate_rotate(now);
}

static void master_loop(void)
{
	struct pollfd pfd[4 + METRICS_CLIENTS + TAP_CLIENTS];
	struct flags f;
	int64_t now, wake;
	size_t drained;
	int nm, nd, na, nt;

	for (;;) {
		now = clock_mono_ns();
		wake = earliest(m.m_next_drain, m.m_next_interval);
		wake = earliest(wake, m.m_next_tick);
		if (m.m_stopping)
			wake = earliest(wake, m.m_quit_sent ? m.m_kill_at : m.m_drain_at);
		if (m.m_stopping && !m.m_quit_sent && m.m_keeper_gone_by)
			wake = earliest(wake, m.m_keeper_gone_by);
		if (m.m_respawn_at > now)
			wake = earliest(wake, m.m_respawn_at);
		if (cfg.cf_exit_down_ms > 0 && !m.m_stopping)
			wake = earliest(wake, m.m_next_probe);
		pfd[0].fd = m.m_sig_r;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		nm = metrics_pollfds(pfd + 1, &wake);
		nd = dump_pollfd(pfd + 1 + nm);
		na = accesslog_pollfd(pfd + 1 + nm + nd);
		nt = tap_pollfds(pfd + 1 + nm + nd + na, &wake);
		if (poll(pfd, (nfds_t)(1 + nm + nd + na + nt), clock_poll_ms(wake, now, 1000)) == -1 &&
		    errno != EINTR)
			fatal("poll");
		now = clock_mono_ns();
		take_signals(&f);
		dump_flush();
		accesslog_flush();

		if (f.f_chld)
			reap(now);
		if (f.f_stop || m.m_stopping)
			stop(now, f.f_stop && m.m_stopping);
		/* The one drain: every record and log line the rings hold, on every turn of the
		 * loop, before anything below reads the aggregate (a summary line, a page, the
		 * history) and before the end.  The drain tick only makes sure of a turn at
		 * least every TICK_IDLE_MS. */
		drained = aggregate_drain() + accesslog_drain(m.m_shm, aggregate_nslots());
		accesslog_flush();
		m.m_next_drain = now + (drained ? TICK_BUSY_MS : TICK_IDLE_MS) * NS_PER_MS;
		if (m.m_done)
			finish(now);
		if (f.f_hup && !m.m_stopping) {
			m.m_gen++;
			log_info("rotating workers (generation %u)", m.m_gen);
		}
		if (f.f_usr2 && !m.m_stopping)
			reexec();
		if (f.f_ttin && m.m_target < cfg.cf_max_workers) {
			m.m_target += (unsigned)f.f_ttin;
			if (m.m_target > cfg.cf_max_workers)
				m.m_target = cfg.cf_max_workers;
			log_info("workers: at least %u", m.m_target);
		}
		if (f.f_ttou && m.m_target > 1) {
			m.m_target = (unsigned)f.f_ttou < m.m_target ? m.m_target - (unsigned)f.f_ttou : 1;
			m.m_shrink_now += (unsigned)f.f_ttou;
			log_info("workers: at least %u", m.m_target);
		}
		aggregate_set_workers_min(m.m_target);
		if (!m.m_quit_sent)
			pool(now);

		/* USR1 also reopens the access log's file, as nginx does, for logrotate. */
		if (f.f_usr1)
			accesslog_reopen();
		if (now >= m.m_next_interval || f.f_usr1) {
			/* USR1 ends the interval early: its line covers what came since the last. */
			if (f.f_usr1 && cfg.cf_dump_interval_ms == 0)
				dump_write(now);
			end_interval(now);
			if (now >= m.m_next_interval)
				m.m_next_interval = now + interval_ns();
		}
		if (now >= m.m_next_tick) {
			aggregate_tick(now);
			m.m_next_tick = now + AG_TICK_MS * NS_PER_MS;
		}
		metrics_serve(pfd + 1, nm, now);
		tap_serve(pfd + 1 + nm + nd + na, nt, now);
		/* Workers write log lines while a tap client listens (or the access log is on).
		 * Stored only when it changes: workers read this line for every exchange. */
		if (atomic_load_explicit(&m.m_shm->sh_tapping, memory_order_relaxed) !=
		    (tap_clients() > 0))
			atomic_store_explicit(&m.m_shm->sh_tapping, tap_clients() > 0,
			    memory_order_relaxed);
		if (metrics_take_quit() && !m.m_stopping) {
			log_info("POST /quitquitquit");
			m.m_shm->sh_quit_requests++;
			stop(now, 0);
		}
		watch_upstream(now);
	}
}

/* ---- start-up -------------------------------------------------------------------------- */

static int make_pipe(int fds[2], int nonblock)
{
	if (pipe(fds) == -1)
		return -1;
	if (net_set_cloexec(fds[0]) == -1 || net_set_cloexec(fds[1]) == -1)
		return -1;
	if (nonblock && (net_set_nonblock(fds[0], 1) == -1 || net_set_nonblock(fds[1], 1) == -1))
		return -1;
	return 0;
}

static void bind_listen(void)
{
	char err[512];

	m.m_listen_fd = net_listen(&cfg.cf_listen, (int)cfg.cf_backlog, err, sizeof(err));
	if (m.m_listen_fd == -1)
		fatalx("%s", err);
	/* Workers wait for it in epoll or poll and accept without blocking (worker.c). */
	if (net_set_nonblock(m.m_listen_fd, 1) == -1)
		fatal("fcntl O_NONBLOCK on %s", cfg.cf_listen.na_text);
#if defined(__linux__)
	/* Accepted sockets inherit this tick, which the relay's blocking reads of the client
	 * rely on: --park-after with a keeper (the read that waits that long is the moment to
	 * hand the connection over), else a second.  And TCP_NODELAY. */
	if (net_set_rcvtimeo(m.m_listen_fd, m.m_keeper_on ? (int)cfg.cf_park_after_ms :
	    RELAY_TICK_MS) == -1)
		fatal("setsockopt SO_RCVTIMEO on %s", cfg.cf_listen.na_text);
	net_set_nodelay(m.m_listen_fd);
#endif
}

/* The keeper's two channels: SOCK_SEQPACKET, so that a message and its descriptors travel
 * whole, from many writers to one reader or from one writer to many readers. */
static void make_channels(void)
{
	int *pairs[2] = { m.m_park, m.m_back }, p, e, size = CHANNEL_BUF;

	for (p = 0; p < 2; p++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pairs[p]) == -1)
			fatal("socketpair for the keeper");
		for (e = 0; e < 2; e++) {
			if (net_set_cloexec(pairs[p][e]) == -1)
				fatal("fcntl FD_CLOEXEC");
			/* more than the default lets a burst of hand-overs queue; less is fine */
			(void)setsockopt(pairs[p][e], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
			(void)setsockopt(pairs[p][e], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
		}
	}
}

/* The descriptor limit, raised to its hard limit: the keeper holds two per connection.
 * --max-parked auto takes what that leaves room for. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	uint64_t room;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit RLIMIT_NOFILE to %llu", (unsigned long long)rl.rlim_max);
	}
	room = 100000;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		/* what the master and a worker need besides, and a margin for hand-overs in
		 * flight: the keeper itself stops taking pairs FD_RESERVE short of the limit */
		uint64_t reserve = rl.rlim_cur >= 1024 ? 256 : rl.rlim_cur / 4 > 64 ? rl.rlim_cur / 4 : 64;

		room = rl.rlim_cur > reserve ? (rl.rlim_cur - reserve) / 2 : 0;
	}
	if (room > 100000)
		room = 100000;
	if (cfg.cf_max_parked_auto) {
		cfg.cf_max_parked = (unsigned)room;
	} else if (cfg.cf_max_parked > room) {
		log_warnx("--max-parked %u: the descriptor limit leaves room for %llu: using that",
		    cfg.cf_max_parked, (unsigned long long)room);
		cfg.cf_max_parked = (unsigned)room;
	}
}

static void map_shm(void)
{
	char err[512];

	/* Room for a full pool and a full pool of replacements during a rotation, and the
	 * keeper's. */
	m.m_nslots = 2 * cfg.cf_max_workers + 1;
	m.m_shm = shm_stats_map(m.m_nslots, &m.m_shm_fd, err, sizeof(err));
	if (m.m_shm == NULL)
		fatalx("%s", err);
}

/* After USR2: take over what the previous image left in SIDEMETER_INHERIT.  Returns 0 if
 * there was nothing to inherit. */
static int inherit(int64_t now)
{
	const char *env = getenv(INHERIT_ENV), *w;
	int listen_fd, metrics_fd, alive_r, alive_w, shm_fd, accepting = 0, adopted = 0;
	unsigned gen, newest = 0;
	socklen_t len = sizeof(accepting);
	char err[512];
	int fresh = 0;

	if (env == NULL)
		return 0;
	if (sscanf(env, "listen=%d metrics=%d alive=%d,%d shm=%d gen=%u park=%d,%d back=%d,%d",
	    &listen_fd, &metrics_fd, &alive_r, &alive_w, &shm_fd, &gen, &m.m_park[0], &m.m_park[1],
	    &m.m_back[0], &m.m_back[1]) != 10 || (w = strstr(env, "workers=")) == NULL)
		fatalx("%s is malformed", INHERIT_ENV);
	if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == -1 || !accepting)
		fatalx("%s: descriptor %d is not a listening socket", INHERIT_ENV, listen_fd);
	m.m_listen_fd = listen_fd;
	m.m_metrics_fd = metrics_fd;
	m.m_alive_r = alive_r;
	m.m_alive_w = alive_w;
	m.m_shm_fd = shm_fd;
	m.m_shm = shm_stats_inherit(shm_fd, err, sizeof(err));
	if (m.m_shm != NULL) {
		m.m_nslots = m.m_shm->sh_nslots;
	} else {
		log_warnx("%s: counters start over", err);
		close(shm_fd);
		map_shm();
		fresh = 1;	/* the adopted workers write to the old region: no heartbeat here */
	}
	m.m_slots = calloc(m.m_nslots, sizeof(*m.m_slots));
	if (m.m_slots == NULL)
		fatal("calloc");
	for (w += strlen("workers="); *w;) {
		long pid;
		unsigned slot, wgen;
		int leaving, used;

		if (sscanf(w, "%ld:%u:%u:%d,%n", &pid, &slot, &wgen, &leaving, &used) != 4)
			break;
		w += used;
		if (slot >= m.m_nslots) {
			kill((pid_t)pid, SIGQUIT);	/* no room to follow it: let it finish */
			continue;
		}
		m.m_slots[slot].ms_pid = (pid_t)pid;
		m.m_slots[slot].ms_gen = wgen;
		m.m_slots[slot].ms_ready = 1;
		m.m_slots[slot].ms_forked = now;
		m.m_slots[slot].ms_leaving = leaving;
		m.m_slots[slot].ms_kill_at = now + cfg.cf_drain_ms * NS_PER_MS;
		m.m_slots[slot].ms_foreign = fresh;
		if (wgen > newest)
			newest = wgen;
		adopted++;
	}
	/* A new generation from the new binary; the adopted one leaves once it is ready. */
	m.m_gen = (newest > gen ? newest : gen) + 1;
	unsetenv(INHERIT_ENV);
	set_inheritable(0);
	log_info("re-executed %s: %d workers adopted, starting generation %u", m.m_exe, adopted,
	    m.m_gen);
	return 1;
}

int main(int argc, char **argv)
{
	char err[512];
	int fds[2], inherited;
	int64_t now;
	ssize_t n;

	if (client_is_subcommand(argc, argv))
		return client_main(argc, argv);
	switch (config_parse(&cfg, argc, argv, err, sizeof(err))) {
	case CONFIG_EXIT:
		return 0;
	case CONFIG_ERROR:
		fprintf(stderr, "sidemeter: %s\n", err);
		return 2;
	case CONFIG_OK:
		break;
	}
	if (cfg.cf_check) {
		config_print(&cfg, STDOUT_FILENO);
		return 0;
	}
	log_set_role("master", -1);
	m.m_argv = argv;
	/* The path now, before the file is replaced by a new build (USR2). */
	n = readlink("/proc/self/exe", m.m_exe, sizeof(m.m_exe) - 1);
	if (n > 0)
		m.m_exe[n] = '\0';
	else
		snprintf(m.m_exe, sizeof(m.m_exe), "%s", argv[0]);
	now = clock_mono_ns();

	m.m_metrics_fd = -1;
	raise_fd_limit();
	m.m_keeper_on = cfg.cf_mode == MODE_HTTP && cfg.cf_max_parked > 0;
	inherited = inherit(now);
	if (!inherited) {
		bind_listen();
		map_shm();
		m.m_slots = calloc(m.m_nslots, sizeof(*m.m_slots));
		if (m.m_slots == NULL)
			fatal("calloc");
		if (make_pipe(fds, 0) == -1)
			fatal("pipe");
		m.m_alive_r = fds[0];
		m.m_alive_w = fds[1];
		make_channels();
	}
	m.m_keeper = m.m_shm->sh_keeper_slot;
	m.m_shm->sh_max_parked = cfg.cf_max_parked;
	aggregate_init(m.m_shm, &cfg);
	aggregate_set_listen(m.m_listen_fd);
	if (inherited) {
		unsigned i;

		for (i = 0; i < m.m_nslots; i++)
			if (m.m_slots[i].ms_pid)
				aggregate_use_slot(i);
	}
	if (make_pipe(fds, 1) == -1)
		fatal("pipe");
	m.m_sig_r = fds[0];
	m.m_sig_w = fds[1];
	setup_signals();
	/* What a re-executed image blocked before exec is delivered from here on. */
	{
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}

	if (cfg.cf_metrics_on && m.m_metrics_fd < 0) {
		m.m_metrics_fd = net_listen(&cfg.cf_metrics, 64, err, sizeof(err));
		if (m.m_metrics_fd == -1)
			fatalx("%s", err);
	} else if (!cfg.cf_metrics_on && m.m_metrics_fd >= 0) {
		close(m.m_metrics_fd);
		m.m_metrics_fd = -1;
	}
	if (m.m_metrics_fd >= 0)
		metrics_init(m.m_metrics_fd);

	m.m_target = cfg.cf_workers;
	aggregate_set_workers_min(m.m_target);
	m.m_ramp = 1;
	m.m_next_drain = now;
	m.m_next_interval = now + interval_ns();
	m.m_next_tick = now + AG_TICK_MS * NS_PER_MS;
	dump_init(now);
	accesslog_open();
	log_nonblocking();
	log_info("sidemeter %s: %s -> %s, %s mode, %u-%u workers, metrics %s", SIDEMETER_VERSION,
	    cfg.cf_listen.na_text, cfg.cf_upstream.na_text,
	    cfg.cf_mode == MODE_HTTP ? "http" : "tcp", cfg.cf_workers, cfg.cf_max_workers,
	    cfg.cf_metrics_on ? cfg.cf_metrics.na_text : "off");
	fflush(NULL);
	master_loop();
	return 0;
}
