/* top.c: `sidemeter top`, a live terminal view of a running sidemeter (contract in
 * include/client.h).  Once a second it reads /stats.json from the metrics port and draws one
 * screen: the totals' rates (measured here, between two readings), the last 2 s's p50/p99
 * (the server's history), the pool and connections, then the route table.  Plain ANSI: the
 * alternate screen, cursor home, erase to the end of each line; no library.  The terminal's
 * size is read on every frame (and SIGWINCH redraws at once); --once writes one frame to a
 * pipe without escape codes.
 *
 * It touches: the terminal (raw mode, restored on every way out), a socket to the port. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "client.h"
#include "clock.h"
#include "json.h"

#define REFRESH_MS 1000
#define FETCH_MS 2000
#define ROUTES_MAX 1024

/* One route's row, with what the last reading said (for its rate). */
struct row {
	char name[128];
	double count, e4, e5, p50, p99, max;	/* milliseconds for the times; -1: none */
	double rate;
	int seen;			/* in the latest reading */
};

/* One reading of /stats.json and the figures a frame shows. */
struct view {
	char version[32], listen[280], upstream[280];
	double uptime, requests, c5xx, in, out;
	double active, held, live, busy;
	double rps, p50, p99, pct5xx, in_s, out_s;
	int have_rates;
	struct row rows[ROUTES_MAX];
	unsigned nrows;
	double t;			/* when it was read, monotonic seconds */
};

static volatile sig_atomic_t resized, quit_signal;

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

static void on_quit(int sig)
{
	quit_signal = sig;
}

static double mono_s(void)
{
	return (double)clock_mono_ns() / 1e9;
}

/* A latency in ms, or -1 for null (no sample yet), drawn as "-". */
static double ms_of(const struct json *v)
{
	return json_num(v, -1);
}

static struct row *row_named(struct view *v, const char *name)
{
	unsigned i;

	for (i = 0; i < v->nrows; i++)
		if (strcmp(v->rows[i].name, name) == 0)
			return &v->rows[i];
	return NULL;
}

/* Read the page into v; the rates come from what v held before (the last reading). */
static int reading(struct view *v, const struct json *j)
{
	const struct json *tot = json_get(j, "totals"), *codes = json_get(j, "codes");
	const struct json *workers = json_get(j, "workers"), *hist = json_get(j, "history");
	const struct json *r, *last = NULL;
	double t = mono_s(), dt = t - v->t, req, c5, in, out;
	unsigned i;

	if (tot == NULL || workers == NULL)
		return -1;
	snprintf(v->version, sizeof(v->version), "%s", json_text(json_get(j, "version"), "?"));
	snprintf(v->listen, sizeof(v->listen), "%s", json_text(json_get(j, "listen"), "?"));
	snprintf(v->upstream, sizeof(v->upstream), "%s", json_text(json_get(j, "upstream"), "?"));
	client_safe(v->listen);
	client_safe(v->upstream);
	v->uptime = json_num(json_get(j, "uptime_s"), 0);
	req = json_num(json_get(tot, "requests"), 0);
	c5 = json_num(json_get(codes, "5xx"), 0);
	in = json_num(json_get(tot, "in_bytes"), 0);
	out = json_num(json_get(tot, "out_bytes"), 0);
	/* A rate needs two readings far enough apart; a count that went down means the server
	 * started over (a new region after a failed USR2), and the last reading is no base. */
	v->have_rates = v->t > 0 && dt > 0.2 && req >= v->requests;
	if (v->have_rates) {
		v->rps = (req - v->requests) / dt;
		v->pct5xx = req > v->requests ? 100 * (c5 - v->c5xx) / (req - v->requests) : -1;
		v->in_s = (in - v->in) / dt;
		v->out_s = (out - v->out) / dt;
	}
	v->requests = req;
	v->c5xx = c5;
	v->in = in;
	v->out = out;
	v->active = json_num(json_get(tot, "active"), 0);
	v->held = json_num(json_get(json_get(j, "keeper"), "held"), 0);
	v->live = json_num(json_get(workers, "live"), 0);
	v->busy = json_num(json_get(workers, "busy"), 0);
	/* the latency of the last history point: the server's last 2 s */
	for (r = hist ? hist->j_child : NULL; r; r = r->j_next)
		last = r;
	v->p50 = ms_of(json_get(last, "p50_ms"));
	v->p99 = ms_of(json_get(last, "p99_ms"));
	if (!v->have_rates)
		v->rps = json_num(json_get(last, "rps"), 0);

	for (i = 0; i < v->nrows; i++)
		v->rows[i].seen = 0;
	for (r = json_get(j, "routes") ? json_get(j, "routes")->j_child : NULL; r; r = r->j_next) {
		const char *name = json_text(json_get(r, "route"), "?");
		struct row *w = row_named(v, name);
		double count = json_num(json_get(r, "count"), 0);

		if (w == NULL) {
			if (v->nrows == ROUTES_MAX)
				continue;
			w = &v->rows[v->nrows++];
			memset(w, 0, sizeof(*w));
			snprintf(w->name, sizeof(w->name), "%s", name);
			client_safe(w->name);
			/* new here: the server's own rate until there is a delta */
			w->rate = json_num(json_get(r, "rate"), 0);
		} else if (v->have_rates && count >= w->count) {
			w->rate = (count - w->count) / dt;
		}
		w->count = count;
		w->e4 = json_num(json_get(r, "errors_4xx"), 0);
		w->e5 = json_num(json_get(r, "errors_5xx"), 0);
		w->p50 = ms_of(json_get(r, "p50_ms"));
		w->p99 = ms_of(json_get(r, "p99_ms"));
		w->max = ms_of(json_get(r, "max_ms"));
		w->seen = 1;
	}
	/* a route gone from the page (a restart) leaves the table */
	for (i = 0; i < v->nrows;)
		if (!v->rows[i].seen)
			v->rows[i] = v->rows[--v->nrows];
		else
			i++;
	v->t = t;
	return 0;
}

static enum top_sort sort_by;

/* Descending by the chosen figure, then by name: rows with equal figures keep one order
 * from frame to frame instead of swapping places. */
static int by_sort(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	double dx, dy;

	switch (sort_by) {
	case TOP_P99:
		dx = x->p99, dy = y->p99;
		break;
	case TOP_ERRORS:
		dx = x->e5 * 1e9 + x->e4, dy = y->e5 * 1e9 + y->e4;	/* 5xx first, then 4xx */
		break;
	case TOP_NAME:
		return strcmp(x->name, y->name);
	default:
		dx = x->rate, dy = y->rate;
		break;
	}
	if (dx != dy)
		return dx < dy ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* ---- drawing ---- */

/* A frame is built whole in memory and written at once: a terminal that gets it in pieces
 * shows the pieces (flicker). */
struct screen {
	char *b;
	size_t n, cap;
	int ansi;
	unsigned cols, lines, line;	/* the terminal's size; lines drawn */
};

static void out_raw(struct screen *s, const char *p, size_t n)
{
	if (s->n + n > s->cap) {
		size_t cap = (s->n + n) * 2;
		char *b = realloc(s->b, cap);

		if (b == NULL)
			return;
		s->b = b;
		s->cap = cap;
	}
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

/* One line, cut to the terminal's width; nothing past its height.  bold: the table's head. */
static void line(struct screen *s, int bold, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void line(struct screen *s, int bold, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	size_t n;

	if (s->line >= s->lines)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	n = strlen(text);
	if (n > s->cols)
		n = s->cols;
	/* On a terminal the line break comes before a line, not after: one after the last
	 * line would scroll the screen. */
	if (s->ansi && s->line > 0)
		out_raw(s, "\r\n", 2);
	if (s->ansi && bold)
		out_raw(s, "\033[7m", 4);
	out_raw(s, text, n);
	if (s->ansi)
		out_raw(s, bold ? "\033[0m\033[K" : "\033[K", bold ? 7 : 3);
	else
		out_raw(s, "\n", 1);
	s->line++;
}

static void human_bytes(char *out, size_t len, double v)
{
	static const char *const units[] = { "B", "KB", "MB", "GB", "TB" };
	unsigned u = 0;

	while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1000;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void ms_text(char *out, size_t len, double ms)
{
	if (ms < 0)
		snprintf(out, len, "-");
	else if (ms < 10)
		snprintf(out, len, "%.2f", ms);
	else if (ms < 1000)
		snprintf(out, len, "%.1f", ms);
	else
		snprintf(out, len, "%.0f", ms);
}

static const char *const sort_names[] = { "rate", "p99", "errors", "name" };

/* One frame: three header lines of rates and gauges, then the route table as far as the
 * screen goes, and (on a terminal) the keys on the last line.  The frame overwrites the
 * last from the top-left corner instead of clearing first, so nothing blinks. */
static void draw(struct screen *s, struct view *v, const char *addr, const char *problem)
{
	char up[32], in[24], outb[24], p50[16], p99[16], pct[16], a[16], b[16], c[16];
	unsigned i, w, name_w, room;
	unsigned long secs = (unsigned long)v->uptime;

	s->n = 0;
	s->line = 0;
	if (s->ansi)
		out_raw(s, "\033[H", 3);
	if (secs >= 86400)
		snprintf(up, sizeof(up), "%lud %02luh%02lum%02lus", secs / 86400, secs / 3600 % 24,
		    secs / 60 % 60, secs % 60);
	else
		snprintf(up, sizeof(up), "%luh%02lum%02lus", secs / 3600, secs / 60 % 60, secs % 60);
	line(s, 0, "sidemeter %s at %s   up %s   %s -> %s", v->version, addr, up, v->listen,
	    v->upstream);
	if (problem)
		line(s, 0, "! %s", problem);
	human_bytes(in, sizeof(in), v->in_s);
	human_bytes(outb, sizeof(outb), v->out_s);
	ms_text(p50, sizeof(p50), v->p50);
	ms_text(p99, sizeof(p99), v->p99);
	/* Rates need two readings: the first frame shows "-" rather than a guess. */
	if (v->pct5xx < 0 || !v->have_rates)
		snprintf(pct, sizeof(pct), "-");
	else
		snprintf(pct, sizeof(pct), "%.2f %%", v->pct5xx);
	line(s, 0, "rps %.1f   p50 %s ms   p99 %s ms   5xx %s   in %s/s   out %s/s", v->rps, p50, p99,
	    pct, v->have_rates ? in : "-", v->have_rates ? outb : "-");
	line(s, 0, "workers %.0f busy / %.0f   connections %.0f active, %.0f parked   requests %.0f",
	    v->busy, v->live, v->active, v->held, v->requests);
	line(s, 0, "%s", "");

	/* ROUTE ... REQUESTS RATE 4XX 5XX P50 P99 MAX: the name takes what the numbers leave */
	w = s->cols > 200 ? 200 : s->cols;
	name_w = w > 76 + 10 ? w - 76 : 10;
	if (!s->ansi) {
		/* a pipe: as wide as the longest name, not as a terminal */
		for (i = 0, name_w = 20; i < v->nrows; i++)
			if (strlen(v->rows[i].name) > name_w)
				name_w = (unsigned)strlen(v->rows[i].name);
	}
	line(s, 1, "%-*s %11s %9s %8s %8s %8s %8s %8s", (int)name_w, "ROUTE", "REQUESTS", "RATE/s",
	    "4XX", "5XX", "P50ms", "P99ms", "MAXms");
	qsort(v->rows, v->nrows, sizeof(v->rows[0]), by_sort);
	room = s->lines > s->line + 1 ? s->lines - s->line - 1 : 0;
	for (i = 0; i < v->nrows && i < room; i++) {
		const struct row *r = &v->rows[i];

		ms_text(a, sizeof(a), r->p50);
		ms_text(b, sizeof(b), r->p99);
		ms_text(c, sizeof(c), r->max);
		line(s, 0, "%-*.*s %11.0f %9.1f %8.0f %8.0f %8s %8s %8s", (int)name_w, (int)name_w,
		    r->name, r->count, r->rate, r->e4, r->e5, a, b, c);
	}
	if (s->ansi) {
		/* the keys on the last line, and the rest of the screen cleared */
		while (s->line + 1 < s->lines)
			line(s, 0, "%s", "");
		line(s, 0, "sort: %s%s   keys: r rate  p p99  e errors  n name  q quit", sort_names[sort_by],
		    i < v->nrows ? " (more routes than lines)" : "");
		out_raw(s, "\033[J", 3);
	}
}

/* Where the terminal cannot tell its size: 120 by 24. */
static void terminal_size(struct screen *s)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		s->cols = ws.ws_col;
		s->lines = ws.ws_row;
	} else {
		s->cols = 120;
		s->lines = 24;
	}
}

static int write_all_out(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- the terminal ---- */

/* The terminal as it was, restored on every way out: q, a signal, an error, exit(). */
static struct termios saved;
static int raw_on;

static void terminal_restore(void)
{
	static const char leave[] = "\033[?25h\033[?1049l";

	if (!raw_on)
		return;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	write_all_out(leave, sizeof(leave) - 1);
	raw_on = 0;
}

/* Keys without Enter and without echo, the alternate screen (the shell's screen comes back
 * as it was), the cursor hidden.  VMIN 0: a read never waits, poll() does the waiting. */
static int terminal_raw(void)
{
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &saved) == -1)
		return -1;
	t = saved;
	t.c_lflag &= (tcflag_t)~(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == -1)
		return -1;
	raw_on = 1;
	atexit(terminal_restore);
	return write_all_out(enter, sizeof(enter) - 1);
}

/* One reading of /stats.json into v; on failure v keeps the last good reading, and problem
 * says what went wrong (the frame shows it instead of stale figures passing for live). */
static int fetch(const struct net_addr *na, struct view *v, char *problem, size_t len)
{
	char *body, err[600];
	size_t n;
	struct json *j;
	int status = client_get(na, "/stats.json", FETCH_MS, &body, &n, err, sizeof(err));

	if (status != 200) {
		if (status > 0)
			snprintf(problem, len, "%s answered /stats.json with %d", na->na_text, status);
		else
			snprintf(problem, len, "%s", err);
		free(body);
		return -1;
	}
	j = json_parse(body, n);
	free(body);
	if (j == NULL || reading(v, j) == -1) {
		snprintf(problem, len, "%s: /stats.json is not sidemeter's", na->na_text);
		json_free(j);
		return -1;
	}
	json_free(j);
	return 0;
}

int top_run(const struct net_addr *na, int once, enum top_sort sort)
{
	static struct view v;
	struct screen s = { NULL, 0, 0, 0, 0, 0, 0 };
	char problem[700];
	int rc = 0, have;
	struct sigaction sa;

	sort_by = sort;
	if (once) {
		/* two readings a second apart: the rates are measured, not guessed */
		struct timespec pause = { REFRESH_MS / 1000, 0 };

		if (fetch(na, &v, problem, sizeof(problem)) == -1 ||
		    (nanosleep(&pause, NULL), fetch(na, &v, problem, sizeof(problem))) == -1) {
			fprintf(stderr, "sidemeter top: %s\n", problem);
			return 1;
		}
		s.cols = 200;
		s.lines = 1u << 20;	/* a pipe: every route */
		draw(&s, &v, na->na_text, NULL);
		rc = write_all_out(s.b, s.n) == -1;
		free(s.b);
		return rc;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "sidemeter top: needs a terminal (use --once for a pipe)\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);	/* no SA_RESTART: poll() wakes to redraw */
	sa.sa_handler = on_quit;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (terminal_raw() == -1) {
		fprintf(stderr, "sidemeter top: cannot set up the terminal: %s\n", strerror(errno));
		return 1;
	}
	s.ansi = 1;
	have = fetch(na, &v, problem, sizeof(problem)) == 0;
	for (;;) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN, .revents = 0 };
		double next = mono_s() + REFRESH_MS / 1000.0, left;
		char key;

		terminal_size(&s);
		draw(&s, &v, na->na_text, have ? NULL : problem);
		if (write_all_out(s.b, s.n) == -1)
			break;
		resized = 0;
		/* keys until the next refresh; a key or a resize redraws at once */
		while (!quit_signal && !resized && (left = next - mono_s()) > 0) {
			if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
				continue;
			if (read(STDIN_FILENO, &key, 1) != 1) {
				quit_signal = SIGHUP;	/* the terminal went away */
				break;
			}
			if (key == 'q' || key == 'Q' || key == 3)
				quit_signal = -1;
			else if (key == 'r')
				sort_by = TOP_RATE;
			else if (key == 'p')
				sort_by = TOP_P99;
			else if (key == 'e')
				sort_by = TOP_ERRORS;
			else if (key == 'n')
				sort_by = TOP_NAME;
			else
				continue;
			break;	/* redraw with the new order */
		}
		if (quit_signal)
			break;
		if (mono_s() >= next)
			have = fetch(na, &v, problem, sizeof(problem)) == 0;
	}
	terminal_restore();
	free(s.b);
	return 0;
}
