/* observer_int.h: the observer's inside, shared by its three files and no one else:
 * observer.c (the machine: exchanges, message ends, bodies, the interface),
 * observer_head.c (the head: lines, start lines and header fields) and observer_park.c
 * (its state handed over for parking, and small readers).  The contract for everyone else
 * is include/observer.h. */
#ifndef SIDEMETER_OBSERVER_INT_H
#define SIDEMETER_OBSERVER_INT_H

#include <stddef.h>
#include <stdint.h>

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

/* token characters (RFC 9110 5.6.2), filled once by obs_chars_init() */
extern unsigned char obs_tchar_map[256];
void obs_chars_init(void);

static inline int obs_is_tchar(unsigned char c)
{
	return obs_tchar_map[c];
}

static inline int obs_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline int obs_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- the exchanges in flight: a FIFO of OBS_PIPELINE from ob_first ---- */

static inline struct obs_exchange *ex_at(struct observer *ob, unsigned k)
{
	return &ob->ob_fifo[(ob->ob_first + k) % OBS_PIPELINE];
}

static inline const struct obs_exchange *ex_get(const struct observer *ob, unsigned k)
{
	return &ob->ob_fifo[(ob->ob_first + k) % OBS_PIPELINE];
}

/* The exchange whose request is being read: the newest, while it is unfinished.  Returns
 * its position, or OBS_PIPELINE when there is none. */
static inline unsigned req_index(const struct observer *ob)
{
	if (ob->ob_n == 0 || (ex_get(ob, ob->ob_n - 1)->ex_flags & EX_REQ_DONE))
		return OBS_PIPELINE;
	return ob->ob_n - 1;
}

/* The exchange the next response answers: the oldest without its final response. */
static inline unsigned resp_index(const struct observer *ob)
{
	unsigned k;

	for (k = 0; k < ob->ob_n; k++)
		if (!(ex_get(ob, k)->ex_flags & EX_RESP_DONE))
			return k;
	return OBS_PIPELINE;
}

/* A side's message is unfinished: a response there cannot be ours any more. */
static inline int in_message(const struct obs_side *s)
{
	return s->os_state != S_START && s->os_state != S_HOLD && s->os_state != S_DONE &&
	    s->os_state != S_LOST;
}

/* ---- observer.c, for the others ---- */

/* The exchange whose request is being read (NULL: none), the one the next response
 * answers (NULL: none). */
struct obs_exchange *obs_req_current(struct observer *ob);
struct obs_exchange *obs_resp_target(struct observer *ob);

/* Stop observing: report what is in flight as incomplete, and tell the ops why. */
void obs_go_opaque(struct observer *ob, enum opaque_reason why);

/* ---- observer_head.c, for the machine ---- */

/* Take one line from p[0..n).  Returns the bytes consumed; *line is set when a whole line
 * is there (without its LF, and without the CR before it), else NULL.  0 consumed with
 * *line NULL means the line is too long. */
size_t obs_take_line(struct obs_side *s, const char *p, size_t n, const char **line,
    size_t *len);

/* A request's or a response's start line, and a header field line, into the side and its
 * exchange.  0: taken; -1: the grammar broken, and the observer has gone opaque. */
int obs_request_line(struct observer *ob, struct obs_side *s, const char *line, size_t len);
int obs_status_line(struct observer *ob, struct obs_side *s, const char *line, size_t len);
int obs_header_line(struct observer *ob, int dir, struct obs_side *s, const char *line,
    size_t len);

#endif
