/* statsjson.c: /stats.json, what the status page and `sidemeter top` read (contract in
 * include/render.h): the totals, the status classes, percentiles since the start and of the
 * last interval, the route table, the keeper and the workers, and the history.
 * It touches: the aggregate's view (aggregate_view()), nothing else. */
#include <stdio.h>
#include <string.h>

#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "ready.h"
#include "render.h"

static struct agg_view view;	/* the page's figures, read once a page */

/* Milliseconds with three decimals (a microsecond: what the histograms resolve), or null
 * when there is no sample: 0 would read as "instant". */
static void json_ms(struct buf *b, const char *key, uint64_t ns, int have)
{
	if (have)
		buf_printf(b, "\"%s\":%.3f", key, (double)ns / 1e6);
	else
		buf_printf(b, "\"%s\":null", key);
}

/* {"count", "p50", "p90", "p99", "max"}: the same four as the summary line's. */
static void json_pct(struct buf *b, const char *key, const struct hist *h)
{
	buf_printf(b, "\"%s\":{\"count\":%llu,", key, (unsigned long long)h->h_count);
	json_ms(b, "p50", hist_quantile(h, 0.5), h->h_count > 0);
	buf_append(b, ",", 1);
	json_ms(b, "p90", hist_quantile(h, 0.9), h->h_count > 0);
	buf_append(b, ",", 1);
	json_ms(b, "p99", hist_quantile(h, 0.99), h->h_count > 0);
	buf_append(b, ",", 1);
	json_ms(b, "max", h->h_max, h->h_count > 0);
	buf_append(b, "}", 1);
}

/* A string from our own tables or routes (printable ASCII without quotes or backslashes),
 * escaped all the same. */
static void json_str(struct buf *b, const char *s)
{
	buf_append(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_append(b, "\\", 1);
		if ((unsigned char)*s < 0x20)
			buf_printf(b, "\\u%04x", (unsigned char)*s);
		else
			buf_append(b, s, 1);
	}
	buf_append(b, "\"", 1);
}

/* The percentiles of every row that has them, as "KEY_ms": an object named name, or (NULL)
 * the rest of one already open. */
static void pct_set(struct buf *b, const char *name, int which)
{
	char key[64];
	unsigned m, k = 0;

	if (name)
		buf_printf(b, ",\"%s\":{", name);
	for (m = 0; m < METRIC_MAX; m++) {
		const struct metric_def *md = &metric_defs[m];

		if (!(md->md_shape & DUMP_PCT))
			continue;
		snprintf(key, sizeof(key), "%s_ms", md->md_key);
		if (k++ || name == NULL)
			buf_append(b, ",", 1);
		json_pct(b, key, view.v_pct[md->md_source][which]);
	}
	buf_append(b, "}", 1);
}

/* A route's exact counts, summed over the slots' request tables; its percentiles come from
 * the samples. */
struct route_row {
	uint64_t rr_count, rr_4xx, rr_5xx;
};

static void count_route_rows(void *ctx, unsigned route, unsigned method, unsigned code,
    uint64_t n)
{
	struct route_row *rows = ctx;

	(void)method;
	rows[route].rr_count += n;
	if (code / 100 == 4)
		rows[route].rr_4xx += n;
	if (code / 100 == 5)
		rows[route].rr_5xx += n;
}

void render_stats(struct buf *b)
{
	static struct route_row rows[AG_ROUTES];
	const uint64_t *classes = view.v_classes;
	const struct pool_view *pv = &view.v_pool;
	int64_t now = clock_mono_ns();
	unsigned i, k, m;

	/* One view for the whole page: the totals, the routes and the slots below are of one
	 * moment, as top and the status page assume when they compare them. */
	aggregate_view(&view);
	memset(rows, 0, sizeof(rows));
	aggregate_requests(count_route_rows, rows);

	buf_printf(b, "{\"version\":\"%s\",\"mode\":\"%s\",\"listen\":", SIDEMETER_VERSION,
	    cfg.cf_mode == MODE_HTTP ? "http" : "tcp");
	json_str(b, cfg.cf_listen.na_text);
	buf_append(b, ",\"upstream\":", 12);
	json_str(b, cfg.cf_upstream.na_text);
	buf_printf(b, ",\"uptime_s\":%.1f,\"stopping\":%s,\"dump_interval_s\":%.3f",
	    (double)(now - view.v_started) / 1e9, ready_stopping() ? "true" : "false",
	    (double)cfg.cf_dump_interval_ms / 1000);
	/* The table's rows with a key: counters since the start, gauges now (the summary
	 * line's names); in --mode tcp too, so the page has one shape. */
	buf_append(b, ",\"totals\":{", 11);
	for (m = 0, k = 0; m < METRIC_MAX; m++)
		if (metric_defs[m].md_shape & (DUMP_SUM | DUMP_VALUE))
			buf_printf(b, "%s\"%s\":%llu", k++ ? "," : "", metric_defs[m].md_key,
			    (unsigned long long)view_total(&view, (enum metric_id)m));
	buf_append(b, "},\"codes\":{", 11);
	for (i = 1; i <= 6; i++)
		buf_printf(b, "%s\"%s\":%llu", i > 1 ? "," : "", aggregate_class_names[i % 6],
		    (unsigned long long)classes[i % 6]);
	buf_append(b, "}", 1);
	pct_set(b, "since_start", PCT_START);
	buf_printf(b, ",\"last_interval\":{\"seconds\":%.3f", view.v_last_secs);
	pct_set(b, NULL, PCT_LAST);

	buf_append(b, ",\"routes\":[", 11);
	for (i = 0, k = 0; i < view.v_nroutes; i++) {
		const struct route_agg *ra = view.v_routes[i];
		const struct hist *h = &ra->ra_dur[AG_TOTAL];

		/* A route with neither a count nor a sample yet would be all zeros: left out. */
		if (rows[i].rr_count == 0 && h->h_count == 0)
			continue;
		buf_printf(b, "%s{\"route\":", k++ ? "," : "");
		json_str(b, ra->ra_name);
		buf_printf(b, ",\"count\":%llu,\"errors_4xx\":%llu,\"errors_5xx\":%llu,"
		    "\"rate\":%.3f,", (unsigned long long)rows[i].rr_count,
		    (unsigned long long)rows[i].rr_4xx, (unsigned long long)rows[i].rr_5xx,
		    ra->ra_last_rate);
		json_ms(b, "p50_ms", hist_quantile(h, 0.5), h->h_count > 0);
		buf_append(b, ",", 1);
		json_ms(b, "p90_ms", hist_quantile(h, 0.9), h->h_count > 0);
		buf_append(b, ",", 1);
		json_ms(b, "p99_ms", hist_quantile(h, 0.99), h->h_count > 0);
		buf_append(b, ",", 1);
		json_ms(b, "max_ms", h->h_max, h->h_count > 0);
		buf_append(b, ",", 1);
		json_ms(b, "last_p99_ms", ra->ra_last_p99, ra->ra_last_count > 0);
		buf_append(b, "}", 1);
	}
	buf_append(b, "]", 1);

	buf_printf(b, ",\"keeper\":{\"pid\":%d,\"held\":%u,\"max\":%u}", pv->pv_keeper_pid,
	    pv->pv_held, view.v_max_parked);
	buf_printf(b, ",\"workers\":{\"live\":%u,\"busy\":%u,\"idle\":%u,\"slots\":[", pv->pv_live,
	    pv->pv_state[WORKER_BUSY], pv->pv_state[WORKER_IDLE]);
	/* Every occupied slot, the keeper's too (its role says which): conn_s and request_s
	 * are how long its current connection and request have lasted, heartbeat_s how long
	 * since it last showed life (what the master kills a wedged worker by). */
	for (i = 0, k = 0; i < view.v_nslots; i++) {
		const struct score_row *r = &view.v_rows[i];

		if (r->sr_state == WORKER_FREE)
			continue;
		buf_printf(b, "%s{\"slot\":%u,\"role\":\"%s\",\"pid\":%d,\"state\":\"%s\",\"generation\":%u,"
		    "\"conns\":%llu,\"requests\":%llu,\"conn_s\":%.3f,\"request_s\":%.3f,"
		    "\"heartbeat_s\":%.3f}", k++ ? "," : "", i,
		    i == view.v_keeper_slot ? "keeper" : "worker",
		    (int)r->sr_pid, worker_state_names[r->sr_state], r->sr_generation,
		    (unsigned long long)r->sr_conns, (unsigned long long)r->sr_requests,
		    r->sr_conn_start > 0 ? (double)(now - r->sr_conn_start) / 1e9 : 0.0,
		    r->sr_req_start > 0 ? (double)(now - r->sr_req_start) / 1e9 : 0.0,
		    (double)(now - r->sr_heartbeat) / 1e9);
	}
	buf_append(b, "]}", 2);

	/* The status page's charts: oldest point first, codes as [1xx ... 5xx, other]. */
	buf_printf(b, ",\"history_step_s\":%d,\"history\":[", AG_TICK_MS / 1000);
	for (i = 0; i < view.v_nhistory; i++) {
		const struct history_point *hp = view_history(&view, i);

		buf_printf(b, "%s{\"t\":%lld,\"rps\":%.2f,\"cps\":%.2f,", i ? "," : "",
		    (long long)hp->hp_time, hp->hp_rps, hp->hp_cps);
		json_ms(b, "p50_ms", hp->hp_p50, hp->hp_p99 > 0);
		buf_append(b, ",", 1);
		json_ms(b, "p99_ms", hp->hp_p99, hp->hp_p99 > 0);
		buf_printf(b, ",\"codes\":[%llu,%llu,%llu,%llu,%llu,%llu]}",
		    (unsigned long long)hp->hp_codes[1], (unsigned long long)hp->hp_codes[2],
		    (unsigned long long)hp->hp_codes[3], (unsigned long long)hp->hp_codes[4],
		    (unsigned long long)hp->hp_codes[5], (unsigned long long)hp->hp_codes[0]);
	}
	buf_append(b, "]}\n", 3);
}
