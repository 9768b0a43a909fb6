/* hist.c: unit tests of the histograms: percentiles within 1/64 of the exact sample, and
 * Prometheus buckets where a value equal to a bound falls in that bound's bucket. */
#include <string.h>

#include "hist.h"
#include "unit.h"

static struct hist h;
static uint64_t vals[200000];

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t rnd(void)
{
	static uint64_t s = 88172645463325252ull;

	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

static void quantiles(void)
{
	static const double qs[] = { 0.01, 0.5, 0.9, 0.99, 0.999 };
	size_t n = sizeof(vals) / sizeof(vals[0]), i, k;

	for (i = 0; i < n; i++) {
		/* log-uniform from 1 us to about 17 s: what latencies look like */
		unsigned shift = (unsigned)(rnd() % 24);

		vals[i] = 1000 + (rnd() % (1000ull << shift));
		hist_add(&h, vals[i]);
	}
	qsort(vals, n, sizeof(vals[0]), cmp);
	for (k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		size_t rank = (size_t)(qs[k] * (double)n + 0.999999);
		uint64_t exact = vals[rank - 1], est = hist_quantile(&h, qs[k]);
		double err = ((double)est - (double)exact) / (double)exact;

		CHECK(err < 1.0 / 64 && err > -1.0 / 64, "q%.3f: exact %llu, histogram %llu (%.2f%%)",
		    qs[k], (unsigned long long)exact, (unsigned long long)est, err * 100);
	}
	CHECK_EQ_U("max is exact", vals[n - 1], hist_quantile(&h, 1.0));
	CHECK_EQ_U("count", n, h.h_count);

	hist_reset(&h);
	CHECK_EQ_U("empty after reset", 0, hist_quantile(&h, 0.5));
	hist_add(&h, 7);
	CHECK_EQ_U("tiny values are exact", 7, hist_quantile(&h, 0.5));
	hist_add(&h, (uint64_t)1 << 50);
	CHECK_EQ_U("huge values are capped, max exact", (uint64_t)1 << 50, hist_quantile(&h, 1.0));
}

static void prom(void)
{
	static const uint64_t bounds[] = { 100, 250, 1000 };
	struct hist_prom hp;

	memset(&hp, 0, sizeof(hp));
	hist_prom_add(&hp, bounds, 3, 100);	/* equal to a bound: that bucket */
	hist_prom_add(&hp, bounds, 3, 101);
	hist_prom_add(&hp, bounds, 3, 250);
	hist_prom_add(&hp, bounds, 3, 0);
	hist_prom_add(&hp, bounds, 3, 1001);	/* past the last bound: +Inf */
	CHECK_EQ_U("le=100", 2, hp.hp_b[0]);
	CHECK_EQ_U("le=250", 2, hp.hp_b[1]);
	CHECK_EQ_U("le=1000", 0, hp.hp_b[2]);
	CHECK_EQ_U("+Inf", 1, hp.hp_b[3]);
	CHECK_EQ_U("count", 5, hp.hp_count);
	CHECK_EQ_U("sum", 100 + 101 + 250 + 0 + 1001, hp.hp_sum);
}

int main(void)
{
	quantiles();
	prom();
	return unit_done("hist");
}
