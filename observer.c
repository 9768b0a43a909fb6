/* observer.c: the incremental HTTP/1.x observer (contract in include/observer.h).
 *
 * Each direction is a state machine over whole lines and counted bodies.  A line that lies
 * inside one chunk is parsed where it lies; only a line cut by a chunk boundary is copied, up
 * to OBS_LINE_MAX, into the side's line buffer.  Bodies are skipped by count, never scanned.
 * Exchanges live in a small FIFO: the request side appends, the response side answers the
 * oldest, and an exchange is reported once both halves are done.  The head's grammar is in
 * observer_head.c, the parking of its state in observer_park.c; what the three share is
 * include/observer_int.h.
 *
 * It touches: its own struct, and calls its ops; no I/O, no shared memory (which is what
 * lets the fuzzer and the unit tests drive it alone). */
#include <string.h>

#include "log.h"
#include "observer_int.h"


/* ---- the exchanges in flight ---- */

struct obs_exchange *obs_req_current(struct observer *ob)
{
	unsigned k = req_index(ob);

	return k == OBS_PIPELINE ? NULL : ex_at(ob, k);
}

struct obs_exchange *obs_resp_target(struct observer *ob)
{
	unsigned k = resp_index(ob);

	return k == OBS_PIPELINE ? NULL : ex_at(ob, k);
}

static void pop(struct observer *ob)
{
	ob->ob_first = (ob->ob_first + 1) % OBS_PIPELINE;
	ob->ob_n--;
}

/* How an exchange that leaves the FIFO is reported: complete (-1) when it got its final
 * answer, unless the client abandoned the request before that answer came (nobody read it);
 * a request behind an answer that ended the connection was never processed (RFC 9112 9.6:
 * the client retries it); anything else was cut short for the caller's reason. */
static int outcome(const struct observer *ob, const struct obs_exchange *ex, int why)
{
	if (ex->ex_flags & EX_REQ_CUT)
		return INCOMPLETE_CLIENT_CLOSED;
	if (ex->ex_flags & EX_RESP_DONE)
		return -1;
	if (ob->ob_closing && !(ex->ex_flags & EX_RESP_START))
		return INCOMPLETE_UNANSWERED;
	return why;
}

/* Report everything in flight, each exchange as outcome() says. */
static void flush(struct observer *ob, int why)
{
	while (ob->ob_n > 0) {
		struct obs_exchange *ex = ex_at(ob, 0);

		ob->ob_ops->oo_exchange(ob->ob_ctx, ex, outcome(ob, ex, why));
		pop(ob);
	}
}

void obs_go_opaque(struct observer *ob, enum opaque_reason why)
{
	if (ob->ob_mode != OBS_HTTP)
		return;
	ob->ob_mode = OBS_OPAQUE;
	flush(ob, INCOMPLETE_OPAQUE);
	ob->ob_ops->oo_opaque(ob->ob_ctx, why);
}

/* Report and drop the exchanges at the front that are over: answered, with the request
 * complete or abandoned.  Once the last exchange before a lost request is gone, the
 * answers that follow belong to requests nobody parsed: observation stops there. */
static void settle(struct observer *ob)
{
	while (ob->ob_n > 0) {
		struct obs_exchange *ex = ex_at(ob, 0);

		if (!(ex->ex_flags & EX_RESP_DONE) || !(ex->ex_flags & (EX_REQ_DONE | EX_REQ_CUT)))
			return;
		ob->ob_ops->oo_exchange(ob->ob_ctx, ex, outcome(ob, ex, -1));
		pop(ob);
	}
	if (ob->ob_lost)
		obs_go_opaque(ob, OPAQUE_PIPELINE_LIMIT);
}

/* May an answer of ours (502/504) still go to the client?  Not once the application has
 * said that the connection ends, nor once it has closed after sending anything at all:
 * then no byte may follow its last one (the client sees the close and may retry). */
static int may_answer(const struct observer *ob)
{
	const struct obs_side *resp = &ob->ob_side[OBS_RESP];

	return !ob->ob_closing && !(ob->ob_resp_seen && resp->os_ended) && !in_message(resp);
}

/* ---- ends of heads and of messages ---- */

/* Does this message end its connection (RFC 9112 9.3)? */
static int ends_connection(const struct obs_side *s)
{
	return (s->os_flags & H_CLOSE) || (s->os_http10 && !(s->os_flags & H_KEEPALIVE));
}

/* A request's last byte.  After CONNECT the request side holds (S_HOLD): whatever the
 * client sends next is tunnel bytes if the answer is 2xx, and a new request only if it is
 * refused, so nothing is parsed until the answer says which. */
static void request_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = obs_req_current(ob);

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	ex->ex_req_end = now;
	ex->ex_req_body = s->os_body;
	ex->ex_flags |= EX_REQ_DONE;
	s->os_state = ex->ex_flags & EX_CONNECT ? S_HOLD : S_START;
	s->os_body = 0;
	settle(ob);
}

/* 101 or a 2xx to CONNECT: the exchange is complete at the answer's head, anything behind
 * it in the FIFO was pipelined into what is now a tunnel (reported cut short), and the
 * bytes from here on are not HTTP. */
static void go_tunnel(struct observer *ob, struct obs_exchange *ex, int64_t now)
{
	ex->ex_resp_end = now;
	ex->ex_flags |= EX_RESP_DONE | EX_REQ_DONE;
	if (ex->ex_req_end == 0)
		ex->ex_req_end = now;
	ob->ob_ops->oo_exchange(ob->ob_ctx, ex, -1);
	pop(ob);
	flush(ob, INCOMPLETE_OPAQUE);
	ob->ob_mode = OBS_TUNNEL;
	ob->ob_ops->oo_tunnel(ob->ob_ctx);
}

/* A final answer's last byte.  An answer that ends the connection marks the observer
 * closing: requests behind it were never processed (outcome() reports them unanswered). */
static void response_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = obs_resp_target(ob);
	struct obs_side *req = &ob->ob_side[OBS_REQ];

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	ex->ex_resp_end = now;
	ex->ex_resp_body = s->os_body;
	ex->ex_flags |= EX_RESP_DONE;
	if ((ex->ex_flags & EX_CLOSE) || ends_connection(s))
		ob->ob_closing = 1;
	s->os_state = S_START;
	s->os_body = 0;
	/* A CONNECT that was refused: the client speaks HTTP again, unless it already sent
	 * something we held back from parsing. */
	if (req->os_state == S_HOLD) {
		if (req->os_body > 0) {
			obs_go_opaque(ob, OPAQUE_BAD_REQUEST);
			return;
		}
		req->os_state = S_START;
	}
	settle(ob);
}

/* The empty line after a request's fields: the framing is decided here, strictly.  Any
 * framing that two parsers could read two ways (RFC 9112 6.1 and 6.3: Transfer-Encoding
 * with Content-Length, a coding not ending in chunked, TE from HTTP/1.0) makes the
 * observer opaque: the bytes still flow, but we stop counting rather than count what a
 * smuggled second request might be. */
static void request_head_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = obs_req_current(ob);

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	ex->ex_flags |= EX_HEAD_DONE;
	if (ends_connection(s))
		ex->ex_flags |= EX_CLOSE;
	s->os_body = 0;
	if (ex->ex_flags & EX_CONNECT) {
		request_done(ob, s, now);
		return;
	}
	if (s->os_flags & H_TE) {
		/* Framing two readers could disagree on: we cannot know how the app reads it. */
		if (s->os_http10 || !(s->os_flags & H_CHUNKED) || (s->os_flags & H_TE_BAD)) {
			obs_go_opaque(ob, OPAQUE_BAD_ENCODING);
			return;
		}
		if (s->os_flags & H_LENGTH) {
			obs_go_opaque(ob, OPAQUE_BAD_LENGTH);
			return;
		}
		s->os_state = S_CHUNK_SIZE;
		return;
	}
	if ((s->os_flags & H_LENGTH) && s->os_length > 0) {
		s->os_state = S_BODY;
		s->os_remaining = s->os_length;
		return;
	}
	request_done(ob, s, now);
}

/* The empty line after a response's fields: its body's length from the request's method,
 * the code and the fields, in RFC 9112 6.3's order (HEAD, 1xx, 204 and 304 have none; then
 * Transfer-Encoding; then Content-Length; else it runs to the close). */
static void response_head_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = obs_resp_target(ob);
	unsigned code = s->os_code;

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	s->os_body = 0;
	if (code == 101 || ((ex->ex_flags & EX_CONNECT) && code / 100 == 2)) {
		go_tunnel(ob, ex, now);
		return;
	}
	if (code < 200) {
		s->os_state = S_START;	/* interim: the final response is still to come */
		return;
	}
	if ((ex->ex_flags & EX_HEAD_METHOD) || code == 204 || code == 304) {
		response_done(ob, s, now);
		return;
	}
	if (s->os_flags & H_TE) {
		/* The coding overrides any Content-Length; without a final chunked (or from an
		 * HTTP/1.0 sender) the body runs to the close. */
		if ((s->os_flags & H_CHUNKED) && !(s->os_flags & H_TE_BAD) && !s->os_http10)
			s->os_state = S_CHUNK_SIZE;
		else
			s->os_state = S_UNTIL_CLOSE;
		return;
	}
	if (s->os_flags & H_LENGTH) {
		if (s->os_length == 0) {
			response_done(ob, s, now);
			return;
		}
		s->os_state = S_BODY;
		s->os_remaining = s->os_length;
		return;
	}
	s->os_state = S_UNTIL_CLOSE;
}

/* A body of known length or the trailers ended: the message, whichever side it is. */
static void message_done(struct observer *ob, int dir, struct obs_side *s, int64_t now)
{
	if (dir == OBS_REQ)
		request_done(ob, s, now);
	else
		response_done(ob, s, now);
}

/* ---- the machine ---- */

/* Up to n bytes of a body or chunk of known length; returns how many it took. */
static size_t body_bytes(struct observer *ob, int dir, struct obs_side *s, size_t n,
    int64_t now)
{
	size_t k = n < s->os_remaining ? n : (size_t)s->os_remaining;

	s->os_remaining -= k;
	s->os_body += k;
	if (s->os_remaining == 0) {
		if (s->os_state == S_CHUNK_DATA)
			s->os_state = S_CHUNK_END;
		else
			message_done(ob, dir, s, now);
	}
	return k;
}

/* The first byte of a message.  Returns 0, or -1 when observation stopped. */
static int begin(struct observer *ob, int dir, struct obs_side *s, unsigned char c, int64_t now)
{
	struct obs_exchange *ex;

	if (dir == OBS_RESP) {
		ob->ob_resp_seen = 1;
		if (obs_resp_target(ob) == NULL) {
			obs_go_opaque(ob, OPAQUE_UNSOLICITED);
			return -1;
		}
		if (c != 'H') {
			obs_go_opaque(ob, OPAQUE_BAD_RESPONSE);
			return -1;
		}
	} else {
		if (ob->ob_requests == 0 && c == 0x16) {
			obs_go_opaque(ob, OPAQUE_TLS);	/* a TLS handshake record */
			return -1;
		}
		if (!obs_is_tchar(c)) {
			obs_go_opaque(ob, ob->ob_requests == 0 ? OPAQUE_NOT_HTTP : OPAQUE_BAD_REQUEST);
			return -1;
		}
		if (ob->ob_n == OBS_PIPELINE) {
			/* No room to track this request: stop reading requests, but keep pairing
			 * the answers of those in flight; settle() stops the rest. */
			ob->ob_lost = 1;
			s->os_state = S_LOST;
			return 0;
		}
		ob->ob_n++;
		ex = ex_at(ob, ob->ob_n - 1);
		memset(ex, 0, sizeof(*ex));
		ex->ex_req_start = now;
		ex->ex_method = METHOD_OTHER;
		ob->ob_requests++;
	}
	s->os_msg_start = now;
	s->os_flags = 0;
	s->os_head = 0;
	s->os_length = 0;
	s->os_state = S_LINE;
	return 0;
}

/* One step of direction dir over p[0..n); returns the bytes consumed (0 only when
 * observation stopped).  A step takes at most one line, or all of a body's bytes that are
 * there: a body is skipped by count, so a 100 MB download costs a handful of steps. */
static size_t step(struct observer *ob, int dir, struct obs_side *s, const char *p, size_t n,
    int64_t now)
{
	const char *line;
	size_t len, k;

	switch (s->os_state) {
	case S_START:
		/* Empty lines before a message are ignored (RFC 9112 2.2); observer_feed()
		 * begins a message at any other byte. */
		return 1;

	case S_LINE:
	case S_HEADERS:
	case S_TRAILERS:
		k = obs_take_line(s, p, n, &line, &len);
		if (k == 0) {
			obs_go_opaque(ob, OPAQUE_LINE_TOO_LONG);
			return 0;
		}
		/* The head's size is counted across lines: many short lines are bounded too. */
		s->os_head += (uint32_t)k;
		if (s->os_head > OBS_HEAD_MAX) {
			obs_go_opaque(ob, OPAQUE_HEADERS_TOO_LARGE);
			return 0;
		}
		if (line == NULL)
			return k;
		if (s->os_state == S_LINE) {
			if ((dir == OBS_REQ ? obs_request_line(ob, s, line, len) : obs_status_line(ob, s, line, len)) == -1)
				return 0;
			s->os_state = S_HEADERS;
		} else if (s->os_state == S_TRAILERS) {
			/* Trailer fields never change the framing: only their end matters. */
			if (len == 0)
				message_done(ob, dir, s, now);
		} else if (len > 0) {
			if (obs_header_line(ob, dir, s, line, len) == -1)
				return 0;
		} else if (dir == OBS_REQ) {
			request_head_done(ob, s, now);
		} else {
			response_head_done(ob, s, now);
		}
		return k;

	case S_BODY:
	case S_CHUNK_DATA:
		return body_bytes(ob, dir, s, n, now);

	case S_CHUNK_SIZE:
	case S_CHUNK_END:
		k = obs_take_line(s, p, n, &line, &len);
		if (k == 0) {
			obs_go_opaque(ob, OPAQUE_LINE_TOO_LONG);
			return 0;
		}
		if (line == NULL)
			return k;
		if (s->os_state == S_CHUNK_END) {
			if (len != 0) {
				obs_go_opaque(ob, OPAQUE_BAD_CHUNK);
				return 0;
			}
			s->os_state = S_CHUNK_SIZE;
			return k;
		} else {
			uint64_t size = 0;
			size_t i = 0;

			/* chunk-size [ BWS ";" chunk-ext ] */
			/* Overflow is refused before it happens: a chunk size that wraps would
			 * be read as small by us and as huge by the application. */
			while (i < len && obs_hex_value((unsigned char)line[i]) >= 0) {
				if (size > LENGTH_MAX >> 4) {
					obs_go_opaque(ob, OPAQUE_BAD_CHUNK);
					return 0;
				}
				size = size * 16 + (uint64_t)obs_hex_value((unsigned char)line[i++]);
			}
			if (i == 0) {
				obs_go_opaque(ob, OPAQUE_BAD_CHUNK);
				return 0;
			}
			while (i < len && (line[i] == ' ' || line[i] == '\t'))
				i++;
			if (i < len && line[i] != ';') {
				obs_go_opaque(ob, OPAQUE_BAD_CHUNK);
				return 0;
			}
			if (size == 0) {
				s->os_state = S_TRAILERS;
				s->os_head = 0;
			} else {
				s->os_state = S_CHUNK_DATA;
				s->os_remaining = size;
			}
			return k;
		}

	case S_UNTIL_CLOSE:
	case S_HOLD:
		/* Counted, not parsed: the close ends the one, the answer decides the other. */
		s->os_body += n;
		return n;

	case S_LOST:
		return n;

	case S_DONE:
	default:
		return n;
	}
}

/* ---- the interface ---- */

/* The FIFO and the buffers are not cleared: only the fields that say what is valid in them
 * (ob_n, os_linelen), so that a connection's start costs no memset of the line buffers. */
void observer_init(struct observer *ob, const struct obs_ops *ops, void *ctx)
{
	int d;

	if (!obs_tchar_map['a'])
		obs_chars_init();
	ob->ob_ops = ops;
	ob->ob_ctx = ctx;
	ob->ob_mode = OBS_HTTP;
	ob->ob_first = ob->ob_n = 0;
	ob->ob_requests = 0;
	ob->ob_closing = 0;
	ob->ob_lost = 0;
	ob->ob_resp_seen = 0;
	ob->ob_capture = 0;
	for (d = 0; d < 2; d++) {
		struct obs_side *s = &ob->ob_side[d];

		s->os_state = S_START;
		s->os_flags = 0;
		s->os_ended = 0;
		s->os_linelen = 0;
		s->os_body = 0;
		s->os_head = 0;
	}
}

/* The relay hands every chunk it moved, in order, per direction; the two directions are
 * independent machines tied by the FIFO (a response pairs with the oldest request). */
void observer_feed(struct observer *ob, int dir, const char *p, size_t n, int64_t now)
{
	struct obs_side *s = &ob->ob_side[dir];

	while (n > 0 && ob->ob_mode == OBS_HTTP) {
		size_t k;

		if (s->os_state == S_START && *p != '\r' && *p != '\n') {
			if (begin(ob, dir, s, (unsigned char)*p, now) == -1)
				return;
			continue;
		}
		k = step(ob, dir, s, p, n, now);
		if (k == 0)
			return;	/* observation stopped */
		p += k;
		n -= k;
	}
}

/* How many bytes the relay may move without showing them: a body's rest, or everything
 * once nothing more is parsed.  This is what lets the relay splice a large body or a
 * tunnel past user space, and still have the observer count it (observer_skip()). */
uint64_t observer_unseen(const struct observer *ob, int dir)
{
	const struct obs_side *s = &ob->ob_side[dir];

	if (ob->ob_mode != OBS_HTTP)
		return UINT64_MAX;
	switch (s->os_state) {
	case S_BODY:
	case S_CHUNK_DATA:
		return s->os_remaining;
	case S_UNTIL_CLOSE:
	case S_LOST:
		return UINT64_MAX;
	default:
		return 0;
	}
}

void observer_skip(struct observer *ob, int dir, size_t n, int64_t now)
{
	struct obs_side *s = &ob->ob_side[dir];

	if (ob->ob_mode != OBS_HTTP)
		return;
	if (s->os_state == S_UNTIL_CLOSE)
		s->os_body += n;
	else if (s->os_state == S_BODY || s->os_state == S_CHUNK_DATA)
		body_bytes(ob, dir, s, n, now);
}

/* The end of one direction.  Only the response side's close can complete a message (a body
 * that runs to the close); on the request side it marks what was in flight as abandoned. */
void observer_eof(struct observer *ob, int dir, int64_t now)
{
	struct obs_side *s = &ob->ob_side[dir];
	struct obs_exchange *ex;

	if (ob->ob_mode != OBS_HTTP || s->os_ended)
		return;
	s->os_ended = 1;
	if (dir == OBS_RESP) {
		if (s->os_state == S_UNTIL_CLOSE) {
			ob->ob_closing = 1;	/* the close that ends this answer ends it all */
			response_done(ob, s, now);
		} else if (in_message(s) && (ex = obs_resp_target(ob)) != NULL) {
			/* The application closed in the middle of its answer. */
			int reading = ex == obs_req_current(ob);

			ASSERT(ex == ex_at(ob, 0));	/* those before it were settled */
			ob->ob_ops->oo_exchange(ob->ob_ctx, ex, INCOMPLETE_UPSTREAM_CLOSED);
			pop(ob);
			/* An early answer, its request still coming: the rest of that request has
			 * no exchange to fill, and nobody will answer it.  (The fuzzer's corpus
			 * found this, once ASSERT() stood where a silent return was.) */
			if (reading)
				ob->ob_side[OBS_REQ].os_state = S_LOST;
		}
	}
	/* A request cut short by the client, before its answer is complete, was abandoned:
	 * whatever answer still comes is reported as cut short (nobody reads it). */
	if (dir == OBS_REQ && in_message(s) && (ex = obs_req_current(ob)) != NULL &&
	    !(ex->ex_flags & EX_RESP_DONE))
		ex->ex_flags |= EX_REQ_CUT;
	s->os_state = S_DONE;
}

/* The connection is over: every exchange still in the FIFO is reported, each as outcome()
 * decides, with why as the reason for the ones simply cut short. */
void observer_finish(struct observer *ob, enum incomplete_reason why, int64_t now)
{
	(void)now;
	if (ob->ob_mode == OBS_HTTP)
		flush(ob, (int)why);
}

/* The worker is about to write a 502 or 504 of its own: the oldest exchange takes it as its
 * answer, when one may still be sent (may_answer()).  1 if it did; *head says whether the
 * request was HEAD (the answer then has no body). */
int observer_answer(struct observer *ob, unsigned code, int64_t now, int *head)
{
	struct obs_exchange *ex;

	if (ob->ob_mode != OBS_HTTP || !may_answer(ob))
		return 0;
	/* Only the oldest exchange can be waiting for its first answer byte: any before it
	 * were answered and are gone. */
	ex = obs_resp_target(ob);
	if (ex == NULL || ex != ex_at(ob, 0) || !(ex->ex_flags & EX_HEAD_DONE) ||
	    (ex->ex_flags & EX_RESP_START))
		return 0;
	*head = (ex->ex_flags & EX_HEAD_METHOD) != 0;
	ex->ex_code = (uint16_t)code;
	ex->ex_resp_start = ex->ex_resp_end = now;
	ex->ex_flags |= EX_RESP_START | EX_RESP_DONE | EX_ANSWERED;
	if (!(ex->ex_flags & EX_REQ_DONE))
		ex->ex_req_end = 0;
	ob->ob_ops->oo_exchange(ob->ob_ctx, ex, -1);
	pop(ob);
	return 1;
}

/* What the relay policy decides timeouts and parking from, read on every tick: which
 * clock runs (a head arriving, an answer awaited, idle between exchanges) and since when. */
void observer_status(const struct observer *ob, struct obs_status *st)
{
	unsigned kc = req_index(ob), kt = resp_index(ob);
	const struct obs_exchange *cur = kc == OBS_PIPELINE ? NULL : ex_get(ob, kc);
	const struct obs_exchange *target = kt == OBS_PIPELINE ? NULL : ex_get(ob, kt);
	int responding = in_message(&ob->ob_side[OBS_RESP]);

	memset(st, 0, sizeof(*st));
	st->st_mode = ob->ob_mode;
	if (ob->ob_mode != OBS_HTTP)
		return;
	st->st_responding = responding;
	if (cur != NULL && !(cur->ex_flags & EX_HEAD_DONE))
		st->st_head_since = cur->ex_req_start;
	st->st_in_body = cur != NULL && (cur->ex_flags & EX_HEAD_DONE);
	if (target != NULL && !(target->ex_flags & EX_RESP_START) && !responding) {
		if ((target->ex_flags & EX_HEAD_DONE) && target == ex_get(ob, 0) && may_answer(ob))
			st->st_answerable = 1;
		if (target->ex_flags & EX_REQ_DONE)
			st->st_wait_since = target->ex_req_end;
	}
	st->st_idle = ob->ob_n == 0 && !in_message(&ob->ob_side[OBS_REQ]) && !responding;
	if (ob->ob_n > 0)
		st->st_oldest = ex_get(ob, 0)->ex_req_start;
	st->st_closing = ob->ob_closing;
}
