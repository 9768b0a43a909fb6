/* labels.c: the label text of every fixed label set in labels.h, and what label text may be.
 * It touches: nothing but constants and the bytes it is given. */
#include <stddef.h>

#include "labels.h"

#define X_TEXT(id, text) text,
#define X_METHOD_TEXT(id) #id,

const char *const close_reason_names[CLOSE_MAX] = { CLOSE_REASONS(X_TEXT) };
const char *const opaque_reason_names[OPAQUE_MAX] = { OPAQUE_REASONS(X_TEXT) };
const char *const upstream_error_names[UPSTREAM_MAX] = { UPSTREAM_ERRORS(X_TEXT) };
const char *const incomplete_reason_names[INCOMPLETE_MAX] = { INCOMPLETE_REASONS(X_TEXT) };
const char *const http_method_names[METHOD_MAX] = { HTTP_METHODS(X_METHOD_TEXT) };
const char *const worker_state_names[WORKER_STATE_MAX] = { WORKER_STATES(X_TEXT) };

size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t need, k;

	if (n == 0)
		return 0;
	need = p[0] < 0x80 ? 0 : (p[0] & 0xe0) == 0xc0 && p[0] >= 0xc2 ? 1 :
	    (p[0] & 0xf0) == 0xe0 ? 2 : (p[0] & 0xf8) == 0xf0 && p[0] <= 0xf4 ? 3 : 4;
	if (need == 4 || need >= n)
		return 0;
	for (k = 1; k <= need; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return need + 1;
}
