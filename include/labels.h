/* labels.h: the fixed label sets, each listed once as an X-macro: how a connection ended,
 * why observation stopped, how the application failed, which method.  The shared-memory
 * counters, the Prometheus renderer and the dumps are all generated from these lists. */
#ifndef SIDEMETER_LABELS_H
#define SIDEMETER_LABELS_H

#include <stddef.h>

/* How a client connection ended (exactly one per connection). */
#define CLOSE_REASONS(X)                                                                   \
	X(CLIENT_CLOSED, "client_closed")	/* the client closed first */              \
	X(UPSTREAM_CLOSED, "upstream_closed")	/* the application closed first */         \
	X(CLIENT_ERROR, "client_error")		/* the client reset, or a write failed */   \
	X(UPSTREAM_ERROR, "upstream_error")	/* the application reset mid-stream */     \
	X(UPSTREAM_REFUSED, "upstream_refused")	/* connect: refused */                     \
	X(CONNECT_TIMEOUT, "connect_timeout")	/* connect: no answer in time */           \
	X(CONNECT_ERROR, "connect_error")	/* connect: unreachable, no route, ... */   \
	X(IDLE_TIMEOUT, "idle_timeout")		/* no byte either way for --idle-timeout */ \
	X(HEADER_TIMEOUT, "header_timeout")	/* request head too slow */               \
	X(BODY_TIMEOUT, "body_timeout")		/* request body stopped moving */          \
	X(RESPONSE_TIMEOUT, "response_timeout")	/* the application did not answer */       \
	X(KEEPALIVE_TIMEOUT, "keepalive_timeout")	/* idle between requests */        \
	X(TUNNEL_TIMEOUT, "tunnel_timeout")	/* idle upgraded connection */             \
	X(SHUTDOWN, "shutdown")			/* closed idle: the worker is leaving */   \
	X(ABORTED, "aborted")			/* cut off: the master went away */        \
	X(ERROR, "error")			/* a local failure */

/* Why the observer stopped trusting a connection (the bytes still flow). */
#define OPAQUE_REASONS(X)                                                                  \
	X(NOT_HTTP, "not_http")                                                            \
	X(TLS, "tls")                                                                      \
	X(HTTP2, "http2")                                                                  \
	X(LINE_TOO_LONG, "line_too_long")                                                  \
	X(HEADERS_TOO_LARGE, "headers_too_large")                                          \
	X(BAD_REQUEST, "bad_request")                                                      \
	X(BAD_RESPONSE, "bad_response")                                                    \
	X(BAD_LENGTH, "bad_content_length")                                                \
	X(BAD_ENCODING, "bad_transfer_encoding")                                           \
	X(BAD_CHUNK, "bad_chunk")                                                          \
	X(PIPELINE_LIMIT, "pipeline_limit")                                                \
	X(UNSOLICITED, "unsolicited_response")

/* How reaching the application failed. */
#define UPSTREAM_ERRORS(X)                                                                 \
	X(REFUSED, "refused")                                                              \
	X(CONNECT_TIMEOUT, "connect_timeout")                                              \
	X(UNREACHABLE, "unreachable")                                                      \
	X(RESET, "reset")                                                                  \
	X(CLOSED_EARLY, "closed_early")                                                    \
	X(RESPONSE_TIMEOUT, "response_timeout")

/* Why a request was cut short before its exchange completed. */
#define INCOMPLETE_REASONS(X)                                                              \
	X(CLIENT_CLOSED, "client_closed")                                                  \
	X(UPSTREAM_CLOSED, "upstream_closed")                                              \
	X(TIMEOUT, "timeout")                                                              \
	X(OPAQUE, "opaque")                                                                \
	X(ABORTED, "aborted")                                                              \
	X(UNANSWERED, "unanswered")	/* behind an answer that ended the connection */

/* Request methods kept as labels; anything else is OTHER. */
#define HTTP_METHODS(X)                                                                    \
	X(GET) X(HEAD) X(POST) X(PUT) X(DELETE) X(CONNECT) X(OPTIONS) X(TRACE) X(PATCH) X(OTHER)

/* A worker slot's state in the scoreboard. */
#define WORKER_STATES(X)                                                                   \
	X(FREE, "free")			/* no process */                                   \
	X(STARTING, "starting")		/* forked, not accepting yet */                    \
	X(IDLE, "idle")			/* waiting in accept() */                          \
	X(BUSY, "busy")			/* serving a connection */                         \
	X(LEAVING, "leaving")		/* told to go: finishing its connection */

#define X_ENUM_CLOSE(id, text) CLOSE_##id,
#define X_ENUM_OPAQUE(id, text) OPAQUE_##id,
#define X_ENUM_UPSTREAM(id, text) UPSTREAM_##id,
#define X_ENUM_INCOMPLETE(id, text) INCOMPLETE_##id,
#define X_ENUM_METHOD(id) METHOD_##id,
#define X_ENUM_WORKER(id, text) WORKER_##id,

/* CLOSE_NONE: no reason (yet): what a relay policy answers to go on. */
enum close_reason { CLOSE_NONE = -1, CLOSE_REASONS(X_ENUM_CLOSE) CLOSE_MAX };
enum opaque_reason { OPAQUE_NONE = -1, OPAQUE_REASONS(X_ENUM_OPAQUE) OPAQUE_MAX };
enum upstream_error { UPSTREAM_ERRORS(X_ENUM_UPSTREAM) UPSTREAM_MAX };
enum incomplete_reason { INCOMPLETE_REASONS(X_ENUM_INCOMPLETE) INCOMPLETE_MAX };
enum http_method { HTTP_METHODS(X_ENUM_METHOD) METHOD_MAX };
enum worker_state { WORKER_STATES(X_ENUM_WORKER) WORKER_STATE_MAX };

/* The label text of each value. */
extern const char *const close_reason_names[CLOSE_MAX];
extern const char *const opaque_reason_names[OPAQUE_MAX];
extern const char *const upstream_error_names[UPSTREAM_MAX];
extern const char *const incomplete_reason_names[INCOMPLETE_MAX];
extern const char *const http_method_names[METHOD_MAX];
extern const char *const worker_state_names[WORKER_STATE_MAX];

/* The length of the valid UTF-8 sequence at p (of at most n bytes), or 0 when there is
 * none: what label values, the access log and --label accept as text. */
size_t utf8_len(const unsigned char *p, size_t n);

#endif
