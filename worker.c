/* worker.c: a worker's life: accept, connect to the application, relay one connection, and
 * end it through conn_close(), which records why it closed.  In http mode the observer sees
 * every byte on its way and turns exchanges into records; its state sets the timeouts and
 * the moments at which a leaving worker may close.  A connection that only waits (between
 * exchanges, before its first byte, in a stalled request head) is handed to the keeper
 * with its state, and one the keeper hands back is carried on as if it had never left.
 * Every outcome is counted in the worker's shared-memory slot; nothing here waits for the
 * master or the keeper.
 *
 * The relay policy is worker_policy.c's, the wait for work worker_wait.c's; what the three
 * share is include/worker_int.h.
 *
 * It touches: its own slot (through account.c and the score_* functions), its connection's
 * two sockets, the keeper's channels' worker ends; never another slot. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "account.h"
#include "clock.h"
#include "config.h"
#include "keeper.h"
#include "net.h"
#include "observer.h"
#include "relay.h"
#include "route.h"
#include "worker_int.h"

struct conn conn;
struct shm_slot *w_slot;
const struct worker_env *w_env;
volatile sig_atomic_t w_quit;
int64_t w_quit_seen;

static void on_quit(int sig)
{
	(void)sig;
	w_quit = 1;
}


/* The master's pipe is closed only when the master is gone. */
static int master_gone(int timeout_ms)
{
	struct pollfd pfd = { .fd = w_env->we_alive_fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* ---- the end of a connection ---------------------------------------------------------- */

/* After an answer of ours, or when the application's side ended, the client may still be
 * sending: a plain close would reset the connection and could destroy what it was sent
 * before it read it.  A client that is gone, idle or too slow gets a plain close. */
static int lingers(const struct conn *c, enum close_reason why)
{
	if (relay_eof_read(&c->cn_relay, RELAY_C2U))
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

/* What account.c needs of a connection to end it (and what a park message carries): its
 * times, bytes and requests so far. */
static void books_of(const struct conn *c, struct conn_books *cb)
{
	memset(cb, 0, sizeof(*cb));
	cb->cb_accepted = c->cn_accepted;
	cb->cb_connected = c->cn_connected;
	cb->cb_bytes[0] = relay_bytes(&c->cn_relay, RELAY_C2U);
	cb->cb_bytes[1] = relay_bytes(&c->cn_relay, RELAY_U2C);
	cb->cb_requests = c->cn_requests;
}

static const struct sockaddr *peer_of(const struct conn *c)
{
	return c->cn_peer.ss_family ? (const struct sockaddr *)(const void *)&c->cn_peer : NULL;
}

/* Who wants this connection's lines now (account_log_wants()); if anyone does, the client's
 * address is known from here on (accept takes it only while someone wants lines, and a tap
 * client may come while a connection is open). */
static unsigned log_wants(struct conn *c)
{
	unsigned w = account_log_wants(w_env->we_shm);

	if (w && c->cn_peer.ss_family == 0 && c->cn_fd[RELAY_CLIENT] >= 0)
		net_peer(c->cn_fd[RELAY_CLIENT], &c->cn_peer);
	return w;
}

/* The one way a connection ends: report what the observer still holds, close both
 * sockets, count the reason, publish a record.  The upstream side closes first: the
 * application sees its connection end before the client's lingering close may wait. */
static void conn_close(struct conn *c, enum close_reason why)
{
	struct conn_books cb;
	int64_t now = clock_mono_ns();
	unsigned wants;

	if (cfg.cf_mode == MODE_HTTP)
		observer_finish(&c->cn_obs, account_incomplete_of(why), now);
	wants = log_wants(c);	/* the address, while the socket is open */
	if (c->cn_fd[RELAY_UPSTREAM] >= 0)
		close(c->cn_fd[RELAY_UPSTREAM]);
	if (lingers(c, why))
		net_lingering_close(c->cn_fd[RELAY_CLIENT], LINGER_MS);
	else
		close(c->cn_fd[RELAY_CLIENT]);
	c->cn_fd[0] = c->cn_fd[1] = -1;

	now = clock_mono_ns();
	books_of(c, &cb);
	if (wants)
		account_log_conn(w_slot, wants, &cb, why, now, peer_of(c), c->cn_opaque);
	account_conn_end(w_slot, &cb, why, now);
	score_count_conn(w_slot);
	score_conn_over(w_slot, now);
}

/* ---- what the observer reports --------------------------------------------------------- */

/* The observer's ops: it calls these as exchanges end, and they only count (account.c);
 * a connection's fate is the policy's, not the observer's. */
static unsigned obs_route(void *ctx, const char *target, size_t len)
{
	(void)ctx;
	return route_index(&cfg, target, len);
}

static void obs_exchange(void *ctx, const struct obs_exchange *ex, int why)
{
	struct conn *c = ctx;

	const struct obs_trace *tr = observer_trace(&c->cn_obs, ex);
	unsigned wants = log_wants(c);

	account_exchange(w_slot, ex, tr, why);
	if (wants)
		account_log_exchange(w_slot, wants, ex, observer_meta(&c->cn_obs, ex), tr, why,
		    peer_of(c), c->cn_requests + 1);
	/* The next request's strings are kept while someone wants lines (a tap client may
	 * have come or gone since this connection began). */
	observer_capture(&c->cn_obs, wants != 0);
	score_count_request(w_slot);
	c->cn_requests++;
}

static void obs_opaque(void *ctx, enum opaque_reason why)
{
	struct conn *c = ctx;

	c->cn_opaque = (int)why;
	shm_stats_add(w_slot, CTR_OPAQUE + why, 1);
}

static void obs_tunnel(void *ctx)
{
	(void)ctx;
	shm_stats_add(w_slot, CTR_TUNNELS, 1);
}

static const struct obs_ops obs_ops = { obs_route, obs_exchange, obs_opaque, obs_tunnel };

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
	if (relay_shut(&c->cn_relay, RELAY_U2C) ||
	    !observer_answer(&c->cn_obs, code, clock_mono_ns(), &head))
		return;
	if (err >= 0)
		shm_stats_add(w_slot, CTR_UPSTREAM + (unsigned)err, 1);
	n = snprintf(buf, sizeof(buf),
	    "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\nServer: sidemeter\r\n\r\n%s",
	    code, text, strlen(body), head ? "" : body);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	c->cn_answered = 1;
	(void)net_write_all(c->cn_fd[RELAY_CLIENT], buf, (size_t)n, ANSWER_MS);
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
		if (st.st_answerable || now >= deadline || w_quit)
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

/* Hand the connection to the keeper.  0: it is the keeper's now; -1: the keeper could not
 * take it (the channel is full or gone), and this worker keeps it. */
static int park(struct conn *c, int64_t now)
{
	static struct park_msg pm;	/* 8 KB of line buffer: not on the stack */
	const char *line;
	unsigned route;

	memset(&pm, 0, offsetof(struct park_msg, pk_line));
	pm.pk_version = PARK_VERSION;
	books_of(c, &pm.pk_books);
	pm.pk_last_io = c->cn_last_io;
	pm.pk_last_in = c->cn_last_in;
	if (observer_route(&c->cn_obs, &route))
		snprintf(pm.pk_route, sizeof(pm.pk_route), "%s", route_text(route));
	pm.pk_linelen = (uint32_t)observer_save(&c->cn_obs, &pm.pk_obs, &line);
	memcpy(pm.pk_line, line, pm.pk_linelen);
	/* Whoever takes it back counts on the client tick every accepted socket has. */
	if (c->cn_slow_tick && net_set_rcvtimeo(c->cn_fd[RELAY_CLIENT], w_env->we_client_tick_ms) == -1)
		return -1;
	if (keeper_send(w_env->we_park_fd, &pm, c->cn_fd[RELAY_CLIENT], c->cn_fd[RELAY_UPSTREAM]) == -1)
		return -1;
	/* The keeper holds its own copies now: said at once, so that a death from here on
	 * does not book as aborted a connection the keeper will end and count. */
	score_conn_over(w_slot, now);
	shm_stats_add(w_slot, CTR_PARKS, 1);
	close(c->cn_fd[RELAY_CLIENT]);
	close(c->cn_fd[RELAY_UPSTREAM]);
	c->cn_fd[0] = c->cn_fd[1] = -1;
	return 0;
}

/* Relay the connection until it ends, and end it; or hand it to the keeper (RELAY_HANDOFF). */
static enum close_reason pump(struct conn *c)
{
	enum close_reason why;

	for (;;) {
		why = relay_pump(&c->cn_relay);
		if (why != RELAY_HANDOFF)
			break;
		if (park(c, clock_mono_ns()) == 0)
			return RELAY_HANDOFF;
		/* The channel refused it (full, or the keeper gone): this worker keeps the
		 * connection, as it would without a keeper, and offers it again later. */
		shm_stats_add(w_slot, CTR_PARK_REFUSED, 1);
		c->cn_park_after = clock_mono_ns() + PARK_RETRY_MS * NS_PER_MS;
	}
	/* A request that waits with nothing of its answer sent gets one of ours, saying what
	 * the application did; answer() checks that one may still be sent. */
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

/* What every connection starts with, new or handed back; the books are the caller's. */
static void conn_start(struct conn *c, int cfd, int ufd)
{
	c->cn_fd[RELAY_CLIENT] = cfd;
	c->cn_fd[RELAY_UPSTREAM] = ufd;
	c->cn_answered = 0;
	c->cn_park_after = 0;
	c->cn_slow_tick = 0;
	c->cn_asked = 0;
	c->cn_head_asked = 0;
	c->cn_opaque = -1;
	relay_init(&c->cn_relay, cfd, ufd, w_env->we_alive_fd, &worker_relay_ops, c);
	relay_set_ticks(&c->cn_relay, w_env->we_client_tick_ms, RELAY_TICK_MS);
}

/* Serve one new connection, accepted at accepted; returns how it ended (RELAY_HANDOFF:
 * the keeper has it). */
static enum close_reason serve(int cfd, int64_t accepted)
{
	struct conn *c = &conn;
	enum close_reason why;
	int ufd, ue;

	conn_start(c, cfd, -1);
	c->cn_accepted = accepted;
	c->cn_connected = 0;
	c->cn_last_io = c->cn_last_in = c->cn_accepted;
	c->cn_requests = c->cn_stay_from = 0;
	if (cfg.cf_mode == MODE_HTTP) {
		observer_init(&c->cn_obs, &obs_ops, c);
		observer_capture(&c->cn_obs, account_log_wants(w_env->we_shm) != 0);
	}
	score_conn_taken(w_slot, c->cn_accepted, c->cn_accepted);
#if !defined(__linux__)
	/* On Linux the accepted socket has these from the listen socket already. */
	net_set_nodelay(cfd);
	net_set_rcvtimeo(cfd, w_env->we_client_tick_ms);
#endif

	/* The application's connection is opened at once, not at the first byte: the client's
	 * bytes flow as they come, and a connection is a pair for its whole life (what the
	 * application sees is what the client did, connection for connection). */
	ufd = net_connect(&cfg.cf_upstream, (int)cfg.cf_connect_ms);
	if (ufd == -1) {
		c->cn_connect_errno = errno;
		why = connect_failure(errno, &ue);
		if (cfg.cf_mode == MODE_HTTP)
			answer_unreachable(c, ue);
		else if (ue >= 0)
			shm_stats_add(w_slot, CTR_UPSTREAM + (unsigned)ue, 1);
		conn_close(c, why);
		return why;
	}
	net_set_nodelay(ufd);
	net_set_rcvtimeo(ufd, RELAY_TICK_MS);	/* for the relay's blocking reads */
	c->cn_fd[RELAY_UPSTREAM] = ufd;
	c->cn_connected = clock_mono_ns();
	c->cn_last_io = c->cn_connected;
	relay_set_upstream(&c->cn_relay, ufd);
	return pump(c);
}

/* Carry on with a connection the keeper handed back (taken at now), where it stood when it
 * was parked: the same books, the same observer state, the same timeouts. */
static enum close_reason resume(const struct park_msg *pm, int cfd, int ufd, int64_t now)
{
	struct conn *c = &conn;
	const struct conn_books *cb = &pm->pk_books;
	unsigned route = pm->pk_route[0] ? route_intern(pm->pk_route) : SHM_ROUTE_OTHER;

	conn_start(c, cfd, ufd);
	/* It came back because a side spoke: read that before thinking of parking again. */
	c->cn_park_after = PARK_NOT_UNREAD;
	c->cn_accepted = cb->cb_accepted;
	c->cn_connected = cb->cb_connected;
	c->cn_last_io = pm->pk_last_io;
	c->cn_last_in = pm->pk_last_in;
	c->cn_requests = c->cn_stay_from = cb->cb_requests;
	relay_set_bytes(&c->cn_relay, cb->cb_bytes[0], cb->cb_bytes[1]);
	score_conn_taken(w_slot, c->cn_accepted, now);
	if (observer_restore(&c->cn_obs, &obs_ops, c, &pm->pk_obs, pm->pk_line, pm->pk_linelen,
	    route) == -1) {
		log_warnx("a parked connection came back with a state it cannot have: closed");
		conn_close(c, CLOSE_ERROR);
		return CLOSE_ERROR;
	}
	c->cn_peer.ss_family = 0;	/* another connection's, else */
	observer_capture(&c->cn_obs, log_wants(c) != 0);
	return pump(c);
}

/* ---- the accept loop ------------------------------------------------------------------- */

/* Take a pair the keeper handed back, if one is still there (at now); returns how it
 * ended. */
static int take_back(int64_t now, enum close_reason *why)
{
	static struct park_msg pm;
	int cfd, ufd, r;

	score_taking(w_slot, now);
	r = keeper_recv(w_env->we_back_fd, &pm, &cfd, &ufd);
	if (r != 1)
		score_took_nothing(w_slot);
	if (r == 0)
		return 0;
	if (r == -1) {
		log_warnx("a broken message on the hand-back channel: dropped");
		shm_stats_add(w_slot, CTR_CLOSE + CLOSE_ERROR, 1);
		return 0;
	}
	score_set_state(w_slot, WORKER_BUSY);
	*why = resume(&pm, cfd, ufd, now);
	return 1;
}

void worker_signals(void (*quit)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocked wait must return to see the flag. */
	sa.sa_handler = quit;
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
	enum close_reason why;
	int64_t now;
	int fd, lfd = env->we_listen_fd;

	w_env = env;
	w_slot = shm_stats_slot(env->we_shm, env->we_slot);
	log_set_role("worker", (int)env->we_slot);
	worker_signals(on_quit);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	shm_stats_attach(w_slot);
	route_attach(w_slot, cfg.cf_max_routes);

	score_hello(w_slot, (int32_t)getpid(), WORKER_IDLE, clock_mono_ns());

	worker_wait_init();
	while (!w_quit) {
		unsigned ready = worker_wait();

		/* The moment it woke: its heartbeat, and when it took what woke it. */
		now = clock_mono_ns();
		score_beat(w_slot, now);
		if (ready & READY_MASTER_GONE)
			goto master_died;
		/* A client handed back has waited already: it goes first. */
		if ((ready & READY_BACK) && take_back(now, &why)) {
			if (why == CLOSE_ABORTED)
				goto master_died;
			if (!w_quit)
				score_set_state(w_slot, WORKER_IDLE);
			continue;
		}
		if (!(ready & READY_ACCEPT))
			continue;
		score_taking(w_slot, now);
		fd = worker_accept(lfd, &conn.cn_peer);
		if (fd >= 0) {
			score_set_state(w_slot, WORKER_BUSY);
			if (serve(fd, now) == CLOSE_ABORTED)
				goto master_died;
			if (!w_quit)
				score_set_state(w_slot, WORKER_IDLE);
			continue;
		}
		score_took_nothing(w_slot);	/* an atomic store: errno stays accept's */
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
			shm_stats_add(w_slot, CTR_ACCEPT_EMFILE, 1);
			if (master_gone(BACKOFF_MS))
				goto master_died;
			continue;
		default:
			shm_stats_add(w_slot, CTR_ACCEPT_ERROR, 1);
			log_warn("accept");
			if (master_gone(BACKOFF_MS))
				goto master_died;
			continue;
		}
	}
	score_set_state(w_slot, WORKER_LEAVING);
	/* The keeper leaves before the workers at a stop, handing back what is in a request
	 * head: those are owed their exchange, as a connection this worker had would be. */
	while (w_env->we_keeper && take_back(clock_mono_ns(), &why))
		if (why == CLOSE_ABORTED)
			goto master_died;
	_exit(0);

master_died:
	log_warnx("the master is gone; leaving");
	_exit(0);
}
