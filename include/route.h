/* route.h: naming requests.  A route is a request path without its query (query values are
 * never stored: they carry tokens), matched against --route patterns, or else with segments
 * that look like identifiers replaced by :id and the depth capped.  Routes are printable
 * ASCII: other bytes are percent-encoded. */
#ifndef SIDEMETER_ROUTE_H
#define SIDEMETER_ROUTE_H

#include <stddef.h>

#include "config.h"
#include "shm_stats.h"

#define ROUTE_DEPTH 6		/* segments kept; deeper paths end in a "*" segment */

/* Name a request-target into out[outlen] (outlen >= SHM_ROUTE_LEN).  Returns the name's
 * length, or 0 when the target has no path to name (authority-form, asterisk-form, ...). */
size_t route_name(const struct config *cf, const char *target, size_t len, char *out,
    size_t outlen);

/* A request-target as the access log shows it, into out[outlen] (NUL-terminated): the path
 * with every segment that looks like a credential shown as U+2026, and the query's keys
 * with every value so ("?token=…&page=…"); no fragment.  Returns its length. */
size_t route_redact(const char *target, size_t len, char *out, size_t outlen);

/* ---- the worker side: routes interned in the worker's slot ---- */

/* Take over a slot's route table (a new occupant finds the names of the last). */
void route_attach(struct shm_slot *sl, unsigned max_routes);

/* The slot's index of a target's route; 0 ("other") when the table is full or the target
 * has no path. */
unsigned route_index(const struct config *cf, const char *target, size_t len);

/* The index of a route already named (by another process: a parked connection's), added to
 * this slot's table if it is new; 0 ("other") when the table is full. */
unsigned route_intern(const char *name);

/* The name of a route index of this slot ("" for "other"). */
const char *route_text(unsigned route);

#endif
