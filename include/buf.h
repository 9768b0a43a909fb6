/* buf.h: a growing buffer for the pages of the metrics port: appends never fail loudly; an
 * allocation that fails, or a page past BUF_MAX, marks the buffer cut (b_failed) and the
 * caller answers 500 instead of a partial page. */
#ifndef SIDEMETER_BUF_H
#define SIDEMETER_BUF_H

#include <stddef.h>

#define BUF_MAX (16u << 20)	/* no page grows past this */

struct buf {
	char *b_data;		/* NUL-terminated while it holds anything */
	size_t b_len, b_cap;
	int b_failed;		/* an allocation failed: the content is cut */
};

void buf_append(struct buf *b, const char *p, size_t n);
void buf_printf(struct buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Release what b holds; b is empty and usable again. */
void buf_free(struct buf *b);

#endif
