/* observer_head.c: the HTTP/1.x observer's reading of heads: lines, start lines and the
 * header fields that decide the framing (Content-Length, Transfer-Encoding, Connection),
 * plus what the access log and exemplars keep (traceparent, the target, a few fields).
 * The grammar is RFC 9112's, strictly: what breaks it makes the observer opaque (the bytes
 * still flow), and a header block is judged the way a strict reference parser (Node's
 * llhttp, t/12-reference.bats) judges it.
 *
 * It touches: the observer's struct and its ops, through include/observer_head.h; no I/O. */
#include <string.h>

#include "log.h"
#include "observer_int.h"

unsigned char obs_tchar_map[256];

void obs_chars_init(void)
{
	const char *extra = "!#$%&'*+-.^_`|~";
	int c;

	for (c = 0; c < 256; c++)
		obs_tchar_map[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
	while (*extra)
		obs_tchar_map[(unsigned char)*extra++] = 1;
}

/* Case-insensitive equality of p[0..n) with a literal of lower-case letters and '-'.  p
 * holds token characters, and of those only letters change under | 0x20. */
static int obs_same(const char *p, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((unsigned char)p[i] | 0x20) != (unsigned char)lit[i] || lit[i] == '\0')
			return 0;
	return lit[n] == '\0';
}

/* Optional whitespace (SP, HTAB) off both ends. */
static void obs_trim(const char **p, size_t *n)
{
	while (*n > 0 && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* ---- lines ---- */

/* The common case costs one memchr and no copy: a line wholly inside the chunk the relay
 * read is parsed in place.  Only a line cut by a read's boundary is gathered into os_line,
 * bounded by OBS_LINE_MAX (a longer line makes the observer opaque, never a larger copy). */
size_t obs_take_line(struct obs_side *s, const char *p, size_t n, const char **line,
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

/* The methods with a label of their own; any other token is OTHER, so a client cannot
 * make new series by inventing methods. */
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
	if (n < 8 || memcmp(p, "HTTP/", 5) != 0 || !obs_is_digit((unsigned char)p[5]) || p[6] != '.' ||
	    !obs_is_digit((unsigned char)p[7]))
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
int obs_request_line(struct observer *ob, struct obs_side *s, const char *line, size_t len)
{
	struct obs_exchange *ex = obs_req_current(ob);
	enum opaque_reason bad;
	size_t m = 0, t, tlen;
	int minor;

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	while (m < len && m <= 32 && obs_is_tchar((unsigned char)line[m]))
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
	/* HTTP/1.0 or 1.1 (any 1.x reads as 1.1 does, RFC 9112 2.3); a major version other
	 * than 1 is not a protocol this observer knows. */
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
	/* The route is named once, from the target, as soon as the line is in (a head parked
	 * in the middle carries it): nothing later in the head changes it. */
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
	obs_go_opaque(ob, bad);
	return -1;
}

/* HTTP-version SP 3DIGIT [SP reason-phrase] */
int obs_status_line(struct observer *ob, struct obs_side *s, const char *line, size_t len)
{
	struct obs_exchange *ex = obs_resp_target(ob);
	unsigned code;

	ASSERT(ex != NULL);	/* a side inside a message always has its exchange */

	if (version(line, len) < 0 || len < 12 || line[8] != ' ' || !obs_is_digit((unsigned char)line[9]) ||
	    !obs_is_digit((unsigned char)line[10]) || !obs_is_digit((unsigned char)line[11]) ||
	    (len > 12 && line[12] != ' ')) {
		obs_go_opaque(ob, OPAQUE_BAD_RESPONSE);
		return -1;
	}
	code = (unsigned)(line[9] - '0') * 100 + (unsigned)(line[10] - '0') * 10 +
	    (unsigned)(line[11] - '0');
	if (code < 100) {
		obs_go_opaque(ob, OPAQUE_BAD_RESPONSE);
		return -1;
	}
	/* An HTTP/1.0 answer ends its connection unless it says keep-alive, whatever the
	 * request was (ends_connection() in observer.c reads this). */
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

/* 1*DIGIT, or a list of equal ones ("5, 5"); all must agree with an earlier field.  Two
 * that disagree are a smuggling attempt or a broken sender: -1, and the observer goes
 * opaque (RFC 9112 6.3, item 5). */
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
		while (i < n && obs_is_digit((unsigned char)v[i])) {
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
		obs_trim(&c, &name);
		if (name == 0)
			continue;	/* an empty list element */
		s->os_flags |= H_TE;
		if (obs_same(c, name, "chunked")) {
			if (s->os_flags & H_CHUNKED)
				s->os_flags |= H_TE_BAD;
			s->os_flags |= H_CHUNKED;
		} else if (s->os_flags & H_CHUNKED) {
			s->os_flags = (uint8_t)((s->os_flags & ~H_CHUNKED) | H_TE_BAD);
		}
	}
}

/* Only close and keep-alive matter: they decide whether the connection outlives the
 * message (ends_connection() in observer.c). */
static void connection(struct obs_side *s, const char *v, size_t n)
{
	while (n > 0) {
		size_t e = 0;
		const char *c = v;

		while (e < n && v[e] != ',')
			e++;
		v += e < n ? e + 1 : e;
		n -= e < n ? e + 1 : e;
		obs_trim(&c, &e);
		if (obs_same(c, e, "close"))
			s->os_flags |= H_CLOSE;
		else if (obs_same(c, e, "keep-alive"))
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
	obs_trim(&v, &n);
	if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
	    hex_bytes(v, 2, &ver) == -1 || ver == 0xff || (n > 55 && (ver == 0 || v[55] != '-')) ||
	    hex_bytes(v + 3, 32, trace) == -1 || hex_bytes(v + 36, 16, span) == -1 ||
	    hex_bytes(v + 53, 2, &flags) == -1 || all_zero(trace, 16) || all_zero(span, 8))
		return;
	memcpy(tr->tr_trace, trace, sizeof(trace));
	memcpy(tr->tr_span, span, sizeof(span));
	ex->ex_flags |= EX_TRACED;
}

int obs_header_line(struct observer *ob, int dir, struct obs_side *s, const char *line,
    size_t len)
{
	enum opaque_reason bad = dir == OBS_REQ ? OPAQUE_BAD_REQUEST : OPAQUE_BAD_RESPONSE;
	const char *v;
	size_t name = 0, vn;

	/* No obs-fold, no space before the colon, no CR or NUL anywhere (RFC 9112 5.1, 5.2):
	 * the name is all token characters, so only the value needs looking at. */
	while (name < len && obs_is_tchar((unsigned char)line[name]))
		name++;
	v = line + name + 1;
	vn = len - name - 1;
	if (name == 0 || name == len || line[name] != ':' || memchr(v, '\r', vn) != NULL ||
	    memchr(v, '\0', vn) != NULL) {
		obs_go_opaque(ob, bad);
		return -1;
	}
	/* Three fields decide the framing; the rest are only checked, above.  Compare whole
	 * names only where length and first letter match. */
	if ((line[0] | 0x20) == 'c' && name == 14 && obs_same(line, name, "content-length")) {
		obs_trim(&v, &vn);
		if (content_length(s, v, vn) == -1) {
			obs_go_opaque(ob, OPAQUE_BAD_LENGTH);
			return -1;
		}
	} else if ((line[0] | 0x20) == 't' && name == 17 && obs_same(line, name, "transfer-encoding")) {
		transfer_encoding(s, v, vn);
	} else if ((line[0] | 0x20) == 'c' && name == 10 && obs_same(line, name, "connection")) {
		connection(s, v, vn);
	} else if (dir == OBS_REQ && (line[0] | 0x20) == 't' && name == 11 &&
	    obs_same(line, name, "traceparent")) {
		struct obs_exchange *ex = obs_req_current(ob);

		if (ex != NULL)
			traceparent(ex, &ob->ob_trace[ex - ob->ob_fifo], v, vn);
	} else if (dir == OBS_REQ && ob->ob_capture) {
		struct obs_exchange *ex = obs_req_current(ob);
		enum obs_meta_field f = META_MAX;

		if ((line[0] | 0x20) == 'u' && name == 10 && obs_same(line, name, "user-agent"))
			f = META_USER_AGENT;
		else if ((line[0] | 0x20) == 'r' && name == 7 && obs_same(line, name, "referer"))
			f = META_REFERER;
		else if ((line[0] | 0x20) == 'x' && name == 12 && obs_same(line, name, "x-request-id"))
			f = META_REQUEST_ID;
		if (f != META_MAX && ex != NULL && (ex->ex_flags & EX_META)) {
			obs_trim(&v, &vn);
			meta_put(&ob->ob_meta[ex - ob->ob_fifo], f, v, vn);
		}
	}
	return 0;
}
