/* pool.c: the master's pool of children: forking a worker or the keeper into a slot,
 * reaping what ended (and closing the books of a worker that died with a connection),
 * backing off when workers crash in a row, and sizing the pool on every turn of the loop
 * (kill what stopped beating, keep the current generation at its target, grow while no
 * worker is idle, shrink what idles too long, retire older generations once the new one is
 * ready).
 *
 * It touches: the master's state (include/master.h), every slot's scoreboard row when it
 * forks into or empties the slot, a dead worker's counters, the header's sh_hurry. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accesslog.h"
#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "dump.h"
#include "keeper.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "net.h"
#include "ready.h"
#include "relay.h"
#include "shm_stats.h"
#include "tap.h"
#include "worker.h"

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

	/* The row is set before the fork, so the child is never seen in a stale row (a dead
	 * worker's state, its pid), and the heartbeat starts now, not at the child's first. */
	score_prepare(slot_at(i), m.m_gen, now);
	aggregate_use_slot(i);

	env.we_listen_fd = m.m_listen_fd;
	env.we_alive_fd = m.m_alive_r;
	env.we_park_fd = m.m_park[0];
	env.we_back_fd = m.m_back[1];
	env.we_keeper = m.m_keeper_on;
	/* With a keeper, a client's read waits --park-after at most: the tick at which a
	 * worker notices that its connection only waits, and hands it over. */
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
	/* The child keeps only what its role uses: a worker's descriptors are the listen
	 * socket, the keeper's channels' ends and the master's pipe.  Anything else held open
	 * here would outlive the master's close of it (a metrics client, a tap stream). */
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

/* SIGQUIT: finish the connection in hand (a keep-alive one at its next idle moment), then
 * exit; SIGKILL after --drain-timeout if it has not. */
void pool_tell_to_leave(unsigned i, int64_t now)
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

/* Crashes in a burst are respawned at once (a bad request that kills a worker should not
 * take capacity away); past CRASH_FREE in CRASH_WINDOW_MS the respawns back off,
 * doubling up to BACKOFF_MAX_MS, so that a binary that always crashes does not fork in a
 * tight loop. */
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
void pool_reaped(pid_t pid, int status, int64_t now)
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

void pool_kill_all(void)
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
	pool_kill_all();
	while (wait(NULL) > 0 || errno == EINTR)
		;
	exit(1);
}

/* Trust waitpid over our own bookkeeping: every child that ended is reaped here, ours or
 * not (as PID 1 we inherit orphans). */
void pool_reap(int64_t now)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		pool_reaped(pid, status, now);
	if (m.m_start_failures >= START_FAILURES_MAX)
		start_failed();
}

unsigned pool_live_workers(void)
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
void pool_tick(int64_t now)
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
				pool_tell_to_leave(i, now);

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
		pool_tell_to_leave(i, now);
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
