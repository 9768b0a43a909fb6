/* observer.h: the HTTP/1.x observer.  An incremental parser fed the bytes of one connection
 * as they pass, both directions, in (pointer, length) chunks cut anywhere: the same bytes cut
 * elsewhere give the same result.  It pairs requests with responses across keep-alive and
 * pipelining and reports each finished exchange.  It never changes, copies on or holds back
 * a byte, does no I/O, and its memory is fixed per connection.  Whatever it cannot trust
 * makes the connection opaque: observation stops, the reason is reported, the bytes flow on.
 *
 * Framing follows RFC 9112 section 6 and RFC 9110 section 15. */
#ifndef SIDEMETER_OBSERVER_H
#define SIDEMETER_OBSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"

/* Requests in flight on one connection.  A request past it is not observed, nor is anything
 * after it; the exchanges before it are still paired and counted (see S_LOST). */
#define OBS_PIPELINE 32
#define OBS_LINE_MAX 8192	/* a start line, header line or chunk-size line, CRLF included */
#define OBS_HEAD_MAX 65536	/* a whole header block (or trailer block) */

#define OBS_REQ 0		/* direction: client to application (= RELAY_C2U) */
#define OBS_RESP 1		/* direction: application to client (= RELAY_U2C) */

/* ex_flags */
#define EX_HEAD_DONE 0x01	/* the request head is complete */
#define EX_REQ_DONE 0x02	/* the request is complete, body and all */
#define EX_RESP_START 0x04	/* the final response has begun */
#define EX_RESP_DONE 0x08	/* the final response is complete */
#define EX_HEAD_METHOD 0x10	/* HEAD: the response has no body */
#define EX_CONNECT 0x20		/* CONNECT: a 2xx answer makes a tunnel */
#define EX_ANSWERED 0x40	/* the answer was ours (502/504), not the application's */
#define EX_CLOSE 0x80		/* the request ends the connection (close, HTTP/1.0) */
#define EX_REQ_CUT 0x100	/* the client's stream ended inside the request, unanswered */
#define EX_HTTP10 0x200		/* the request is HTTP/1.0 */
#define EX_TRACED 0x400		/* one valid W3C traceparent: see observer_trace() */
#define EX_TRACE_BAD 0x800	/* a second traceparent: neither counts (W3C Trace Context) */
#define EX_META 0x1000		/* captured for the access log: see observer_meta() */

/* One request and, once it comes, its response.  Times are CLOCK_MONOTONIC ns, 0 = not yet. */
struct obs_exchange {
	int64_t ex_req_start;		/* first byte of the request */
	int64_t ex_req_end;		/* last byte of the request */
	int64_t ex_resp_start;		/* first byte of the final response */
	int64_t ex_resp_end;		/* last byte of the final response */
	uint64_t ex_req_body;		/* body bytes (chunked: the data, not the framing) */
	uint64_t ex_resp_body;
	uint16_t ex_route;		/* from obs_ops.oo_route */
	uint16_t ex_code;		/* final status code, 0 until known */
	uint16_t ex_flags;
	uint8_t ex_method;		/* enum http_method */
};

/* A request's W3C trace context (EX_TRACED): beside the exchange, not in it, so that a
 * parked connection's saved state keeps its layout (a keeper of the last build reads it). */
struct obs_trace {
	uint8_t tr_trace[16];		/* trace-id */
	uint8_t tr_span[8];		/* parent-id: the caller's span */
};

struct obs_ops {
	/* Name a request by its target (the bytes of the request-target, query included:
	 * the callee strips it); returns a route index. */
	unsigned (*oo_route)(void *ctx, const char *target, size_t len);
	/* An exchange ended: completed (why < 0: it got its final response), or cut short
	 * (why: enum incomplete_reason). */
	void (*oo_exchange)(void *ctx, const struct obs_exchange *ex, int why);
	/* Observation stopped for good on this connection. */
	void (*oo_opaque)(void *ctx, enum opaque_reason why);
	/* The connection became a tunnel (101 Switching Protocols, 2xx to CONNECT). */
	void (*oo_tunnel)(void *ctx);
};

enum obs_mode { OBS_HTTP, OBS_TUNNEL, OBS_OPAQUE };

/* One direction's parser. */
struct obs_side {
	uint8_t os_state;		/* enum side_state, in observer_int.h */
	uint8_t os_flags;		/* header facts of the current message */
	uint8_t os_http10;		/* the message is HTTP/1.0 */
	uint8_t os_ended;		/* end of stream seen */
	uint16_t os_code;		/* response: status code */
	uint16_t os_spare;
	uint32_t os_head;		/* header block bytes so far */
	uint32_t os_linelen;		/* bytes of an unfinished line in os_line */
	uint64_t os_length;		/* Content-Length */
	uint64_t os_remaining;		/* body or chunk bytes still to come */
	uint64_t os_body;		/* body bytes of the current message */
	int64_t os_msg_start;		/* first byte of the current message */
	char os_line[OBS_LINE_MAX];
};

/* What the access log shows of a request, when the observer captures it (observer_capture):
 * bounded copies, beside the exchange like its trace context. */
#define OBS_META_TARGET 512
#define OBS_META_VALUE 256
#define OBS_META_RID 128
enum obs_meta_field { META_TARGET, META_USER_AGENT, META_REFERER, META_REQUEST_ID, META_MAX };
struct obs_meta {
	uint16_t om_len[META_MAX];
	char om_target[OBS_META_TARGET];	/* the request-target, query and all */
	char om_ua[OBS_META_VALUE];		/* User-Agent */
	char om_ref[OBS_META_VALUE];		/* Referer */
	char om_rid[OBS_META_RID];		/* X-Request-Id */
};

struct observer {
	const struct obs_ops *ob_ops;
	void *ob_ctx;
	enum obs_mode ob_mode;
	unsigned ob_first;		/* oldest exchange in flight, index into ob_fifo */
	unsigned ob_n;			/* exchanges in flight */
	uint32_t ob_requests;		/* requests begun on this connection */
	int ob_closing;			/* an answer ended the connection: no request after it is served */
	int ob_lost;			/* a request past OBS_PIPELINE came: the request side is lost */
	int ob_resp_seen;		/* the application has sent a byte of an answer */
	struct obs_exchange ob_fifo[OBS_PIPELINE];
	struct obs_trace ob_trace[OBS_PIPELINE];	/* the trace context of ob_fifo[i] */
	int ob_capture;				/* fill ob_meta */
	struct obs_meta ob_meta[OBS_PIPELINE];	/* ... what the log shows of ob_fifo[i] */
	struct obs_side ob_side[2];
};

/* What the connection is doing, for timeouts and graceful closes. */
struct obs_status {
	enum obs_mode st_mode;
	int st_idle;			/* at a boundary: nothing in flight, no partial message */
	int64_t st_head_since;		/* a request head in progress: its first byte; else 0 */
	int st_in_body;			/* a request body in progress */
	int64_t st_wait_since;		/* oldest complete request with no answer begun: its end */
	int st_responding;		/* a response in progress */
	int st_answerable;		/* a request with a complete head and no answer begun */
	int64_t st_oldest;		/* first byte of the oldest request in flight, else 0 */
	int st_closing;			/* the connection ends after the exchanges in flight */
};

/* ---- the connection's life ---- */

/* Start observing a new connection. */
void observer_init(struct observer *ob, const struct obs_ops *ops, void *ctx);

/* Bytes just read in direction dir (OBS_REQ or OBS_RESP); p is never written. */
void observer_feed(struct observer *ob, int dir, const char *p, size_t n, int64_t now);

/* How many of the next bytes in direction dir the observer need not see: the rest of a
 * body (or chunk) of known length, all of a body framed by the close, all once the
 * connection is a tunnel or opaque (UINT64_MAX), 0 when it must see them. */
uint64_t observer_unseen(const struct observer *ob, int dir);

/* n bytes went by in direction dir unseen, within what observer_unseen() allowed. */
void observer_skip(struct observer *ob, int dir, size_t n, int64_t now);

/* End of stream in direction dir: ends a response framed by the close, or cuts the message
 * in progress short. */
void observer_eof(struct observer *ob, int dir, int64_t now);

/* The connection is over: every exchange still in flight is reported, with why as the
 * reason for those that did not get their response. */
void observer_finish(struct observer *ob, enum incomplete_reason why, int64_t now);

/* ---- questions and answers ---- */

/* The oldest request with a complete head and no answer begun is answered by us with code
 * (a 502 or 504): it is reported as complete.  Returns 1 if there was one, and then *head
 * says whether it was a HEAD request (no body to send). */
int observer_answer(struct observer *ob, unsigned code, int64_t now, int *head);

void observer_status(const struct observer *ob, struct obs_status *st);

/* Requests begun on this connection so far (the one in its head included). */
uint32_t observer_requests(const struct observer *ob);

/* ---- parking: the observer's state while a connection waits in the keeper ---- */

/* What travels with a parked connection: the connection-wide facts, the request whose head
 * is in progress (if any), and each side's parser without its line buffer; the bytes of an
 * unfinished line (os_linelen of them) travel beside it. */
#define OBS_SIDE_SCALARS offsetof(struct obs_side, os_line)

struct obs_saved {
	uint32_t sv_requests;
	uint8_t sv_n;			/* exchanges in flight: 0, or 1 in its head */
	uint8_t sv_closing;
	uint8_t sv_resp_seen;
	uint8_t sv_pad;
	struct obs_exchange sv_ex;
	unsigned char sv_side[2][OBS_SIDE_SCALARS];
};

/* May the connection wait elsewhere, its state saved?  Yes between exchanges, and while the
 * only request in flight is still in its head; never with an answer under way, an end of
 * stream seen, a tunnel or an opaque stream. */
int observer_parkable(const struct observer *ob);

/* Save a parkable observer into sv; *line points at the unfinished line's bytes in ob and
 * the length is returned (0: none).  The exchange's route is the caller's to carry by name:
 * it indexes the saving process's table. */
size_t observer_save(const struct observer *ob, struct obs_saved *sv, const char **line);

/* Rebuild an observer from what observer_save() gave (route: the exchange's route index in
 * this process's table).  Returns 0, or -1 when sv is not a saved state (then ob is a fresh
 * observer). */
int observer_restore(struct observer *ob, const struct obs_ops *ops, void *ctx,
    const struct obs_saved *sv, const char *line, size_t linelen, unsigned route);

/* The trace context of an exchange oo_exchange() was given, if it had a valid one (a
 * request parked in its head, with the header read before, has lost it). */
const struct obs_trace *observer_trace(const struct observer *ob, const struct obs_exchange *ex);

/* Capture, from now on, what the access log shows of each request (observer_meta). */
void observer_capture(struct observer *ob, int on);

/* What was captured of an exchange oo_exchange() was given (NULL: nothing: capture is off,
 * or the request was parked after its request line and came back without it). */
const struct obs_meta *observer_meta(const struct observer *ob, const struct obs_exchange *ex);

/* The route index of the request in flight, if it has one (its request line is in). */
int observer_route(const struct observer *ob, unsigned *route);

#endif
