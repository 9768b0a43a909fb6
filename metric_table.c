/* metric_table.c: the metric table's rows as data (include/metric_table.h), and the label
 * sets its rows name.
 * It touches: nothing but constants. */
#include <stddef.h>

#include "metric_table.h"

static const char *const accept_names[] = { "emfile", "other" };
static const char *const bound_names[] = { "min", "max" };
static const char *const log_drop_names[] = { "ring", "output" };
static const char *const tap_drop_names[] = { "slow", "max_rps" };

const struct label_set ls_close = { "reason", close_reason_names, CLOSE_MAX };
const struct label_set ls_incomplete = { "reason", incomplete_reason_names, INCOMPLETE_MAX };
const struct label_set ls_opaque = { "reason", opaque_reason_names, OPAQUE_MAX };
const struct label_set ls_upstream = { "reason", upstream_error_names, UPSTREAM_MAX };
const struct label_set ls_accept = { "reason", accept_names, 2 };
/* FREE is an empty slot, not a worker: the states from STARTING on */
const struct label_set ls_worker_state = { "state", worker_state_names + 1,
	WORKER_STATE_MAX - 1 };
const struct label_set ls_bound = { "bound", bound_names, 2 };
const struct label_set ls_log_drop = { "where", log_drop_names, 2 };
const struct label_set ls_tap_drop = { "reason", tap_drop_names, 2 };

/* The runs of slot counters a labelled row reads must be as long as its label set. */
_Static_assert(CTR_ACCEPT_ERROR == CTR_ACCEPT_EMFILE + 1, "accept errors: emfile, other");
_Static_assert(VAL_WORKERS_MIN + 1 == VAL_WORKERS_MAX, "workers limit: min, max");
_Static_assert(VAL_LOG_DROPPED + 1 == VAL_LOG_DROPPED_OUTPUT, "access log drops: ring, output");
_Static_assert(VAL_TAP_DROPPED + 1 == VAL_TAP_DROPPED_RATE, "tap drops: slow, max_rps");

#define X_METRIC_DEF(id, name, type, scope, kind, source, labels, key, shape, help) \
	{ name, MT_##type, SCOPE_##scope, MK_##kind, source, labels, key, shape, help },
const struct metric_def metric_defs[METRIC_MAX] = { METRIC_TABLE(X_METRIC_DEF) };
