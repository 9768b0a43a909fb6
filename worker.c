/* worker.c: a worker's life: accept, connect to the application, relay one connection, and
 * end it through conn_close(), which records why it closed.  In http mode the observer sees
 * every byte on its way and turns exchanges into records; its state sets the timeouts and
 * the moments at which a leaving worker may close.  Every outcome is counted in the
 * worker's shared-memory slot; nothing here waits for the master. */
#if defined(__linux__)
#define _GNU_SOURCE		/* accept4 */
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "net.h"
#include "observer.h"
#include "relay.h"
#include "route.h"
#include "worker.h"

#define LINGER_MS 2000		/* how long a closing client may still send before we close */
#define BACKOFF_MS 100		/* pause after an accept that failed for lack of resources */
#define ANSWER_MS 1000		/* time given to write a 502/504 */

static volatile sig_atomic_t worker_quit;

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
	struct relay cn_relay;
	struct observer cn_obs;
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

static void sb_add(_Atomic uint64_t *field)
{
	atomic_store_explicit(field, atomic_load_explicit(field, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

/* The master's pipe is closed only when the master is gone. */
static int master_gone(int timeout_ms)
{
	struct pollfd pfd = { .fd = wenv->we_alive_fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* ---- the end of a connection ---------------------------------------------------------- */

static enum incomplete_reason incomplete_of(enum close_reason why)
{
	switch (why) {
	case CLOSE_CLIENT_CLOSED:
	case CLOSE_CLIENT_ERROR:
		return INCOMPLETE_CLIENT_CLOSED;
	case CLOSE_UPSTREAM_CLOSED:
	case CLOSE_UPSTREAM_ERROR:
	case CLOSE_UPSTREAM_REFUSED:
	case CLOSE_CONNECT_TIMEOUT:
	case CLOSE_CONNECT_ERROR:
		return INCOMPLETE_UPSTREAM_CLOSED;
	case CLOSE_IDLE_TIMEOUT:
	case CLOSE_HEADER_TIMEOUT:
	case CLOSE_BODY_TIMEOUT:
	case CLOSE_RESPONSE_TIMEOUT:
	case CLOSE_KEEPALIVE_TIMEOUT:
	case CLOSE_TUNNEL_TIMEOUT:
		return INCOMPLETE_TIMEOUT;
	default:
		return INCOMPLETE_ABORTED;
	}
}

/* After an answer of ours, or when the application's side ended, the client may still be
 * sending: a plain close would reset the connection and could destroy what it was sent
 * before it read it.  A client that is gone, idle or too slow gets a plain close. */
static int lingers(const struct conn *c, enum close_reason why)
{
	if (c->cn_relay.rl_dir[RELAY_C2U].rd_eof)
		return 0;	/* the client has sent all it will: nothing to wait for */
	switch (why) {
	case CLOSE_UPSTREAM_CLOSED:
	case CLOSE_UPSTREAM_ERROR:
	case CLOSE_UPSTREAM_REFUSED:
	case CLOSE_CONNECT_TIMEOUT:
	case CLOSE_CONNECT_ERROR:
	case CLOSE_ERROR:
		return 1;
	default:
		return c->cn_answered;
	}
}

/* The one way a connection ends: report what the observer still holds, close both
 * sockets, count the reason, publish a record. */
static void conn_close(struct conn *c, enum close_reason why)
{
	struct shm_record r;
	int64_t now = clock_mono_ns();

	if (cfg.cf_mode == MODE_HTTP)
		observer_finish(&c->cn_obs, incomplete_of(why), now);
	if (c->cn_fd[RELAY_UPSTREAM] >= 0)
		close(c->cn_fd[RELAY_UPSTREAM]);
	if (lingers(c, why))
		relay_lingering_close(c->cn_fd[RELAY_CLIENT], LINGER_MS);
	else
		close(c->cn_fd[RELAY_CLIENT]);
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
	r.r_requests = c->cn_requests;
	shm_stats_put(slot, &r);
	shm_stats_add(slot, CTR_CLOSE + why, 1);
	sb_add(&slot->sl_sb.sb_conns);
	atomic_store_explicit(&slot->sl_sb.sb_last_busy, now, memory_order_relaxed);
	atomic_store_explicit(&slot->sl_sb.sb_req_start, 0, memory_order_relaxed);
	atomic_store_explicit(&slot->sl_sb.sb_conn_start, 0, memory_order_relaxed);
}

/* ---- what the observer reports --------------------------------------------------------- */

static unsigned obs_route(void *ctx, const char *target, size_t len)
{
	(void)ctx;
	return route_index(&cfg, target, len);
}

static void obs_exchange(void *ctx, const struct obs_exchange *ex, int why)
{
	struct conn *c = ctx;
	struct shm_record r;

	memset(&r, 0, sizeof(r));
	r.r_kind = REC_REQUEST;
	r.r_start = ex->ex_req_start;
	r.r_mid = ex->ex_req_end;
	r.r_first = ex->ex_resp_start;
	r.r_end = ex->ex_resp_end;
	r.r_bytes_in = ex->ex_req_body;
	r.r_bytes_out = ex->ex_resp_body;
	r.r_route = ex->ex_route;
	r.r_code = ex->ex_code;
	r.r_method = ex->ex_method;
	r.r_flags = ex->ex_flags & EX_ANSWERED ? REC_ANSWERED : 0;
	r.r_reason = (uint8_t)(why < 0 ? 0 : why + 1);
	/* The count first, exactly; the sample after, if the ring has room. */
	if (why < 0)
		shm_stats_count_request(slot, ex->ex_route, (enum http_method)ex->ex_method, ex->ex_code);
	else
		shm_stats_add(slot, CTR_INCOMPLETE + (unsigned)why, 1);
	shm_stats_put(slot, &r);
	sb_add(&slot->sl_sb.sb_requests);
	c->cn_requests++;
}

static void obs_opaque(void *ctx, enum opaque_reason why)
{
	(void)ctx;
	shm_stats_add(slot, CTR_OPAQUE + why, 1);
}

static void obs_tunnel(void *ctx)
{
	(void)ctx;
	shm_stats_add(slot, CTR_TUNNELS, 1);
}

static const struct obs_ops obs_ops = { obs_route, obs_exchange, obs_opaque, obs_tunnel };

/* ---- the relay policy ------------------------------------------------------------------ */

/* n bytes went by in direction dir: the clocks of the timeouts and the byte counters. */
static void moved(struct conn *c, int dir, size_t n, int64_t now)
{
	c->cn_last_io = now;
	if (dir == RELAY_C2U) {
		c->cn_last_in = now;
		shm_stats_add(slot, CTR_BYTES_IN, n);
	} else {
		shm_stats_add(slot, CTR_BYTES_OUT, n);
	}
}

static int on_data(void *ctx, int dir, const char *p, size_t n, int64_t now)
{
	struct conn *c = ctx;

	moved(c, dir, n, now);
	if (cfg.cf_mode == MODE_HTTP)
		observer_feed(&c->cn_obs, dir, p, n, now);
	return 0;
}

static void on_unseen(void *ctx, int dir, size_t n, int64_t now)
{
	struct conn *c = ctx;

	moved(c, dir, n, now);
	if (cfg.cf_mode == MODE_HTTP)
		observer_skip(&c->cn_obs, dir, n, now);
}

/* The application closed with requests in flight: none of them will be answered now, so
 * stop here.  If it never sent a byte on this connection the client gets a 502 (serve());
 * otherwise the close reaches the client after the application's last byte and nothing
 * else, and the requests are reported as cut short (a client retries them). */
static int on_eof(void *ctx, int dir, int64_t now)
{
	struct conn *c = ctx;
	struct obs_status st;

	c->cn_last_io = now;
	if (cfg.cf_mode != MODE_HTTP)
		return 0;
	observer_eof(&c->cn_obs, dir, now);
	if (dir == RELAY_U2C) {
		observer_status(&c->cn_obs, &st);
		if (st.st_answerable || (st.st_mode == OBS_HTTP && st.st_oldest))
			return CLOSE_UPSTREAM_CLOSED + 1;
	}
	return 0;
}

/* Keep the earliest deadline; say whether it has passed. */
static int due(int64_t at, int64_t now, int64_t *deadline)
{
	if (at < *deadline)
		*deadline = at;
	return now >= at;
}

/* Bytes nobody needs to see move by splice (tcp mode, tunnels, opaque connections). */
static int tcp_check(const struct conn *c, int64_t now, struct relay_plan *plan)
{
	plan->rp_unseen[RELAY_C2U] = plan->rp_unseen[RELAY_U2C] = RELAY_ALL;
	/* A leaving worker in tcp mode finishes the connection it has: the master's drain
	 * timeout bounds how long that may take. */
	if (due(c->cn_last_io + cfg.cf_idle_ms * NS_PER_MS, now, &plan->rp_deadline))
		return CLOSE_IDLE_TIMEOUT + 1;
	return 0;
}

/* Which clock runs depends on where the exchange stands; so does who speaks next, and how
 * much of a body may pass unseen. */
static int http_check(struct conn *c, int64_t now, struct relay_plan *plan)
{
	int64_t *deadline = &plan->rp_deadline;
	struct obs_status st;

	observer_status(&c->cn_obs, &st);
	/* Between exchanges the client speaks next (unless the last one ended the
	 * connection: then a close may come from either side); once a request is complete,
	 * and while its answer comes, the application.  (Uploads, early answers, pipelines,
	 * tunnels: both may; poll.) */
	if (st.st_mode == OBS_HTTP && st.st_idle && !st.st_closing)
		plan->rp_expect = RELAY_C2U;
	else if (st.st_mode == OBS_HTTP && (st.st_wait_since || st.st_responding) &&
	    !st.st_head_since && !st.st_in_body)
		plan->rp_expect = RELAY_U2C;
	plan->rp_unseen[RELAY_C2U] = observer_unseen(&c->cn_obs, OBS_REQ);
	plan->rp_unseen[RELAY_U2C] = observer_unseen(&c->cn_obs, OBS_RESP);
	atomic_store_explicit(&slot->sl_sb.sb_req_start, st.st_oldest, memory_order_relaxed);
	switch (st.st_mode) {
	case OBS_TUNNEL:
		if (due(c->cn_last_io + cfg.cf_tunnel_ms * NS_PER_MS, now, deadline))
			return CLOSE_TUNNEL_TIMEOUT + 1;
		return 0;
	case OBS_OPAQUE:
		return tcp_check(c, now, plan);
	case OBS_HTTP:
		break;
	}
	if (st.st_idle) {
		/* Between requests: a leaving worker closes here, and only here; a client that
		 * has just connected is owed its first exchange. */
		if (worker_quit && c->cn_obs.ob_requests > 0)
			return CLOSE_SHUTDOWN + 1;
		if (c->cn_obs.ob_requests == 0) {
			if (due(c->cn_accepted + cfg.cf_header_ms * NS_PER_MS, now, deadline))
				return CLOSE_HEADER_TIMEOUT + 1;
		} else if (due(c->cn_last_io + cfg.cf_keepalive_ms * NS_PER_MS, now, deadline)) {
			return CLOSE_KEEPALIVE_TIMEOUT + 1;
		}
		return 0;
	}
	if (st.st_head_since &&
	    due((c->cn_obs.ob_requests == 1 ? c->cn_accepted : st.st_head_since) +
		cfg.cf_header_ms * NS_PER_MS, now, deadline))
		return CLOSE_HEADER_TIMEOUT + 1;
	/* A body that stops because the application does not read is not the client's fault. */
	if (st.st_in_body && !relay_pending(&c->cn_relay, RELAY_C2U) &&
	    due(c->cn_last_in + cfg.cf_body_ms * NS_PER_MS, now, deadline))
		return CLOSE_BODY_TIMEOUT + 1;
	if (st.st_wait_since &&
	    due(st.st_wait_since + cfg.cf_response_ms * NS_PER_MS, now, deadline))
		return CLOSE_RESPONSE_TIMEOUT + 1;
	if (!st.st_wait_since && due(c->cn_last_io + cfg.cf_idle_ms * NS_PER_MS, now, deadline))
		return CLOSE_IDLE_TIMEOUT + 1;
	return 0;
}

static int on_check(void *ctx, int64_t now, struct relay_plan *plan)
{
	struct conn *c = ctx;

	heartbeat(now);
	if (worker_quit)
		set_state(WORKER_LEAVING);
	if (cfg.cf_mode == MODE_HTTP)
		return http_check(c, now, plan);
	return tcp_check(c, now, plan);
}

static const struct relay_ops relay_ops = { on_data, on_unseen, on_eof, on_check };

/* ---- answers of our own ---------------------------------------------------------------- */

/* If a request waits with nothing of an answer sent, answer it ourselves with code and a
 * one-line reason (body), and count how the application failed (err < 0: it did not, the
 * failure was ours). */
static void answer(struct conn *c, unsigned code, int err, const char *body)
{
	char buf[1024];
	const char *text = code == 504 ? "Gateway Timeout" : code == 503 ? "Service Unavailable" :
	    "Bad Gateway";
	int head, n;

	/* Once the application's end has been passed on to the client, it is too late. */
	if (c->cn_relay.rl_dir[RELAY_U2C].rd_shut ||
	    !observer_answer(&c->cn_obs, code, clock_mono_ns(), &head))
		return;
	if (err >= 0)
		shm_stats_add(slot, CTR_UPSTREAM + (unsigned)err, 1);
	n = snprintf(buf, sizeof(buf),
	    "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\nServer: sidemeter\r\n\r\n%s",
	    code, text, strlen(body), head ? "" : body);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	c->cn_answered = 1;
	(void)relay_write_all(c->cn_fd[RELAY_CLIENT], buf, (size_t)n, ANSWER_MS);
}

static void answer_app(struct conn *c, unsigned code, enum upstream_error err, const char *why)
{
	char body[512];

	snprintf(body, sizeof(body), "sidemeter: the application at %s %s\n",
	    cfg.cf_upstream.na_text, why);
	answer(c, code, (int)err, body);
}

/* The application could not be reached (err < 0: we had no descriptor to try): read the
 * client's request head (for as long as --header-timeout allows) so that it can be
 * answered with a 502 (or a 503 when the failure was ours). */
static void answer_unreachable(struct conn *c, int err)
{
	char buf[RELAY_BUF], why[160];
	struct pollfd pfd = { .fd = c->cn_fd[RELAY_CLIENT], .events = POLLIN };
	int64_t deadline = c->cn_accepted + cfg.cf_header_ms * NS_PER_MS, now;
	struct obs_status st;
	ssize_t n;

	for (;;) {
		now = clock_mono_ns();
		observer_status(&c->cn_obs, &st);
		if (st.st_answerable || now >= deadline || worker_quit)
			break;
		if (poll(&pfd, 1, clock_poll_ms(deadline, now, 1000)) <= 0)
			continue;
		n = recv(c->cn_fd[RELAY_CLIENT], buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN))
			break;
		/* read to be answered, never relayed: not in the relayed byte counts */
		if (n > 0)
			observer_feed(&c->cn_obs, OBS_REQ, buf, (size_t)n, clock_mono_ns());
	}
	if (err < 0) {
		snprintf(buf, sizeof(buf), "sidemeter: no resources to reach the application (%s)\n",
		    strerror(c->cn_connect_errno));
		answer(c, 503, -1, buf);
		return;
	}
	if (err == UPSTREAM_REFUSED)
		snprintf(why, sizeof(why), "refused the connection");
	else if (err == UPSTREAM_CONNECT_TIMEOUT)
		snprintf(why, sizeof(why), "did not accept the connection within %.1fs",
		    (double)cfg.cf_connect_ms / 1000);
	else
		snprintf(why, sizeof(why), "could not be reached: %s", strerror(c->cn_connect_errno));
	answer_app(c, 502, (enum upstream_error)err, why);
}

/* ---- one connection -------------------------------------------------------------------- */

/* How connecting failed; *ue is -1 when the failure was ours (no descriptor, no memory). */
static enum close_reason connect_failure(int err, int *ue)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		*ue = -1;
		return CLOSE_ERROR;
	case ECONNREFUSED:
		*ue = UPSTREAM_REFUSED;
		return CLOSE_UPSTREAM_REFUSED;
	case ETIMEDOUT:
		*ue = UPSTREAM_CONNECT_TIMEOUT;
		return CLOSE_CONNECT_TIMEOUT;
	default:
		*ue = UPSTREAM_UNREACHABLE;
		return CLOSE_CONNECT_ERROR;
	}
}

/* Serve one connection; returns how it ended. */
static enum close_reason serve(int cfd)
{
	struct conn *c = &conn;
	enum close_reason why;
	int ufd, ue;

	c->cn_fd[RELAY_CLIENT] = cfd;
	c->cn_fd[RELAY_UPSTREAM] = -1;
	c->cn_accepted = clock_mono_ns();
	c->cn_connected = 0;
	c->cn_last_io = c->cn_last_in = c->cn_accepted;
	c->cn_requests = 0;
	c->cn_answered = 0;
	relay_init(&c->cn_relay, cfd, -1, wenv->we_alive_fd, &relay_ops, c);
	if (cfg.cf_mode == MODE_HTTP)
		observer_init(&c->cn_obs, &obs_ops, c);
	atomic_store_explicit(&slot->sl_sb.sb_conn_start, c->cn_accepted, memory_order_relaxed);
#if !defined(__linux__)
	/* On Linux the accepted socket has these from the listen socket already. */
	net_set_nodelay(cfd);
	net_set_rcvtimeo(cfd, RELAY_TICK_MS);
#endif

	ufd = net_connect(&cfg.cf_upstream, (int)cfg.cf_connect_ms);
	if (ufd == -1) {
		c->cn_connect_errno = errno;
		why = connect_failure(errno, &ue);
		if (cfg.cf_mode == MODE_HTTP)
			answer_unreachable(c, ue);
		else if (ue >= 0)
			shm_stats_add(slot, CTR_UPSTREAM + (unsigned)ue, 1);
		conn_close(c, why);
		return why;
	}
	net_set_nodelay(ufd);
	net_set_rcvtimeo(ufd, RELAY_TICK_MS);	/* for the relay's blocking reads */
	c->cn_fd[RELAY_UPSTREAM] = ufd;
	c->cn_connected = clock_mono_ns();
	c->cn_last_io = c->cn_connected;

	c->cn_relay.rl_fd[RELAY_UPSTREAM] = ufd;
	why = relay_pump(&c->cn_relay);

	if (cfg.cf_mode == MODE_HTTP) {
		if (why == CLOSE_RESPONSE_TIMEOUT) {
			char text[96];

			snprintf(text, sizeof(text), "did not answer within %.1fs",
			    (double)cfg.cf_response_ms / 1000);
			answer_app(c, 504, UPSTREAM_RESPONSE_TIMEOUT, text);
		} else if (why == CLOSE_UPSTREAM_ERROR) {
			/* A reset ends the application's stream as a close does. */
			observer_eof(&c->cn_obs, OBS_RESP, clock_mono_ns());
			answer_app(c, 502, UPSTREAM_RESET, "reset the connection before answering");
		} else if (why == CLOSE_UPSTREAM_CLOSED) {
			answer_app(c, 502, UPSTREAM_CLOSED_EARLY, "closed the connection before answering");
		}
	}
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
	route_attach(slot, cfg.cf_max_routes);

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
