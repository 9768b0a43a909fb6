/* worker_policy.c: the relay policy of a worker's connection (the ops of include/relay.h):
 * every byte moved is counted and shown to the observer; an end from either side is told
 * to it; and on every tick (and when a byte comes) the policy decides what the relay does
 * next from the observer's state: the timeouts that apply now (header, idle, keep-alive,
 * the drain of a leaving worker), whether a 502/504 of ours may still go out, and when a
 * connection that only waits should be handed to the keeper.
 *
 * It touches: the worker's slot (counters, the scoreboard's beat), the header's keeper
 * figures (sh_held, sh_hurry: read only); the connection through its relay and observer. */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "account.h"
#include "clock.h"
#include "config.h"
#include "keeper.h"
#include "log.h"
#include "net.h"
#include "observer.h"
#include "route.h"
#include "worker_int.h"

/* n bytes went by in direction dir: the clocks of the timeouts and the byte counters. */
static void moved(struct conn *c, int dir, size_t n, int64_t now)
{
	c->cn_last_io = now;
	if (c->cn_park_after == PARK_NOT_UNREAD)
		c->cn_park_after = 0;
	if (dir == RELAY_C2U) {
		c->cn_last_in = now;
		shm_stats_add(w_slot, CTR_BYTES_IN, n);
	} else {
		shm_stats_add(w_slot, CTR_BYTES_OUT, n);
	}
}

/* The relay's directions are handed to the observer as its sides, unchanged. */
_Static_assert(RELAY_C2U == OBS_REQ && RELAY_U2C == OBS_RESP,
    "the relay's directions and the observer's sides are the same numbers");

static enum close_reason on_data(void *ctx, int dir, const char *p, size_t n, int64_t now)
{
	struct conn *c = ctx;

	moved(c, dir, n, now);
	if (cfg.cf_mode == MODE_HTTP)
		observer_feed(&c->cn_obs, dir, p, n, now);
	return CLOSE_NONE;
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
static enum close_reason on_eof(void *ctx, int dir, int64_t now)
{
	struct conn *c = ctx;
	struct obs_status st;

	c->cn_last_io = now;
	if (cfg.cf_mode != MODE_HTTP)
		return CLOSE_NONE;
	observer_eof(&c->cn_obs, dir, now);
	if (dir == RELAY_U2C) {
		observer_status(&c->cn_obs, &st);
		if (st.st_answerable || (st.st_mode == OBS_HTTP && st.st_oldest))
			return CLOSE_UPSTREAM_CLOSED;
	}
	return CLOSE_NONE;
}

/* Keep the earliest deadline; say whether it has passed. */
static int due(int64_t at, int64_t now, int64_t *deadline)
{
	if (at < *deadline)
		*deadline = at;
	return now >= at;
}

/* Bytes nobody needs to see move by splice (tcp mode, tunnels, opaque connections). */
static enum close_reason tcp_check(const struct conn *c, int64_t now, struct relay_plan *plan)
{
	plan->rp_unseen[RELAY_C2U] = plan->rp_unseen[RELAY_U2C] = RELAY_ALL;
	/* A leaving worker in tcp mode finishes the connection it has: the master's drain
	 * timeout bounds how long that may take. */
	if (due(c->cn_last_io + cfg.cf_idle_ms * NS_PER_MS, now, &plan->rp_deadline))
		return CLOSE_IDLE_TIMEOUT;
	return CLOSE_NONE;
}

/* May this connection go to the keeper now?  Only in http mode with a keeper that runs and
 * has room, when neither side has anything in flight, and not on the way out (a leaving
 * worker closes idle connections itself).  A connection the keeper has no room for stays
 * here, as it would without a keeper: counted, and not offered again for a while. */
static int may_park(struct conn *c, int64_t now)
{
	const struct shm_slot *ks;

	if (!w_env->we_keeper || w_quit || now < c->cn_park_after ||
	    !relay_quiet(&c->cn_relay) || !observer_parkable(&c->cn_obs))
		return 0;
	ks = shm_stats_slot(w_env->we_shm, w_env->we_shm->sh_keeper_slot);
	if (score_pid(ks) > 0 && score_state(ks) != WORKER_LEAVING &&
	    atomic_load_explicit(&w_env->we_shm->sh_held, memory_order_relaxed) <
	    w_env->we_shm->sh_max_parked)
		return 1;
	shm_stats_add(w_slot, CTR_PARK_REFUSED, 1);
	c->cn_park_after = now + PARK_RETRY_MS * NS_PER_MS;
	/* Held here for a while: a read of the client need not come back every --park-after. */
	if (!c->cn_slow_tick && net_set_rcvtimeo(c->cn_fd[RELAY_CLIENT], RELAY_TICK_MS) == 0) {
		c->cn_slow_tick = 1;
		relay_set_ticks(&c->cn_relay, RELAY_TICK_MS, RELAY_TICK_MS);
	}
	return 0;
}

/* Connections wait and no worker is idle (the master says so): an idle connection goes to
 * the keeper at once, not after --park-after. */
static int hurry(void)
{
	return atomic_load_explicit(&w_env->we_shm->sh_hurry, memory_order_relaxed) != 0;
}

/* Do others wait for a worker: a connection in the listen queue, a pair the keeper hands
 * back?  Then a connection that is only waiting goes to the keeper at once rather than
 * after --park-after, so that a burst of clients does not hold a worker apiece and grow the
 * pool. */
static int others_wait(void)
{
	struct pollfd pfd[2] = {
		{ .fd = w_env->we_listen_fd, .events = POLLIN },
		{ .fd = w_env->we_back_fd, .events = POLLIN },
	};

	return poll(pfd, 2, 0) > 0;
}

/* Between exchanges: asked once the first exchange of this stay is over, and once only, so
 * that a keep-alive connection in a worker pays one poll, not one per request. */
static int idle_crowded(struct conn *c)
{
	if (c->cn_asked || c->cn_requests == c->cn_stay_from || !w_env->we_keeper ||
	    !relay_quiet(&c->cn_relay))
		return 0;
	c->cn_asked = 1;
	return others_wait();
}

/* In a request head that stopped short: asked again only when more of it came. */
static int head_crowded(struct conn *c)
{
	if (c->cn_head_asked == c->cn_last_in || !relay_quiet(&c->cn_relay))
		return 0;
	c->cn_head_asked = c->cn_last_in;
	return others_wait();
}

/* Which clock runs depends on where the exchange stands; so does who speaks next, and how
 * much of a body may pass unseen. */
static enum close_reason http_check(struct conn *c, int64_t now, struct relay_plan *plan)
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
	score_request(w_slot, st.st_oldest);
	switch (st.st_mode) {
	case OBS_TUNNEL:
		if (due(c->cn_last_io + cfg.cf_tunnel_ms * NS_PER_MS, now, deadline))
			return CLOSE_TUNNEL_TIMEOUT;
		return CLOSE_NONE;
	case OBS_OPAQUE:
		return tcp_check(c, now, plan);
	case OBS_HTTP:
		break;
	}
	if (st.st_idle) {
		/* Between requests: a leaving worker closes here, and only here; a client that
		 * has just connected is owed its first exchange. */
		if (w_quit && observer_requests(&c->cn_obs) > 0)
			return CLOSE_SHUTDOWN;
		if (observer_requests(&c->cn_obs) == 0) {
			if (due(c->cn_accepted + cfg.cf_header_ms * NS_PER_MS, now, deadline))
				return CLOSE_HEADER_TIMEOUT;
		} else if (due(c->cn_last_io + cfg.cf_keepalive_ms * NS_PER_MS, now, deadline)) {
			return CLOSE_KEEPALIVE_TIMEOUT;
		}
		/* Nothing said for --park-after: the keeper waits for it.  No deadline is set
		 * for this: the client socket's SO_RCVTIMEO is --park-after, so the relay's
		 * blocking read of it comes back then at no cost to the hot path. */
		if ((now - c->cn_last_io >= cfg.cf_park_after_ms * NS_PER_MS || hurry() ||
		    idle_crowded(c)) && may_park(c, now))
			return RELAY_HANDOFF;
		return CLOSE_NONE;
	}
	if (st.st_head_since &&
	    due((observer_requests(&c->cn_obs) == 1 ? c->cn_accepted : st.st_head_since) +
		cfg.cf_header_ms * NS_PER_MS, now, deadline))
		return CLOSE_HEADER_TIMEOUT;
	/* On the way out a slow client may not hold the drain for the whole --header-timeout:
	 * a head in progress has DRAIN_HEAD_MS to finish (then it is answered as any request
	 * would be), or is closed then, counted as a header timeout. */
	if (st.st_head_since && w_quit && due(w_quit_seen + DRAIN_HEAD_MS * NS_PER_MS, now, deadline))
		return CLOSE_HEADER_TIMEOUT;
	/* A request head that stalled waits in the keeper too, where 1000 of them cost no
	 * worker; --header-timeout still cuts it there. */
	if (st.st_head_since && !st.st_in_body && w_env->we_keeper) {
		int64_t quiet_at = c->cn_last_in + cfg.cf_park_after_ms * NS_PER_MS;

		if ((now >= quiet_at || hurry() || head_crowded(c)) && may_park(c, now))
			return RELAY_HANDOFF;
		if (now < quiet_at)
			due(quiet_at, now, deadline);
	}
	/* A body that stops because the application does not read is not the client's fault. */
	if (st.st_in_body && !relay_pending(&c->cn_relay, RELAY_C2U) &&
	    due(c->cn_last_in + cfg.cf_body_ms * NS_PER_MS, now, deadline))
		return CLOSE_BODY_TIMEOUT;
	if (st.st_wait_since &&
	    due(st.st_wait_since + cfg.cf_response_ms * NS_PER_MS, now, deadline))
		return CLOSE_RESPONSE_TIMEOUT;
	if (!st.st_wait_since && due(c->cn_last_io + cfg.cf_idle_ms * NS_PER_MS, now, deadline))
		return CLOSE_IDLE_TIMEOUT;
	return CLOSE_NONE;
}

static enum close_reason on_check(void *ctx, int64_t now, struct relay_plan *plan)
{
	struct conn *c = ctx;

	score_beat(w_slot, now);
	if (w_quit) {
		score_set_state(w_slot, WORKER_LEAVING);
		if (w_quit_seen == 0)
			w_quit_seen = now;
	}
	if (cfg.cf_mode == MODE_HTTP)
		return http_check(c, now, plan);
	return tcp_check(c, now, plan);
}

const struct relay_ops worker_relay_ops = { on_data, on_unseen, on_eof, on_check };
