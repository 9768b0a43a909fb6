/* buf.c: the growing buffer of the metrics port's pages (contract in include/buf.h).
 * It touches nothing but the buffer it is given. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* A failure is sticky: once an append could not get memory (or the page passed BUF_MAX),
 * every later one is dropped, and the responder answers 500 rather than a page with a hole
 * in the middle that a scraper would take for the truth. */
void buf_append(struct buf *b, const char *p, size_t n)
{
	if (b->b_failed)
		return;
	if (b->b_len + n + 1 > b->b_cap) {
		/* Doubling: a page of N bytes costs O(N) copies in all.  16 KiB holds a small
		 * page whole. */
		size_t cap = b->b_cap ? b->b_cap : 16384;
		char *nd;

		while (cap < b->b_len + n + 1)
			cap *= 2;
		nd = cap > BUF_MAX ? NULL : realloc(b->b_data, cap);
		if (nd == NULL) {
			b->b_failed = 1;
			return;
		}
		b->b_data = nd;
		b->b_cap = cap;
	}
	memcpy(b->b_data + b->b_len, p, n);
	b->b_len += n;
	b->b_data[b->b_len] = '\0';	/* always a string, as the renderers use it */
}

/* Formatted into a stack buffer first, as nearly every line fits; a longer one (a label
 * value near its limit) is formatted again into an allocation of its exact size. */
void buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		buf_append(b, small, (size_t)n);
		return;
	}
	{
		char *big = malloc((size_t)n + 1);

		if (big == NULL) {
			b->b_failed = 1;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		buf_append(b, big, (size_t)n);
		free(big);
	}
}

void buf_free(struct buf *b)
{
	free(b->b_data);
	memset(b, 0, sizeof(*b));
}
