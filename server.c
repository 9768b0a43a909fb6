/* server.c: main and the master.  The master binds the listen socket once, maps the shared
 * memory, makes the keeper's two channels, forks the keeper and the workers, and then runs
 * one loop: wait with a deadline; then reap, stop, drain (the one drain of the rings, before
 * anything reads the aggregate), rotate, resize, respawn, dump, serve the port, in that
 * order.  Signal handlers only set flags.  The pool's children are pool.c's; USR2 is
 * reexec.c's; the state the three share is include/master.h.
 *
 * It touches: the master's state, the header's master fields (sh_tapping, the stop and quit
 * flags, ...); through pool.c the slots' scoreboard rows; never a ring's head or a
 * connection. */
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
#include "master.h"
#include "metrics.h"
#include "net.h"
#include "ready.h"
#include "relay.h"
#include "shm_stats.h"
#include "tap.h"
#include "worker.h"

#define TICK_BUSY_MS 20		/* drain period while records flow */
#define TICK_IDLE_MS 50	/* drain period when quiet: a ring fills no faster than this */
#define KEEPER_FIRST_MS 2000	/* at a stop, the keeper's time to leave before the workers */
#define CHANNEL_BUF (4 << 20)	/* socket buffer asked for each keeper channel */

struct master m;

static volatile sig_atomic_t sig_stop, sig_hup, sig_usr1, sig_usr2, sig_chld, sig_ttin,
    sig_ttou, sig_any;

/* Handlers only count and wake: everything a signal asks for happens in the loop, where
 * any function may be called.  The self-pipe turns a signal into a readable descriptor, so
 * poll() wakes for it whatever it was waiting on. */
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

/* SA_RESTART: a signal does not make the master's blocking calls (a metrics client's
 * read, a write to stdout) fail with EINTR halfway; poll() still wakes (the self-pipe). */
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
			pool_tell_to_leave(m.m_keeper, now);
			m.m_keeper_gone_by = now + KEEPER_FIRST_MS * NS_PER_MS;
		}
		if (m.m_slots[m.m_keeper].ms_pid == 0 || now >= m.m_keeper_gone_by) {
			m.m_quit_sent = 1;
			for (i = 0; i < m.m_nslots; i++)
				pool_tell_to_leave(i, now);
		}
	}
	if (m.m_quit_sent && now >= m.m_kill_at) {
		for (i = 0; i < m.m_nslots; i++)
			if (m.m_slots[i].ms_pid)
				log_warnx("worker %u (pid %ld) still busy after --drain-timeout: killing it",
				    i, (long)m.m_slots[i].ms_pid);
		pool_kill_all();
		while (pool_live_workers() > 0) {
			int status;
			pid_t pid = waitpid(-1, &status, 0);

			if (pid > 0)
				pool_reaped(pid, status, now);
			else if (errno != EINTR)
				break;
		}
	}
	if (m.m_quit_sent && pool_live_workers() == 0)
		m.m_done = 1;	/* the loop drains what they left, then finishes */
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

/* The nearer of two deadlines; 0 means none. */
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

/* The summary line is written from the interval that ends, then the interval rotates: the
 * line and /stats.json's last_interval are the same interval. */
static void end_interval(int64_t now)
{
	if (cfg.cf_dump_interval_ms > 0)
		dump_write(now);
	aggregate_rotate(now);
}

/* One thread, one poll: signals, the metrics port's and the tap's clients, stdout and the
 * access log's output, with the nearest of every timer as the deadline.  Nothing in the
 * loop blocks for long (writes are non-blocking, pages are rendered in memory), so a turn
 * comes at least every TICK_IDLE_MS. */
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
			pool_reap(now);
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
		/* HUP only bumps the generation: pool_tick() starts the new one and retires the
		 * old once it is ready, so a rotation never leaves the port without a worker. */
		if (f.f_hup && !m.m_stopping) {
			m.m_gen++;
			log_info("rotating workers (generation %u)", m.m_gen);
		}
		if (f.f_usr2 && !m.m_stopping)
			master_reexec();
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
			pool_tick(now);

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
	/* Workers wait for it in epoll or poll and accept without blocking (worker_wait.c). */
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

void master_map_shm(void)
{
	char err[512];

	/* Room for a full pool and a full pool of replacements during a rotation, and the
	 * keeper's. */
	m.m_nslots = 2 * cfg.cf_max_workers + 1;
	m.m_shm = shm_stats_map(m.m_nslots, &m.m_shm_fd, err, sizeof(err));
	if (m.m_shm == NULL)
		fatalx("%s", err);
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
	inherited = master_inherit(now);
	if (!inherited) {
		bind_listen();
		master_map_shm();
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
