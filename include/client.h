/* client.h: the subcommands that talk to a running sidemeter through its metrics port, so
 * that they work from either container of the pod and over `kubectl exec`:
 *
 *     sidemeter top [--metrics ADDR] [--once] [--sort rate|p99|errors|name]
 *     sidemeter tap [--metrics ADDR] [--route R] [--method M] [--code C] [--min-ms N]
 *                   [--max-rps N] [--json]
 *
 * ADDR is --metrics, else SIDEMETER_METRICS (a wildcard host such as 0.0.0.0 meaning this
 * machine), else 127.0.0.1:9145. */
#ifndef SIDEMETER_CLIENT_H
#define SIDEMETER_CLIENT_H

#include <stddef.h>

#include "net.h"

/* Is argv[1] a subcommand's name? */
int client_is_subcommand(int argc, char **argv);

/* Run the subcommand argv[1]; returns the exit status (2: bad flags). */
int client_main(int argc, char **argv);

/* ---- shared with top.c ---- */

/* GET path from the metrics port at na, within timeout_ms: the status (or -1 with err
 * naming what failed) and, when one came, the body in *body (malloc'd, NUL-terminated). */
int client_get(const struct net_addr *na, const char *path, int timeout_ms, char **body,
    size_t *n, char *err, size_t errlen);

/* Print s to a terminal safely: control bytes (C0, DEL, C1) as '?'. */
void client_safe(char *s);

enum top_sort { TOP_RATE, TOP_P99, TOP_ERRORS, TOP_NAME };

/* `sidemeter top`: the live view (or once, without escape codes). */
int top_run(const struct net_addr *na, int once, enum top_sort sort);

#endif
