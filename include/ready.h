/* ready.h: the readiness probe.  Ready means: not stopping, a worker accepting, and the
 * application accepting a TCP connection (probed at most once a second: /readyz,
 * sidemeter_upstream_up and --exit-when-upstream-down share one probe). */
#ifndef SIDEMETER_READY_H
#define SIDEMETER_READY_H

#include <stddef.h>
#include <stdint.h>

/* From TERM on, not ready. */
void ready_set_stopping(void);
int ready_stopping(void);

/* Does the application accept a TCP connection?  The last answer, or a new probe when the
 * last is a second old. */
int ready_app_up(int64_t now);

/* Ready now?  If not, why[len] says what is missing. */
int ready_check(int64_t now, char *why, size_t len);

#endif
