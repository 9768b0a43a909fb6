/* aggregate.h: the master's picture of the traffic, built from the workers' slots: exact
 * counters and request counts summed over slots, and histograms fed by draining every
 * ring.  Routes are numbered per slot by the workers; here they get one global number. */
#ifndef SIDEMETER_AGGREGATE_H
#define SIDEMETER_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hist.h"
#include "metric_table.h"
#include "shm_stats.h"

#define AG_TOTAL 0		/* since start */
#define AG_INTERVAL 1		/* since the interval began (--dump-interval, else 10 s) */
#define AG_TICK 2		/* since the last history point */
#define AG_HISTORY 300		/* history points kept ... */
#define AG_TICK_MS 2000		/* ... one every 2 s: ten minutes */
#define AG_ROUTES (CONFIG_MAX_ROUTES + 1)	/* with "other" at 0 */
#define AG_SLOTS_MAX (2 * CONFIG_MAX_WORKERS + 1)	/* two generations and the keeper */
#define AG_SIZE_BOUNDS 7	/* request/response size buckets: 100 B ... 100 MB */

/* The latest request of a histogram bucket that carried a trace context. */
struct exemplar {
	uint8_t ex_trace[16];			/* trace-id */
	uint8_t ex_span[8];			/* span-id (the traceparent's parent-id) */
	uint64_t ex_value;			/* ns */
	int64_t ex_wall;			/* when, ns since the epoch; 0: none yet */
};

/* OpenTelemetry's advised bounds for http.server.request.duration, in seconds. */
#define AG_OTEL_BOUNDS 14
extern const double aggregate_otel_bounds[AG_OTEL_BOUNDS];

/* One series of http_server_request_duration_seconds (--metric-names otel|both): a route,
 * a method, a status code and an HTTP version. */
#define AG_OTEL_SERIES 2048			/* at most; past it, route "other" */
#define AG_OTEL_KEY(route, http10, method, code) \
	((uint32_t)(route) << 17 | (uint32_t)(http10) << 16 | (uint32_t)(method) << 12 | (uint32_t)(code))
struct otel_series {
	uint32_t os_key;
	struct hist_prom os_h;			/* AG_OTEL_BOUNDS */
	struct exemplar os_ex[AG_OTEL_BOUNDS + 1];
};

/* One route's latency, from the samples the rings carried. */
struct route_agg {
	char ra_name[SHM_ROUTE_LEN];
	struct hist ra_dur[2];			/* exchange duration: since start, interval */
	struct hist_prom ra_dur_prom;
	struct hist_prom ra_app_prom;		/* the application's time to answer */
	struct exemplar *ra_ex;			/* per bucket: [0, n] duration, then app time;
						 * NULL until a traced request came */
	/* the last complete interval */
	uint64_t ra_last_count;			/* exact requests */
	double ra_last_rate;			/* per second */
	uint64_t ra_last_p99;			/* ns, from samples */
	uint64_t ra_count_mark;			/* exact requests when the interval began */
};

/* One point of the recent history (every AG_TICK_MS). */
struct history_point {
	int64_t hp_time;			/* wall clock, seconds */
	double hp_rps;				/* requests answered per second */
	uint64_t hp_p50, hp_p99;		/* exchange duration, ns (0: no samples) */
	uint64_t hp_codes[6];			/* answers by class: [1] 1xx ... [5] 5xx, [0] other */
	double hp_cps;				/* connections ended per second */
};

/* The aggregate's state: aggregate.c's alone.  Renderers read a view of it (below). */
struct aggregate {
	struct shm_header *ag_shm;
	unsigned ag_nslots;		/* slots ever used: only these are read */
	unsigned ag_max_routes;		/* --max-routes */
	unsigned ag_workers_min;	/* the pool's minimum now (TTIN/TTOU move it) */
	unsigned ag_workers_max;	/* --max-workers */
	int ag_listen_fd;		/* for the backlog's length */
	uint64_t ag_records;		/* records drained */
	unsigned ag_nbounds;
	uint64_t ag_bounds[CONFIG_MAX_BUCKETS];	/* --buckets, in ns */
	/* from connection records */
	struct hist ag_connect[2];
	struct hist ag_conn[2];
	struct hist_prom ag_connect_prom;
	struct hist_prom ag_conn_prom;
	/* from request records */
	struct hist ag_req[3];			/* all routes: exchange duration */
	struct hist ag_app[2];			/* all routes: the application's time */
	struct hist_prom ag_req_size;		/* bytes, AG_SIZE_BOUNDS */
	struct hist_prom ag_resp_size;
	unsigned ag_nroutes;
	struct route_agg *ag_routes[AG_ROUTES];
	/* http_server_request_duration_seconds, when --metric-names asks for it */
	int ag_otel;
	uint64_t ag_otel_bounds[AG_OTEL_BOUNDS];	/* ns */
	unsigned ag_notel;
	struct otel_series **ag_otel_series;	/* ag_notel of them, in arrival order */
	uint32_t *ag_otel_index;		/* open addressing: 1 + index, 0: empty */
	uint16_t *ag_route_map;		/* [slot][slot's route] -> 1 + global route, 0: unknown */
	/* the last complete interval, kept for /stats.json */
	double ag_last_secs;		/* its length; 0 before the first */
	struct hist ag_last_req, ag_last_app, ag_last_connect, ag_last_conn;
	int64_t ag_interval_start;
	/* the recent history, for the status page */
	struct history_point ag_history[AG_HISTORY];
	unsigned ag_nhistory;		/* points written, ever */
	int64_t ag_tick_start;
	uint64_t ag_tick_codes[6], ag_tick_conns;
};

extern const uint64_t aggregate_size_bounds[AG_SIZE_BOUNDS];

struct pool_view {
	unsigned pv_state[WORKER_STATE_MAX];	/* workers by state */
	unsigned pv_live;			/* all but FREE */
	unsigned pv_active;			/* connections open: in workers and in the keeper */
	int pv_keeper_pid;			/* 0: no keeper running */
	unsigned pv_held;			/* connections the keeper holds */
};

/* ---- the view: what the renderers read ----
 *
 * aggregate_view() fills one, once per page or summary line; prom.c, statsjson.c and dump.c
 * read only it (and the functions below that compute from it), never the aggregate, shared
 * memory or an atomic.  Its pointers point into the aggregate: valid until the next drain,
 * and a page is rendered between two turns of the master's loop. */
/* Which of a view's percentile histograms (v_pct): since the start, the running interval,
 * the last complete interval. */
enum { PCT_START, PCT_INTERVAL, PCT_LAST, PCT_MAX };

struct agg_view {
	uint64_t v_val[VAL_MAX];		/* enum view_value: counters summed, and the rest */
	uint64_t v_classes[6];			/* answers by class ([0]: other) */
	struct pool_view v_pool;
	int64_t v_started;			/* the master's start, monotonic ns */
	unsigned v_max_parked, v_keeper_slot;
	unsigned v_nbounds;			/* --buckets */
	/* all routes together, by enum view_hist: the buckets (NULL: kept per route, or not
	 * kept), and the percentiles (NULL for the sizes) */
	const struct hist_prom *v_prom[VH_MAX];
	const struct hist *v_pct[VH_MAX][PCT_MAX];
	double v_last_secs;			/* the last complete interval's length; 0: none */
	struct route_agg *const *v_routes;
	unsigned v_nroutes;
	struct otel_series *const *v_otel;
	unsigned v_notel;
	/* the history: v_nhistory points, oldest first, v_history(i) */
	unsigned v_nhistory;
	const struct history_point *v_hist_ring;
	unsigned v_hist_first;
	/* the scoreboard's rows of the slots ever used */
	unsigned v_nslots;
	struct score_row v_rows[AG_SLOTS_MAX];
};

void aggregate_view(struct agg_view *v);

/* A VALUES, SECONDS or REQUESTS row's value, its labels summed; 0 for the others. */
uint64_t view_total(const struct agg_view *v, enum metric_id id);

/* The i-th point of a view's history, oldest first. */
static inline const struct history_point *view_history(const struct agg_view *v, unsigned i)
{
	return &v->v_hist_ring[(v->v_hist_first + i) % AG_HISTORY];
}

/* ---- the master's side ---- */

/* Set up for a region and a configuration. */
void aggregate_init(struct shm_header *sh, const struct config *cf);

/* The listen socket (for the backlog's length); the pool's minimum now (TTIN/TTOU). */
void aggregate_set_listen(int fd);
void aggregate_set_workers_min(unsigned n);

/* Slots ever used: only these are read. */
unsigned aggregate_nslots(void);

/* A summary line was skipped (stdout full): counted in the header, across re-exec. */
void aggregate_note_line_skipped(void);

/* Slot i has (had) a worker: read it from now on. */
void aggregate_use_slot(unsigned slot);

/* Drain every ring into the histograms; returns the records taken. */
size_t aggregate_drain(void);

/* Sum every slot's counters. */
void aggregate_counters(uint64_t ctr[CTR_MAX]);

/* Connections in the listen backlog that no worker has taken yet (0 where not known). */
uint64_t aggregate_listen_queue(void);

/* Every slot's exact request counts, by global route: fn is called once per slot entry, so
 * the same labels may come more than once (from different slots). */
typedef void aggregate_request_fn(void *ctx, unsigned route, unsigned method, unsigned code,
    uint64_t count);
void aggregate_requests(aggregate_request_fn *fn, void *ctx);

/* The name of route local of slot's table. */
const char *aggregate_route_of(unsigned slot, unsigned local);

/* The name of global route r. */
const char *aggregate_route_name(unsigned r);

/* End the interval at now: keep a summary of it, start the next. */
void aggregate_rotate(int64_t now);

/* Add a history point for the time since the last one. */
void aggregate_tick(int64_t now);

/* Exact answers so far, by status class ([1] 1xx ... [5] 5xx, [0] anything else), and the
 * classes' names in every output ("1xx" ... "5xx", "other"). */
extern const char *const aggregate_class_names[6];
void aggregate_classes(uint64_t classes[6]);

/* The scoreboard at a glance. */
void aggregate_pool(struct pool_view *pv);

#endif
