/* account.c: a connection's events as counts and records (contract in include/account.h).
 * It touches only the slot it is given: the caller's own. */
#include <string.h>

#include "account.h"
#include "clock.h"

static void put_exemplar(struct shm_slot *sl, const struct obs_exchange *ex,
    const struct obs_trace *tr)
{
	struct shm_record r;

	memset(&r, 0, sizeof(r));
	r.r_kind = REC_EXEMPLAR;
	memcpy(r.r_trace, tr->tr_trace, sizeof(r.r_trace));
	memcpy(r.r_span, tr->tr_span, sizeof(r.r_span));
	r.r_value = (uint64_t)(ex->ex_resp_end - ex->ex_req_start);
	if (!(ex->ex_flags & EX_ANSWERED) && ex->ex_req_end > 0 && ex->ex_resp_start > ex->ex_req_end)
		r.r_app = (uint64_t)(ex->ex_resp_start - ex->ex_req_end);
	r.r_wall = clock_wall_ns();
	r.r_route = ex->ex_route;
	r.r_code = ex->ex_code;
	r.r_method = ex->ex_method;
	r.r_flags = ex->ex_flags & EX_HTTP10 ? REC_HTTP10 : 0;
	shm_stats_put(sl, &r);
}

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
	r.r_reason = (uint8_t)(why < 0 ? 0 : why + 1);
	/* The count first, exactly; the sample after, if the ring has room. */
	if (why < 0)
		shm_stats_count_request(sl, ex->ex_route, (enum http_method)ex->ex_method, ex->ex_code);
	else
		shm_stats_add(sl, CTR_INCOMPLETE + (unsigned)why, 1);
	shm_stats_put(sl, &r);
	/* A traced request that got its answer: its ids, for the histograms' exemplars. */
	if (why < 0 && tr != NULL && ex->ex_resp_end > ex->ex_req_start)
		put_exemplar(sl, ex, tr);
}

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
