/* observer.c: the incremental HTTP/1.x observer (contract in include/observer.h).
 *
 * Each direction is a state machine over whole lines and counted bodies.  A line that lies
 * inside one chunk is parsed where it lies; only a line cut by a chunk boundary is copied, up
 * to OBS_LINE_MAX, into the side's line buffer.  Bodies are skipped by count, never scanned.
 * Exchanges live in a small FIFO: the request side appends, the response side answers the
 * oldest, and an exchange is reported once both halves are done.
 *
 * It touches: its own struct, and calls its ops; no I/O, no shared memory (which is what
 * lets the fuzzer and the unit tests drive it alone). */
#include <string.h>

#include "log.h"
#include "observer.h"

enum side_state {
	S_START,		/* between messages */
	S_LINE,			/* in the start line */
	S_HEADERS,		/* in the header block */
	S_BODY,			/* os_remaining body bytes to come */
	S_CHUNK_SIZE,		/* a chunk-size line */
	S_CHUNK_DATA,		/* os_remaining chunk bytes to come */
	S_CHUNK_END,		/* the CRLF after chunk data */
	S_TRAILERS,		/* trailer lines until an empty one */
	S_UNTIL_CLOSE,		/* a response body ended by the close */
	S_HOLD,			/* request side after CONNECT: waiting for the answer */
	S_LOST,			/* request side past OBS_PIPELINE: no longer observed */
	S_DONE			/* end of stream: nothing more */
};

/* os_flags: what the current message's header fields said */
#define H_LENGTH 0x01		/* Content-Length, in os_length */
#define H_TE 0x02		/* Transfer-Encoding present */
#define H_CHUNKED 0x04		/* ... and chunked is the final coding */
#define H_TE_BAD 0x08		/* ... chunked twice, or not last */
#define H_CLOSE 0x10		/* Connection: close */
#define H_KEEPALIVE 0x20	/* Connection: keep-alive */

#define LENGTH_MAX ((uint64_t)1 << 60)

/* ---- characters ---- */

/* token characters (RFC 9110 5.6.2), filled once by observer_init() */
static unsigned char tchar_map[256];

static void tchar_fill(void)
{
	const char *extra = "!#$%&'*+-.^_`|~";
	int c;

	for (c = 0; c < 256; c++)
		tchar_map[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
	while (*extra)
		tchar_map[(unsigned char)*extra++] = 1;
}

static int is_tchar(unsigned char c)
{
	return tchar_map[c];
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Case-insensitive equality of p[0..n) with a literal of lower-case letters and '-'.  p
 * holds token characters, and of those only letters change under | 0x20. */
static int same(const char *p, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((unsigned char)p[i] | 0x20) != (unsigned char)lit[i] || lit[i] == '\0')
			return 0;
	return lit[n] == '\0';
}

static void trim(const char **p, size_t *n)
{
	while (*n > 0 && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* ---- the exchanges in flight ---- */

static struct obs_exchange *ex_at(struct observer *ob, unsigned k)
{
	return &ob->ob_fifo[(ob->ob_first + k) % OBS_PIPELINE];
}

static const struct obs_exchange *ex_get(const struct observer *ob, unsigned k)
{
	return &ob->ob_fifo[(ob->ob_first + k) % OBS_PIPELINE];
}

/* The exchange whose request is being read: the newest, while it is unfinished.  Returns
 * its position, or OBS_PIPELINE when there is none. */
static unsigned req_index(const struct observer *ob)
{
	if (ob->ob_n == 0 || (ex_get(ob, ob->ob_n - 1)->ex_flags & EX_REQ_DONE))
		return OBS_PIPELINE;
	return ob->ob_n - 1;
}

/* The exchange the next response answers: the oldest without its final response. */
static unsigned resp_index(const struct observer *ob)
{
	unsigned k;

	for (k = 0; k < ob->ob_n; k++)
		if (!(ex_get(ob, k)->ex_flags & EX_RESP_DONE))
			return k;
	return OBS_PIPELINE;
}

static struct obs_exchange *req_current(struct observer *ob)
{
	unsigned k = req_index(ob);

	return k == OBS_PIPELINE ? NULL : ex_at(ob, k);
}

static struct obs_exchange *resp_target(struct observer *ob)
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

static void go_opaque(struct observer *ob, enum opaque_reason why)
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
		go_opaque(ob, OPAQUE_PIPELINE_LIMIT);
}

/* A side's message is unfinished: a response there cannot be ours any more. */
static int in_message(const struct obs_side *s)
{
	return s->os_state != S_START && s->os_state != S_HOLD && s->os_state != S_DONE &&
	    s->os_state != S_LOST;
}

/* May an answer of ours (502/504) still go to the client?  Not once the application has
 * said that the connection ends, nor once it has closed after sending anything at all:
 * then no byte may follow its last one (the client sees the close and may retry). */
static int may_answer(const struct observer *ob)
{
	const struct obs_side *resp = &ob->ob_side[OBS_RESP];

	return !ob->ob_closing && !(ob->ob_resp_seen && resp->os_ended) && !in_message(resp);
}

/* ---- lines ---- */

/* Take one line from p[0..n).  Returns the bytes consumed; *line is set when a whole line
 * is there (without its LF, and without the CR before it), else NULL.  0 consumed with
 * *line NULL means the line is too long. */
static size_t take_line(struct obs_side *s, const char *p, size_t n, const char **line,
    size_t *len)
{
	const char *lf = memchr(p, '\n', n);
	size_t k;

	*line = NULL;
	if (lf == NULL) {
		if (s->os_linelen + n > OBS_LINE_MAX)
			return 0;
		memcpy(s->os_line + s->os_linelen, p, n);
		s->os_linelen += (uint32_t)n;
		return n;
	}
	k = (size_t)(lf - p) + 1;
	if (s->os_linelen == 0) {
		if (k > OBS_LINE_MAX)
			return 0;
		*line = p;
		*len = k - 1;
	} else {
		if (s->os_linelen + k > OBS_LINE_MAX)
			return 0;
		memcpy(s->os_line + s->os_linelen, p, k - 1);
		*line = s->os_line;
		*len = s->os_linelen + k - 1;
		s->os_linelen = 0;
	}
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return k;
}

/* ---- start lines ---- */

static enum http_method method_of(const char *p, size_t n)
{
	static const struct { const char *m; enum http_method id; } methods[] = {
		{ "GET", METHOD_GET }, { "HEAD", METHOD_HEAD }, { "POST", METHOD_POST },
		{ "PUT", METHOD_PUT }, { "DELETE", METHOD_DELETE }, { "CONNECT", METHOD_CONNECT },
		{ "OPTIONS", METHOD_OPTIONS }, { "TRACE", METHOD_TRACE }, { "PATCH", METHOD_PATCH },
	};
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i].m) == n && memcmp(methods[i].m, p, n) == 0)
			return methods[i].id;
	return METHOD_OTHER;
}

/* "HTTP/" DIGIT "." DIGIT at p; returns the minor version, or -1 (-2: a major other than 1). */
static int version(const char *p, size_t n)
{
	if (n < 8 || memcmp(p, "HTTP/", 5) != 0 || !is_digit((unsigned char)p[5]) || p[6] != '.' ||
	    !is_digit((unsigned char)p[7]))
		return -1;
	return p[5] == '1' ? p[7] - '0' : -2;
}

/* A bounded copy of a request's field for the access log. */
static void meta_put(struct obs_meta *om, enum obs_meta_field f, const char *v, size_t n)
{
	static const size_t cap[META_MAX] = { OBS_META_TARGET, OBS_META_VALUE, OBS_META_VALUE,
	    OBS_META_RID };
	char *to = f == META_TARGET ? om->om_target : f == META_USER_AGENT ? om->om_ua :
	    f == META_REFERER ? om->om_ref : om->om_rid;

	if (n > cap[f])
		n = cap[f];
	memcpy(to, v, n);
	om->om_len[f] = (uint16_t)n;
}

/* method SP request-target SP HTTP-version */
static int request_line(struct observer *ob, struct obs_side *s, const char *line, size_t len)
{
	struct obs_exchange *ex = req_current(ob);
	enum opaque_reason bad;
	size_t m = 0, t, tlen;
	int minor;

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	while (m < len && m <= 32 && is_tchar((unsigned char)line[m]))
		m++;
	if (m == 0 || m > 32 || m >= len || line[m] != ' ')
		goto bad;
	t = m + 1;
	for (tlen = 0; t + tlen < len && line[t + tlen] != ' '; tlen++) {
		unsigned char c = (unsigned char)line[t + tlen];

		if (c < 0x21 || c == 0x7f)
			goto bad;
	}
	if (tlen == 0 || t + tlen + 1 + 8 != len)
		goto bad;
	minor = version(line + t + tlen + 1, 8);
	if (minor < 0)
		goto bad;
	s->os_http10 = minor == 0;
	if (minor == 0)
		ex->ex_flags |= EX_HTTP10;
	ex->ex_method = (uint8_t)method_of(line, m);
	if (ex->ex_method == METHOD_HEAD)
		ex->ex_flags |= EX_HEAD_METHOD;
	if (ex->ex_method == METHOD_CONNECT)
		ex->ex_flags |= EX_CONNECT;
	ex->ex_route = (uint16_t)ob->ob_ops->oo_route(ob->ob_ctx, line + t, tlen);
	if (ob->ob_capture) {
		struct obs_meta *om = &ob->ob_meta[ex - ob->ob_fifo];

		memset(om->om_len, 0, sizeof(om->om_len));
		meta_put(om, META_TARGET, line + t, tlen);
		ex->ex_flags |= EX_META;
	}
	return 0;
bad:
	/* A line that ends like a request line but breaks the grammar (two spaces, a control
	 * byte) is a bad request; only a first line that does not look like HTTP at all is
	 * "not HTTP".  Nothing to report of it but the reason. */
	minor = len >= 9 && line[len - 9] == ' ' ? version(line + len - 8, 8) : -1;
	if (minor == -2 && m == 3 && memcmp(line, "PRI", 3) == 0)
		bad = OPAQUE_HTTP2;
	else if (ob->ob_requests == 1 && minor == -1)
		bad = OPAQUE_NOT_HTTP;
	else
		bad = OPAQUE_BAD_REQUEST;
	ob->ob_n--;
	ob->ob_requests--;
	go_opaque(ob, bad);
	return -1;
}

/* HTTP-version SP 3DIGIT [SP reason-phrase] */
static int status_line(struct observer *ob, struct obs_side *s, const char *line, size_t len)
{
	struct obs_exchange *ex = resp_target(ob);
	unsigned code;

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	if (version(line, len) < 0 || len < 12 || line[8] != ' ' || !is_digit((unsigned char)line[9]) ||
	    !is_digit((unsigned char)line[10]) || !is_digit((unsigned char)line[11]) ||
	    (len > 12 && line[12] != ' ')) {
		go_opaque(ob, OPAQUE_BAD_RESPONSE);
		return -1;
	}
	code = (unsigned)(line[9] - '0') * 100 + (unsigned)(line[10] - '0') * 10 +
	    (unsigned)(line[11] - '0');
	if (code < 100) {
		go_opaque(ob, OPAQUE_BAD_RESPONSE);
		return -1;
	}
	s->os_http10 = line[7] == '0';
	s->os_code = (uint16_t)code;
	if (code >= 200 || code == 101) {
		/* The final response (or the switch): interim 1xx answers are not it. */
		ex->ex_flags |= EX_RESP_START;
		ex->ex_resp_start = s->os_msg_start;
		ex->ex_code = (uint16_t)code;
	}
	return 0;
}

/* ---- header fields ---- */

/* 1*DIGIT, or a list of equal ones ("5, 5"); all must agree with an earlier field. */
static int content_length(struct obs_side *s, const char *v, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return -1;
	while (i < n) {
		uint64_t len = 0;
		size_t digits = 0;

		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		while (i < n && is_digit((unsigned char)v[i])) {
			len = len * 10 + (uint64_t)(v[i++] - '0');
			if (len > LENGTH_MAX)
				return -1;
			digits++;
		}
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (digits == 0 || (i < n && v[i] != ','))
			return -1;
		i++;
		if ((s->os_flags & H_LENGTH) && s->os_length != len)
			return -1;
		s->os_flags |= H_LENGTH;
		s->os_length = len;
	}
	return 0;
}

/* A list of transfer codings: remember whether chunked came, and came last, once. */
static void transfer_encoding(struct obs_side *s, const char *v, size_t n)
{
	while (n > 0) {
		size_t e = 0, name;
		const char *c = v;

		while (e < n && v[e] != ',')
			e++;
		for (name = 0; name < e && v[name] != ';'; name++)
			;
		v += e < n ? e + 1 : e;
		n -= e < n ? e + 1 : e;
		trim(&c, &name);
		if (name == 0)
			continue;	/* an empty list element */
		s->os_flags |= H_TE;
		if (same(c, name, "chunked")) {
			if (s->os_flags & H_CHUNKED)
				s->os_flags |= H_TE_BAD;
			s->os_flags |= H_CHUNKED;
		} else if (s->os_flags & H_CHUNKED) {
			s->os_flags = (uint8_t)((s->os_flags & ~H_CHUNKED) | H_TE_BAD);
		}
	}
}

static void connection(struct obs_side *s, const char *v, size_t n)
{
	while (n > 0) {
		size_t e = 0;
		const char *c = v;

		while (e < n && v[e] != ',')
			e++;
		v += e < n ? e + 1 : e;
		n -= e < n ? e + 1 : e;
		trim(&c, &e);
		if (same(c, e, "close"))
			s->os_flags |= H_CLOSE;
		else if (same(c, e, "keep-alive"))
			s->os_flags |= H_KEEPALIVE;
	}
}

/* n lowercase hex digits at p into n / 2 bytes; -1 unless all are. */
static int hex_bytes(const char *p, size_t n, uint8_t *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		unsigned v = c >= '0' && c <= '9' ? (unsigned)(c - '0') :
		    c >= 'a' && c <= 'f' ? (unsigned)(c - 'a') + 10 : 16;

		if (v == 16)
			return -1;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
	while (n > 0 && p[n - 1] == 0)
		n--;
	return n == 0;
}

/* traceparent (W3C Trace Context): version "-" trace-id "-" parent-id "-" flags, in
 * lowercase hex.  Version 00 is exactly 55 characters; a later one may add fields after a
 * dash; ff is invalid, and so are ids of all zeros.  Only the ids are kept, for exemplars.
 * A malformed header is ignored; a second one voids the first. */
static void traceparent(struct obs_exchange *ex, struct obs_trace *tr, const char *v, size_t n)
{
	uint8_t ver, flags, trace[16], span[8];

	if (ex->ex_flags & (EX_TRACED | EX_TRACE_BAD)) {
		ex->ex_flags = (uint16_t)((ex->ex_flags & ~EX_TRACED) | EX_TRACE_BAD);
		return;
	}
	trim(&v, &n);
	if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
	    hex_bytes(v, 2, &ver) == -1 || ver == 0xff || (n > 55 && (ver == 0 || v[55] != '-')) ||
	    hex_bytes(v + 3, 32, trace) == -1 || hex_bytes(v + 36, 16, span) == -1 ||
	    hex_bytes(v + 53, 2, &flags) == -1 || all_zero(trace, 16) || all_zero(span, 8))
		return;
	memcpy(tr->tr_trace, trace, sizeof(trace));
	memcpy(tr->tr_span, span, sizeof(span));
	ex->ex_flags |= EX_TRACED;
}

static int header_line(struct observer *ob, int dir, struct obs_side *s, const char *line,
    size_t len)
{
	enum opaque_reason bad = dir == OBS_REQ ? OPAQUE_BAD_REQUEST : OPAQUE_BAD_RESPONSE;
	const char *v;
	size_t name = 0, vn;

	/* No obs-fold, no space before the colon, no CR or NUL anywhere (RFC 9112 5.1, 5.2):
	 * the name is all token characters, so only the value needs looking at. */
	while (name < len && is_tchar((unsigned char)line[name]))
		name++;
	v = line + name + 1;
	vn = len - name - 1;
	if (name == 0 || name == len || line[name] != ':' || memchr(v, '\r', vn) != NULL ||
	    memchr(v, '\0', vn) != NULL) {
		go_opaque(ob, bad);
		return -1;
	}
	/* Three fields decide the framing; the rest are only checked, above.  Compare whole
	 * names only where length and first letter match. */
	if ((line[0] | 0x20) == 'c' && name == 14 && same(line, name, "content-length")) {
		trim(&v, &vn);
		if (content_length(s, v, vn) == -1) {
			go_opaque(ob, OPAQUE_BAD_LENGTH);
			return -1;
		}
	} else if ((line[0] | 0x20) == 't' && name == 17 && same(line, name, "transfer-encoding")) {
		transfer_encoding(s, v, vn);
	} else if ((line[0] | 0x20) == 'c' && name == 10 && same(line, name, "connection")) {
		connection(s, v, vn);
	} else if (dir == OBS_REQ && (line[0] | 0x20) == 't' && name == 11 &&
	    same(line, name, "traceparent")) {
		struct obs_exchange *ex = req_current(ob);

		if (ex != NULL)
			traceparent(ex, &ob->ob_trace[ex - ob->ob_fifo], v, vn);
	} else if (dir == OBS_REQ && ob->ob_capture) {
		struct obs_exchange *ex = req_current(ob);
		enum obs_meta_field f = META_MAX;

		if ((line[0] | 0x20) == 'u' && name == 10 && same(line, name, "user-agent"))
			f = META_USER_AGENT;
		else if ((line[0] | 0x20) == 'r' && name == 7 && same(line, name, "referer"))
			f = META_REFERER;
		else if ((line[0] | 0x20) == 'x' && name == 12 && same(line, name, "x-request-id"))
			f = META_REQUEST_ID;
		if (f != META_MAX && ex != NULL && (ex->ex_flags & EX_META)) {
			trim(&v, &vn);
			meta_put(&ob->ob_meta[ex - ob->ob_fifo], f, v, vn);
		}
	}
	return 0;
}

/* ---- ends of heads and of messages ---- */

/* Does this message end its connection (RFC 9112 9.3)? */
static int ends_connection(const struct obs_side *s)
{
	return (s->os_flags & H_CLOSE) || (s->os_http10 && !(s->os_flags & H_KEEPALIVE));
}

static void request_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = req_current(ob);

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	ex->ex_req_end = now;
	ex->ex_req_body = s->os_body;
	ex->ex_flags |= EX_REQ_DONE;
	s->os_state = ex->ex_flags & EX_CONNECT ? S_HOLD : S_START;
	s->os_body = 0;
	settle(ob);
}

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

static void response_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = resp_target(ob);
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
			go_opaque(ob, OPAQUE_BAD_REQUEST);
			return;
		}
		req->os_state = S_START;
	}
	settle(ob);
}

static void request_head_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = req_current(ob);

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
			go_opaque(ob, OPAQUE_BAD_ENCODING);
			return;
		}
		if (s->os_flags & H_LENGTH) {
			go_opaque(ob, OPAQUE_BAD_LENGTH);
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

static void response_head_done(struct observer *ob, struct obs_side *s, int64_t now)
{
	struct obs_exchange *ex = resp_target(ob);
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
		if (resp_target(ob) == NULL) {
			go_opaque(ob, OPAQUE_UNSOLICITED);
			return -1;
		}
		if (c != 'H') {
			go_opaque(ob, OPAQUE_BAD_RESPONSE);
			return -1;
		}
	} else {
		if (ob->ob_requests == 0 && c == 0x16) {
			go_opaque(ob, OPAQUE_TLS);	/* a TLS handshake record */
			return -1;
		}
		if (!is_tchar(c)) {
			go_opaque(ob, ob->ob_requests == 0 ? OPAQUE_NOT_HTTP : OPAQUE_BAD_REQUEST);
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
 * observation stopped). */
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
		k = take_line(s, p, n, &line, &len);
		if (k == 0) {
			go_opaque(ob, OPAQUE_LINE_TOO_LONG);
			return 0;
		}
		s->os_head += (uint32_t)k;
		if (s->os_head > OBS_HEAD_MAX) {
			go_opaque(ob, OPAQUE_HEADERS_TOO_LARGE);
			return 0;
		}
		if (line == NULL)
			return k;
		if (s->os_state == S_LINE) {
			if ((dir == OBS_REQ ? request_line(ob, s, line, len) : status_line(ob, s, line, len)) == -1)
				return 0;
			s->os_state = S_HEADERS;
		} else if (s->os_state == S_TRAILERS) {
			/* Trailer fields never change the framing: only their end matters. */
			if (len == 0)
				message_done(ob, dir, s, now);
		} else if (len > 0) {
			if (header_line(ob, dir, s, line, len) == -1)
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
		k = take_line(s, p, n, &line, &len);
		if (k == 0) {
			go_opaque(ob, OPAQUE_LINE_TOO_LONG);
			return 0;
		}
		if (line == NULL)
			return k;
		if (s->os_state == S_CHUNK_END) {
			if (len != 0) {
				go_opaque(ob, OPAQUE_BAD_CHUNK);
				return 0;
			}
			s->os_state = S_CHUNK_SIZE;
			return k;
		} else {
			uint64_t size = 0;
			size_t i = 0;

			/* chunk-size [ BWS ";" chunk-ext ] */
			while (i < len && hex_value((unsigned char)line[i]) >= 0) {
				if (size > LENGTH_MAX >> 4) {
					go_opaque(ob, OPAQUE_BAD_CHUNK);
					return 0;
				}
				size = size * 16 + (uint64_t)hex_value((unsigned char)line[i++]);
			}
			if (i == 0) {
				go_opaque(ob, OPAQUE_BAD_CHUNK);
				return 0;
			}
			while (i < len && (line[i] == ' ' || line[i] == '\t'))
				i++;
			if (i < len && line[i] != ';') {
				go_opaque(ob, OPAQUE_BAD_CHUNK);
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

void observer_init(struct observer *ob, const struct obs_ops *ops, void *ctx)
{
	int d;

	if (!tchar_map['a'])
		tchar_fill();
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
		} else if (in_message(s) && (ex = resp_target(ob)) != NULL) {
			/* The application closed in the middle of its answer. */
			int reading = ex == req_current(ob);

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
	if (dir == OBS_REQ && in_message(s) && (ex = req_current(ob)) != NULL &&
	    !(ex->ex_flags & EX_RESP_DONE))
		ex->ex_flags |= EX_REQ_CUT;
	s->os_state = S_DONE;
}

void observer_finish(struct observer *ob, enum incomplete_reason why, int64_t now)
{
	(void)now;
	if (ob->ob_mode == OBS_HTTP)
		flush(ob, (int)why);
}

int observer_answer(struct observer *ob, unsigned code, int64_t now, int *head)
{
	struct obs_exchange *ex;

	if (ob->ob_mode != OBS_HTTP || !may_answer(ob))
		return 0;
	/* Only the oldest exchange can be waiting for its first answer byte: any before it
	 * were answered and are gone. */
	ex = resp_target(ob);
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

/* ---- parking ---- */

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
