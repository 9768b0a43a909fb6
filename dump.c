/* dump.c: the summary line.  One line per interval on stdout: counters as their increase
 * over the interval, gauges as they are now, histograms as the interval's percentiles.  The
 * fields and their order are those of the metric table.
 *
 * When stdout is a pipe (a container's log), the line goes out through a non-blocking
 * description of that pipe of its own: a log reader that stops reading then costs summary
 * lines, skipped whole and counted, and never a master stuck in write(2).  A terminal or a
 * file keeps plain blocking writes.
 *
 * It touches: the aggregate's view (aggregate_view()), its own line and stdout. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "dump.h"
#include "log.h"
#include "net.h"

#define DUMP_LINE_MAX 131072	/* room for every route of the interval in JSON */

/* A line in a fixed buffer: the master formats it in one pass and may have to keep it
 * while stdout is full (line_off), so it cannot live on the stack. */
struct line {
	char l_buf[DUMP_LINE_MAX];
	size_t l_len;
	int l_json;
	int l_fields;
};

static struct agg_view view;	/* the line's figures, read once a line */
/* Each row's total at the last line written: counters are shown as their increase, which
 * is exact (the totals are), so the lines add up to /metrics' totals (t/09's test). */
static uint64_t dump_prev[METRIC_MAX];
static int64_t dump_since;
static struct line line;	/* the line being written */
static size_t line_off;		/* how much of it is out; below l_len while the rest waits */
static int out_fd = STDOUT_FILENO;

static void put(struct line *l, const char *fmt, ...) LOG_PRINTF(2, 3);

/* Past the buffer the line is cut (and still ends in a newline: dump_write()); only the
 * JSON line's route list can grow that long, with thousands of routes. */
static void put(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->l_len >= sizeof(l->l_buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->l_buf + l->l_len, sizeof(l->l_buf) - l->l_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->l_len += (size_t)n;
	if (l->l_len >= sizeof(l->l_buf))
		l->l_len = sizeof(l->l_buf) - 1;
}

/* "key=" or ,"key": before a value. */
static void key(struct line *l, const char *k, const char *suffix)
{
	if (l->l_json)
		put(l, "%s\"%s%s\":", l->l_fields++ ? "," : "", k, suffix);
	else
		put(l, " %s%s=", k, suffix);
}

static void ms(struct line *l, uint64_t ns)
{
	put(l, "%.3f", (double)ns / 1e6);
}

/* p50/p90/p99/max of the interval: text as a/b/c/d, JSON as an object; none as - or null. */
static void percentiles(struct line *l, const char *k, const struct hist *h)
{
	static const double qs[] = { 0.5, 0.9, 0.99, 1.0 };
	static const char *const names[] = { "p50", "p90", "p99", "max" };
	unsigned i;

	key(l, k, "_ms");
	if (h->h_count == 0) {
		put(l, l->l_json ? "null" : "-");
		return;
	}
	if (l->l_json)
		put(l, "{");
	for (i = 0; i < 4; i++) {
		if (l->l_json)
			put(l, "%s\"%s\":", i ? "," : "", names[i]);
		else if (i)
			put(l, "/");
		ms(l, hist_quantile(h, qs[i]));
	}
	if (l->l_json)
		put(l, "}");
}

/* Status classes: the increase since the last line. */
static uint64_t class_prev[6];

static void codes(struct line *l)
{
	const uint64_t *now = view.v_classes;
	unsigned c;

	if (l->l_json)
		put(l, ",\"codes\":{");
	for (c = 1; c <= 5; c++) {
		if (l->l_json)
			put(l, "%s\"%s\":%llu", c > 1 ? "," : "", aggregate_class_names[c],
			    (unsigned long long)(now[c] - class_prev[c]));
		else
			put(l, " %s=%llu", aggregate_class_names[c],
			    (unsigned long long)(now[c] - class_prev[c]));
	}
	/* Codes past 5xx are rare: shown only when they came. */
	if (now[0] != class_prev[0]) {
		if (l->l_json)
			put(l, ",\"other\":%llu", (unsigned long long)(now[0] - class_prev[0]));
		else
			put(l, " other_codes=%llu", (unsigned long long)(now[0] - class_prev[0]));
	}
	if (l->l_json)
		put(l, "}");
	memcpy(class_prev, view.v_classes, sizeof(class_prev));
}

/* The interval's routes by their number of samples, busiest first (an insertion sort: a
 * line has few routes with samples, and --max-routes bounds them). */
static unsigned routes_by_count(unsigned *order)
{
	unsigned r, n = 0, i;

	for (r = 0; r < view.v_nroutes; r++) {
		uint64_t c = view.v_routes[r]->ra_dur[AG_INTERVAL].h_count;

		if (c == 0)
			continue;
		for (i = n++; i > 0 && view.v_routes[order[i - 1]]->ra_dur[AG_INTERVAL].h_count < c; i--)
			order[i] = order[i - 1];
		order[i] = r;
	}
	return n;
}

static void routes(struct line *l)
{
	static unsigned order[AG_ROUTES], slow[AG_ROUTES];
	unsigned n = routes_by_count(order), i, k;

	if (l->l_json) {
		put(l, ",\"routes\":[");
		for (i = 0; i < n; i++) {
			const struct route_agg *ra = view.v_routes[order[i]];
			const struct hist *h = &ra->ra_dur[AG_INTERVAL];

			put(l, "%s{\"route\":\"%s\",\"count\":%llu,\"p50_ms\":", i ? "," : "",
			    ra->ra_name, (unsigned long long)h->h_count);
			ms(l, hist_quantile(h, 0.5));
			put(l, ",\"p99_ms\":");
			ms(l, hist_quantile(h, 0.99));
			put(l, ",\"max_ms\":");
			ms(l, h->h_max);
			put(l, "}");
		}
		put(l, "]");
		return;
	}
	put(l, " top=");
	for (i = 0; i < n && i < 3; i++)
		put(l, "%s%s:%llu", i ? "," : "", view.v_routes[order[i]]->ra_name,
		    (unsigned long long)view.v_routes[order[i]]->ra_dur[AG_INTERVAL].h_count);
	if (n == 0)
		put(l, "-");
	/* the slowest three by p99 */
	for (i = 0; i < n; i++) {
		uint64_t p = hist_quantile(&view.v_routes[order[i]]->ra_dur[AG_INTERVAL], 0.99);

		for (k = i; k > 0 && hist_quantile(&view.v_routes[slow[k - 1]]->ra_dur[AG_INTERVAL], 0.99) < p; k--)
			slow[k] = slow[k - 1];
		slow[k] = order[i];
	}
	put(l, " slow=");
	for (i = 0; i < n && i < 3; i++) {
		put(l, "%s%s:", i ? "," : "", view.v_routes[slow[i]]->ra_name);
		ms(l, hist_quantile(&view.v_routes[slow[i]]->ra_dur[AG_INTERVAL], 0.99));
		put(l, "ms");
	}
	if (n == 0)
		put(l, "-");
}

/* At start: the first line's increases count from here, so a master started over an
 * inherited region (USR2) does not report the old image's totals as one interval. */
void dump_init(int64_t now)
{
	unsigned m;
	int fd;

	/* Elsewhere than on a pipe, or where it cannot be opened again, writes block. */
	if ((fd = net_reopen_nonblocking(STDOUT_FILENO)) >= 0)
		out_fd = fd;
	aggregate_view(&view);
	for (m = 0; m < METRIC_MAX; m++)
		dump_prev[m] = view_total(&view, (enum metric_id)m);
	memcpy(class_prev, view.v_classes, sizeof(class_prev));
	dump_since = now;
}

void dump_write(int64_t now)
{
	struct line *l = &line;
	const struct pool_view *pv = &view.v_pool;
	uint64_t v, cur;
	double secs = (double)(now - dump_since) / 1e9;
	struct timespec ts;
	struct tm tm;
	char when[32];
	unsigned m, shape;

	/* The last line is still going out: skip this one.  The next line written covers the
	 * counters since the last one written (its interval_s says how long that was). */
	if (dump_flush()) {
		aggregate_note_line_skipped();
		return;
	}
	l->l_len = 0;
	l->l_fields = 0;
	l->l_json = cfg.cf_dump_format == FORMAT_JSON;
	if (secs <= 0)
		secs = 1e-9;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* The text line starts with the bare timestamp. */
	put(l, l->l_json ? "{\"time\":\"%s\"" : "%s", when);
	l->l_fields = 1;
	key(l, "interval_s", "");
	put(l, "%.3f", secs);

	aggregate_view(&view);
	for (m = 0; m < METRIC_MAX; m++) {
		const struct metric_def *md = &metric_defs[m];

		cur = view_total(&view, (enum metric_id)m);
		v = cur - dump_prev[m];
		dump_prev[m] = cur;
		shape = md->md_shape;
		if (md->md_scope == SCOPE_HTTP && cfg.cf_mode != MODE_HTTP)
			continue;
		if (shape & DUMP_SUM) {
			key(l, md->md_key, "");
			put(l, "%llu", (unsigned long long)v);
		}
		if (shape & DUMP_RATE) {
			key(l, md->md_key, "_per_s");
			put(l, "%.1f", (double)v / secs);
		}
		if (shape & DUMP_CODES)
			codes(l);
		if (shape & DUMP_VALUE) {
			key(l, md->md_key, "");
			put(l, "%llu", (unsigned long long)cur);
		}
		if (shape & DUMP_PCT)
			percentiles(l, md->md_key, view.v_pct[md->md_source][PCT_INTERVAL]);
		if (shape & DUMP_ROUTES)
			routes(l);
		if (shape & DUMP_POOL) {
			if (l->l_json) {
				key(l, md->md_key, "_busy");
				put(l, "%u", pv->pv_state[WORKER_BUSY]);
				key(l, md->md_key, "");
				put(l, "%u", pv->pv_live);
			} else {
				key(l, md->md_key, "");
				put(l, "%u/%u", pv->pv_state[WORKER_BUSY], pv->pv_live);
			}
		}
	}
	if (l->l_json)
		put(l, "}");
	put(l, "\n");
	if (l->l_buf[l->l_len - 1] != '\n')
		l->l_buf[l->l_len - 1] = '\n';	/* a line cut at the buffer's end still ends */
	dump_since = now;
	line_off = 0;
	dump_flush();
}

/* What is left of the line, as far as stdout takes it: 1 while some waits. */
int dump_flush(void)
{
	ssize_t n;

	while (line_off < line.l_len) {
		n = write(out_fd, line.l_buf + line_off, line.l_len - line_off);
		if (n > 0)
			line_off += (size_t)n;
		else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		else
			line_off = line.l_len;	/* stdout closed or broken: nowhere to write */
	}
	return 0;
}

int dump_pending(void)
{
	return line_off > 0 && line_off < line.l_len;
}

int dump_pollfd(struct pollfd *pfd)
{
	if (line_off >= line.l_len)
		return 0;
	pfd->fd = out_fd;
	pfd->events = POLLOUT;
	pfd->revents = 0;
	return 1;
}

void dump_flush_until(int64_t deadline)
{
	struct pollfd pfd;
	int64_t now;

	while (dump_flush() && (now = clock_mono_ns()) < deadline && dump_pollfd(&pfd))
		(void)poll(&pfd, 1, clock_poll_ms(deadline, now, 1000));
}

void dump_forget(void)
{
	if (out_fd != STDOUT_FILENO)
		close(out_fd);
	out_fd = STDOUT_FILENO;
	line.l_len = line_off = 0;
}
