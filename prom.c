/* prom.c: the /metrics page, in the Prometheus text format 0.0.4 or OpenMetrics 1.0
 * (contract in include/render.h).  It walks the metric table in order, so every family
 * appears once, with one HELP and one TYPE line, in the table's order; a row's kind says
 * how its series are written, its source where in the view they are.
 * It touches: the aggregate's view (aggregate_view()), which it completes with the figures
 * of the tap, the access log, the readiness probe and /proc (proc.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "proc.h"
#include "ready.h"
#include "render.h"
#include "tap.h"

/* The page being rendered is OpenMetrics 1.0 (the scrape asked for it), not the Prometheus
 * text format.  The two differ in a family's name for counters and infos (no _total or
 * _info suffix), # UNIT, _created series, exemplars and the closing # EOF. */
/* A label value: backslash, double quote and newline escaped; anything that is not valid
 * UTF-8 replaced by U+FFFD, so the page stays valid whatever the clients sent. */
static void label_value(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), k;

	while (n > 0) {
		if (*p == '\\' || *p == '"' || *p == '\n') {
			buf_append(b, *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : "\\\\", 2);
			k = 1;
		} else if ((k = utf8_len(p, n)) > 0) {
			buf_append(b, (const char *)p, k);
		} else {
			buf_append(b, "\xef\xbf\xbd", 3);
			k = 1;
		}
		p += k;
		n -= k;
	}
}

static int om;			/* this page is OpenMetrics (see above) */
static struct agg_view view;	/* the page's figures, read once per render */
static int64_t started_wall;	/* the master's start, seconds since the epoch: _created */

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* A family's HELP and TYPE (and UNIT) lines, once, before its first series.  The text
 * format names a counter's family with its _total; OpenMetrics without it, and calls the
 * info type by its name where the text format only has gauges. */
static void family(struct buf *b, enum metric_id id)
{
	static const char *const types[] = { "counter", "gauge", "histogram", "info" };
	const struct metric_def *md = &metric_defs[id];
	size_t n = strlen(md->md_name);

	if (!om) {
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", md->md_name, md->md_help,
		    md->md_name, md->md_type == MT_INFO ? "gauge" : types[md->md_type]);
		return;
	}
	if (md->md_type == MT_COUNTER && ends_with(md->md_name, n, "_total"))
		n -= 6;
	else if (md->md_type == MT_INFO && ends_with(md->md_name, n, "_info"))
		n -= 5;
	buf_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)n, md->md_name, md->md_help,
	    (int)n, md->md_name, types[md->md_type]);
	if (md->md_type != MT_INFO && ends_with(md->md_name, n, "_seconds"))
		buf_printf(b, "# UNIT %.*s seconds\n", (int)n, md->md_name);
	else if (md->md_type != MT_INFO && ends_with(md->md_name, n, "_bytes"))
		buf_printf(b, "# UNIT %.*s bytes\n", (int)n, md->md_name);
}

/* OpenMetrics: when a counter (name ends in _total) or histogram (name as is) series began,
 * which for every series here is the master's start: each counts from zero since then. */
static void created_n(struct buf *b, const char *name, const char *labels, size_t nlabels)
{
	size_t n = strlen(name);

	if (!om)
		return;
	if (ends_with(name, n, "_total"))
		n -= 6;
	if (nlabels)
		buf_printf(b, "%.*s_created{%.*s} %lld\n", (int)n, name, (int)nlabels, labels,
		    (long long)started_wall);
	else
		buf_printf(b, "%.*s_created %lld\n", (int)n, name, (long long)started_wall);
}

static void created(struct buf *b, const char *name, const char *labels)
{
	created_n(b, name, labels, strlen(labels));
}

/* OpenMetrics: the exemplar of a bucket line, if it has one: the trace and span ids of the
 * latest traced request in that bucket, its value in the family's unit, and when it came.
 * This is what lets Grafana jump from a slow bucket to the trace of one slow request. */
static void exemplar(struct buf *b, const struct exemplar *e, double scale)
{
	unsigned i;

	if (!om || e == NULL || e->ex_wall == 0)
		return;
	buf_append(b, " # {trace_id=\"", 14);
	for (i = 0; i < sizeof(e->ex_trace); i++)
		buf_printf(b, "%02x", e->ex_trace[i]);
	buf_append(b, "\",span_id=\"", 11);
	for (i = 0; i < sizeof(e->ex_span); i++)
		buf_printf(b, "%02x", e->ex_span[i]);
	buf_printf(b, "\"} %.9g %lld.%03lld", (double)e->ex_value / scale,
	    (long long)(e->ex_wall / NS_PER_S), (long long)(e->ex_wall % NS_PER_S / NS_PER_MS));
}

/* A histogram's series.  labels is "" or 'name="value",'; values are divided by scale for
 * the sum (ns to seconds: 1e9).  ex: an exemplar per bucket (nbounds + 1), or NULL.  The
 * buckets are kept per bucket and summed here into Prometheus' cumulative counts. */
static void prom_hist(struct buf *b, const char *name, const char *labels,
    const struct hist_prom *hp, unsigned nbounds, const char *const *le, double scale,
    const struct exemplar *ex)
{
	int bare = labels[0] ? (int)strlen(labels) - 1 : 0;	/* without the trailing comma */
	uint64_t cum = 0;
	unsigned i;

	for (i = 0; i <= nbounds; i++) {
		cum += hp->hp_b[i];
		buf_printf(b, "%s_bucket{%sle=\"%s\"} %llu", name, labels,
		    i < nbounds ? le[i] : "+Inf", (unsigned long long)cum);
		exemplar(b, ex ? &ex[i] : NULL, scale);
		buf_append(b, "\n", 1);
	}
	if (bare)
		buf_printf(b, "%s_sum{%.*s} %.9g\n%s_count{%.*s} %llu\n", name, bare, labels,
		    (double)hp->hp_sum / scale, name, bare, labels, (unsigned long long)hp->hp_count);
	else
		buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, (double)hp->hp_sum / scale, name,
		    (unsigned long long)hp->hp_count);
	created_n(b, name, labels, (size_t)bare);
}

/* The le="" label of every bucket, formatted once at start (render_init): a page with 100
 * routes has thousands of bucket lines, and %g is the costly part of each. */
static char le_seconds[CONFIG_MAX_BUCKETS][32];
static const char *le_sec_ptr[CONFIG_MAX_BUCKETS];
static char le_bytes[AG_SIZE_BOUNDS][24];
static const char *le_bytes_ptr[AG_SIZE_BOUNDS];

/* A VALUES or SECONDS row: one series per value of its label set, or one unlabelled. */
static void values(struct buf *b, enum metric_id id)
{
	const struct metric_def *md = &metric_defs[id];
	const struct label_set *ls = md->md_labels;
	char labels[128];
	unsigned i;

	family(b, id);
	for (i = 0; i < metric_nvalues(md); i++) {
		uint64_t v = view.v_val[md->md_source + i];

		if (ls)
			snprintf(labels, sizeof(labels), "%s=\"%s\"", ls->ls_label, ls->ls_values[i]);
		else
			labels[0] = '\0';
		buf_printf(b, ls ? "%s{%s}" : "%s%s", md->md_name, labels);
		if (md->md_kind == MK_SECONDS)
			buf_printf(b, " %.2f\n", (double)v / 1e9);
		else
			buf_printf(b, " %llu\n", (unsigned long long)v);
		if (md->md_type == MT_COUNTER)
			created(b, md->md_name, labels);
	}
}

/* Request counts merged over slots: collected, sorted by key, equal keys added up.  Every
 * worker has its own table, so one route, method and code appears once per slot that saw
 * it; Prometheus wants each series once, with the sum. */
struct req_entry {
	uint32_t re_key;
	uint64_t re_count;
};

struct req_list {
	struct req_entry *rl_e;
	size_t rl_n, rl_cap;
};

static void collect(void *ctx, unsigned route, unsigned method, unsigned code, uint64_t n)
{
	struct req_list *l = ctx;

	if (l->rl_n == l->rl_cap) {
		size_t cap = l->rl_cap ? 2 * l->rl_cap : 256;
		struct req_entry *e = realloc(l->rl_e, cap * sizeof(*e));

		if (e == NULL)
			return;		/* a series missing beats a dead master */
		l->rl_e = e;
		l->rl_cap = cap;
	}
	l->rl_e[l->rl_n].re_key = SHM_REQ_KEY(route, method, code);
	l->rl_e[l->rl_n++].re_count = n;
}

static int by_key(const void *a, const void *b)
{
	uint32_t x = ((const struct req_entry *)a)->re_key, y = ((const struct req_entry *)b)->re_key;

	return x < y ? -1 : x > y;
}

/* sidemeter_http_requests_total, by method, code and route, in key order (stable across
 * scrapes, which keeps a diff of two pages readable). */
static void requests(struct buf *b)
{
	const char *name = metric_defs[METRIC_HTTP_REQUESTS].md_name;
	struct req_list l = { NULL, 0, 0 };
	struct buf lb = { NULL, 0, 0, 0 };
	size_t i, j;

	family(b, METRIC_HTTP_REQUESTS);
	aggregate_requests(collect, &l);
	if (l.rl_n > 1)
		qsort(l.rl_e, l.rl_n, sizeof(l.rl_e[0]), by_key);
	for (i = 0; i < l.rl_n; i = j) {
		uint64_t n = 0;
		uint32_t key = l.rl_e[i].re_key;

		for (j = i; j < l.rl_n && l.rl_e[j].re_key == key; j++)
			n += l.rl_e[j].re_count;
		lb.b_len = 0;
		buf_printf(&lb, "method=\"%s\",code=\"%03u\",route=\"",
		    http_method_names[SHM_REQ_METHOD(key) < METHOD_MAX ? SHM_REQ_METHOD(key) : METHOD_OTHER],
		    SHM_REQ_CODE(key));
		label_value(&lb, aggregate_route_name(SHM_REQ_ROUTE(key)));
		buf_append(&lb, "\"", 1);
		if (lb.b_failed)
			break;
		buf_printf(b, "%s{%s} %llu\n", name, lb.b_data, (unsigned long long)n);
		created(b, name, lb.b_data);
	}
	/* Counted exactly, but a worker's table had no room for its labels. */
	if (view.v_val[CTR_REQ_UNCLASSIFIED]) {
		static const char unclassified[] = "method=\"OTHER\",code=\"unclassified\",route=\"other\"";

		buf_printf(b, "%s{%s} %llu\n", name, unclassified,
		    (unsigned long long)view.v_val[CTR_REQ_UNCLASSIFIED]);
		created(b, name, unclassified);
	}
	buf_free(&lb);
	free(l.rl_e);
}

/* A ROUTE_HIST row: one histogram a route that has samples, with its exemplars when a
 * traced request came (OpenMetrics only; the text format has no exemplars). */
static void route_hists(struct buf *b, enum metric_id id)
{
	struct buf lb = { NULL, 0, 0, 0 };
	unsigned r;

	family(b, id);
	for (r = 0; r < view.v_nroutes; r++) {
		const struct route_agg *ra = view.v_routes[r];
		int app = metric_defs[id].md_source == VH_APP;
		const struct hist_prom *hp = app ? &ra->ra_app_prom : &ra->ra_dur_prom;

		if (hp->hp_count == 0)
			continue;
		lb.b_len = 0;
		buf_append(&lb, "route=\"", 7);
		label_value(&lb, ra->ra_name);
		buf_append(&lb, "\",", 2);
		if (lb.b_failed)
			break;
		prom_hist(b, metric_defs[id].md_name, lb.b_data, hp, view.v_nbounds, le_sec_ptr, 1e9,
		    ra->ra_ex == NULL ? NULL : app ? ra->ra_ex + view.v_nbounds + 1 : ra->ra_ex);
	}
	buf_free(&lb);
}

static char le_otel[AG_OTEL_BOUNDS][24];
static const char *le_otel_ptr[AG_OTEL_BOUNDS];

/* http_server_request_duration_seconds: OpenTelemetry's names, labels and bounds.  Methods
 * it does not know are _OTHER; the scheme is http (sidemeter sees no TLS). */
static void otel_hists(struct buf *b)
{
	struct buf lb = { NULL, 0, 0, 0 };
	unsigned i;

	family(b, METRIC_OTEL_REQUEST_DURATION);
	for (i = 0; i < view.v_notel; i++) {
		const struct otel_series *os = view.v_otel[i];
		unsigned method = (os->os_key >> 12) & 0xf;

		if (os->os_h.hp_count == 0)
			continue;
		lb.b_len = 0;
		buf_printf(&lb, "http_request_method=\"%s\",http_response_status_code=\"%u\","
		    "http_route=\"", method < METHOD_OTHER ? http_method_names[method] : "_OTHER",
		    os->os_key & 0xfff);
		label_value(&lb, aggregate_route_name(os->os_key >> 17));
		buf_printf(&lb, "\",network_protocol_name=\"http\",network_protocol_version=\"%s\","
		    "url_scheme=\"http\",", os->os_key & (1u << 16) ? "1.0" : "1.1");
		if (lb.b_failed)
			break;
		prom_hist(b, metric_defs[METRIC_OTEL_REQUEST_DURATION].md_name, lb.b_data, &os->os_h,
		    AG_OTEL_BOUNDS, le_otel_ptr, 1e9, os->os_ex);
	}
	buf_free(&lb);
}

/* target_info: the labels --label gave, if any (none: no family at all, rather than an
 * info that says nothing).  A query joins it to the other series on job and instance
 * (group_left), so a pod's labels need not be on every series. */
static void target_info(struct buf *b)
{
	unsigned i;

	if (cfg.cf_nlabels == 0)
		return;
	family(b, METRIC_TARGET_INFO);
	buf_append(b, "target_info{", 12);
	for (i = 0; i < cfg.cf_nlabels; i++) {
		buf_printf(b, "%s%s=\"", i ? "," : "", cfg.cf_labels[i].cl_name);
		label_value(b, cfg.cf_labels[i].cl_value);
		buf_append(b, "\"", 1);
	}
	buf_append(b, "} 1\n", 4);
}

/* One histogram for all routes: its bounds by its unit (seconds or bytes). */
static void hist_family(struct buf *b, enum metric_id id)
{
	const struct metric_def *md = &metric_defs[id];
	int bytes = ends_with(md->md_name, strlen(md->md_name), "_bytes");

	family(b, id);
	prom_hist(b, md->md_name, "", view.v_prom[md->md_source],
	    bytes ? AG_SIZE_BOUNDS : view.v_nbounds, bytes ? le_bytes_ptr : le_sec_ptr,
	    bytes ? 1 : 1e9, NULL);
}

/* The figures of the master's other parts that /metrics shows: they are not the
 * aggregate's, so the view has room for them and this fills it. */
static void outside_values(uint64_t *val)
{
	static int32_t pids[AG_SLOTS_MAX + 1];	/* the master, the workers, the keeper */
	struct tap_stats ts;
	struct proc_sum ps;
	unsigned i, np = 0;

	val[VAL_UPSTREAM_UP] = (uint64_t)ready_app_up(clock_mono_ns());
	val[VAL_LOG_DROPPED_OUTPUT] = accesslog_dropped();
	tap_get_stats(&ts);
	val[VAL_TAP_CLIENTS] = tap_clients();
	val[VAL_TAP_LINES] = ts.ts_lines;
	val[VAL_TAP_DROPPED] = ts.ts_dropped_slow;
	val[VAL_TAP_DROPPED_RATE] = ts.ts_dropped_rate;
	val[VAL_TAP_CUT] = ts.ts_cut;
	pids[np++] = (int32_t)getpid();
	for (i = 0; i < view.v_nslots; i++)
		if (view.v_rows[i].sr_pid > 0)
			pids[np++] = view.v_rows[i].sr_pid;
	proc_sum(pids, np, &ps);
	val[VAL_CPU_NS] = (uint64_t)(ps.ps_cpu * 1e9);
	val[VAL_RSS] = ps.ps_rss;
	val[VAL_FDS] = ps.ps_fds;
	val[VAL_START] = (uint64_t)started_wall;
}

void render_prometheus(struct buf *b, int openmetrics)
{
	unsigned m;

	om = openmetrics;
	aggregate_view(&view);
	outside_values(view.v_val);
	for (m = 0; m < METRIC_MAX; m++) {
		const struct metric_def *md = &metric_defs[m];

		if (md->md_scope == SCOPE_HTTP && cfg.cf_mode != MODE_HTTP)
			continue;
		/* --metric-names: the exchange's duration under one set of names, or both */
		if ((m == METRIC_HTTP_REQUEST_DURATION && cfg.cf_metric_names == NAMES_OTEL) ||
		    (m == METRIC_OTEL_REQUEST_DURATION && cfg.cf_metric_names == NAMES_SIDEMETER))
			continue;
		switch (md->md_kind) {
		case MK_VALUES:
		case MK_SECONDS:
			values(b, (enum metric_id)m);
			break;
		case MK_REQUESTS:
			requests(b);
			break;
		case MK_HIST:
			hist_family(b, (enum metric_id)m);
			break;
		case MK_ROUTE_HIST:
			route_hists(b, (enum metric_id)m);
			break;
		case MK_OTEL:
			otel_hists(b);
			break;
		case MK_TARGET:
			target_info(b);
			break;
		case MK_BUILD:
			family(b, (enum metric_id)m);
			buf_printf(b, "%s{version=\"%s\"} 1\n", md->md_name, SIDEMETER_VERSION);
			break;
		}
	}
	if (om)
		buf_append(b, "# EOF\n", 6);
}

void render_init(void)
{
	struct timespec ts;
	unsigned i;

	for (i = 0; i < cfg.cf_nbuckets; i++) {
		snprintf(le_seconds[i], sizeof(le_seconds[i]), "%g", cfg.cf_buckets[i]);
		le_sec_ptr[i] = le_seconds[i];
	}
	for (i = 0; i < AG_OTEL_BOUNDS; i++) {
		snprintf(le_otel[i], sizeof(le_otel[i]), "%g", aggregate_otel_bounds[i]);
		le_otel_ptr[i] = le_otel[i];
	}
	for (i = 0; i < AG_SIZE_BOUNDS; i++) {
		snprintf(le_bytes[i], sizeof(le_bytes[i]), "%llu",
		    (unsigned long long)aggregate_size_bounds[i]);
		le_bytes_ptr[i] = le_bytes[i];
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	started_wall = ts.tv_sec;
}
