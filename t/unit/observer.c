/* observer.c: unit tests of the HTTP/1.x observer from vectors written from RFC 9112 and
 * RFC 9110.  Every vector is fed whole, then with each of its chunks split at every byte,
 * then one byte at a time: the reports must be the expected ones every time. */
#include <string.h>

#include "observer.h"
#include "unit.h"

/* ---- recording what the observer reports ---- */

#define TARGETS 64
static char targets[TARGETS][64];
static unsigned ntargets;
static char report[8192];
static int64_t clock_now;


static unsigned t_route(void *ctx, const char *t, size_t n)
{
	(void)ctx;
	if (ntargets == TARGETS)
		return 0;
	if (n > 63)
		n = 63;
	memcpy(targets[ntargets], t, n);
	targets[ntargets][n] = '\0';
	return ntargets++;
}

static const char *why_name(int why)
{
	return why < 0 ? "done" : incomplete_reason_names[why];
}

static void t_exchange(void *ctx, const struct obs_exchange *ex, int why)
{
	size_t used = strlen(report);

	const struct obs_trace *tr = ctx ? observer_trace(ctx, ex) : NULL;

	/* times never run backwards within an exchange */
	CHECK(ex->ex_req_start > 0, "no request start");
	CHECK(!ex->ex_req_end || ex->ex_req_end >= ex->ex_req_start, "request ends before it starts");
	CHECK(!ex->ex_resp_end || ex->ex_resp_end >= ex->ex_resp_start, "response ends before it starts");
	CHECK(!ex->ex_resp_start || ex->ex_resp_start >= ex->ex_req_start, "answer before question");
	snprintf(report + used, sizeof(report) - used, "%s%s %s %u %llu/%llu %s",
	    used ? "; " : "", http_method_names[ex->ex_method],
	    ex->ex_route < ntargets ? targets[ex->ex_route] : "?", ex->ex_code,
	    (unsigned long long)ex->ex_req_body, (unsigned long long)ex->ex_resp_body, why_name(why));
	/* a trace context: the first two bytes of its trace-id and the last of its parent-id */
	if (tr != NULL) {
		used = strlen(report);
		snprintf(report + used, sizeof(report) - used, " trace=%02x%02x..%02x",
		    tr->tr_trace[0], tr->tr_trace[1], tr->tr_span[7]);
	}
}

static void t_opaque(void *ctx, enum opaque_reason why)
{
	size_t used = strlen(report);

	(void)ctx;
	snprintf(report + used, sizeof(report) - used, "%sopaque:%s", used ? "; " : "",
	    opaque_reason_names[why]);
}

static void t_tunnel(void *ctx)
{
	size_t used = strlen(report);

	(void)ctx;
	snprintf(report + used, sizeof(report) - used, "%stunnel", used ? "; " : "");
}

static const struct obs_ops ops = { t_route, t_exchange, t_opaque, t_tunnel };

/* ---- vectors ---- */

/* An event: bytes in a direction, or an end of stream (data NULL), or an answer of ours. */
struct event {
	int dir;		/* OBS_REQ, OBS_RESP; 2: observer_answer(len as the code) */
	const char *data;
	size_t len;		/* 0: strlen(data) */
};

#define REQ(s) { OBS_REQ, s, 0 }
#define RESP(s) { OBS_RESP, s, 0 }
#define REQ_EOF { OBS_REQ, NULL, 0 }
#define RESP_EOF { OBS_RESP, NULL, 0 }
#define ANSWER(code) { 2, NULL, code }
#define END { -1, NULL, 0 }

struct vector {
	const char *name;
	struct event ev[12];
	enum incomplete_reason finish;	/* the connection's end */
	const char *want;
};

static char big_line[OBS_LINE_MAX + 64];
static char big_head[OBS_HEAD_MAX + 4096];
#define PIPELINED (OBS_PIPELINE + 3)
static char pipeline_req[PIPELINED * 20 + 1];
static char pipeline_resp[PIPELINED * 40 + 1];

static const struct vector vectors[] = {
	{ "simple GET, Content-Length answer",
	  { REQ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /a 200 0/5 done" },
	{ "keep-alive: two exchanges one after the other",
	  { REQ("GET /1 HTTP/1.1\r\n\r\n"), RESP("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
	    REQ("GET /2 HTTP/1.1\r\n\r\n"), RESP("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
	    END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /1 200 0/2 done; GET /2 404 0/0 done" },
	{ "pipelining: three requests at once, answers in order",
	  { REQ("GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nDELETE /3 HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
		 "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
		 "HTTP/1.1 204 No Content\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /1 200 0/3 done; HEAD /2 200 0/0 done; DELETE /3 204 0/0 done" },
	{ "request body by Content-Length",
	  { REQ("POST /up HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world"),
	    RESP("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /up 201 11/0 done" },
	{ "request body chunked, with extensions and trailers",
	  { REQ("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\nDigest: abc\r\nX-T: 1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), END },
	  INCOMPLETE_CLIENT_CLOSED, "PUT /c 200 11/2 done" },
	{ "response chunked, trailers, then another exchange",
	  { REQ("GET /x HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "A\r\n0123456789\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: t\r\n\r\n"),
	    REQ("GET /y HTTP/1.1\r\n\r\n"), RESP("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /x 200 0/36 done; GET /y 200 0/1 done" },
	{ "response ended by the close",
	  { REQ("GET /old HTTP/1.0\r\n\r\n"), RESP("HTTP/1.0 200 OK\r\nServer: py\r\n\r\nsome body"),
	    RESP_EOF, END },
	  INCOMPLETE_UPSTREAM_CLOSED, "GET /old 200 0/9 done" },
	{ "no body for HEAD, 204 and 304, whatever the headers say",
	  { REQ("HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
		 "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
		 "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    END },
	  INCOMPLETE_CLIENT_CLOSED, "HEAD /h 200 0/0 done; GET /n 204 0/0 done; GET /m 304 0/0 done" },
	{ "100 Continue is not the final answer",
	  { REQ("POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
	    RESP("HTTP/1.1 100 Continue\r\n\r\n"), REQ("data"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /e 200 4/0 done" },
	{ "103 Early Hints, twice, then the answer",
	  { REQ("GET /hints HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
		 "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /hints 200 0/1 done" },
	{ "101 Switching Protocols makes a tunnel",
	  { REQ("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
	    RESP("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
	    REQ("\x81\x85garbage that is not HTTP"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /ws 101 0/0 done; tunnel" },
	{ "a 2xx to CONNECT makes a tunnel",
	  { REQ("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"),
	    RESP("HTTP/1.1 200 Connection Established\r\n\r\n"), REQ("\x16\x03\x01 tls bytes"),
	    END },
	  INCOMPLETE_CLIENT_CLOSED, "CONNECT example.org:443 200 0/0 done; tunnel" },
	{ "a refused CONNECT: HTTP goes on",
	  { REQ("CONNECT example.org:443 HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\nno!"),
	    REQ("GET /after HTTP/1.1\r\n\r\n"), RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
	    END },
	  INCOMPLETE_CLIENT_CLOSED, "CONNECT example.org:443 407 0/3 done; GET /after 200 0/0 done" },
	{ "an early answer before the request body is in keeps the pairing",
	  { REQ("POST /big HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"),
	    RESP("HTTP/1.1 413 Content Too Large\r\nContent-Length: 2\r\n\r\nno"), REQ("67890"),
	    REQ("GET /next HTTP/1.1\r\n\r\n"), RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
	    END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /big 413 10/2 done; GET /next 200 0/0 done" },
	{ "an early answer, and the client gives up on its body",
	  { REQ("POST /big HTTP/1.1\r\nContent-Length: 10\r\n\r\n123"),
	    RESP("HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
	    RESP_EOF, END },
	  INCOMPLETE_UPSTREAM_CLOSED, "POST /big 413 0/0 done" },
	{ "HTTP/1.0 with Connection: close; leading empty lines are ignored",
	  { REQ("\r\n\r\nGET /v HTTP/1.0\r\nConnection: close\r\n\r\n"),
	    RESP("HTTP/1.0 302 Found\r\nLocation: /w\r\nContent-Length: 0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /v 302 0/0 done" },
	{ "bare LF line endings are accepted",
	  { REQ("GET /lf HTTP/1.1\nHost: x\n\n"), RESP("HTTP/1.1 200 OK\nContent-Length: 1\n\nz"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /lf 200 0/1 done" },
	{ "other methods, a status line without a reason, a three-digit code past 599",
	  { REQ("PROPFIND /dav HTTP/1.1\r\n\r\nGET /odd HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 207\r\nContent-Length: 0\r\n\r\nHTTP/1.1 999 Custom\r\nContent-Length: 0\r\n\r\n"),
	    END },
	  INCOMPLETE_CLIENT_CLOSED, "OTHER /dav 207 0/0 done; GET /odd 999 0/0 done" },
	{ "the same Content-Length twice, and as a list, is one length",
	  { REQ("POST /l HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3, 3\r\n\r\nabc"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /l 200 3/0 done" },
	{ "response: Transfer-Encoding overrides Content-Length",
	  { REQ("GET /te HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "3\r\nabc\r\n0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /te 200 0/3 done" },
	{ "response: a final coding other than chunked runs to the close",
	  { REQ("GET /gz HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw bytes"), RESP_EOF, END },
	  INCOMPLETE_UPSTREAM_CLOSED, "GET /gz 200 0/9 done" },
	{ "codings over two lines: gzip then chunked is chunked",
	  { REQ("POST /z HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
		"2\r\nzz\r\n0\r\n\r\n"), RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /z 200 2/0 done" },
	{ "the application closes in the middle of its answer",
	  { REQ("GET /cut HTTP/1.1\r\n\r\n"), RESP("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
	    RESP_EOF, END },
	  INCOMPLETE_UPSTREAM_CLOSED, "GET /cut 200 0/0 upstream_closed" },
	{ "the client goes away in the middle of its request",
	  { REQ("POST /half HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123"), REQ_EOF, END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /half 0 0/0 client_closed" },
	{ "a request head never finished",
	  { REQ("GET /slow HTTP/1.1\r\nHost: x\r\nX-A: "), END },
	  INCOMPLETE_TIMEOUT, "GET /slow 0 0/0 timeout" },
	{ "requests in flight when the application never answers",
	  { REQ("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"), END },
	  INCOMPLETE_TIMEOUT, "GET /1 0 0/0 timeout; GET /2 0 0/0 timeout" },
	{ "our own answer (502) to a request the application never got",
	  { REQ("GET /down HTTP/1.1\r\n\r\n"), ANSWER(502), END },
	  INCOMPLETE_ABORTED, "GET /down 502 0/0 done" },
	{ "an answer of ours only once a head is complete",
	  { REQ("GET /part HTTP/1.1\r\nHo"), ANSWER(502), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /part 0 0/0 client_closed" },
	/* what makes a connection opaque */
	{ "TLS", { REQ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), END },
	  INCOMPLETE_CLIENT_CLOSED, "opaque:tls" },
	{ "the HTTP/2 preface", { REQ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "opaque:http2" },
	{ "not HTTP at all", { REQ("SSH-2.0-OpenSSH_9.2\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "opaque:not_http" },
	{ "binary from the first byte", { { OBS_REQ, "\x00\x01\x02\x03", 4 }, END },
	  INCOMPLETE_CLIENT_CLOSED, "opaque:not_http" },
	{ "a bad second request", { REQ("GET /ok HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), REQ("GET  /two spaces HTTP/1.1\r\n\r\n"),
	    END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /ok 200 0/0 done; opaque:bad_request" },
	{ "conflicting Content-Length", { REQ("POST /c HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /c 0 0/0 opaque; opaque:bad_content_length" },
	{ "Content-Length not a number", { REQ("POST /c HTTP/1.1\r\nContent-Length: 3x\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /c 0 0/0 opaque; opaque:bad_content_length" },
	{ "Content-Length and Transfer-Encoding in a request",
	  { REQ("POST /s HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /s 0 0/0 opaque; opaque:bad_content_length" },
	{ "a request coding that is not chunked last",
	  { REQ("POST /g HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /g 0 0/0 opaque; opaque:bad_transfer_encoding" },
	{ "chunked twice", { REQ("POST /g HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /g 0 0/0 opaque; opaque:bad_transfer_encoding" },
	{ "Transfer-Encoding in an HTTP/1.0 request",
	  { REQ("POST /g HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /g 0 0/0 opaque; opaque:bad_transfer_encoding" },
	{ "a space before the colon", { REQ("GET /s HTTP/1.1\r\nHost : x\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /s 0 0/0 opaque; opaque:bad_request" },
	{ "obs-fold", { REQ("GET /f HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /f 0 0/0 opaque; opaque:bad_request" },
	{ "a bare CR inside a field", { REQ("GET /r HTTP/1.1\r\nX-A: a\rb\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /r 0 0/0 opaque; opaque:bad_request" },
	{ "a bad chunk size", { REQ("POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /b 0 0/0 opaque; opaque:bad_chunk" },
	{ "chunk data not followed by CRLF",
	  { REQ("POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /b 0 0/0 opaque; opaque:bad_chunk" },
	{ "a chunk size that overflows",
	  { REQ("POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /b 0 0/0 opaque; opaque:bad_chunk" },
	{ "an answer nobody asked for", { RESP("HTTP/1.1 200 OK\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "opaque:unsolicited_response" },
	{ "an answer that is not HTTP", { REQ("GET / HTTP/1.1\r\n\r\n"), RESP("<html>"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET / 0 0/0 opaque; opaque:bad_response" },
	{ "a status code of two digits", { REQ("GET / HTTP/1.1\r\n\r\n"), RESP("HTTP/1.1 20 OK\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET / 0 0/0 opaque; opaque:bad_response" },
	{ "a second answer after an early one, before the request ended",
	  { REQ("POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\n1"),
	    RESP("HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "POST /p 400 0/0 done; opaque:unsolicited_response" },
	{ "a header line past the limit", { REQ(big_line), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /long 0 0/0 opaque; opaque:line_too_long" },
	{ "a header block past the limit", { REQ(big_head), END },
	  INCOMPLETE_CLIENT_CLOSED, "GET /many 0 0/0 opaque; opaque:headers_too_large" },
	{ "more requests in flight than the pipeline holds: those it holds are counted",
	  { REQ(pipeline_req), RESP(pipeline_resp), END },
	  INCOMPLETE_CLIENT_CLOSED, NULL /* built in main */ },
	/* an answer that ends the connection: what was pipelined behind it is unanswered */
	{ "a request behind Connection: close is unanswered, and no answer of ours follows",
	  { REQ("GET /close HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"), RESP_EOF,
	    ANSWER(502), END },
	  INCOMPLETE_UPSTREAM_CLOSED, "GET /close 200 0/2 done; GET /b 0 0/0 unanswered" },
	{ "a request behind an answer ended by the close is unanswered",
	  { REQ("GET /eof HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody"), RESP_EOF, ANSWER(502),
	    END },
	  INCOMPLETE_UPSTREAM_CLOSED, "GET /eof 200 0/4 done; GET /b 0 0/0 unanswered" },
	{ "an HTTP/1.0 answer without keep-alive ends the connection",
	  { REQ("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"), RESP_EOF, ANSWER(504), END },
	  INCOMPLETE_TIMEOUT, "GET /a 200 0/1 done; GET /b 0 0/0 unanswered" },
	{ "the application closes after answering: no answer of ours after its last byte",
	  { REQ("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), RESP_EOF, ANSWER(502), END },
	  INCOMPLETE_UPSTREAM_CLOSED, "GET /1 200 0/0 done; GET /2 0 0/0 upstream_closed" },
	{ "a client that sends 5 of 50 body bytes and leaves: the late 400 is nobody's",
	  { REQ("POST /p HTTP/1.1\r\nContent-Length: 50\r\n\r\n12345"), REQ_EOF,
	    RESP("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
	    RESP_EOF, END },
	  INCOMPLETE_UPSTREAM_CLOSED, "POST /p 400 0/0 client_closed" },
	{ "traceparent: kept for its own exchange in a pipeline; an uppercase one is not valid",
	  { REQ("GET /1 HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"
		"GET /2 HTTP/1.1\r\ntraceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n\r\n"
		"GET /3 HTTP/1.1\r\nTraceParent:\t 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00 \r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
		 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED,
	  "GET /1 200 0/0 done trace=4bf9..b7; GET /2 200 0/0 done; GET /3 200 0/0 done trace=0af7..31" },
	{ "traceparent: two of them void each other; zero ids, version ff, 00 with more fields are not valid",
	  { REQ("GET /1 HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
		"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"
		"GET /2 HTTP/1.1\r\ntraceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n\r\n"
		"GET /3 HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\r\n\r\n"
		"GET /4 HTTP/1.1\r\ntraceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"
		"GET /5 HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\r\n\r\n"
		"GET /6 HTTP/1.1\r\ntraceparent: 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\r\n\r\n"),
	    RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
		 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
		 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED,
	  "GET /1 200 0/0 done; GET /2 200 0/0 done; GET /3 200 0/0 done; GET /4 200 0/0 done; "
	  "GET /5 200 0/0 done; GET /6 200 0/0 done trace=4bf9..b7" },
	{ "a double space in a first request line is a bad request, not \"not HTTP\"",
	  { REQ("GET  / HTTP/1.1\r\n\r\n"), END },
	  INCOMPLETE_CLIENT_CLOSED, "opaque:bad_request" },
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static char want_pipeline[4096];

/* Feed one vector; split: -1 whole, -2 byte by byte, else event (split/100000) cut at
 * byte (split%100000). */
static void run(const struct vector *v, long split)
{
	struct observer ob;
	size_t e;
	int head;

	report[0] = '\0';
	ntargets = 0;
	clock_now = 1000;
	observer_init(&ob, &ops, &ob);
	for (e = 0; e < 12 && v->ev[e].dir >= 0; e++) {
		const struct event *ev = &v->ev[e];
		size_t len = ev->data ? (ev->len ? ev->len : strlen(ev->data)) : 0, i;

		clock_now += 10;
		if (ev->dir == 2) {
			if (observer_answer(&ob, (unsigned)ev->len, clock_now, &head))
				CHECK(head == 0, "%s: answer to a GET says HEAD", v->name);
			continue;
		}
		if (ev->data == NULL) {
			observer_eof(&ob, ev->dir, clock_now);
			continue;
		}
		if (split == -2) {
			for (i = 0; i < len; i++)
				observer_feed(&ob, ev->dir, ev->data + i, 1, clock_now++);
		} else if (split >= 0 && (size_t)(split / 100000) == e) {
			size_t at = (size_t)(split % 100000);

			observer_feed(&ob, ev->dir, ev->data, at, clock_now++);
			observer_feed(&ob, ev->dir, ev->data + at, len - at, clock_now++);
		} else {
			observer_feed(&ob, ev->dir, ev->data, len, clock_now);
		}
	}
	observer_finish(&ob, v->finish, clock_now + 1);
}

static int check(const struct vector *v, const char *want, long split)
{
	run(v, split);
	if (strcmp(report, want) == 0)
		return 1;
	CHECK(0, "%s (split %ld):\n    expected: %s\n    got:      %s", v->name, split, want, report);
	return 0;
}

static void status_checks(void)
{
	struct observer ob;
	struct obs_status st;

	report[0] = '\0';
	observer_init(&ob, &ops, NULL);
	observer_status(&ob, &st);
	CHECK(st.st_idle && !st.st_head_since && !st.st_wait_since, "new connection is idle");
	observer_feed(&ob, OBS_REQ, "GET /s HTTP/1.1\r\nHo", 19, 100);
	observer_status(&ob, &st);
	CHECK(!st.st_idle && st.st_head_since == 100 && !st.st_answerable, "head in progress");
	observer_feed(&ob, OBS_REQ, "st: x\r\n\r\n", 9, 200);
	observer_status(&ob, &st);
	CHECK(st.st_wait_since == 200 && st.st_answerable && !st.st_head_since, "waiting for the app");
	observer_feed(&ob, OBS_RESP, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", 40, 300);
	observer_status(&ob, &st);
	CHECK(st.st_responding && !st.st_wait_since && !st.st_answerable, "answer in progress");
	observer_feed(&ob, OBS_RESP, "cd", 2, 400);
	observer_status(&ob, &st);
	CHECK(st.st_idle, "idle again after the exchange");
	CHECK(!st.st_closing, "keep-alive exchange does not end the connection");
	observer_feed(&ob, OBS_REQ, "POST /p HTTP/1.1\r\nContent-Length: 9\r\n\r\n1234", 43, 500);
	observer_status(&ob, &st);
	CHECK(st.st_in_body && st.st_answerable && !st.st_wait_since, "body in progress");

	/* exchanges that end the connection */
	{
		static const char *const reqs[] = { "GET / HTTP/1.0\r\n\r\n",
			"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
			"GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" };
		static const char *const resps[] = { "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
			"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n" };
		static const int closing[] = { 1, 1, 1, 0 };
		unsigned i;

		for (i = 0; i < 4; i++) {
			observer_init(&ob, &ops, NULL);
			observer_feed(&ob, OBS_REQ, reqs[i], strlen(reqs[i]), 600);
			observer_feed(&ob, OBS_RESP, resps[i], strlen(resps[i]), 700);
			observer_status(&ob, &st);
			CHECK(st.st_idle && st.st_closing == closing[i], "exchange %u: closing %d, expected %d",
			    i, st.st_closing, closing[i]);
		}
	}
}

int main(void)
{
	size_t v, e, at, i, n;
	long splits = 0;

	memcpy(big_line, "GET /long HTTP/1.1\r\nX-Long: ", 28);
	memset(big_line + 28, 'a', sizeof(big_line) - 29);
	for (n = 0, i = 0; n + 100 < sizeof(big_head) - 1; i++)
		n += (size_t)snprintf(big_head + n, sizeof(big_head) - n,
		    i == 0 ? "GET /many HTTP/1.1\r\n" : "X-Header-%zu: %080zu\r\n", i, i);
	for (n = 0, i = 0; i < PIPELINED; i++)
		n += (size_t)snprintf(pipeline_req + n, sizeof(pipeline_req) - n, "GET /%02zu HTTP/1.1\r\n\r\n", i);
	for (n = 0, i = 0; i < PIPELINED; i++)
		n += (size_t)snprintf(pipeline_resp + n, sizeof(pipeline_resp) - n,
		    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%c", (int)('a' + i % 26));
	for (n = 0, i = 0; i < OBS_PIPELINE; i++)
		n += (size_t)snprintf(want_pipeline + n, sizeof(want_pipeline) - n, "GET /%02zu 200 0/1 done; ", i);
	snprintf(want_pipeline + n, sizeof(want_pipeline) - n, "opaque:pipeline_limit");

	for (v = 0; v < NVECTORS; v++) {
		const struct vector *vec = &vectors[v];
		const char *want = vec->want ? vec->want : want_pipeline;

		if (!check(vec, want, -1) || !check(vec, want, -2))
			continue;
		for (e = 0; e < 12 && vec->ev[e].dir >= 0; e++) {
			const struct event *ev = &vec->ev[e];
			size_t len = ev->data ? (ev->len ? ev->len : strlen(ev->data)) : 0;

			for (at = 1; at < len; at++, splits++)
				if (!check(vec, want, (long)(e * 100000 + at)))
					break;
		}
	}
	status_checks();
	printf("observer: %zu vectors, %ld splits\n", NVECTORS, splits);
	return unit_done("observer");
}
