/* labels.c: the label text of every fixed label set in labels.h. */
#include "labels.h"

#define X_TEXT(id, text) text,
#define X_METHOD_TEXT(id) #id,

const char *const close_reason_names[CLOSE_MAX] = { CLOSE_REASONS(X_TEXT) };
const char *const opaque_reason_names[OPAQUE_MAX] = { OPAQUE_REASONS(X_TEXT) };
const char *const upstream_error_names[UPSTREAM_MAX] = { UPSTREAM_ERRORS(X_TEXT) };
const char *const incomplete_reason_names[INCOMPLETE_MAX] = { INCOMPLETE_REASONS(X_TEXT) };
const char *const http_method_names[METHOD_MAX] = { HTTP_METHODS(X_METHOD_TEXT) };
const char *const worker_state_names[WORKER_STATE_MAX] = { WORKER_STATES(X_TEXT) };
