/* render.h: the pages of the metrics port that carry figures, rendered from the aggregate
 * when asked for: /metrics (prom.c) and /stats.json (statsjson.c). */
#ifndef SIDEMETER_RENDER_H
#define SIDEMETER_RENDER_H

#include "buf.h"

/* Once, before the first page: the bucket bounds as text, the start as the epoch. */
void render_init(void);

/* The Prometheus text format 0.0.4, or OpenMetrics 1.0 when openmetrics. */
void render_prometheus(struct buf *b, int openmetrics);

void render_stats(struct buf *b);

#endif
