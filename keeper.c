/* keeper.c: the keeper process (contract in include/keeper.h; the hand-off of a pair is
 * handoff.c's, the wait set waitset.c's).
 *
 * The keeper holds connections that only wait: it never reads or writes their bytes, it
 * only watches both sockets of every pair in one wait set (epoll on Linux, poll elsewhere).
 * A byte from either side sends the pair back to a worker, with its state untouched; a
 * close or a timeout ends it here, through account.c like a worker would.  It may touch its
 * own shared-memory slot, the keeper gauges in the header, and nothing else. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/prctl.h>		/* PR_SET_NAME: ps tells the keeper from the workers */
#endif

#include "clock.h"
#include "config.h"
#include "keeper.h"
#include "log.h"
#include "net.h"
#include "route.h"
#include "waitset.h"
#include "worker.h"		/* worker_signals */

#define TICK_MS 100		/* timeouts are checked, and the heart beats, this often */
#define EVENTS 256		/* events taken per wait */
#define FD_RESERVE 32		/* descriptors kept free for everything but pairs */
#define TAKE_MAX 64		/* pairs taken from the park channel per wake-up */
#define OVERFLOW (FD_RESERVE / 4)	/* pairs held past the limit when nothing else will do */

/* A tag says what a descriptor is: a pair's side (index << 1 | side) or a channel. */
#define TAG_PARK (UINT64_MAX - 1)
#define TAG_BACK (UINT64_MAX - 2)
#define TAG_ALIVE (UINT64_MAX - 3)

/* ---- the pairs held ---------------------------------------------------------------------- */

struct held {
	int hd_fd[2];			/* client, application; hd_fd[0] == -1: a free entry */
	int64_t hd_deadline;		/* when hd_timeout ends it */
	uint8_t hd_timeout;		/* enum close_reason: header or keep-alive timeout */
	uint8_t hd_head;		/* a request head is in progress */
	uint8_t hd_queued;		/* waiting for room on the hand-back channel */
	uint32_t hd_next;		/* the free list, or the hand-back queue */
	struct park_msg *hd_msg;	/* the state, as it came (its line included) */
};

#define NONE UINT32_MAX

static struct keeper {
	const struct keeper_env *k_env;
	struct shm_slot *k_slot;
	struct shm_header *k_shm;
	struct held *k_held;
	uint32_t k_cap;			/* entries allocated */
	uint32_t k_limit;		/* pairs held at most: --max-parked, or the descriptors */
	uint32_t k_free;		/* free list head */
	uint32_t k_queue, k_queue_tail;	/* pairs waiting to go back */
	uint32_t k_n, k_heads;		/* pairs held; of them, in a request head */
	int64_t k_next_due;		/* no held pair's deadline comes before this */
	int k_park_paused;		/* not taking pairs: at the limit */
	int k_back_watched;		/* waiting for the hand-back channel to drain */
} k;

static volatile sig_atomic_t keeper_quit;

static void on_quit(int sig)
{
	(void)sig;
	keeper_quit = 1;
}

/* The gauges the master reads (sidemeter_parked_connections, /stats.json's keeper, the
 * active count): stored on every change, relaxed, as a gauge read a moment late is fine. */
static void publish(void)
{
	atomic_store_explicit(&k.k_shm->sh_held, k.k_n, memory_order_relaxed);
	atomic_store_explicit(&k.k_shm->sh_held_requests, k.k_heads, memory_order_relaxed);
}

/* A free entry, the table grown when it is full; NONE at the limit.  Entries are reused
 * through a free list, so the table grows to the crowd's high-water mark once and a
 * park costs no allocation but its message's. */
static uint32_t held_alloc(void)
{
	uint32_t i;

	if (k.k_free == NONE) {
		uint32_t cap = k.k_cap ? 2 * k.k_cap : 256;
		struct held *h;

		if (cap > k.k_limit + OVERFLOW)
			cap = k.k_limit + OVERFLOW;
		if (cap <= k.k_cap)
			return NONE;
		h = realloc(k.k_held, (size_t)cap * sizeof(*h));
		if (h == NULL)
			return NONE;
		k.k_held = h;
		for (i = k.k_cap; i < cap; i++) {
			h[i].hd_fd[0] = h[i].hd_fd[1] = -1;
			h[i].hd_msg = NULL;
			h[i].hd_next = i + 1 < cap ? i + 1 : NONE;
		}
		k.k_free = k.k_cap;
		k.k_cap = cap;
	}
	i = k.k_free;
	k.k_free = k.k_held[i].hd_next;
	return i;
}

/* Forget entry i: its descriptors are closed or sent already. */
static void held_free(uint32_t i)
{
	struct held *h = &k.k_held[i];

	k.k_n--;
	k.k_heads -= h->hd_head;
	free(h->hd_msg);
	h->hd_msg = NULL;
	h->hd_fd[0] = h->hd_fd[1] = -1;
	h->hd_queued = 0;
	h->hd_next = k.k_free;
	k.k_free = i;
	publish();
}

/* ---- ending a pair here ------------------------------------------------------------------ */

static unsigned k_route(void *ctx, const char *target, size_t len)
{
	(void)ctx;
	(void)target;
	(void)len;
	ASSERT(!"a restored observer parses nothing, so it names no route");
	return SHM_ROUTE_OTHER;
}

static struct sockaddr_storage k_peer;	/* the client of the pair end_pair() ends ... */
static unsigned k_wants;		/* ... and who wants its lines */

static const struct sockaddr *k_peer_of(void)
{
	return k_peer.ss_family ? (const struct sockaddr *)(const void *)&k_peer : NULL;
}

static void k_exchange(void *ctx, const struct obs_exchange *ex, int why)
{
	struct conn_books *cb = ctx;

	account_exchange(k.k_slot, ex, NULL, why);	/* a parked pair's trace stayed behind */
	if (k_wants)
		account_log_exchange(k.k_slot, k_wants, ex, NULL, NULL, why, k_peer_of(),
		    cb->cb_requests + 1);
	cb->cb_requests++;
}

static void k_opaque(void *ctx, enum opaque_reason why)
{
	(void)ctx;
	shm_stats_add(k.k_slot, CTR_OPAQUE + why, 1);
}

static void k_tunnel(void *ctx)
{
	(void)ctx;
	shm_stats_add(k.k_slot, CTR_TUNNELS, 1);
}

static const struct obs_ops k_ops = { k_route, k_exchange, k_opaque, k_tunnel };

/* The one way a pair ends in the keeper: what its observer holds is reported, both sockets
 * close, the reason is counted and the record published, as conn_close() does in a worker.
 * Nothing of the client's is unread here (a byte would have sent it back), so a plain close
 * loses nothing. */
static void end_pair(uint32_t i, enum close_reason why, int64_t now)
{
	static struct observer ob;	/* tens of KB: not on the stack */
	struct held *h = &k.k_held[i];
	struct park_msg *pm = h->hd_msg;
	struct conn_books cb = pm->pk_books;
	unsigned route = pm->pk_route[0] ? route_intern(pm->pk_route) : SHM_ROUTE_OTHER;

	k_wants = account_log_wants(k.k_shm);
	k_peer.ss_family = 0;
	if (k_wants)
		net_peer(h->hd_fd[0], &k_peer);
	if (observer_restore(&ob, &k_ops, &cb, &pm->pk_obs, pm->pk_line, pm->pk_linelen, route) == 0)
		observer_finish(&ob, account_incomplete_of(why), now);
	if (!h->hd_queued) {
		ws_del(h->hd_fd[0]);
		ws_del(h->hd_fd[1]);
	}
	close(h->hd_fd[0]);
	close(h->hd_fd[1]);
	if (k_wants)
		account_log_conn(k.k_slot, k_wants, &cb, why, now, k_peer_of(), -1);
	account_conn_end(k.k_slot, &cb, why, now);
	held_free(i);
}

/* ---- handing a pair back ----------------------------------------------------------------- */

static void watch_back(int on)
{
	if (on == k.k_back_watched)
		return;
	k.k_back_watched = on;
	ws_mod(k.k_env->ke_back_fd, TAG_BACK, on ? WANT_OUT : 0);
}

/* Send pair i back to the workers.  0: gone (or ended: the channel is broken); -1: the
 * channel is full, try again when it drains. */
static int send_back(uint32_t i, int64_t now)
{
	struct held *h = &k.k_held[i];

	if (keeper_send(k.k_env->ke_back_fd, h->hd_msg, h->hd_fd[0], h->hd_fd[1]) == -1) {
		/* Full, or too many descriptors in flight for this user (ETOOMANYREFS): both
		 * pass; the queue is tried again when the channel drains and at every tick. */
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == ETOOMANYREFS)
			return -1;
		log_warn("sendmsg on the hand-back channel");
		end_pair(i, CLOSE_ERROR, now);
		return 0;
	}
	if (!h->hd_queued) {
		ws_del(h->hd_fd[0]);
		ws_del(h->hd_fd[1]);
	}
	close(h->hd_fd[0]);
	close(h->hd_fd[1]);
	shm_stats_add(k.k_slot, CTR_UNPARKS, 1);
	held_free(i);
	return 0;
}

/* Pair i has something to say: back to a worker now, or in turn once the channel drains
 * (its sockets unwatched meanwhile: it is on its way). */
static void give_back(uint32_t i, int64_t now)
{
	struct held *h = &k.k_held[i];

	if (h->hd_queued)
		return;
	if (k.k_queue == NONE && send_back(i, now) == 0)
		return;
	ws_mod(h->hd_fd[0], (uint64_t)i << 1, 0);
	ws_mod(h->hd_fd[1], (uint64_t)i << 1 | 1, 0);
	h->hd_queued = 1;
	h->hd_next = NONE;
	if (k.k_queue == NONE)
		k.k_queue = i;
	else
		k.k_held[k.k_queue_tail].hd_next = i;
	k.k_queue_tail = i;
	watch_back(1);
}

static void flush_queue(int64_t now)
{
	while (k.k_queue != NONE) {
		uint32_t i = k.k_queue, next = k.k_held[i].hd_next;

		if (send_back(i, now) == -1)
			return;
		k.k_queue = next;
	}
	watch_back(0);
}

/* ---- taking pairs in --------------------------------------------------------------------- */

/* The deadline a held pair has, as a worker's relay policy would set it. */
static void set_deadline(struct held *h)
{
	const struct park_msg *pm = h->hd_msg;
	const struct obs_saved *sv = &pm->pk_obs;

	h->hd_head = sv->sv_n == 1;
	h->hd_timeout = CLOSE_HEADER_TIMEOUT;
	if (h->hd_head)		/* a first request's head is timed from the accept */
		h->hd_deadline = (sv->sv_requests == 1 ? pm->pk_books.cb_accepted :
		    sv->sv_ex.ex_req_start) + cfg.cf_header_ms * NS_PER_MS;
	else if (sv->sv_requests == 0)	/* nothing sent yet */
		h->hd_deadline = pm->pk_books.cb_accepted + cfg.cf_header_ms * NS_PER_MS;
	else {
		h->hd_timeout = CLOSE_KEEPALIVE_TIMEOUT;
		h->hd_deadline = pm->pk_last_io + cfg.cf_keepalive_ms * NS_PER_MS;
	}
}

/* A pair the keeper cannot hold (no memory, no entry): straight back, and its worker keeps
 * it; if even the hand-back channel refuses, it ends here, counted, never lost unseen. */
static void bounce(const struct park_msg *pm, int cfd, int ufd, int64_t now)
{
	if (keeper_send(k.k_env->ke_back_fd, pm, cfd, ufd) == 0) {
		shm_stats_add(k.k_slot, CTR_UNPARKS, 1);
	} else {
		log_warn("no room for a pair, and the hand-back channel refused it");
		account_conn_end(k.k_slot, &pm->pk_books, CLOSE_ERROR, now);
	}
	close(cfd);
	close(ufd);
}

static void take_one(const struct park_msg *pm, int cfd, int ufd, int64_t now)
{
	size_t size = offsetof(struct park_msg, pk_line) + pm->pk_linelen;
	uint32_t i = held_alloc();
	struct held *h;

	if (i == NONE) {
		bounce(pm, cfd, ufd, now);
		return;
	}
	h = &k.k_held[i];
	h->hd_msg = malloc(size);
	if (h->hd_msg == NULL) {
		h->hd_next = k.k_free;
		k.k_free = i;
		bounce(pm, cfd, ufd, now);
		return;
	}
	memcpy(h->hd_msg, pm, size);
	h->hd_fd[0] = cfd;
	h->hd_fd[1] = ufd;
	h->hd_queued = 0;
	set_deadline(h);
	if (h->hd_deadline < k.k_next_due)
		k.k_next_due = h->hd_deadline;
	k.k_n++;
	k.k_heads += h->hd_head;
	publish();
	if (ws_add(cfd, (uint64_t)i << 1, WANT_IN) == -1 ||
	    ws_add(ufd, (uint64_t)i << 1 | 1, WANT_IN) == -1) {
		log_warn("watching a parked pair");
		ws_del(cfd);
		h->hd_queued = 1;	/* neither is watched now */
		end_pair(i, CLOSE_ERROR, now);
		return;
	}
	/* A byte that came while the pair travelled is seen at the next wait: level-triggered. */
	if (keeper_quit)
		h->hd_head ? give_back(i, now) : end_pair(i, CLOSE_SHUTDOWN, now);
}

static void take(int64_t now)
{
	static struct park_msg pm;
	int cfd, ufd, r, n;

	for (n = 0; n < TAKE_MAX; n++) {
		if (k.k_queue != NONE && k.k_n >= k.k_limit) {
			/* At the limit, and the hand-back channel cannot take a pair now: leave
			 * the rest in the park channel until something moves. */
			k.k_park_paused = 1;
			ws_mod(k.k_env->ke_park_fd, TAG_PARK, 0);
			return;
		}
		r = keeper_recv(k.k_env->ke_park_fd, &pm, &cfd, &ufd);
		if (r == 0)
			return;
		if (r == -1) {
			log_warnx("a broken message on the park channel: dropped");
			shm_stats_add(k.k_slot, CTR_CLOSE + CLOSE_ERROR, 1);
			continue;
		}
		if (k.k_n >= k.k_limit) {
			/* Workers parked more than the room they were told of (they park at once,
			 * many together): this one goes straight back, and a worker keeps it.
			 * The reserve of descriptors leaves room to take it for that moment. */
			shm_stats_add(k.k_slot, CTR_PARK_REFUSED, 1);
			if (keeper_send(k.k_env->ke_back_fd, &pm, cfd, ufd) == 0) {
				shm_stats_add(k.k_slot, CTR_UNPARKS, 1);
				close(cfd);
				close(ufd);
				continue;
			}
			/* The hand-back channel is full too: hold it in the overflow room. */
		}
		take_one(&pm, cfd, ufd, now);
	}
}

/* ---- events and time --------------------------------------------------------------------- */

static void pair_event(uint32_t i, int side, int64_t now)
{
	struct held *h = &k.k_held[i];
	char b;
	ssize_t n;

	if (i >= k.k_cap || h->hd_fd[0] < 0 || h->hd_queued)
		return;	/* an event for an entry that left during this round */
	n = recv(h->hd_fd[side], &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0) {
		give_back(i, now);
	} else if (n == 0) {
		/* A close between exchanges ends the pair here; in a head, the worker's relay
		 * passes the half-close on and lets the application answer. */
		if (h->hd_head)
			give_back(i, now);
		else
			end_pair(i, side == 0 ? CLOSE_CLIENT_CLOSED : CLOSE_UPSTREAM_CLOSED, now);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		end_pair(i, side == 0 ? CLOSE_CLIENT_ERROR : CLOSE_UPSTREAM_ERROR, now);
	}
}

/* Timeouts, and on the way out: idle pairs close (they are between exchanges), the rest go
 * back to be finished by a worker.  The table is walked only when a deadline is due, not at
 * every tick: thousands of idle pairs would otherwise cost a walk of all of them ten times
 * a second, and the workers' caches with it. */
static void sweep(int64_t now)
{
	int64_t next = INT64_MAX;
	uint32_t i;

	if (now < k.k_next_due && !keeper_quit)
		return;
	for (i = 0; i < k.k_cap; i++) {
		struct held *h = &k.k_held[i];

		if (h->hd_fd[0] < 0 || h->hd_queued)
			continue;
		if (now >= h->hd_deadline)
			end_pair(i, (enum close_reason)h->hd_timeout, now);
		else if (keeper_quit)
			h->hd_head ? give_back(i, now) : end_pair(i, CLOSE_SHUTDOWN, now);
		else if (h->hd_deadline < next)
			next = h->hd_deadline;
	}
	k.k_next_due = next;
}

static void end_all(enum close_reason why, int64_t now)
{
	uint32_t i;

	for (i = 0; i < k.k_cap; i++)
		if (k.k_held[i].hd_fd[0] >= 0)
			end_pair(i, why, now);
}


/* Pairs the descriptor limit leaves room for: two descriptors each, and a reserve. */
static uint32_t pair_limit(void)
{
	struct rlimit rl;
	uint64_t n = 1u << 20;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur > FD_RESERVE ? (rl.rlim_cur - FD_RESERVE) / 2 : 0;
	return n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n;
}

void keeper_run(const struct keeper_env *env)
{
	struct ws_event ev[EVENTS];
	int64_t now, next_tick;
	sigset_t none;
	int n, e;

	k.k_env = env;
	k.k_shm = env->ke_shm;
	k.k_slot = shm_stats_slot(env->ke_shm, env->ke_slot);
	k.k_free = k.k_queue = NONE;
	k.k_next_due = INT64_MAX;
	/* --max-parked is a bound, not advice: workers that park together may overshoot what
	 * they read in sh_held, and what goes past it is bounced. */
	k.k_limit = pair_limit();
	if (k.k_limit > env->ke_shm->sh_max_parked)
		k.k_limit = env->ke_shm->sh_max_parked;
	log_set_role("keeper", -1);
#if defined(__linux__)
	(void)prctl(PR_SET_NAME, "sidemeter-keep", 0, 0, 0);
#endif
	worker_signals(on_quit);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	shm_stats_attach(k.k_slot);
	route_attach(k.k_slot, cfg.cf_max_routes);
	publish();
	if (ws_init() == -1 || ws_add(env->ke_park_fd, TAG_PARK, WANT_IN) == -1 ||
	    ws_add(env->ke_back_fd, TAG_BACK, 0) == -1 ||
	    ws_add(env->ke_alive_fd, TAG_ALIVE, WANT_IN) == -1)
		fatal("keeper: the wait set");
	score_hello(k.k_slot, (int32_t)getpid(), WORKER_IDLE, clock_mono_ns());
	next_tick = 0;

	for (;;) {
		now = clock_mono_ns();
		if (now >= next_tick || keeper_quit) {
			flush_queue(now);
			sweep(now);
			score_beat(k.k_slot, now);
			score_set_state(k.k_slot,
			    keeper_quit ? WORKER_LEAVING : k.k_n ? WORKER_BUSY : WORKER_IDLE);
			next_tick = now + TICK_MS * NS_PER_MS;
		}
		if (keeper_quit && k.k_n == 0)
			_exit(0);
		n = ws_wait(ev, EVENTS, clock_poll_ms(next_tick, now, TICK_MS));
		now = clock_mono_ns();
		for (e = 0; e < n; e++) {
			uint64_t tag = ev[e].we_tag;

			if (tag == TAG_ALIVE) {
				log_warnx("the master is gone; leaving");
				end_all(CLOSE_ABORTED, now);
				_exit(0);
			} else if (tag == TAG_PARK) {
				take(now);
			} else if (tag == TAG_BACK) {
				if (ev[e].we_out)
					flush_queue(now);
			} else {
				pair_event((uint32_t)(tag >> 1), (int)(tag & 1), now);
			}
		}
		if (k.k_park_paused && (k.k_queue == NONE || k.k_n < k.k_limit)) {
			k.k_park_paused = 0;
			ws_mod(env->ke_park_fd, TAG_PARK, WANT_IN);
		}
	}
}
