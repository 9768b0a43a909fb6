/* aggregate.h: the master's picture of the traffic, built from the workers' slots: exact
 * counters summed over slots, and histograms fed by draining every ring. */
#ifndef SIDEMETER_AGGREGATE_H
#define SIDEMETER_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hist.h"
#include "metric_table.h"
#include "shm_stats.h"

#define AG_TOTAL 0		/* since start */
#define AG_INTERVAL 1		/* since the last dump */

struct aggregate {
	struct shm_header *ag_shm;
	unsigned ag_nslots;		/* slots ever used: only these are read */
	uint64_t ag_restarts;		/* kept by the master */
	uint64_t ag_records;		/* records drained */
	unsigned ag_nbounds;
	uint64_t ag_bounds[CONFIG_MAX_BUCKETS];	/* --buckets, in ns */
	/* from connection records */
	struct hist ag_connect[2];
	struct hist ag_conn[2];
	struct hist_prom ag_connect_prom;
	struct hist_prom ag_conn_prom;
};

extern struct aggregate agg;

struct pool_view {
	unsigned pv_state[WORKER_STATE_MAX];	/* workers by state */
	unsigned pv_live;			/* all but FREE */
	unsigned pv_active;			/* connections open */
};

/* Set up for a region and a configuration. */
void aggregate_init(struct shm_header *sh, const struct config *cf);

/* Slot i has (had) a worker: read it from now on. */
void aggregate_use_slot(unsigned slot);

/* Drain every ring into the histograms; returns the records taken. */
size_t aggregate_drain(void);

/* Sum every slot's counters. */
void aggregate_counters(uint64_t ctr[CTR_MAX]);

/* A counter or gauge metric summed over its labels, from counters summed by the above. */
uint64_t aggregate_total(enum metric_id id, const uint64_t ctr[CTR_MAX]);

/* A histogram metric's interval histogram (NULL if the metric has none). */
const struct hist *aggregate_interval(enum metric_id id);

/* Start a new interval. */
void aggregate_interval_reset(void);

/* The scoreboard at a glance. */
void aggregate_pool(struct pool_view *pv);

#endif
