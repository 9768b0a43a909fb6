/* aggregate.c: the master's aggregation: drains the rings into histograms and sums the
 * exact counters of every slot.  Only the master runs this code. */
#include <string.h>

#include "aggregate.h"
#include "clock.h"

#define X_METRIC_DEF(id, name, type, key, shape, help) { name, MT_##type, key, DUMP_##shape, help },
const struct metric_def metric_defs[METRIC_MAX] = { METRIC_TABLE(X_METRIC_DEF) };

struct aggregate agg;

void aggregate_init(struct shm_header *sh, const struct config *cf)
{
	unsigned i;

	memset(&agg, 0, sizeof(agg));
	agg.ag_shm = sh;
	agg.ag_nbounds = cf->cf_nbuckets;
	for (i = 0; i < cf->cf_nbuckets; i++)
		agg.ag_bounds[i] = (uint64_t)(cf->cf_buckets[i] * 1e9 + 0.5);
}

void aggregate_use_slot(unsigned slot)
{
	if (slot + 1 > agg.ag_nslots)
		agg.ag_nslots = slot + 1;
}

static uint64_t span(int64_t from, int64_t to)
{
	return from > 0 && to > from ? (uint64_t)(to - from) : 0;
}

static void add_both(struct hist h[2], struct hist_prom *hp, uint64_t v)
{
	hist_add(&h[AG_TOTAL], v);
	hist_add(&h[AG_INTERVAL], v);
	hist_prom_add(hp, agg.ag_bounds, agg.ag_nbounds, v);
}

static void take(void *ctx, unsigned slot, const struct shm_record *r)
{
	(void)ctx;
	(void)slot;
	agg.ag_records++;
	if (r->r_kind == REC_CONN) {
		if (r->r_mid > 0)
			add_both(agg.ag_connect, &agg.ag_connect_prom, span(r->r_start, r->r_mid));
		add_both(agg.ag_conn, &agg.ag_conn_prom, span(r->r_start, r->r_end));
	}
}

size_t aggregate_drain(void)
{
	size_t n = 0;
	unsigned i;

	for (i = 0; i < agg.ag_nslots; i++)
		n += shm_stats_drain(shm_stats_slot(agg.ag_shm, i), i, take, NULL);
	return n;
}

void aggregate_counters(uint64_t ctr[CTR_MAX])
{
	unsigned i, c;

	memset(ctr, 0, sizeof(uint64_t) * CTR_MAX);
	for (i = 0; i < agg.ag_nslots; i++) {
		const struct shm_slot *sl = shm_stats_slot(agg.ag_shm, i);

		for (c = 0; c < CTR_MAX; c++)
			ctr[c] += shm_stats_get(sl, (enum shm_counter)c);
	}
}

static uint64_t sum(const uint64_t *ctr, unsigned first, unsigned n)
{
	uint64_t s = 0;

	while (n--)
		s += ctr[first++];
	return s;
}

void aggregate_pool(struct pool_view *pv)
{
	unsigned i;

	memset(pv, 0, sizeof(*pv));
	for (i = 0; i < agg.ag_nslots; i++) {
		const struct shm_scoreboard *sb = &shm_stats_slot(agg.ag_shm, i)->sl_sb;
		unsigned st = atomic_load_explicit(&sb->sb_state, memory_order_relaxed);

		if (st >= WORKER_STATE_MAX)
			continue;
		pv->pv_state[st]++;
		if (st != WORKER_FREE)
			pv->pv_live++;
		if (st != WORKER_FREE && atomic_load_explicit(&sb->sb_conn_start, memory_order_relaxed))
			pv->pv_active++;
	}
}

uint64_t aggregate_total(enum metric_id id, const uint64_t ctr[CTR_MAX])
{
	struct pool_view pv;

	switch (id) {
	case METRIC_CONNECTIONS:
		return sum(ctr, CTR_CLOSE, CLOSE_MAX);
	case METRIC_CONNECTIONS_ACTIVE:
		aggregate_pool(&pv);
		return pv.pv_active;
	case METRIC_RECEIVED_BYTES:
		return ctr[CTR_BYTES_IN];
	case METRIC_SENT_BYTES:
		return ctr[CTR_BYTES_OUT];
	case METRIC_UPSTREAM_ERRORS:
		return sum(ctr, CTR_UPSTREAM, UPSTREAM_MAX);
	case METRIC_ACCEPT_ERRORS:
		return ctr[CTR_ACCEPT_EMFILE] + ctr[CTR_ACCEPT_ERROR];
	case METRIC_WORKERS:
		aggregate_pool(&pv);
		return pv.pv_live;
	case METRIC_WORKER_RESTARTS:
		return agg.ag_restarts;
	case METRIC_RING_DROPPED:
		return ctr[CTR_RING_DROPPED];
	default:
		return 0;
	}
}

const struct hist *aggregate_interval(enum metric_id id)
{
	switch (id) {
	case METRIC_CONNECT_DURATION:
		return &agg.ag_connect[AG_INTERVAL];
	case METRIC_CONNECTION_DURATION:
		return &agg.ag_conn[AG_INTERVAL];
	default:
		return NULL;
	}
}

void aggregate_interval_reset(void)
{
	hist_reset(&agg.ag_connect[AG_INTERVAL]);
	hist_reset(&agg.ag_conn[AG_INTERVAL]);
}
