/* aggregate.c: the master's aggregation: drains the rings into histograms, sums the exact
 * counters of every slot, and gives the routes the workers named one global number, capped
 * at --max-routes (the rest are "other").  Only the master runs this code.
 *
 * It touches: the slots' rings (as their only reader: it moves their tails), counters,
 * route tables and scoreboard rows (read-only); its own state, which the renderers read. */
#if defined(__linux__)
#define _GNU_SOURCE		/* struct tcp_info */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#endif

#include "aggregate.h"
#include "clock.h"
#include "log.h"

const uint64_t aggregate_size_bounds[AG_SIZE_BOUNDS] = {
	100, 1000, 10000, 100000, 1000000, 10000000, 100000000
};

const double aggregate_otel_bounds[AG_OTEL_BOUNDS] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10
};

#define OTEL_INDEX_CAP (2 * AG_OTEL_SERIES)	/* a power of two, half full at most */

/* The one aggregate of the master.  Only this file reads or writes it: the renderers get a
 * view (aggregate_view()), server.c sets what it owns through aggregate_set_*(). */
static struct aggregate agg;

/* A route's histograms live on the heap, made when its name is first seen: most of the
 * --max-routes entries are never used, and a route_agg with its histograms is a few KiB. */
static struct route_agg *route_new(const char *name)
{
	struct route_agg *ra = calloc(1, sizeof(*ra));

	if (ra == NULL)
		fatal("calloc");
	snprintf(ra->ra_name, sizeof(ra->ra_name), "%s", name);
	return ra;
}

void aggregate_init(struct shm_header *sh, const struct config *cf)
{
	unsigned i;

	memset(&agg, 0, sizeof(agg));
	agg.ag_shm = sh;
	agg.ag_max_routes = cf->cf_max_routes;
	agg.ag_workers_min = cf->cf_workers;
	agg.ag_workers_max = cf->cf_max_workers;
	agg.ag_listen_fd = -1;
	agg.ag_nbounds = cf->cf_nbuckets;
	/* Records carry nanoseconds; the bounds are compared in the same unit, rounded to the
	 * nearest so that a bound of 0.1 s holds a sample of exactly 100 ms. */
	for (i = 0; i < cf->cf_nbuckets; i++)
		agg.ag_bounds[i] = (uint64_t)(cf->cf_buckets[i] * 1e9 + 0.5);
	/* Pages of the map are touched only for slots and routes in use. */
	agg.ag_route_map = calloc((size_t)sh->sh_nslots * SHM_ROUTES, sizeof(uint16_t));
	if (agg.ag_route_map == NULL)
		fatal("calloc");
	if (cf->cf_metric_names != NAMES_SIDEMETER) {
		agg.ag_otel = 1;
		for (i = 0; i < AG_OTEL_BOUNDS; i++)
			agg.ag_otel_bounds[i] = (uint64_t)(aggregate_otel_bounds[i] * 1e9 + 0.5);
		agg.ag_otel_series = calloc(AG_OTEL_SERIES, sizeof(*agg.ag_otel_series));
		agg.ag_otel_index = calloc(OTEL_INDEX_CAP, sizeof(*agg.ag_otel_index));
		if (agg.ag_otel_series == NULL || agg.ag_otel_index == NULL)
			fatal("calloc");
	}
	/* Global route 0 is "other" from the start, as local route 0 is in every slot: what has
	 * no name, or no room, is counted there and never lost. */
	agg.ag_routes[SHM_ROUTE_OTHER] = route_new("other");
	agg.ag_nroutes = 1;
	agg.ag_interval_start = agg.ag_tick_start = clock_mono_ns();
}

/* Slots are read up to the highest ever used, not only the live ones: a slot whose worker
 * left still holds counters that belong to the totals, and a ring the master has not yet
 * drained. */
void aggregate_use_slot(unsigned slot)
{
	if (slot + 1 > agg.ag_nslots)
		agg.ag_nslots = slot + 1;
}

/* ---- routes ---- */

/* The global number of a slot's route.  A name seen first is added while there is room;
 * past --max-routes it is "other", for good. */
static unsigned global_route(unsigned slot, unsigned local)
{
	uint16_t *m;
	const struct shm_slot *sl;
	unsigned r;

	if (local == SHM_ROUTE_OTHER || local >= SHM_ROUTES)
		return SHM_ROUTE_OTHER;
	/* The map is the fast path: after a route's first record, a lookup is one load.  A
	 * slot's local numbers never change: a worker that takes a slot over keeps the table it
	 * finds there (route_attach), so an entry stays true for the region's life. */
	m = &agg.ag_route_map[(size_t)slot * SHM_ROUTES + local];
	if (*m)
		return *m - 1u;
	sl = shm_stats_slot(agg.ag_shm, slot);
	if (local >= atomic_load_explicit(&sl->sl_nroutes, memory_order_acquire))
		/* A record ahead of its slot's table: a worker's bug, but the master does not die
		 * of a worker's mistake (no ASSERT here); the request counts as "other". */
		return SHM_ROUTE_OTHER;
	/* A linear search by name, once per slot and route: the same route named by two
	 * workers must be one series, whatever order they met it in. */
	for (r = 1; r < agg.ag_nroutes; r++)
		if (strcmp(agg.ag_routes[r]->ra_name, sl->sl_routes[local]) == 0)
			break;
	if (r == agg.ag_nroutes) {
		if (agg.ag_nroutes > agg.ag_max_routes)
			r = SHM_ROUTE_OTHER;
		else
			agg.ag_routes[agg.ag_nroutes++] = route_new(sl->sl_routes[local]);
	}
	*m = (uint16_t)(r + 1);
	return r;
}

const char *aggregate_route_of(unsigned slot, unsigned local)
{
	return aggregate_route_name(global_route(slot, local));
}

const char *aggregate_route_name(unsigned r)
{
	return r < agg.ag_nroutes ? agg.ag_routes[r]->ra_name : "other";
}

/* ---- draining ---- */

/* A duration from two monotonic stamps; 0 when one is missing (0) or they are out of
 * order, so that a record a worker could not complete never makes a negative sample. */
static uint64_t span(int64_t from, int64_t to)
{
	return from > 0 && to > from ? (uint64_t)(to - from) : 0;
}

/* Percentiles are kept twice: since the start (for /stats.json) and for the interval (the
 * summary line), which aggregate_rotate() empties. */
static void add_both(struct hist h[2], uint64_t v)
{
	hist_add(&h[AG_TOTAL], v);
	hist_add(&h[AG_INTERVAL], v);
}

/* The series of a key, made when first seen; past AG_OTEL_SERIES the route is "other",
 * and NULL only if even that series has no room (or no memory). */
static struct otel_series *otel_series(uint32_t key)
{
	/* Open addressing, Knuth's multiplicative hash: the keys are small packed integers,
	 * and the table is never more than half full (AG_OTEL_SERIES of OTEL_INDEX_CAP), so
	 * probes stay short and an empty slot always ends the search. */
	uint32_t h = (key * 2654435761u) & (OTEL_INDEX_CAP - 1);
	struct otel_series *os;

	for (;; h = (h + 1) & (OTEL_INDEX_CAP - 1)) {
		uint32_t at = agg.ag_otel_index[h];

		if (at == 0)
			break;
		if (agg.ag_otel_series[at - 1]->os_key == key)
			return agg.ag_otel_series[at - 1];
	}
	/* Full: the request still counts, under its method, code and version but route
	 * "other", so that a flood of routes cannot grow the page without bound. */
	if (agg.ag_notel == AG_OTEL_SERIES) {
		uint32_t other = key & ((1u << 17) - 1);	/* route 0: "other" */

		return key == other ? NULL : otel_series(other);
	}
	os = calloc(1, sizeof(*os));
	if (os == NULL)
		return NULL;
	os->os_key = key;
	agg.ag_otel_series[agg.ag_notel++] = os;
	agg.ag_otel_index[h] = agg.ag_notel;
	return os;
}

/* A request's or exemplar's OpenTelemetry series (NULL: none kept, or no room). */
static struct otel_series *otel_of(unsigned slot, const struct shm_record *r)
{
	if (!agg.ag_otel)
		return NULL;
	return otel_series(AG_OTEL_KEY(global_route(slot, r->r_route),
	    (r->r_flags & REC_HTTP10) != 0, r->r_method, r->r_code));
}

/* A request's sample into every histogram that wants it.  The exact count of the request
 * is not here: it is in the slot's request table, which the worker updated before it wrote
 * the record, so a record dropped from a full ring costs a sample, never a count. */
static void take_request(unsigned slot, const struct shm_record *r)
{
	struct otel_series *os;
	struct route_agg *ra;
	uint64_t dur;

	if (r->r_reason != REC_NONE || r->r_end == 0)
		return;		/* cut short: counted, but it has no duration */
	ra = agg.ag_routes[global_route(slot, r->r_route)];
	dur = span(r->r_start, r->r_end);
	add_both(agg.ag_req, dur);
	hist_add(&agg.ag_req[AG_TICK], dur);
	add_both(ra->ra_dur, dur);
	hist_prom_add(&ra->ra_dur_prom, agg.ag_bounds, agg.ag_nbounds, dur);
	/* The application's time: from the request's end to the answer's start.  An answer
	 * that came before the request ended took no waiting; ours took none of the app's. */
	if (!(r->r_flags & REC_ANSWERED) && r->r_mid > 0 && r->r_first > 0) {
		uint64_t app = span(r->r_mid, r->r_first);

		add_both(agg.ag_app, app);
		hist_prom_add(&ra->ra_app_prom, agg.ag_bounds, agg.ag_nbounds, app);
	}
	if ((os = otel_of(slot, r)) != NULL)
		hist_prom_add(&os->os_h, agg.ag_otel_bounds, AG_OTEL_BOUNDS, dur);
	hist_prom_add(&agg.ag_req_size, aggregate_size_bounds, AG_SIZE_BOUNDS, r->r_bytes_in);
	hist_prom_add(&agg.ag_resp_size, aggregate_size_bounds, AG_SIZE_BOUNDS, r->r_bytes_out);
}

/* The latest traced request of a bucket replaces the one before: an exemplar shows a
 * recent request of that latency, not the first one ever seen. */
static void exemplar_set(struct exemplar *e, const struct shm_record *r, uint64_t value)
{
	memcpy(e->ex_trace, r->r_trace, sizeof(e->ex_trace));
	memcpy(e->ex_span, r->r_span, sizeof(e->ex_span));
	e->ex_value = value;
	e->ex_wall = r->r_wall;
}

/* A traced request: the latest exemplar of its buckets, in its route's histograms and in
 * its OpenTelemetry series. */
static void take_exemplar(unsigned slot, const struct shm_record *r)
{
	struct route_agg *ra = agg.ag_routes[global_route(slot, r->r_route)];
	unsigned n = agg.ag_nbounds + 1;
	struct otel_series *os;

	/* Made on the first traced request: most routes are never traced, and the array is
	 * two histograms' worth of 40-byte exemplars. */
	if (ra->ra_ex == NULL && (ra->ra_ex = calloc(2 * n, sizeof(*ra->ra_ex))) == NULL)
		return;
	exemplar_set(&ra->ra_ex[hist_prom_bucket(agg.ag_bounds, agg.ag_nbounds, r->r_value)], r,
	    r->r_value);
	if (r->r_app > 0)
		exemplar_set(&ra->ra_ex[n + hist_prom_bucket(agg.ag_bounds, agg.ag_nbounds, r->r_app)], r,
		    r->r_app);
	if ((os = otel_of(slot, r)) != NULL)
		exemplar_set(&os->os_ex[hist_prom_bucket(agg.ag_otel_bounds, AG_OTEL_BOUNDS,
		    r->r_value)], r, r->r_value);
}

/* One record of a ring, whatever its kind.  Connection records carry the connect time
 * (start to mid) and the lifetime (start to end); a connection that never reached the
 * application has no mid and only its lifetime counts. */
static void take(void *ctx, unsigned slot, const struct shm_record *r)
{
	(void)ctx;
	agg.ag_records++;
	if (r->r_kind == REC_CONN) {
		if (r->r_mid > 0) {
			uint64_t v = span(r->r_start, r->r_mid);

			add_both(agg.ag_connect, v);
			hist_prom_add(&agg.ag_connect_prom, agg.ag_bounds, agg.ag_nbounds, v);
		}
		add_both(agg.ag_conn, span(r->r_start, r->r_end));
		hist_prom_add(&agg.ag_conn_prom, agg.ag_bounds, agg.ag_nbounds,
		    span(r->r_start, r->r_end));
	} else if (r->r_kind == REC_REQUEST) {
		take_request(slot, r);
	} else if (r->r_kind == REC_EXEMPLAR) {
		take_exemplar(slot, r);
	}
}

/* The one drain, from the master's loop (server.c).  Each ring has one reader, the master,
 * so draining needs no lock: shm_stats_drain() moves the tail after it has read. */
size_t aggregate_drain(void)
{
	size_t n = 0;
	unsigned i;

	for (i = 0; i < agg.ag_nslots; i++)
		n += shm_stats_drain(shm_stats_slot(agg.ag_shm, i), i, take, NULL);
	return n;
}

/* ---- counters ---- */

/* Counters are summed over every slot ever used on each read, never kept here: a slot's
 * counters only grow (a worker that dies leaves its slot's counts behind for the next), so
 * the sum is the exact total since the region was made, across HUP and USR2 alike. */
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

void aggregate_requests(aggregate_request_fn *fn, void *ctx)
{
	unsigned i, k, n;

	for (i = 0; i < agg.ag_nslots; i++) {
		const struct shm_slot *sl = shm_stats_slot(agg.ag_shm, i);

		/* Acquire pairs with the worker's release of sl_nreq: an entry counted in n has
		 * its key written.  Its count is read relaxed, as a monotonic value may be. */
		n = atomic_load_explicit(&sl->sl_nreq, memory_order_acquire);
		for (k = 0; k < n; k++) {
			uint32_t key = atomic_load_explicit(&sl->sl_req[k].rq_key, memory_order_relaxed);
			uint64_t count = atomic_load_explicit(&sl->sl_req[k].rq_count, memory_order_relaxed);

			fn(ctx, global_route(i, SHM_REQ_ROUTE(key)), SHM_REQ_METHOD(key),
			    SHM_REQ_CODE(key), count);
		}
	}
}

static uint64_t sum(const uint64_t *ctr, unsigned first, unsigned n)
{
	uint64_t s = 0;

	while (n--)
		s += ctr[first++];
	return s;
}

void aggregate_set_listen(int fd)
{
	agg.ag_listen_fd = fd;
}

void aggregate_set_workers_min(unsigned n)
{
	agg.ag_workers_min = n;
}

unsigned aggregate_nslots(void)
{
	return agg.ag_nslots;
}

void aggregate_note_line_skipped(void)
{
	agg.ag_shm->sh_lines_skipped++;
}

/* A histogram kept since the start and for the interval ([0], [1]), and its last interval. */
static void pct(struct agg_view *v, enum view_hist h, const struct hist *kept,
    const struct hist *last)
{
	v->v_pct[h][PCT_START] = &kept[AG_TOTAL];
	v->v_pct[h][PCT_INTERVAL] = &kept[AG_INTERVAL];
	v->v_pct[h][PCT_LAST] = last;
}

/* The view is built whole before a renderer writes a byte, so that one page or line reads
 * one moment: totals and their labelled parts, classes and requests, all from the same
 * pass over the slots. */
void aggregate_view(struct agg_view *v)
{
	struct shm_header *sh = agg.ag_shm;
	uint64_t *val = v->v_val;
	unsigned i, n = agg.ag_nhistory < AG_HISTORY ? agg.ag_nhistory : AG_HISTORY;

	memset(val, 0, sizeof(v->v_val));
	aggregate_counters(val);
	aggregate_classes(v->v_classes);
	aggregate_pool(&v->v_pool);
	val[VAL_ACTIVE] = v->v_pool.pv_active;
	for (i = 0; i < 6; i++)
		val[VAL_REQUESTS] += v->v_classes[i];
	val[VAL_REQUESTS] += val[CTR_REQ_UNCLASSIFIED];
	val[VAL_QUEUE] = aggregate_listen_queue();
	val[VAL_PARKED] = v->v_pool.pv_held;
	val[VAL_RESTARTS] = sh->sh_restarts;
	val[VAL_QUIT] = sh->sh_quit_requests;
	val[VAL_DOWN_EXITS] = sh->sh_upstream_down_exits;
	val[VAL_LINES_SKIPPED] = sh->sh_lines_skipped;
	for (i = WORKER_FREE + 1; i < WORKER_STATE_MAX; i++)
		val[VAL_WORKERS + i - 1] = v->v_pool.pv_state[i];
	val[VAL_WORKERS_MIN] = agg.ag_workers_min;
	val[VAL_WORKERS_MAX] = agg.ag_workers_max;
	val[VAL_LOG_DROPPED] = val[CTR_LOG_DROPPED];

	v->v_started = sh->sh_started;
	v->v_max_parked = sh->sh_max_parked;
	v->v_keeper_slot = sh->sh_keeper_slot;
	v->v_nbounds = agg.ag_nbounds;
	memset(v->v_prom, 0, sizeof(v->v_prom));
	memset(v->v_pct, 0, sizeof(v->v_pct));
	v->v_prom[VH_CONNECT] = &agg.ag_connect_prom;
	v->v_prom[VH_CONN] = &agg.ag_conn_prom;
	v->v_prom[VH_REQUEST_SIZE] = &agg.ag_req_size;
	v->v_prom[VH_RESPONSE_SIZE] = &agg.ag_resp_size;
	pct(v, VH_CONNECT, agg.ag_connect, &agg.ag_last_connect);
	pct(v, VH_CONN, agg.ag_conn, &agg.ag_last_conn);
	pct(v, VH_REQUEST, agg.ag_req, &agg.ag_last_req);
	pct(v, VH_APP, agg.ag_app, &agg.ag_last_app);
	v->v_last_secs = agg.ag_last_secs;
	v->v_routes = agg.ag_routes;
	v->v_nroutes = agg.ag_nroutes;
	v->v_otel = agg.ag_otel_series;
	v->v_notel = agg.ag_notel;
	v->v_nhistory = n;
	v->v_hist_ring = agg.ag_history;
	v->v_hist_first = (agg.ag_nhistory - n) % AG_HISTORY;
	v->v_nslots = agg.ag_nslots;
	for (i = 0; i < agg.ag_nslots && i < sizeof(v->v_rows) / sizeof(v->v_rows[0]); i++)
		score_read(shm_stats_slot(sh, i), &v->v_rows[i]);
}

uint64_t view_total(const struct agg_view *v, enum metric_id id)
{
	const struct metric_def *md = &metric_defs[id];
	unsigned i, n = metric_nvalues(md);
	uint64_t s = 0;

	if (md->md_kind == MK_REQUESTS)
		return v->v_val[md->md_source];
	if (md->md_kind != MK_VALUES && md->md_kind != MK_SECONDS)
		return 0;
	ASSERT(md->md_source + n <= VAL_MAX);
	for (i = 0; i < n; i++)
		s += v->v_val[md->md_source + i];
	return s;
}

/* The pool as the scoreboard shows it.  A connection is active once: a worker's while its
 * row has a connection start, the keeper's in sh_held (a parked pair is not in any worker's
 * row), which is why sidemeter_connections_active equals open client sockets. */
void aggregate_pool(struct pool_view *pv)
{
	unsigned i;

	memset(pv, 0, sizeof(*pv));
	for (i = 0; i < agg.ag_nslots; i++) {
		const struct shm_slot *sl = shm_stats_slot(agg.ag_shm, i);
		enum worker_state st = score_state(sl);

		if (i == agg.ag_shm->sh_keeper_slot) {
			pv->pv_keeper_pid = score_pid(sl);
			pv->pv_held = atomic_load_explicit(&agg.ag_shm->sh_held, memory_order_relaxed);
			pv->pv_active += pv->pv_held;
			continue;	/* not a worker */
		}
		pv->pv_state[st]++;
		if (st != WORKER_FREE)
			pv->pv_live++;
		if (st != WORKER_FREE && score_conn_start(sl))
			pv->pv_active++;
	}
}

/* Connections accepted by the kernel that no worker has taken yet.  Linux tells it for a
 * listening socket in TCP_INFO's tcpi_unacked; elsewhere it is not known (0). */
uint64_t aggregate_listen_queue(void)
{
#if defined(__linux__) && defined(TCP_INFO)
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (agg.ag_listen_fd >= 0 &&
	    getsockopt(agg.ag_listen_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
		return ti.tcpi_unacked;
#endif
	return 0;
}

/* 1xx ... 5xx by the code's first digit; any other three digits (600-999) are "other". */
static void count_class(void *ctx, unsigned route, unsigned method, unsigned code, uint64_t n)
{
	unsigned c = code / 100;

	(void)route;
	(void)method;
	((uint64_t *)ctx)[c >= 1 && c <= 5 ? c : 0] += n;
}

const char *const aggregate_class_names[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };

void aggregate_classes(uint64_t classes[6])
{
	memset(classes, 0, 6 * sizeof(classes[0]));
	aggregate_requests(count_class, classes);
}

static void count_route(void *ctx, unsigned route, unsigned method, unsigned code, uint64_t n)
{
	(void)method;
	(void)code;
	((uint64_t *)ctx)[route] += n;
}

/* The end of an interval (the summary line's, or 10 s without one).  Each route's last
 * interval is kept from the exact counts (requests) and the samples (its p99); the interval
 * histograms start empty, the since-start ones go on. */
void aggregate_rotate(int64_t now)
{
	static uint64_t by_route[AG_ROUTES];
	double secs = (double)(now - agg.ag_interval_start) / 1e9;
	unsigned r;

	if (secs <= 0)
		secs = 1e-9;	/* two ends in one nanosecond: no division by zero */
	memset(by_route, 0, sizeof(by_route));
	aggregate_requests(count_route, by_route);
	for (r = 0; r < agg.ag_nroutes; r++) {
		struct route_agg *ra = agg.ag_routes[r];

		ra->ra_last_count = by_route[r] - ra->ra_count_mark;
		ra->ra_count_mark = by_route[r];
		ra->ra_last_rate = (double)ra->ra_last_count / secs;
		ra->ra_last_p99 = hist_quantile(&ra->ra_dur[AG_INTERVAL], 0.99);
		hist_reset(&ra->ra_dur[AG_INTERVAL]);
	}
	agg.ag_last_req = agg.ag_req[AG_INTERVAL];
	agg.ag_last_app = agg.ag_app[AG_INTERVAL];
	agg.ag_last_connect = agg.ag_connect[AG_INTERVAL];
	agg.ag_last_conn = agg.ag_conn[AG_INTERVAL];
	agg.ag_last_secs = secs;
	agg.ag_interval_start = now;
	hist_reset(&agg.ag_connect[AG_INTERVAL]);
	hist_reset(&agg.ag_conn[AG_INTERVAL]);
	hist_reset(&agg.ag_req[AG_INTERVAL]);
	hist_reset(&agg.ag_app[AG_INTERVAL]);
}

/* A history point every AG_TICK_MS for the status page: rates from the exact counts
 * (their increase since the last point), p50/p99 from the tick's own histogram.  The ring
 * keeps the last AG_HISTORY points, ten minutes. */
void aggregate_tick(int64_t now)
{
	struct history_point *hp = &agg.ag_history[agg.ag_nhistory % AG_HISTORY];
	double secs = (double)(now - agg.ag_tick_start) / 1e9;
	uint64_t codes[6], ctr[CTR_MAX], conns, reqs = 0;
	struct timespec ts;
	unsigned c;

	if (secs <= 0)
		secs = 1e-9;
	aggregate_classes(codes);
	aggregate_counters(ctr);
	conns = sum(ctr, CTR_CLOSE, CLOSE_MAX);
	clock_gettime(CLOCK_REALTIME, &ts);
	hp->hp_time = ts.tv_sec;
	for (c = 0; c < 6; c++) {
		hp->hp_codes[c] = codes[c] - agg.ag_tick_codes[c];
		reqs += hp->hp_codes[c];
		agg.ag_tick_codes[c] = codes[c];
	}
	hp->hp_rps = (double)reqs / secs;
	hp->hp_cps = (double)(conns - agg.ag_tick_conns) / secs;
	agg.ag_tick_conns = conns;
	hp->hp_p50 = hist_quantile(&agg.ag_req[AG_TICK], 0.5);
	hp->hp_p99 = hist_quantile(&agg.ag_req[AG_TICK], 0.99);
	hist_reset(&agg.ag_req[AG_TICK]);
	agg.ag_tick_start = now;
	agg.ag_nhistory++;
}
