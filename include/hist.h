/* hist.h: histograms of durations in nanoseconds, two kinds.
 *
 * struct hist is log-linear: 32 sub-buckets per power of two, so any percentile read from
 * it is within 1/64 (1.6%) of a true sample value.  It answers p50/p90/p99/max.
 * struct hist_prom counts against user-chosen bounds (Prometheus "le" buckets, inclusive). */
#ifndef SIDEMETER_HIST_H
#define SIDEMETER_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_MAX_MSB 40			/* values are capped at 2^41 ns (about 36 minutes) */
#define HIST_BUCKETS ((HIST_MAX_MSB - HIST_SUB_BITS + 2) << HIST_SUB_BITS)

struct hist {
	uint64_t h_count;
	uint64_t h_max;			/* largest value added, exact */
	uint16_t h_lo, h_hi;		/* range of buckets in use, so a reset touches no more */
	uint64_t h_b[HIST_BUCKETS];
};

#define HIST_PROM_MAX 41		/* bounds + the +Inf bucket */

struct hist_prom {
	uint64_t hp_count;
	uint64_t hp_sum;		/* in the unit of the values (ns or bytes) */
	uint64_t hp_b[HIST_PROM_MAX];	/* per bucket, not cumulative; last is +Inf */
};

/* Log-linear: add a value, clear, merge, and read a quantile q in [0,1] (0 when empty). */
void hist_add(struct hist *h, uint64_t v);
void hist_reset(struct hist *h);
void hist_merge(struct hist *into, const struct hist *from);
uint64_t hist_quantile(const struct hist *h, double q);

/* Bounds-based: bounds[0..n) increasing; a value equal to a bound falls in its bucket,
 * whose index hist_prom_bucket() gives (n: +Inf). */
void hist_prom_add(struct hist_prom *hp, const uint64_t *bounds, unsigned n, uint64_t v);
unsigned hist_prom_bucket(const uint64_t *bounds, unsigned n, uint64_t v);

#endif
