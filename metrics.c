/* metrics.c: the metrics port (see include/metrics.h).  The pages are rendered from the
 * aggregate when asked for; the Prometheus page walks the metric table in order, so every
 * family appears once, with one HELP and one TYPE line, in the table's order. */
#if defined(__linux__)
#define _GNU_SOURCE		/* accept4 */
#endif
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "tap.h"

#define REQUEST_MAX 4096		/* a request head larger than this gets a 431 */
#define CLIENT_MS 5000			/* a client has this long to ask and be answered */
#define READY_CHECK_MS 1000		/* the application is probed at most this often */
#define READY_CONNECT_MS 200
#define PAGE_MAX (16u << 20)		/* no page grows past this */
#define ACCEPT_PAUSE_MS 100		/* rest after an accept that found no descriptor */

extern const char *const status_html[];	/* status.html, compiled in */

/* ---- buffers ---- */

void buf_append(struct buf *b, const char *p, size_t n)
{
	if (b->b_failed)
		return;
	if (b->b_len + n + 1 > b->b_cap) {
		size_t cap = b->b_cap ? b->b_cap : 16384;
		char *nd;

		while (cap < b->b_len + n + 1)
			cap *= 2;
		nd = cap > PAGE_MAX ? NULL : realloc(b->b_data, cap);
		if (nd == NULL) {
			b->b_failed = 1;
			return;
		}
		b->b_data = nd;
		b->b_cap = cap;
	}
	memcpy(b->b_data + b->b_len, p, n);
	b->b_len += n;
	b->b_data[b->b_len] = '\0';
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		buf_append(b, small, (size_t)n);
		return;
	}
	{
		char *big = malloc((size_t)n + 1);

		if (big == NULL) {
			b->b_failed = 1;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		buf_append(b, big, (size_t)n);
		free(big);
	}
}

void buf_free(struct buf *b)
{
	free(b->b_data);
	memset(b, 0, sizeof(*b));
}

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

/* ---- Prometheus and OpenMetrics ---- */

/* The page being rendered is OpenMetrics 1.0 (the scrape asked for it), not the Prometheus
 * text format.  The two differ in a family's name for counters and infos (no _total or
 * _info suffix), # UNIT, _created series, exemplars and the closing # EOF. */
static int om;
static int64_t started_wall;

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

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

/* OpenMetrics: the exemplar of a bucket line, if it has one. */
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
 * the sum (ns to seconds: 1e9).  ex: an exemplar per bucket (nbounds + 1), or NULL. */
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

static char le_seconds[CONFIG_MAX_BUCKETS][32];
static const char *le_sec_ptr[CONFIG_MAX_BUCKETS];
static char le_bytes[AG_SIZE_BOUNDS][24];
static const char *le_bytes_ptr[AG_SIZE_BOUNDS];

static void labelled_counters(struct buf *b, enum metric_id id, const char *label,
    const uint64_t *ctr, const char *const *names, unsigned n)
{
	unsigned i;

	char labels[128];

	family(b, id);
	for (i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "%s=\"%s\"", label, names[i]);
		buf_printf(b, "%s{%s} %llu\n", metric_defs[id].md_name, labels,
		    (unsigned long long)ctr[i]);
		if (metric_defs[id].md_type == MT_COUNTER)
			created(b, metric_defs[id].md_name, labels);
	}
}

/* Request counts merged over slots: collected, sorted by key, equal keys added up. */
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
			return;		/* a page cut short beats a dead master */
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

static void requests(struct buf *b, const uint64_t *ctr)
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
	if (ctr[CTR_REQ_UNCLASSIFIED]) {
		static const char unclassified[] = "method=\"OTHER\",code=\"unclassified\",route=\"other\"";

		buf_printf(b, "%s{%s} %llu\n", name, unclassified,
		    (unsigned long long)ctr[CTR_REQ_UNCLASSIFIED]);
		created(b, name, unclassified);
	}
	buf_free(&lb);
	free(l.rl_e);
}

static void route_hists(struct buf *b, enum metric_id id)
{
	struct buf lb = { NULL, 0, 0, 0 };
	unsigned r;

	family(b, id);
	for (r = 0; r < agg.ag_nroutes; r++) {
		const struct route_agg *ra = agg.ag_routes[r];
		const struct hist_prom *hp = id == METRIC_HTTP_REQUEST_DURATION ? &ra->ra_dur_prom :
		    &ra->ra_app_prom;

		if (hp->hp_count == 0)
			continue;
		lb.b_len = 0;
		buf_append(&lb, "route=\"", 7);
		label_value(&lb, ra->ra_name);
		buf_append(&lb, "\",", 2);
		if (lb.b_failed)
			break;
		prom_hist(b, metric_defs[id].md_name, lb.b_data, hp, agg.ag_nbounds, le_sec_ptr, 1e9,
		    ra->ra_ex == NULL ? NULL : id == METRIC_HTTP_REQUEST_DURATION ? ra->ra_ex :
		    ra->ra_ex + agg.ag_nbounds + 1);
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
	for (i = 0; i < agg.ag_notel; i++) {
		const struct otel_series *os = agg.ag_otel_series[i];
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

/* target_info: the labels --label gave, if any. */
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

/* ---- the processes ---- */

struct proc_sum {
	double ps_cpu;			/* seconds */
	uint64_t ps_rss;		/* bytes */
	unsigned ps_fds;
};

#if defined(__linux__)
static void proc_add(pid_t pid, struct proc_sum *ps)
{
	char path[64], stat[1024], *p;
	unsigned long utime, stime;
	long rss;
	FILE *f;
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return;
	p = fgets(stat, sizeof(stat), f);
	fclose(f);
	if (p == NULL || (p = strrchr(stat, ')')) == NULL)
		return;
	/* after "pid (comm)": state is field 3; utime 14, stime 15, rss 24 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
	    "%*d %*d %*u %*u %ld", &utime, &stime, &rss) != 3)
		return;
	ps->ps_cpu += (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	ps->ps_rss += (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			ps->ps_fds++;
	closedir(d);
}
#endif

static void processes(struct proc_sum *ps)
{
	memset(ps, 0, sizeof(*ps));
#if defined(__linux__)
	{
		unsigned i;

		proc_add(getpid(), ps);
		for (i = 0; i < agg.ag_nslots; i++) {
			int32_t pid = score_pid(shm_stats_slot(agg.ag_shm, i));

			if (pid > 0)
				proc_add(pid, ps);
		}
	}
#endif
}



/* The counter families labelled by a reason: a run of slot counters and their labels. */
static const struct {
	enum metric_id br_metric;
	enum shm_counter br_first;
	const char *const *br_names;
	unsigned br_n;
} by_reason[] = {
	{ METRIC_CONNECTIONS, CTR_CLOSE, close_reason_names, CLOSE_MAX },
	{ METRIC_HTTP_INCOMPLETE, CTR_INCOMPLETE, incomplete_reason_names, INCOMPLETE_MAX },
	{ METRIC_OPAQUE, CTR_OPAQUE, opaque_reason_names, OPAQUE_MAX },
	{ METRIC_UPSTREAM_ERRORS, CTR_UPSTREAM, upstream_error_names, UPSTREAM_MAX },
};

void metrics_render_prometheus(struct buf *b, int openmetrics)
{
	static const char *const accept_names[] = { "emfile", "other" };
	static const char *const log_drop_names[] = { "ring", "output" };
	static const char *const tap_drop_names[] = { "slow", "max_rps" };
	struct tap_stats ts;
	uint64_t ctr[CTR_MAX], acc[2], states[WORKER_STATE_MAX];
	struct pool_view pv;
	struct proc_sum ps;
	unsigned m, i;

	om = openmetrics;
	aggregate_drain();
	aggregate_counters(ctr);
	aggregate_pool(&pv);
	processes(&ps);
	tap_get_stats(&ts);
	for (m = 0; m < METRIC_MAX; m++) {
		const struct metric_def *md = &metric_defs[m];

		if (md->md_scope == SCOPE_HTTP && cfg.cf_mode != MODE_HTTP)
			continue;
		/* --metric-names: the exchange's duration under one set of names, or both */
		if ((m == METRIC_HTTP_REQUEST_DURATION && cfg.cf_metric_names == NAMES_OTEL) ||
		    (m == METRIC_OTEL_REQUEST_DURATION && cfg.cf_metric_names == NAMES_SIDEMETER))
			continue;
		for (i = 0; i < sizeof(by_reason) / sizeof(by_reason[0]); i++)
			if (by_reason[i].br_metric == m)
				break;
		if (i < sizeof(by_reason) / sizeof(by_reason[0])) {
			labelled_counters(b, (enum metric_id)m, "reason", ctr + by_reason[i].br_first,
			    by_reason[i].br_names, by_reason[i].br_n);
			continue;
		}
		switch ((enum metric_id)m) {
		case METRIC_ACCESS_LOG_DROPPED:
			acc[0] = ctr[CTR_LOG_DROPPED];
			acc[1] = accesslog_dropped();
			labelled_counters(b, METRIC_ACCESS_LOG_DROPPED, "where", acc, log_drop_names, 2);
			break;
		case METRIC_TAP_CLIENTS:
			family(b, METRIC_TAP_CLIENTS);
			buf_printf(b, "%s %u\n", md->md_name, tap_clients());
			break;
		case METRIC_TAP_LINES:
			family(b, METRIC_TAP_LINES);
			buf_printf(b, "%s %llu\n", md->md_name, (unsigned long long)ts.ts_lines);
			created(b, md->md_name, "");
			break;
		case METRIC_TAP_DROPPED:
			acc[0] = ts.ts_dropped_slow;
			acc[1] = ts.ts_dropped_rate;
			labelled_counters(b, METRIC_TAP_DROPPED, "reason", acc, tap_drop_names, 2);
			break;
		case METRIC_TAP_CUT:
			family(b, METRIC_TAP_CUT);
			buf_printf(b, "%s %llu\n", md->md_name, (unsigned long long)ts.ts_cut);
			created(b, md->md_name, "");
			break;
		case METRIC_ACCEPT_ERRORS:
			acc[0] = ctr[CTR_ACCEPT_EMFILE];
			acc[1] = ctr[CTR_ACCEPT_ERROR];
			labelled_counters(b, METRIC_ACCEPT_ERRORS, "reason", acc, accept_names, 2);
			break;
		case METRIC_WORKERS:
			for (i = 0; i < WORKER_STATE_MAX; i++)
				states[i] = pv.pv_state[i];
			/* FREE is an empty slot, not a worker */
			labelled_counters(b, METRIC_WORKERS, "state", states + 1, worker_state_names + 1,
			    WORKER_STATE_MAX - 1);
			break;
		case METRIC_UPSTREAM_UP:
			family(b, METRIC_UPSTREAM_UP);
			buf_printf(b, "%s %d\n", md->md_name, metrics_app_up(clock_mono_ns()));
			break;
		case METRIC_WORKERS_LIMIT:
			family(b, METRIC_WORKERS_LIMIT);
			buf_printf(b, "%s{bound=\"min\"} %u\n%s{bound=\"max\"} %u\n", md->md_name,
			    agg.ag_workers_min, md->md_name, agg.ag_workers_max);
			break;
		case METRIC_HTTP_REQUESTS:
			requests(b, ctr);
			break;
		case METRIC_HTTP_REQUEST_DURATION:
		case METRIC_HTTP_UPSTREAM_DURATION:
			route_hists(b, (enum metric_id)m);
			break;
		case METRIC_OTEL_REQUEST_DURATION:
			otel_hists(b);
			break;
		case METRIC_CONNECT_DURATION:
			family(b, METRIC_CONNECT_DURATION);
			prom_hist(b, md->md_name, "", &agg.ag_connect_prom, agg.ag_nbounds, le_sec_ptr, 1e9,
			    NULL);
			break;
		case METRIC_CONNECTION_DURATION:
			family(b, METRIC_CONNECTION_DURATION);
			prom_hist(b, md->md_name, "", &agg.ag_conn_prom, agg.ag_nbounds, le_sec_ptr, 1e9,
			    NULL);
			break;
		case METRIC_HTTP_REQUEST_SIZE:
			family(b, METRIC_HTTP_REQUEST_SIZE);
			prom_hist(b, md->md_name, "", &agg.ag_req_size, AG_SIZE_BOUNDS, le_bytes_ptr, 1,
			    NULL);
			break;
		case METRIC_HTTP_RESPONSE_SIZE:
			family(b, METRIC_HTTP_RESPONSE_SIZE);
			prom_hist(b, md->md_name, "", &agg.ag_resp_size, AG_SIZE_BOUNDS, le_bytes_ptr, 1,
			    NULL);
			break;
		case METRIC_TARGET_INFO:
			target_info(b);
			break;
		case METRIC_BUILD_INFO:
			family(b, METRIC_BUILD_INFO);
			buf_printf(b, "%s{version=\"%s\"} 1\n", md->md_name, SIDEMETER_VERSION);
			break;
		case METRIC_PROCESS_CPU:
			family(b, METRIC_PROCESS_CPU);
			buf_printf(b, "%s %.2f\n", md->md_name, ps.ps_cpu);
			created(b, md->md_name, "");
			break;
		case METRIC_PROCESS_RSS:
			family(b, METRIC_PROCESS_RSS);
			buf_printf(b, "%s %llu\n", md->md_name, (unsigned long long)ps.ps_rss);
			break;
		case METRIC_PROCESS_FDS:
			family(b, METRIC_PROCESS_FDS);
			buf_printf(b, "%s %u\n", md->md_name, ps.ps_fds);
			break;
		case METRIC_PROCESS_START:
			family(b, METRIC_PROCESS_START);
			buf_printf(b, "%s %lld\n", md->md_name, (long long)started_wall);
			break;
		default:
			/* a plain counter or gauge: one unlabelled value */
			family(b, (enum metric_id)m);
			buf_printf(b, "%s %llu\n", md->md_name,
			    (unsigned long long)aggregate_total((enum metric_id)m, ctr));
			if (md->md_type == MT_COUNTER)
				created(b, md->md_name, "");
			break;
		}
	}
	if (om)
		buf_append(b, "# EOF\n", 6);
}

/* ---- /stats.json ---- */

static void json_ms(struct buf *b, const char *key, uint64_t ns, int have)
{
	if (have)
		buf_printf(b, "\"%s\":%.3f", key, (double)ns / 1e6);
	else
		buf_printf(b, "\"%s\":null", key);
}

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

static int metrics_stopping;

void metrics_render_stats(struct buf *b)
{
	static struct route_row rows[AG_ROUTES];
	uint64_t ctr[CTR_MAX], classes[6];
	int64_t now = clock_mono_ns();
	struct pool_view pv;
	unsigned i, k, n;

	aggregate_drain();
	aggregate_counters(ctr);
	aggregate_classes(classes);
	aggregate_pool(&pv);
	memset(rows, 0, sizeof(rows));
	aggregate_requests(count_route_rows, rows);

	buf_printf(b, "{\"version\":\"%s\",\"mode\":\"%s\",\"listen\":", SIDEMETER_VERSION,
	    cfg.cf_mode == MODE_HTTP ? "http" : "tcp");
	json_str(b, cfg.cf_listen.na_text);
	buf_append(b, ",\"upstream\":", 12);
	json_str(b, cfg.cf_upstream.na_text);
	buf_printf(b, ",\"uptime_s\":%.1f,\"stopping\":%s,\"dump_interval_s\":%.3f",
	    (double)(now - agg.ag_shm->sh_started) / 1e9, metrics_stopping ? "true" : "false",
	    (double)cfg.cf_dump_interval_ms / 1000);
	buf_printf(b, ",\"totals\":{\"conns\":%llu,\"active\":%u,\"requests\":%llu,"
	    "\"incomplete\":%llu,\"opaque\":%llu,\"tunnels\":%llu,\"upstream_errors\":%llu,"
	    "\"in_bytes\":%llu,\"out_bytes\":%llu,\"restarts\":%llu,\"dropped\":%llu}",
	    (unsigned long long)aggregate_total(METRIC_CONNECTIONS, ctr), pv.pv_active,
	    (unsigned long long)aggregate_total(METRIC_HTTP_REQUESTS, ctr),
	    (unsigned long long)aggregate_total(METRIC_HTTP_INCOMPLETE, ctr),
	    (unsigned long long)aggregate_total(METRIC_OPAQUE, ctr),
	    (unsigned long long)ctr[CTR_TUNNELS],
	    (unsigned long long)aggregate_total(METRIC_UPSTREAM_ERRORS, ctr),
	    (unsigned long long)ctr[CTR_BYTES_IN], (unsigned long long)ctr[CTR_BYTES_OUT],
	    (unsigned long long)agg.ag_shm->sh_restarts, (unsigned long long)ctr[CTR_RING_DROPPED]);
	buf_printf(b, ",\"codes\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,"
	    "\"5xx\":%llu,\"other\":%llu}", (unsigned long long)classes[1],
	    (unsigned long long)classes[2], (unsigned long long)classes[3],
	    (unsigned long long)classes[4], (unsigned long long)classes[5],
	    (unsigned long long)classes[0]);

	buf_append(b, ",\"since_start\":{", 16);
	json_pct(b, "request_ms", &agg.ag_req[AG_TOTAL]);
	buf_append(b, ",", 1);
	json_pct(b, "app_ms", &agg.ag_app[AG_TOTAL]);
	buf_append(b, ",", 1);
	json_pct(b, "connect_ms", &agg.ag_connect[AG_TOTAL]);
	buf_append(b, ",", 1);
	json_pct(b, "conn_ms", &agg.ag_conn[AG_TOTAL]);
	buf_printf(b, "},\"last_interval\":{\"seconds\":%.3f,", agg.ag_last_secs);
	json_pct(b, "request_ms", &agg.ag_last_req);
	buf_append(b, ",", 1);
	json_pct(b, "app_ms", &agg.ag_last_app);
	buf_append(b, ",", 1);
	json_pct(b, "connect_ms", &agg.ag_last_connect);
	buf_append(b, ",", 1);
	json_pct(b, "conn_ms", &agg.ag_last_conn);
	buf_append(b, "}", 1);

	buf_append(b, ",\"routes\":[", 11);
	for (i = 0, k = 0; i < agg.ag_nroutes; i++) {
		const struct route_agg *ra = agg.ag_routes[i];
		const struct hist *h = &ra->ra_dur[AG_TOTAL];

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

	buf_printf(b, ",\"keeper\":{\"pid\":%d,\"held\":%u,\"max\":%u}", pv.pv_keeper_pid,
	    pv.pv_held, agg.ag_shm->sh_max_parked);
	buf_printf(b, ",\"workers\":{\"live\":%u,\"busy\":%u,\"idle\":%u,\"slots\":[", pv.pv_live,
	    pv.pv_state[WORKER_BUSY], pv.pv_state[WORKER_IDLE]);
	for (i = 0, k = 0; i < agg.ag_nslots; i++) {
		struct score_row r;

		score_read(shm_stats_slot(agg.ag_shm, i), &r);
		if (r.sr_state == WORKER_FREE)
			continue;
		buf_printf(b, "%s{\"slot\":%u,\"role\":\"%s\",\"pid\":%d,\"state\":\"%s\",\"generation\":%u,"
		    "\"conns\":%llu,\"requests\":%llu,\"conn_s\":%.3f,\"request_s\":%.3f,"
		    "\"heartbeat_s\":%.3f}", k++ ? "," : "", i,
		    i == agg.ag_shm->sh_keeper_slot ? "keeper" : "worker",
		    (int)r.sr_pid, worker_state_names[r.sr_state], r.sr_generation,
		    (unsigned long long)r.sr_conns, (unsigned long long)r.sr_requests,
		    r.sr_conn_start > 0 ? (double)(now - r.sr_conn_start) / 1e9 : 0.0,
		    r.sr_req_start > 0 ? (double)(now - r.sr_req_start) / 1e9 : 0.0,
		    (double)(now - r.sr_heartbeat) / 1e9);
	}
	buf_append(b, "]}", 2);

	buf_printf(b, ",\"history_step_s\":%d,\"history\":[", AG_TICK_MS / 1000);
	n = agg.ag_nhistory < AG_HISTORY ? agg.ag_nhistory : AG_HISTORY;
	for (i = 0; i < n; i++) {
		const struct history_point *hp =
		    &agg.ag_history[(agg.ag_nhistory - n + i) % AG_HISTORY];

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

/* ---- readiness ---- */

static int ready_app;			/* the application accepted a connection */
static int64_t ready_checked;		/* when that was last tried */
static char ready_why[400];

/* POST /quitquitquit: the master stops as on TERM; it takes the request once. */
static int quit_requested;

int metrics_take_quit(void)
{
	int q = quit_requested;

	quit_requested = 0;
	return q;
}

/* Is the peer of fd on this machine's loopback (127.0.0.0/8, ::1, or 127/8 mapped in v6)? */
static int from_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return 0;
}

void metrics_set_stopping(void)
{
	metrics_stopping = 1;
}

/* XXX: the probe is a blocking connect of at most READY_CONNECT_MS; it can delay the
 * master's loop by that much, never a worker. */
int metrics_app_up(int64_t now)
{
	int fd;

	if (ready_checked == 0 || now - ready_checked >= READY_CHECK_MS * NS_PER_MS) {
		ready_checked = now;
		fd = net_connect(&cfg.cf_upstream, READY_CONNECT_MS);
		ready_app = fd >= 0;
		if (fd >= 0)
			close(fd);
		else
			snprintf(ready_why, sizeof(ready_why), "the application at %s: %s",
			    cfg.cf_upstream.na_text, strerror(errno));
	}
	return ready_app;
}

/* Ready: not stopping, a worker accepting, and the application accepting connections. */
static int ready(int64_t now, char *why, size_t len)
{
	struct pool_view pv;

	if (metrics_stopping) {
		snprintf(why, len, "stopping");
		return 0;
	}
	aggregate_pool(&pv);
	if (pv.pv_state[WORKER_IDLE] + pv.pv_state[WORKER_BUSY] == 0) {
		snprintf(why, len, "no worker is ready");
		return 0;
	}
	if (!metrics_app_up(now)) {
		snprintf(why, len, "%s", ready_why);
		return 0;
	}
	return 1;
}

/* ---- the responder ---- */

struct client {
	int cl_fd;			/* -1: a free place */
	int64_t cl_deadline;
	size_t cl_in;
	char cl_req[REQUEST_MAX];
	struct buf cl_out;
	size_t cl_off;			/* bytes of cl_out sent */
	int cl_writing;
};

static struct client clients[METRICS_CLIENTS];
static int metrics_fd = -1;
static int64_t accept_paused_until;	/* out of descriptors: the listen socket rests */

void metrics_init(int listen_fd)
{
	struct timespec ts;
	unsigned i;

	metrics_fd = listen_fd;
	if (net_set_nonblock(listen_fd, 1) == -1)
		fatal("fcntl O_NONBLOCK on the metrics socket");
	for (i = 0; i < METRICS_CLIENTS; i++)
		clients[i].cl_fd = -1;
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

static void client_close(struct client *cl)
{
	close(cl->cl_fd);
	cl->cl_fd = -1;
	buf_free(&cl->cl_out);
}

void metrics_forget(void)
{
	unsigned i;

	for (i = 0; i < METRICS_CLIENTS; i++)
		if (clients[i].cl_fd >= 0)
			client_close(&clients[i]);
	tap_forget();
}

static void respond(struct client *cl, unsigned code, const char *type, const struct buf *body,
    int head)
{
	static const struct { unsigned c; const char *t; } texts[] = {
		{ 200, "OK" }, { 400, "Bad Request" }, { 403, "Forbidden" }, { 404, "Not Found" },
		{ 405, "Method Not Allowed" }, { 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 503, "Service Unavailable" },
	};
	const char *text = "";
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].c == code)
			text = texts[i].t;
	buf_printf(&cl->cl_out, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n", code, text, type,
	    body ? body->b_len : 0, code == 405 ? "Allow: GET, HEAD, POST\r\n" : "");
	if (body && !head)
		buf_append(&cl->cl_out, body->b_data, body->b_len);
	cl->cl_writing = 1;
	cl->cl_off = 0;
}

static void respond_text(struct client *cl, unsigned code, const char *text, int head)
{
	struct buf b = { NULL, 0, 0, 0 };

	buf_printf(&b, "%s\n", text);
	respond(cl, code, "text/plain; charset=utf-8", &b, head);
	buf_free(&b);
}

/* The q of a media range's parameters ("; q=0.5; version=1.0.0"), or -1 when it names a
 * version other than the one wanted (NULL: any will do; no version named: the one wanted). */
static double media_q(const char *p, size_t n, const char *version)
{
	double q = 1;
	int version_ok = 1;

	while (n > 0) {
		size_t e = 0, k;
		const char *a;

		while (e < n && p[e] != ';')
			e++;
		a = p;
		k = e;
		while (k > 0 && (*a == ' ' || *a == '\t' || *a == ';'))
			a++, k--;
		while (k > 0 && (a[k - 1] == ' ' || a[k - 1] == '\t'))
			k--;
		if (k > 2 && (a[0] | 0x20) == 'q' && a[1] == '=')
			q = strtod(a + 2, NULL);
		else if (version && k >= 8 && strncasecmp(a, "version=", 8) == 0)
			version_ok = k - 8 == strlen(version) && memcmp(a + 8, version, k - 8) == 0;
		p += e < n ? e + 1 : e;
		n -= e < n ? e + 1 : e;
	}
	return version_ok ? q : -1;
}

/* Does the scrape's Accept prefer OpenMetrics 1.0 to the text format?  Prometheus asks
 * "application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...". */
static int wants_openmetrics(const char *req, size_t len)
{
	const char *p = req, *end = req + len;
	double om_q = 0, text_q = 0;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *v;

		if (eol == NULL)
			break;
		if (eol - p > 7 && strncasecmp(p, "accept:", 7) == 0) {
			for (v = p + 7; v < eol;) {
				const char *c = memchr(v, ',', (size_t)(eol - v)), *t, *semi;
				size_t n, tn;
				double q;

				if (c == NULL)
					c = eol;
				t = v;
				while (t < c && (*t == ' ' || *t == '\t'))
					t++;
				n = (size_t)(c - t);
				while (n > 0 && (t[n - 1] == '\r' || t[n - 1] == ' '))
					n--;
				semi = memchr(t, ';', n);
				tn = semi ? (size_t)(semi - t) : n;
				if (tn == 28 && strncasecmp(t, "application/openmetrics-text", 28) == 0) {
					q = media_q(t + tn, n - tn, "1.0.0");
					if (q > om_q)
						om_q = q;
				} else if ((tn == 10 && strncasecmp(t, "text/plain", 10) == 0) ||
				    (tn == 6 && strncasecmp(t, "text/*", 6) == 0) ||
				    (tn == 3 && memcmp(t, "*/*", 3) == 0)) {
					q = media_q(t + tn, n - tn, NULL);
					if (q > text_q)
						text_q = q;
				}
				v = c + 1;
			}
		}
		p = eol + 1;
	}
	return om_q > 0 && om_q >= text_q;
}

static void handle(struct client *cl, int64_t now)
{
	struct buf body = { NULL, 0, 0, 0 };
	const char *req = cl->cl_req, *sp1, *sp2;
	char path[64], why[400];
	size_t plen;
	int head, post;

	sp1 = memchr(req, ' ', cl->cl_in);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', cl->cl_in - (size_t)(sp1 + 1 - req)) : NULL;
	if (sp1 == NULL || sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		respond_text(cl, 400, "bad request", 0);
		return;
	}
	head = sp1 - req == 4 && memcmp(req, "HEAD", 4) == 0;
	post = sp1 - req == 4 && memcmp(req, "POST", 4) == 0;
	if (!head && !post && !(sp1 - req == 3 && memcmp(req, "GET", 3) == 0)) {
		respond_text(cl, 405, "only GET and HEAD (and POST /quitquitquit)", 0);
		return;
	}
	for (plen = 0; sp1 + 1 + plen < sp2 && sp1[1 + plen] != '?'; plen++)
		;
	if (plen >= sizeof(path)) {
		respond_text(cl, 404, "not found", head);
		return;
	}
	memcpy(path, sp1 + 1, plen);
	path[plen] = '\0';

	/* Job mode: the application is done, and so is its sidecar.  Only from the pod itself. */
	if (post || strcmp(path, "/quitquitquit") == 0) {
		if (!post || strcmp(path, "/quitquitquit") != 0)
			respond_text(cl, 405, "POST is for /quitquitquit only; /quitquitquit takes POST", head);
		else if (!from_loopback(cl->cl_fd))
			respond_text(cl, 403, "only a client on loopback may stop sidemeter", 0);
		else {
			quit_requested = 1;
			respond_text(cl, 200, "stopping: draining, then exit 0", 0);
		}
		return;
	}

	if (strcmp(path, "/metrics") == 0) {
		int openmetrics = wants_openmetrics(req, cl->cl_in);

		metrics_render_prometheus(&body, openmetrics);
		if (body.b_failed)
			respond_text(cl, 500, "out of memory rendering the page", head);
		else
			respond(cl, 200, openmetrics ?
			    "application/openmetrics-text; version=1.0.0; charset=utf-8" :
			    "text/plain; version=0.0.4; charset=utf-8", &body, head);
	} else if (strcmp(path, "/healthz") == 0) {
		respond_text(cl, 200, "ok", head);
	} else if (strcmp(path, "/readyz") == 0) {
		if (ready(now, why, sizeof(why)))
			respond_text(cl, 200, "ready", head);
		else {
			buf_printf(&body, "not ready: %s", why);
			respond_text(cl, 503, body.b_data ? body.b_data : "not ready", head);
		}
	} else if (strcmp(path, "/tap") == 0) {
		const char *q = sp1 + 1 + plen;
		size_t qn = (size_t)(sp2 - q);
		unsigned code;

		if (qn > 0) {	/* past the '?' */
			q++;
			qn--;
		}
		code = tap_open(cl->cl_fd, q, qn, sp2[8] == '0', head, now, why, sizeof(why));
		if (code == 0) {
			cl->cl_fd = -1;	/* the tap's now */
			buf_free(&cl->cl_out);
		} else {
			respond_text(cl, code, why, head);
		}
	} else if (strcmp(path, "/stats.json") == 0) {
		metrics_render_stats(&body);
		respond(cl, body.b_failed ? 500 : 200, "application/json", &body, head);
	} else if (strcmp(path, "/") == 0) {
		const char *const *line;

		for (line = status_html; *line; line++)
			buf_append(&body, *line, strlen(*line));
		respond(cl, 200, "text/html; charset=utf-8", &body, head);
	} else {
		respond_text(cl, 404, "not found", head);
	}
	buf_free(&body);
}

int metrics_pollfds(struct pollfd *pfd, int64_t *deadline)
{
	int n = 0;
	unsigned i;

	if (metrics_fd < 0)
		return 0;
	for (i = 0; i < METRICS_CLIENTS; i++) {
		struct client *cl = &clients[i];

		if (cl->cl_fd < 0)
			continue;
		pfd[n].fd = cl->cl_fd;
		pfd[n].events = cl->cl_writing ? POLLOUT : POLLIN;
		pfd[n++].revents = 0;
		if (cl->cl_deadline < *deadline)
			*deadline = cl->cl_deadline;
	}
	/* A connection left in the backlog for want of a descriptor keeps the socket readable:
	 * polling it then would spin. */
	if (accept_paused_until == 0) {
		pfd[n].fd = metrics_fd;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	} else if (accept_paused_until < *deadline) {
		*deadline = accept_paused_until;
	}
	return n;
}

/* A free place, or the place of the client that has said least for longest: with every
 * place taken by clients that send nothing, a scraper still gets in.  Clients being
 * answered are never evicted. */
static struct client *place(void)
{
	struct client *oldest = NULL;
	unsigned i;

	for (i = 0; i < METRICS_CLIENTS; i++) {
		struct client *cl = &clients[i];

		if (cl->cl_fd < 0)
			return cl;
		if (!cl->cl_writing && (oldest == NULL || cl->cl_deadline < oldest->cl_deadline))
			oldest = cl;
	}
	if (oldest != NULL)
		client_close(oldest);
	return oldest;
}

static struct client *client_of(int fd)
{
	unsigned i;

	for (i = 0; i < METRICS_CLIENTS; i++)
		if (clients[i].cl_fd == fd)
			return &clients[i];
	return NULL;
}

static void accept_clients(int64_t now)
{
	struct client *cl;
	int fd;

	for (;;) {
#if defined(__linux__)
		fd = accept4(metrics_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
#else
		fd = accept(metrics_fd, NULL, NULL);
		if (fd >= 0 && (net_set_cloexec(fd) == -1 || net_set_nonblock(fd, 1) == -1)) {
			close(fd);
			continue;
		}
#endif
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_paused_until = now + ACCEPT_PAUSE_MS * NS_PER_MS;
			return;
		}
		cl = place();
		if (cl == NULL) {
			close(fd);	/* every place is sending an answer: come back later */
			return;
		}
		cl->cl_fd = fd;
		cl->cl_in = 0;
		cl->cl_writing = 0;
		cl->cl_deadline = now + CLIENT_MS * NS_PER_MS;
		memset(&cl->cl_out, 0, sizeof(cl->cl_out));
	}
}

/* Does p[0..n) hold the empty line that ends a request head? */
static int has_empty_line(const char *p, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (p[i] == '\n' && (p[i - 1] == '\n' || (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')))
			return 1;
	return 0;
}

static void client_read(struct client *cl, int64_t now)
{
	ssize_t n = recv(cl->cl_fd, cl->cl_req + cl->cl_in, sizeof(cl->cl_req) - cl->cl_in, 0);

	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		client_close(cl);
		return;
	}
	if (n < 0)
		return;
	cl->cl_in += (size_t)n;
	/* A request head ends with an empty line; the request line is all we need. */
	if (has_empty_line(cl->cl_req, cl->cl_in))
		handle(cl, now);
	else if (cl->cl_in == sizeof(cl->cl_req))
		respond_text(cl, 431, "request too large", 0);
}

static void client_write(struct client *cl)
{
	ssize_t n = send(cl->cl_fd, cl->cl_out.b_data + cl->cl_off, cl->cl_out.b_len - cl->cl_off,
	    MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->cl_off += (size_t)n;
	if (cl->cl_off == cl->cl_out.b_len)
		client_close(cl);
}

void metrics_serve(const struct pollfd *pfd, int n, int64_t now)
{
	struct client *cl;
	unsigned i;
	int k;

	for (k = 0; k < n; k++) {
		if (pfd[k].revents == 0)
			continue;
		if (pfd[k].fd == metrics_fd) {
			accept_clients(now);
			continue;
		}
		cl = client_of(pfd[k].fd);
		if (cl == NULL)
			continue;
		if (cl->cl_writing)
			client_write(cl);
		else
			client_read(cl, now);
		/* a request answered at once may be sent at once */
		if (cl->cl_fd >= 0 && cl->cl_writing)
			client_write(cl);
	}
	for (i = 0; i < METRICS_CLIENTS; i++)
		if (clients[i].cl_fd >= 0 && now >= clients[i].cl_deadline)
			client_close(&clients[i]);
	if (accept_paused_until && now >= accept_paused_until)
		accept_paused_until = 0;
}
