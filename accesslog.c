/* accesslog.c: the access log (--access-log), the master's side (contract in
 * include/accesslog.h).  Workers and the keeper write each line's facts into their slot's log
 * ring (account.c); here they are drained, written out as JSON or the NCSA combined format,
 * queued in a bounded buffer and written without blocking.  A line that finds the queue
 * full is dropped whole, and counted: the data path never waits for the log.
 *
 * It touches: the slots' log rings (as their only reader), its own queue and descriptor. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <limits.h>
#include <sys/stat.h>

#include "accesslog.h"
#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "dump.h"
#include "log.h"
#include "net.h"
#include "observer.h"
#include "route.h"
#include "tap.h"

#define QUEUE_MAX (1u << 20)	/* lines waiting for the output, at most */
#define LINE_MAX_BYTES 8192	/* one line, escaped, at most */

static struct {
	int fd;			/* -1: off */
	int pipe;		/* fd is a pipe or a socket: writes of PIPE_BUF at most */
	char queue[QUEUE_MAX];
	size_t len, off;	/* queued bytes; written of them */
	uint64_t dropped;	/* lines dropped: the queue was full */
} al = { .fd = -1 };

/* A file is opened O_APPEND (several writers, logrotate's copytruncate both work) and
 * O_NONBLOCK, which a regular file ignores but a FIFO given as the path does not. */
static int open_output(char *err, size_t len)
{
	int fd;

	switch (cfg.cf_alog) {
	case ALOG_STDOUT:
	case ALOG_STDERR:
		fd = cfg.cf_alog == ALOG_STDOUT ? STDOUT_FILENO : STDERR_FILENO;
		/* A pipe's own description, non-blocking; elsewhere writes block (a file, a tty). */
		al.fd = net_reopen_nonblocking(fd);
		if (al.fd < 0)
			al.fd = fd;
		return 0;
	case ALOG_FILE:
		fd = open(cfg.cf_alog_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
		if (fd == -1) {
			snprintf(err, len, "--access-log %s: %s", cfg.cf_alog_path, strerror(errno));
			return -1;
		}
		al.fd = fd;
		return 0;
	case ALOG_OFF:
		break;
	}
	return 0;
}

/* A pipe takes a write of PIPE_BUF bytes or fewer whole, so lines from another writer never
 * land inside one; a file takes large writes, which also spare the filesystem zeroing the
 * rest of each new page a small write leaves. */
static void note_kind(void)
{
	struct stat st;

	al.pipe = fstat(al.fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

void accesslog_open(void)
{
	char err[600];

	if (cfg.cf_alog != ALOG_OFF && open_output(err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (al.fd >= 0)
		note_kind();
}

/* USR1, after logrotate moved the file: the new one is opened before the old is closed,
 * and a failure keeps the old (a line written to a moved file beats a line lost). */
void accesslog_reopen(void)
{
	char err[600];
	int old = al.fd;

	if (cfg.cf_alog != ALOG_FILE)
		return;
	if (open_output(err, sizeof(err)) == -1) {
		al.fd = old;	/* keep writing where it was */
		log_warnx("reopening the access log: %s", err);
		return;
	}
	if (old >= 0)
		close(old);
	note_kind();
	log_info("access log reopened: %s", cfg.cf_alog_path);
}

/* ---- formatting ---- */

/* A line being formatted.  Once full, every put is dropped and the line is not queued:
 * a line cut in the middle would not parse, so it is lost whole and counted. */
struct line {
	char b[LINE_MAX_BYTES];
	size_t n;
	int full;
};

static void put(struct line *l, const char *p, size_t n)
{
	if (l->n + n >= sizeof(l->b)) {
		l->full = 1;
		return;
	}
	memcpy(l->b + l->n, p, n);
	l->n += n;
}

static void put_str(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) LOG_PRINTF(2, 3);

static void putf(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->b + l->n, sizeof(l->b) - l->n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(l->b) - l->n)
		l->full = 1;
	else
		l->n += (size_t)n;
}

/* Numbers without printf: a line is formatted for every request, and vfprintf was a third
 * of the master's time at 40,000 lines a second. */
static void put_u64(struct line *l, uint64_t v)
{
	char d[20];
	size_t n = 0;

	do {
		d[sizeof(d) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	put(l, d + sizeof(d) - n, n);
}

/* v (below 10^6) as six digits, zeros in front. */
static void put_six(struct line *l, uint64_t v)
{
	char d[6];
	int i;

	for (i = 5; i >= 0; i--) {
		d[i] = (char)('0' + v % 10);
		v /= 10;
	}
	put(l, d, sizeof(d));
}

/* Nanoseconds as seconds with six decimals, rounded to the microsecond (as %.6f prints). */
static void put_secs(struct line *l, uint64_t ns)
{
	uint64_t us = ns / 1000 + (ns % 1000 >= 500);

	put_u64(l, us / 1000000);
	put(l, ".", 1);
	put_six(l, us % 1000000);
}

/* A JSON string: quotes, backslashes and control bytes escaped; bytes that are not UTF-8
 * become U+FFFD, so every line parses and nothing reaches a terminal raw. */
static void json_str(struct line *l, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	put(l, "\"", 1);
	while (i < n) {
		for (k = i; k < n && p[k] >= 0x20 && p[k] < 0x7f && p[k] != '"' && p[k] != '\\'; k++)
			;
		if (k > i) {	/* a run that needs no escaping, at once */
			put(l, (const char *)p + i, k - i);
			i = k;
			continue;
		}
		if (p[i] == '"' || p[i] == '\\') {
			put(l, "\\", 1);
			put(l, (const char *)p + i++, 1);
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			putf(l, "\\u%04x", p[i++]);
		} else if (p[i] < 0x80) {
			put(l, (const char *)p + i++, 1);
		} else if ((k = utf8_len(p + i, n - i)) > 0) {
			put(l, (const char *)p + i, k);
			i += k;
		} else {
			put(l, "\xef\xbf\xbd", 3);
			i++;
		}
	}
	put(l, "\"", 1);
}

/* A field of the combined format, between quotes: quotes and backslashes escaped, and
 * anything not printable ASCII as \xHH (as nginx writes it). */
static void ncsa_str(struct line *l, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			putf(l, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			putf(l, "\\x%02X", p[i]);
		else
			put(l, (const char *)p + i, 1);
	}
}

/* The client's address (with its port, if asked), or "-". */
static void put_client(struct line *l, const struct shm_logrec *h, int port)
{
	char a[INET6_ADDRSTRLEN];
	unsigned i;

	if (h->lr_family == 4) {
		for (i = 0; i < 4; i++) {	/* inet_ntop would go through sprintf */
			if (i)
				put(l, ".", 1);
			put_u64(l, h->lr_addr[i]);
		}
	} else if (h->lr_family == 6 && inet_ntop(AF_INET6, h->lr_addr, a, sizeof(a)) != NULL) {
		if (port)
			put(l, "[", 1);
		put_str(l, a);
		if (port)
			put(l, "]", 1);
	} else {
		put(l, "-", 1);
		return;
	}
	if (port) {
		put(l, ":", 1);
		put_u64(l, h->lr_port);
	}
}

/* What the strings of a record are: the request-target, User-Agent, Referer, X-Request-Id. */
struct fields {
	const char *s[4];
	size_t n[4];
};

/* The strings follow the record's header back to back, lengths in lr_len. */
static void split(const struct shm_logrec *h, const char *strings, struct fields *f)
{
	unsigned i;

	for (i = 0; i < 4; i++) {
		f->s[i] = strings;
		f->n[i] = h->lr_len[i];
		strings += h->lr_len[i];
	}
}

/* An exchange whose request line was seen: its method and target mean something.  A
 * connection line (no exchange, or bytes that were not HTTP) has neither. */
static int has_request_line(const struct shm_logrec *h)
{
	return h->lr_kind == LOG_EXCHANGE && ((h->lr_flags & LOG_META) || h->lr_code != 0);
}

/* How it ended, as the metrics' label names it; NULL for an exchange that completed.  A
 * record's reason outside the names (a worker of another build) shows as none. */
static const char *reason_of(const struct shm_logrec *h)
{
	int why = rec_why(h->lr_reason);

	if (h->lr_kind == LOG_CONN)
		return h->lr_reason < CLOSE_MAX ? close_reason_names[h->lr_reason] : NULL;
	return why >= 0 && why < INCOMPLETE_MAX ? incomplete_reason_names[why] : NULL;
}

/* A line's time to the second, in a format's form (combined, or JSON's RFC 3339): formatted
 * once a second, not once a line. */
static const char *stamp(int64_t wall_ns, int combined)
{
	static time_t cached[2] = { (time_t)-1, (time_t)-1 };
	static char text[2][40];
	time_t secs = (time_t)(wall_ns / NS_PER_S);
	struct tm tm;

	if (secs != cached[combined]) {
		gmtime_r(&secs, &tm);
		strftime(text[combined], sizeof(text[combined]), combined ?
		    "%d/%b/%Y:%H:%M:%S +0000" : "%Y-%m-%dT%H:%M:%S", &tm);
		cached[combined] = secs;
	}
	return text[combined];
}

/* One JSON line.  The names are the README's, in a fixed order; a field with nothing to
 * say (no status for a connection line, no app_s for an answer of ours) is left out rather
 * than null.  The path is redacted (route_redact(): query values and credentials), the
 * route is the metrics' label for it, so a line can be matched to its series. */
static void json_line(struct line *l, unsigned slot, const struct shm_logrec *h,
    const struct fields *f)
{
	char path[2 * OBS_META_TARGET + 8];
	const char *reason = reason_of(h), *route;
	unsigned i;

	put_str(l, "{\"time\":\"");
	put_str(l, stamp(h->lr_wall, 0));
	put(l, ".", 1);
	put_six(l, (uint64_t)(h->lr_wall % NS_PER_S / 1000));
	put(l, "Z\"", 2);
	if (h->lr_family) {
		put_str(l, ",\"client\":\"");
		put_client(l, h, 1);
		put(l, "\"", 1);
	}
	if (has_request_line(h)) {
		put_str(l, ",\"method\":\"");
		put_str(l, h->lr_method < METHOD_MAX ? http_method_names[h->lr_method] : "OTHER");
		put(l, "\"", 1);
		if (f->n[0]) {
			size_t n = route_redact(f->s[0], f->n[0], path, sizeof(path));

			put_str(l, ",\"path\":");
			json_str(l, path, n);
		}
		put_str(l, ",\"route\":");
		route = aggregate_route_of(slot, h->lr_route);
		json_str(l, route, strlen(route));
		put_str(l, h->lr_flags & LOG_HTTP10 ? ",\"proto\":\"HTTP/1.0\"" :
		    ",\"proto\":\"HTTP/1.1\"");
	}
	if (h->lr_code) {
		put_str(l, ",\"status\":");
		put_u64(l, h->lr_code);
	}
	put_str(l, ",\"req_bytes\":");
	put_u64(l, h->lr_in);
	put_str(l, ",\"resp_bytes\":");
	put_u64(l, h->lr_out);
	put_str(l, ",\"duration_s\":");
	put_secs(l, h->lr_dur);
	if (h->lr_app) {
		put_str(l, ",\"app_s\":");
		put_secs(l, h->lr_app);
	}
	put_str(l, ",\"conn_requests\":");
	put_u64(l, h->lr_requests);
	if (reason)
		putf(l, ",\"reason\":\"%s\"", reason);
	if (h->lr_kind == LOG_CONN && rec_why(h->lr_opaque) >= 0 &&
	    rec_why(h->lr_opaque) < OPAQUE_MAX)
		putf(l, ",\"opaque\":\"%s\"", opaque_reason_names[rec_why(h->lr_opaque)]);
	if (h->lr_flags & LOG_ANSWERED)
		put_str(l, ",\"answered_by\":\"sidemeter\"");
	if (f->n[1]) {
		put_str(l, ",\"user_agent\":");
		json_str(l, f->s[1], f->n[1]);
	}
	if (f->n[2]) {
		put_str(l, ",\"referer\":");
		json_str(l, f->s[2], f->n[2]);
	}
	if (f->n[3]) {
		put_str(l, ",\"request_id\":");
		json_str(l, f->s[3], f->n[3]);
	}
	if (h->lr_flags & LOG_TRACED) {
		static const char hex[] = "0123456789abcdef";
		char t[2 * sizeof(h->lr_trace)];

		for (i = 0; i < sizeof(h->lr_trace); i++) {
			t[2 * i] = hex[h->lr_trace[i] >> 4];
			t[2 * i + 1] = hex[h->lr_trace[i] & 15];
		}
		put_str(l, ",\"trace_id\":\"");
		put(l, t, sizeof(t));
		put(l, "\"", 1);
	}
	put(l, "}\n", 2);
}

/* host ident authuser [date] "request" status bytes "referer" "user-agent" */
static void combined_line(struct line *l, const struct shm_logrec *h, const struct fields *f)
{
	char path[2 * OBS_META_TARGET + 8];

	put_client(l, h, 0);
	put_str(l, " - - [");
	put_str(l, stamp(h->lr_wall, 1));
	put_str(l, "] \"");
	if (has_request_line(h)) {
		size_t n = f->n[0] ? route_redact(f->s[0], f->n[0], path, sizeof(path)) : 0;

		putf(l, "%s ", h->lr_method < METHOD_MAX ? http_method_names[h->lr_method] : "OTHER");
		if (n)
			ncsa_str(l, path, n);
		else
			put_str(l, "-");
		putf(l, " HTTP/1.%c", h->lr_flags & LOG_HTTP10 ? '0' : '1');
	} else {
		put_str(l, "-");
	}
	put_str(l, "\" ");
	if (h->lr_code)
		putf(l, "%u ", h->lr_code);
	else
		put_str(l, "- ");
	if (h->lr_out)
		putf(l, "%llu \"", (unsigned long long)h->lr_out);
	else
		put_str(l, "- \"");
	if (f->n[2])
		ncsa_str(l, f->s[2], f->n[2]);
	else
		put_str(l, "-");
	put_str(l, "\" \"");
	if (f->n[1])
		ncsa_str(l, f->s[1], f->n[1]);
	else
		put_str(l, "-");
	put_str(l, "\"\n");
}

/* Into the output queue, whole, or dropped and counted: the master never waits on the log's
 * reader, whatever it is (a full disk, a stuck pipe). */
static void enqueue(const struct line *l)
{
	if (l->full || al.len + l->n > sizeof(al.queue)) {
		al.dropped++;	/* whole, never half */
		return;
	}
	memcpy(al.queue + al.len, l->b, l->n);
	al.len += l->n;
}

/* One line: to the file in its format, to the tap's clients in JSON (formatted once for
 * both when the file takes JSON too). */
static void take(void *ctx, unsigned slot, const struct shm_logrec *h, const char *strings)
{
	static struct line json, ncsa;
	const int64_t *now = ctx;
	int to_file = al.fd >= 0 && !(h->lr_flags & LOG_TAP_ONLY);
	int to_tap = tap_clients() > 0;
	struct tap_facts t;
	struct fields f;

	if (!to_file && !to_tap)
		return;
	split(h, strings, &f);
	if (to_file && cfg.cf_alog_format == ALOG_COMBINED) {
		ncsa.n = 0;
		ncsa.full = 0;
		combined_line(&ncsa, h, &f);
		enqueue(&ncsa);
	}
	if (!to_tap && !(to_file && cfg.cf_alog_format == ALOG_JSON))
		return;
	json.n = 0;
	json.full = 0;
	json_line(&json, slot, h, &f);
	if (to_file && cfg.cf_alog_format == ALOG_JSON)
		enqueue(&json);
	if (to_tap && !json.full) {
		t.tf_route = has_request_line(h) ? aggregate_route_of(slot, h->lr_route) : NULL;
		t.tf_method = has_request_line(h) ? (h->lr_method < METHOD_MAX ? h->lr_method :
		    METHOD_OTHER) : -1;
		t.tf_code = h->lr_code;
		t.tf_dur_ns = h->lr_dur;
		tap_feed(&t, json.b, json.n, *now);
	}
}

/* From the master's loop with the aggregate's drain: every slot's log ring, oldest first
 * within a slot (lines of different workers interleave by drain, not by time). */
size_t accesslog_drain(struct shm_header *sh, unsigned nslots)
{
	int64_t now = clock_mono_ns();
	size_t n = 0;
	unsigned i;

	/* Even with neither the file nor a tap client: lines written while the last tap
	 * client was leaving are let go. */
	for (i = 0; i < nslots; i++)
		n += shm_log_drain(shm_stats_slot(sh, i), i, take, &now);
	return n;
}

/* ---- writing ---- */

/* As much of the queue as the output takes now, without blocking. */
void accesslog_flush(void)
{
	size_t chunk;
	ssize_t w;

	/* On stdout, never between the pieces of a summary line that is going out in parts. */
	if (al.fd < 0 || al.off == al.len || (cfg.cf_alog == ALOG_STDOUT && dump_pending()))
		return;
	while (al.off < al.len) {
		/* To a pipe, whole lines, at most PIPE_BUF at once where possible (note_kind()). */
		chunk = al.len - al.off;
		if (al.pipe && chunk > PIPE_BUF) {
			size_t k = PIPE_BUF;

			while (k > 0 && al.queue[al.off + k - 1] != '\n')
				k--;
			if (k > 0)
				chunk = k;	/* else one line longer than PIPE_BUF: as it is */
		}
		w = write(al.fd, al.queue + al.off, chunk);
		if (w <= 0)
			break;
		al.off += (size_t)w;
	}
	/* Compacted only past half: a memmove per flush of a slow output would cost more than
	 * the room it wins. */
	if (al.off == al.len)
		al.off = al.len = 0;
	else if (al.off > sizeof(al.queue) / 2) {
		memmove(al.queue, al.queue + al.off, al.len - al.off);
		al.len -= al.off;
		al.off = 0;
	}
}

int accesslog_pollfd(struct pollfd *pfd)
{
	if (al.fd < 0 || al.off == al.len)
		return 0;
	pfd->fd = al.fd;
	pfd->events = POLLOUT;
	pfd->revents = 0;
	return 1;
}

/* At exit and before USR2's exec: the queue, for as long as deadline allows. */
void accesslog_flush_until(int64_t deadline)
{
	struct pollfd pfd;

	accesslog_flush();
	while (accesslog_pollfd(&pfd) && clock_mono_ns() < deadline) {
		if (poll(&pfd, 1, clock_poll_ms(deadline, clock_mono_ns(), 100)) <= 0 &&
		    clock_mono_ns() >= deadline)
			break;
		accesslog_flush();
	}
}

/* In a forked child: the master's descriptor closed (stdout and stderr stay, they are
 * the child's too), the queue forgotten unwritten. */
void accesslog_forget(void)
{
	if (al.fd > STDERR_FILENO)
		close(al.fd);
	al.fd = -1;
	al.len = al.off = 0;
}

uint64_t accesslog_dropped(void)
{
	return al.dropped;
}
