/* account.c: a connection's events as counts and records (contract in include/account.h).
 * Workers and the keeper both end connections through it, so a connection counts the same
 * wherever it ends.  The order is the rule here: the exact count first (a counter or the
 * request table, which never drop), then the sample into the ring, which may be full.
 *
 * It touches only the slot it is given: the caller's own. */
#include <string.h>
#include <netinet/in.h>

#include "account.h"
#include "clock.h"
#include "config.h"

/* An exchange's whole time, and the application's (from the request's end to the answer's
 * start; none for an answer of ours): 0 when a moment is missing. */
static uint64_t exchange_ns(const struct obs_exchange *ex)
{
	return ex->ex_resp_end > ex->ex_req_start ? (uint64_t)(ex->ex_resp_end - ex->ex_req_start) : 0;
}

static uint64_t app_ns(const struct obs_exchange *ex)
{
	return !(ex->ex_flags & EX_ANSWERED) && ex->ex_req_end > 0 &&
	    ex->ex_resp_start > ex->ex_req_end ? (uint64_t)(ex->ex_resp_start - ex->ex_req_end) : 0;
}

/* An exemplar travels as a record of its own (the other arm of the record's union), not in
 * the request's: few requests carry a trace, and 24 bytes of ids in every request record
 * would make each over a third larger. */
static void put_exemplar(struct shm_slot *sl, const struct obs_exchange *ex,
    const struct obs_trace *tr)
{
	struct shm_record r;

	memset(&r, 0, sizeof(r));
	r.r_kind = REC_EXEMPLAR;
	memcpy(r.r_trace, tr->tr_trace, sizeof(r.r_trace));
	memcpy(r.r_span, tr->tr_span, sizeof(r.r_span));
	r.r_value = exchange_ns(ex);
	r.r_app = app_ns(ex);
	r.r_wall = clock_wall_ns();
	r.r_route = ex->ex_route;
	r.r_code = ex->ex_code;
	r.r_method = ex->ex_method;
	r.r_flags = ex->ex_flags & EX_HTTP10 ? REC_HTTP10 : 0;
	shm_stats_put(sl, &r);
}

/* why < 0: the exchange got its final answer; else the enum incomplete_reason it was cut
 * short for.  Only complete exchanges have a status code to count by; the others count by
 * their reason, and their record (rec_reason()) gives the aggregate nothing to time. */
void account_exchange(struct shm_slot *sl, const struct obs_exchange *ex,
    const struct obs_trace *tr, int why)
{
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
	r.r_flags = (uint8_t)((ex->ex_flags & EX_ANSWERED ? REC_ANSWERED : 0) |
	    (ex->ex_flags & EX_HTTP10 ? REC_HTTP10 : 0));
	r.r_reason = rec_reason(why);
	/* The count first, exactly; the sample after, if the ring has room. */
	if (why < 0)
		shm_stats_count_request(sl, ex->ex_route, (enum http_method)ex->ex_method, ex->ex_code);
	else
		shm_stats_add(sl, CTR_INCOMPLETE + (unsigned)why, 1);
	shm_stats_put(sl, &r);
	/* A traced request that got its answer: its ids, for the histograms' exemplars. */
	if (why < 0 && tr != NULL && exchange_ns(ex) > 0)
		put_exemplar(sl, ex, tr);
}

/* A connection's end: its record (accept to now, the connect time when the application
 * was reached) and its count by reason.  The caller's books say how far it got. */
void account_conn_end(struct shm_slot *sl, const struct conn_books *cb, enum close_reason why,
    int64_t now)
{
	struct shm_record r;

	memset(&r, 0, sizeof(r));
	r.r_kind = REC_CONN;
	r.r_start = cb->cb_accepted;
	r.r_mid = cb->cb_connected;
	r.r_end = now;
	r.r_bytes_in = cb->cb_bytes[0];
	r.r_bytes_out = cb->cb_bytes[1];
	r.r_reason = (uint8_t)why;
	r.r_requests = cb->cb_requests;
	shm_stats_put(sl, &r);
	shm_stats_add(sl, CTR_CLOSE + why, 1);
}

/* What an exchange in flight was cut short by, from how its connection ended: the client's
 * side, the application's side, one of our timeouts, or anything else (a worker killed,
 * the master gone, our own error). */
enum incomplete_reason account_incomplete_of(enum close_reason why)
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

/* ---- the access log and the tap ---- */

/* Does a line pass --access-log-filter?  A status class or the duration selects it (either,
 * when both are given; all lines when neither is), then one in N of those is kept. */
static int log_passes(unsigned code, uint64_t dur_ns)
{
	static unsigned seen;	/* per process: each worker keeps 1 in N of its own */
	int picked = (cfg.cf_alog_classes == 0 && cfg.cf_alog_min_ms < 0) ||
	    (code >= 100 && code <= 599 && (cfg.cf_alog_classes & (1u << (code / 100)))) ||
	    (cfg.cf_alog_min_ms >= 0 && dur_ns >= (uint64_t)cfg.cf_alog_min_ms * NS_PER_MS);

	return picked && (cfg.cf_alog_sample <= 1 || seen++ % cfg.cf_alog_sample == 0);
}

/* Read on every exchange's end: relaxed is enough, as a tap client that has just come may
 * miss the lines of the next few milliseconds (the master sets sh_tapping on its turn). */
unsigned account_log_wants(const struct shm_header *sh)
{
	return (cfg.cf_alog != ALOG_OFF ? LOG_WANT_FILE : 0) |
	    (atomic_load_explicit(&sh->sh_tapping, memory_order_relaxed) ? LOG_WANT_TAP : 0);
}

/* The flags of a line that passes for someone (0 for the file and the tap, LOG_TAP_ONLY for
 * the tap alone), or -1 when no one takes it. */
static int log_for(unsigned wants, unsigned code, uint64_t dur_ns)
{
	if ((wants & LOG_WANT_FILE) && log_passes(code, dur_ns))
		return 0;
	return wants & LOG_WANT_TAP ? LOG_TAP_ONLY : -1;
}

/* The client's address in the line's fixed header: 4 or 16 bytes and the port, formatted
 * by the master (a worker spends no time on text). */
static void log_peer(struct shm_logrec *h, const struct sockaddr *peer)
{
	if (peer == NULL)
		return;
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)peer;

		h->lr_family = 4;
		memcpy(h->lr_addr, &in->sin_addr, 4);
		h->lr_port = ntohs(in->sin_port);
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)peer;

		h->lr_family = 6;
		memcpy(h->lr_addr, &in6->sin6_addr, 16);
		h->lr_port = ntohs(in6->sin6_port);
	}
}

void account_log_exchange(struct shm_slot *sl, unsigned wants, const struct obs_exchange *ex,
    const struct obs_meta *om, const struct obs_trace *tr, int why, const struct sockaddr *peer,
    uint32_t number)
{
	const char *str[4] = { "", "", "", "" };
	struct shm_logrec h;
	uint64_t dur = exchange_ns(ex);
	int flags = log_for(wants, ex->ex_code, dur);

	if (flags < 0)
		return;
	memset(&h, 0, sizeof(h));
	h.lr_kind = LOG_EXCHANGE;
	h.lr_flags = (uint8_t)(flags | (ex->ex_flags & EX_HTTP10 ? LOG_HTTP10 : 0) |
	    (ex->ex_flags & EX_ANSWERED ? LOG_ANSWERED : 0));
	h.lr_code = ex->ex_code;
	h.lr_method = ex->ex_method;
	h.lr_reason = rec_reason(why);
	h.lr_requests = number;
	h.lr_route = ex->ex_route;
	log_peer(&h, peer);
	if (tr != NULL) {
		h.lr_flags |= LOG_TRACED;
		memcpy(h.lr_trace, tr->tr_trace, sizeof(h.lr_trace));
	}
	h.lr_wall = clock_wall_ns();
	h.lr_dur = dur;
	h.lr_app = app_ns(ex);
	h.lr_in = ex->ex_req_body;
	h.lr_out = ex->ex_resp_body;
	if (om != NULL) {
		h.lr_flags |= LOG_META;
		str[0] = om->om_target;
		str[1] = om->om_ua;
		str[2] = om->om_ref;
		str[3] = om->om_rid;
		memcpy(h.lr_len, om->om_len, sizeof(h.lr_len));
	}
	shm_log_put(sl, &h, str);
}

void account_log_conn(struct shm_slot *sl, unsigned wants, const struct conn_books *cb,
    enum close_reason why, int64_t now, const struct sockaddr *peer, int opaque)
{
	static const char *const none[4] = { "", "", "", "" };	/* a connection has no strings */
	struct shm_logrec h;
	uint64_t dur = now > cb->cb_accepted ? (uint64_t)(now - cb->cb_accepted) : 0;
	int flags;

	/* A connection with exchanges has had its lines; one that closed without a byte (a
	 * health check's TCP probe, a browser's spare connection) is not worth one. */
	if (cb->cb_requests > 0 || (why == CLOSE_CLIENT_CLOSED && cb->cb_bytes[0] == 0))
		return;
	flags = log_for(wants, 0, dur);
	if (flags < 0)
		return;
	memset(&h, 0, sizeof(h));
	h.lr_kind = LOG_CONN;
	h.lr_flags = (uint8_t)flags;
	h.lr_reason = (uint8_t)why;
	h.lr_opaque = rec_reason(opaque);
	log_peer(&h, peer);
	h.lr_wall = clock_wall_ns();
	h.lr_dur = dur;
	h.lr_in = cb->cb_bytes[0];
	h.lr_out = cb->cb_bytes[1];
	shm_log_put(sl, &h, none);
}
