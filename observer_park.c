/* observer_park.c: the observer's state as a worker hands it to the keeper and takes it
 * back (observer_parkable/save/restore, contract in include/observer.h), and the small
 * readers the worker and the access log use.  What may be parked is narrow on purpose:
 * between exchanges, or inside one request head with nothing answered; everything else
 * stays with its worker, and restore refuses any other state rather than guess.
 *
 * It touches: the observer's struct, through include/observer_int.h; no I/O. */
#include <string.h>

#include "observer_int.h"

/* Two states may be parked, and only these: between exchanges (nothing in flight), or one
 * request whose head is still arriving with nothing answered.  Anything else has a clock
 * the keeper does not run (a body, an answer awaited) or bytes it must not hold. */
int observer_parkable(const struct observer *ob)
{
	const struct obs_side *req = &ob->ob_side[OBS_REQ], *resp = &ob->ob_side[OBS_RESP];
	const struct obs_exchange *ex;

	if (ob->ob_mode != OBS_HTTP || ob->ob_closing || ob->ob_lost || req->os_ended ||
	    resp->os_ended || resp->os_state != S_START)
		return 0;
	if (ob->ob_n == 0)
		return req->os_state == S_START;
	if (ob->ob_n != 1)
		return 0;
	ex = ex_get(ob, 0);
	return !(ex->ex_flags & EX_HEAD_DONE) &&
	    (req->os_state == S_LINE || req->os_state == S_HEADERS);
}

/* The state as plain bytes for the park message: the scalars of both sides (the part of
 * struct obs_side before its line buffer, OBS_SIDE_SCALARS), the one exchange if any, and
 * the partial line, whose length is returned and whose bytes stay where they are. */
size_t observer_save(const struct observer *ob, struct obs_saved *sv, const char **line)
{
	int d;

	memset(sv, 0, sizeof(*sv));
	sv->sv_requests = ob->ob_requests;
	sv->sv_n = (uint8_t)ob->ob_n;
	sv->sv_closing = (uint8_t)ob->ob_closing;
	sv->sv_resp_seen = (uint8_t)ob->ob_resp_seen;
	if (ob->ob_n == 1)
		sv->sv_ex = *ex_get(ob, 0);
	for (d = 0; d < 2; d++)
		memcpy(sv->sv_side[d], &ob->ob_side[d], OBS_SIDE_SCALARS);
	*line = ob->ob_side[OBS_REQ].os_line;
	return ob->ob_side[OBS_REQ].os_linelen;
}

/* In the worker that takes the pair back (another process, maybe another binary after
 * USR2): the saved state is checked to be one that parkable() allows, since it came over a
 * channel; a state that is not is refused (-1) and the worker ends the pair rather than
 * observe it from a wrong start.  route is the request's route as this worker numbers it. */
int observer_restore(struct observer *ob, const struct obs_ops *ops, void *ctx,
    const struct obs_saved *sv, const char *line, size_t linelen, unsigned route)
{
	const struct obs_side *req = &ob->ob_side[OBS_REQ], *resp = &ob->ob_side[OBS_RESP];
	int d;

	observer_init(ob, ops, ctx);
	for (d = 0; d < 2; d++)
		memcpy(&ob->ob_side[d], sv->sv_side[d], OBS_SIDE_SCALARS);
	/* Only what observer_parkable() lets go: anything else is not a saved state. */
	if (sv->sv_n > 1 || resp->os_state != S_START ||
	    (sv->sv_n == 0 && req->os_state != S_START) ||
	    (sv->sv_n == 1 && req->os_state != S_LINE && req->os_state != S_HEADERS) ||
	    req->os_linelen != linelen || linelen > OBS_LINE_MAX || resp->os_linelen != 0) {
		observer_init(ob, ops, ctx);
		return -1;
	}
	ob->ob_requests = sv->sv_requests;
	ob->ob_closing = sv->sv_closing;
	ob->ob_resp_seen = sv->sv_resp_seen;
	memcpy(ob->ob_side[OBS_REQ].os_line, line, linelen);
	if (sv->sv_n == 1) {
		ob->ob_n = 1;
		ob->ob_fifo[0] = sv->sv_ex;
		/* the trace context and what the log shows stayed behind */
		ob->ob_fifo[0].ex_flags &= (uint16_t)~(EX_TRACED | EX_TRACE_BAD | EX_META);
		ob->ob_fifo[0].ex_route = (uint16_t)route;
	}
	return 0;
}

uint32_t observer_requests(const struct observer *ob)
{
	return ob->ob_requests;
}

void observer_capture(struct observer *ob, int on)
{
	ob->ob_capture = on;
}

/* What the access log shows of an exchange: its captured strings (with capture on), or
 * NULL.  The pointer must be one of the FIFO's: an exchange reported through the ops. */
const struct obs_meta *observer_meta(const struct observer *ob, const struct obs_exchange *ex)
{
	if (ex < ob->ob_fifo || ex >= ob->ob_fifo + OBS_PIPELINE || !(ex->ex_flags & EX_META))
		return NULL;
	return &ob->ob_meta[ex - ob->ob_fifo];
}

const struct obs_trace *observer_trace(const struct observer *ob, const struct obs_exchange *ex)
{
	if (ex < ob->ob_fifo || ex >= ob->ob_fifo + OBS_PIPELINE || !(ex->ex_flags & EX_TRACED))
		return NULL;
	return &ob->ob_trace[ex - ob->ob_fifo];
}

/* The newest request's route, once its request line is in: a parked head carries it by
 * name, as the worker that takes it back may number routes otherwise. */
int observer_route(const struct observer *ob, unsigned *route)
{
	const struct obs_exchange *ex;

	if (ob->ob_n == 0)
		return 0;
	ex = ex_get(ob, ob->ob_n - 1);
	/* The request line is in once the side has moved on to the headers. */
	if (ob->ob_side[OBS_REQ].os_state == S_LINE && !(ex->ex_flags & EX_HEAD_DONE))
		return 0;
	*route = ex->ex_route;
	return 1;
}
