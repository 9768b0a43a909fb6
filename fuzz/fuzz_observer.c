/* fuzz_observer.c: libFuzzer target over the HTTP observer.
 *
 * An input is a sequence of segments, each a header byte h and up to 128 bytes:
 *   h == 0xff   end of stream, in the direction given by the next byte's low bit
 *   otherwise   (h >> 1) + 1 bytes in direction h & 1 (0: request, 1: response)
 * The segments are fed twice: each segment as its own chunk (copied into a buffer of
 * exactly its size, so any read past a chunk is caught by AddressSanitizer), then with
 * consecutive segments of one direction joined into one chunk.  Both runs must report the
 * same exchanges, in the same order, and every report must be sane. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct report {
	char r_text[65536];
	size_t r_len;
};
static struct report reports[2], *report;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_observer: %s\n", what);
	abort();
}

static void say(const char *s)
{
	size_t n = strlen(s);

	if (report->r_len + n < sizeof(report->r_text)) {
		memcpy(report->r_text + report->r_len, s, n);
		report->r_len += n;
	}
}

static unsigned f_route(void *ctx, const char *t, size_t n)
{
	(void)ctx;
	if (n == 0)
		fail("an empty target");
	return (unsigned)n % 1000;	/* the length stands in for the name */
}

static void f_exchange(void *ctx, const struct obs_exchange *ex, int why)
{
	const struct obs_trace *tr = observer_trace(ctx, ex);
	char line[160];
	unsigned i, zero = 1;

	if (ex->ex_method >= METHOD_MAX || (why >= 0 && why >= INCOMPLETE_MAX))
		fail("a label out of range");
	if (ex->ex_code != 0 && (ex->ex_code < 100 || ex->ex_code > 999))
		fail("a status code out of range");
	if (why < 0 && !(ex->ex_flags & EX_RESP_DONE))
		fail("complete without an answer");
	if (ex->ex_req_end && ex->ex_req_end < ex->ex_req_start)
		fail("a request ending before it began");
	if (ex->ex_resp_end && ex->ex_resp_end < ex->ex_resp_start)
		fail("an answer ending before it began");
	snprintf(line, sizeof(line), "x %u %u %u %llu %llu %d;", ex->ex_method, ex->ex_route,
	    ex->ex_code, (unsigned long long)ex->ex_req_body, (unsigned long long)ex->ex_resp_body,
	    why);
	say(line);
	/* a trace context is a valid one: no all-zero id (and the same however the bytes came) */
	if (tr != NULL) {
		for (i = 0; i < sizeof(tr->tr_trace); i++)
			zero &= tr->tr_trace[i] == 0;
		if (zero)
			fail("an all-zero trace-id kept");
		snprintf(line, sizeof(line), "t %02x%02x%02x;", tr->tr_trace[0], tr->tr_trace[15],
		    tr->tr_span[7]);
		say(line);
	}
}

static void f_opaque(void *ctx, enum opaque_reason why)
{
	char line[32];

	(void)ctx;
	if ((int)why < 0 || why >= OPAQUE_MAX)
		fail("an opaque reason out of range");
	snprintf(line, sizeof(line), "o %d;", (int)why);
	say(line);
}

static void f_tunnel(void *ctx)
{
	(void)ctx;
	say("t;");
}

static const struct obs_ops f_ops = { f_route, f_exchange, f_opaque, f_tunnel };

static void feed_exact(struct observer *ob, int dir, const uint8_t *p, size_t n, int64_t now)
{
	char *copy = malloc(n ? n : 1);
	struct obs_status st;

	if (copy == NULL)
		return;
	memcpy(copy, p, n);
	observer_feed(ob, dir, copy, n, now);
	free(copy);
	observer_status(ob, &st);
	if (st.st_idle && (st.st_head_since || st.st_wait_since || st.st_responding))
		fail("idle and busy at once");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct observer ob;
	size_t i, start;
	int64_t now;
	int run_no;

	for (run_no = 0; run_no < 2; run_no++) {
		report = &reports[run_no];
		report->r_len = 0;
		now = 1;
		observer_init(&ob, &f_ops, &ob);
		for (i = 0; i < size;) {
			uint8_t h = data[i++];
			int dir;
			size_t n;

			if (h == 0xff) {
				if (i < size)
					observer_eof(&ob, data[i++] & 1, now++);
				continue;
			}
			dir = h & 1;
			n = (size_t)(h >> 1) + 1;
			if (n > size - i)
				n = size - i;
			if (run_no == 0) {
				feed_exact(&ob, dir, data + i, n, now++);
				i += n;
				continue;
			}
			/* join this segment with the following ones of the same direction */
			{
				uint8_t *joined = malloc(size);
				size_t len = 0;

				if (joined == NULL)
					return 0;
				start = i;
				for (;;) {
					memcpy(joined + len, data + start, n);
					len += n;
					start += n;
					if (start >= size || data[start] == 0xff || (data[start] & 1) != dir)
						break;
					n = (size_t)(data[start] >> 1) + 1;
					start++;
					if (n > size - start)
						n = size - start;
				}
				feed_exact(&ob, dir, joined, len, now++);
				free(joined);
				i = start;
			}
		}
		observer_finish(&ob, INCOMPLETE_CLIENT_CLOSED, now);
	}
	if (reports[0].r_len != reports[1].r_len ||
	    memcmp(reports[0].r_text, reports[1].r_text, reports[0].r_len) != 0) {
		fprintf(stderr, "split one way:  %.*s\nsplit another: %.*s\n", (int)reports[0].r_len,
		    reports[0].r_text, (int)reports[1].r_len, reports[1].r_text);
		fail("the same bytes cut elsewhere gave another result");
	}
	return 0;
}
