/* worker.c: a worker's life: accept, connect to the application, relay one connection, and
 * end it through conn_close(), which records why it closed.  Every outcome is counted in the
 * worker's shared-memory slot; nothing here waits for the master. */
#if defined(__linux__)
#define _GNU_SOURCE		/* accept4 */
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "net.h"
#include "relay.h"
#include "worker.h"

#define LINGER_MS 2000		/* how long a closing client may still send before we close */
#define BACKOFF_MS 100		/* pause after an accept that failed for lack of resources */

static volatile sig_atomic_t worker_quit;

/* One client connection and its application connection. */
struct conn {
	int cn_fd[2];			/* RELAY_CLIENT, RELAY_UPSTREAM; -1 when closed */
	int64_t cn_accepted;
	int64_t cn_connected;		/* 0: the application was never reached */
	int64_t cn_last_io;		/* last byte either way, for the idle timeout */
	struct relay cn_relay;
};

static struct conn conn;
static struct shm_slot *slot;
static const struct worker_env *wenv;

static void on_quit(int sig)
{
	(void)sig;
	worker_quit = 1;
}

static void set_state(enum worker_state st)
{
	atomic_store_explicit(&slot->sl_sb.sb_state, st, memory_order_relaxed);
}

static void heartbeat(int64_t now)
{
	atomic_store_explicit(&slot->sl_sb.sb_heartbeat, now, memory_order_relaxed);
}

/* The master's pipe is closed only when the master is gone. */
static int master_gone(int timeout_ms)
{
	struct pollfd pfd = { .fd = wenv->we_alive_fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* ---- the end of a connection ---------------------------------------------------------- */

/* The one way a connection ends: close both sockets, count the reason, publish a record. */
static void conn_close(struct conn *c, enum close_reason why)
{
	struct shm_record r;
	int64_t now;

	if (c->cn_fd[RELAY_UPSTREAM] >= 0)
		close(c->cn_fd[RELAY_UPSTREAM]);
	/* After a close of our own choosing the client may still be sending: close gently so
	 * that what we sent is not lost to a reset.  A client that is gone needs no care. */
	if (why == CLOSE_CLIENT_ERROR || why == CLOSE_CLIENT_CLOSED || why == CLOSE_ABORTED)
		close(c->cn_fd[RELAY_CLIENT]);
	else
		relay_lingering_close(c->cn_fd[RELAY_CLIENT], LINGER_MS);
	c->cn_fd[0] = c->cn_fd[1] = -1;

	now = clock_mono_ns();
	memset(&r, 0, sizeof(r));
	r.r_kind = REC_CONN;
	r.r_start = c->cn_accepted;
	r.r_mid = c->cn_connected;
	r.r_end = now;
	r.r_bytes_in = c->cn_relay.rl_bytes[RELAY_C2U];
	r.r_bytes_out = c->cn_relay.rl_bytes[RELAY_U2C];
	r.r_reason = (uint8_t)why;
	shm_stats_put(slot, &r);
	shm_stats_add(slot, CTR_CLOSE + why, 1);
	atomic_store_explicit(&slot->sl_sb.sb_conns,
	    atomic_load_explicit(&slot->sl_sb.sb_conns, memory_order_relaxed) + 1,
	    memory_order_relaxed);
	atomic_store_explicit(&slot->sl_sb.sb_last_busy, now, memory_order_relaxed);
	atomic_store_explicit(&slot->sl_sb.sb_conn_start, 0, memory_order_relaxed);
}

/* ---- the relay policy ------------------------------------------------------------------ */

static int tcp_data(void *ctx, int dir, const char *p, size_t n, int64_t now)
{
	struct conn *c = ctx;

	c->cn_last_io = now;
	shm_stats_add(slot, dir == RELAY_C2U ? CTR_BYTES_IN : CTR_BYTES_OUT, n);
	return 0;
}

static void tcp_eof(void *ctx, int dir, int64_t now)
{
	struct conn *c = ctx;

	c->cn_last_io = now;
}

/* A leaving worker in tcp mode finishes the connection it has: the master's drain timeout
 * bounds how long that may take. */
static int tcp_check(void *ctx, int64_t now, int64_t *deadline)
{
	struct conn *c = ctx;
	int64_t idle_end = c->cn_last_io + cfg.cf_idle_ms * NS_PER_MS;

	heartbeat(now);
	if (worker_quit)
		set_state(WORKER_LEAVING);
	if (now >= idle_end)
		return CLOSE_IDLE_TIMEOUT + 1;
	if (idle_end < *deadline)
		*deadline = idle_end;
	return 0;
}

static const struct relay_ops tcp_ops = { tcp_data, tcp_eof, tcp_check };

/* ---- one connection -------------------------------------------------------------------- */

static enum close_reason connect_failure(int err)
{
	switch (err) {
	case ECONNREFUSED:
		shm_stats_add(slot, CTR_UPSTREAM + UPSTREAM_REFUSED, 1);
		return CLOSE_UPSTREAM_REFUSED;
	case ETIMEDOUT:
		shm_stats_add(slot, CTR_UPSTREAM + UPSTREAM_CONNECT_TIMEOUT, 1);
		return CLOSE_CONNECT_TIMEOUT;
	default:
		shm_stats_add(slot, CTR_UPSTREAM + UPSTREAM_UNREACHABLE, 1);
		return CLOSE_CONNECT_ERROR;
	}
}

/* Serve one connection; returns how it ended. */
static enum close_reason serve(int cfd)
{
	enum close_reason why;
	struct conn *c = &conn;
	int ufd;

	c->cn_fd[RELAY_CLIENT] = cfd;
	c->cn_fd[RELAY_UPSTREAM] = -1;
	c->cn_accepted = clock_mono_ns();
	c->cn_connected = 0;
	c->cn_last_io = c->cn_accepted;
	c->cn_relay.rl_bytes[0] = c->cn_relay.rl_bytes[1] = 0;
	atomic_store_explicit(&slot->sl_sb.sb_conn_start, c->cn_accepted, memory_order_relaxed);
	net_set_nodelay(cfd);

	ufd = net_connect(&cfg.cf_upstream, (int)cfg.cf_connect_ms);
	if (ufd == -1) {
		why = connect_failure(errno);
		conn_close(c, why);
		return why;
	}
	net_set_nodelay(ufd);
	c->cn_fd[RELAY_UPSTREAM] = ufd;
	c->cn_connected = clock_mono_ns();
	c->cn_last_io = c->cn_connected;

	c->cn_relay.rl_fd[RELAY_CLIENT] = cfd;
	c->cn_relay.rl_fd[RELAY_UPSTREAM] = ufd;
	c->cn_relay.rl_watch = wenv->we_alive_fd;
	c->cn_relay.rl_ops = &tcp_ops;
	c->cn_relay.rl_ctx = c;
	why = relay_pump(&c->cn_relay);
	conn_close(c, why);
	return why;
}

/* ---- the accept loop ------------------------------------------------------------------- */

static int accept_one(int lfd)
{
#if defined(__linux__)
	/* The master set SO_RCVTIMEO on the listen socket: accept() returns EAGAIN every
	 * second, so an idle worker still beats its heart and notices the master's end.  The
	 * kernel wakes one blocked accept() per connection: no herd. */
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
#else
	/* Portable fallback: the listen socket is non-blocking; wait for it with a tick. */
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	int fd;

	if (poll(&pfd, 1, 1000) != 1) {
		errno = EAGAIN;
		return -1;
	}
	fd = accept(lfd, NULL, NULL);
	if (fd >= 0 && (net_set_cloexec(fd) == -1 || net_set_nonblock(fd, 0) == -1)) {
		close(fd);
		errno = EMFILE;
		return -1;
	}
	return fd;
#endif
}

static void setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocked accept() must return to see the flag. */
	sa.sa_handler = on_quit;
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);	/* Ctrl-C reaches the whole group: the master decides */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTTIN, &sa, NULL);
	sigaction(SIGTTOU, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
}

void worker_run(const struct worker_env *env)
{
	sigset_t none;
	int fd, lfd = env->we_listen_fd;

	wenv = env;
	slot = shm_stats_slot(env->we_shm, env->we_slot);
	log_set_role("worker", (int)env->we_slot);
	setup_signals();
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	shm_stats_attach(slot);

	atomic_store_explicit(&slot->sl_sb.sb_conns, 0, memory_order_relaxed);
	atomic_store_explicit(&slot->sl_sb.sb_requests, 0, memory_order_relaxed);
	atomic_store_explicit(&slot->sl_sb.sb_pid, (int32_t)getpid(), memory_order_relaxed);
	heartbeat(clock_mono_ns());
	set_state(WORKER_IDLE);

	while (!worker_quit) {
		fd = accept_one(lfd);
		heartbeat(clock_mono_ns());
		if (fd >= 0) {
			set_state(WORKER_BUSY);
			if (serve(fd) == CLOSE_ABORTED)
				goto master_died;
			if (!worker_quit)
				set_state(WORKER_IDLE);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			break;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			/* The connection waits in the backlog; retrying at once would spin. */
			shm_stats_add(slot, CTR_ACCEPT_EMFILE, 1);
			if (master_gone(BACKOFF_MS))
				goto master_died;
			continue;
		default:
			shm_stats_add(slot, CTR_ACCEPT_ERROR, 1);
			log_warn("accept");
			if (master_gone(BACKOFF_MS))
				goto master_died;
			continue;
		}
		if (master_gone(0))
			goto master_died;
	}
	set_state(WORKER_LEAVING);
	_exit(0);

master_died:
	log_warnx("the master is gone; leaving");
	_exit(0);
}
