/* hist.c: log-linear and bounds-based histograms (see include/hist.h).
 *
 * The log-linear one is HdrHistogram's idea at its smallest: values below 2^HIST_SUB_BITS
 * have a bucket each, and every power of two above is cut into 2^HIST_SUB_BITS equal
 * buckets, so a quantile is within 1.6% of the true value (half a bucket, a 64th of the
 * octave's start) from a nanosecond to 36 minutes, in a fixed array and with adding
 * as one shift and one increment.  The bounds-based one is Prometheus' (cumulative only
 * when written out), for /metrics.
 *
 * It touches: the histogram it is given. */
#include <string.h>

#include "hist.h"

/* The index of v's highest set bit (v > 0). */
static unsigned msb(uint64_t v)
{
#if defined(__GNUC__)
	return 63u - (unsigned)__builtin_clzll(v);
#else
	unsigned n = 0;

	while (v >>= 1)
		n++;
	return n;
#endif
}

/* Values below 2^5 have a bucket each; above, 32 buckets per power of two. */
static unsigned bucket_of(uint64_t v)
{
	unsigned m;

	/* Past the range: clamped into the last bucket, never an index out of the array.
	 * h_max still has the true value, so the maximum shown is exact. */
	if (v >> (HIST_MAX_MSB + 1))
		v = ((uint64_t)1 << (HIST_MAX_MSB + 1)) - 1;
	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	/* The octave from the top bit, the sub-bucket from the HIST_SUB_BITS bits below it. */
	m = msb(v);
	return ((m - HIST_SUB_BITS + 1) << HIST_SUB_BITS) +
	    (unsigned)((v >> (m - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1));
}

/* The smallest value of bucket b, and its width. */
static uint64_t bucket_low(unsigned b, uint64_t *width)
{
	unsigned octave = b >> HIST_SUB_BITS, sub = b & ((1u << HIST_SUB_BITS) - 1);

	if (octave == 0) {
		*width = 1;
		return sub;
	}
	*width = (uint64_t)1 << (octave - 1);
	return ((uint64_t)((1u << HIST_SUB_BITS) + sub)) << (octave - 1);
}

/* h_lo and h_hi bound the buckets in use, so that a reset and a quantile touch only those
 * (a latency histogram uses a few dozen of its hundreds). */
void hist_add(struct hist *h, uint64_t v)
{
	unsigned b = bucket_of(v);

	if (h->h_count == 0 || b < h->h_lo)
		h->h_lo = (uint16_t)b;
	if (h->h_count == 0 || b > h->h_hi)
		h->h_hi = (uint16_t)b;
	h->h_b[b]++;
	h->h_count++;
	if (v > h->h_max)
		h->h_max = v;
}

void hist_reset(struct hist *h)
{
	if (h->h_count > 0)
		memset(&h->h_b[h->h_lo], 0, (size_t)(h->h_hi - h->h_lo + 1) * sizeof(h->h_b[0]));
	h->h_count = 0;
	h->h_max = 0;
	h->h_lo = h->h_hi = 0;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	unsigned b;

	if (from->h_count == 0)
		return;
	for (b = from->h_lo; b <= from->h_hi; b++)
		into->h_b[b] += from->h_b[b];
	if (into->h_count == 0 || from->h_lo < into->h_lo)
		into->h_lo = from->h_lo;
	if (into->h_count == 0 || from->h_hi > into->h_hi)
		into->h_hi = from->h_hi;
	into->h_count += from->h_count;
	if (from->h_max > into->h_max)
		into->h_max = from->h_max;
}

/* The sample of rank ceil(q * count), reported as the middle of its bucket and never past
 * the largest value seen. */
uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, low, width, v;
	unsigned b;

	if (h->h_count == 0)
		return 0;
	if (q >= 1.0)
		return h->h_max;
	/* ceil without libm; the slack keeps a q * count that is whole in exact arithmetic
	 * (0.99 * 100) from rounding up past it in floating point. */
	rank = (uint64_t)(q * (double)h->h_count + 0.999999);
	if (rank == 0)
		rank = 1;
	for (b = h->h_lo; b <= h->h_hi; b++) {
		seen += h->h_b[b];
		if (seen >= rank)
			break;
	}
	low = bucket_low(b, &width);
	v = low + width / 2;
	return v > h->h_max ? h->h_max : v;
}

unsigned hist_prom_bucket(const uint64_t *bounds, unsigned n, uint64_t v)
{
	unsigned lo = 0, hi = n;

	/* First bound >= v (binary search); n means +Inf. */
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (bounds[mid] >= v)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Buckets are kept per bucket, not cumulative: one increment an add; the page sums them. */
void hist_prom_add(struct hist_prom *hp, const uint64_t *bounds, unsigned n, uint64_t v)
{
	hp->hp_b[hist_prom_bucket(bounds, n, v)]++;
	hp->hp_count++;
	hp->hp_sum += v;
}
