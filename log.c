/* log.c: the logger.  Each call formats into a stack buffer and ends in one write(2), so it
 * never allocates, never buffers, and lines of concurrent processes stay whole.
 *
 * It touches: stderr (a description of its own when stderr is a pipe: log_nonblocking()). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

#define LOG_LINE_MAX 1024

static const char *log_role = "sidemeter";
static int log_id = -1;
static int log_fd = STDERR_FILENO;
static unsigned long log_dropped;	/* lines a full pipe refused since the last one written */

/* A container's stderr is a pipe that a stuck log collector can fill: then a warning costs
 * a dropped line (counted in the next one written), never a worker blocked in write(2). */
void log_nonblocking(void)
{
	int fd = net_reopen_nonblocking(STDERR_FILENO);

	if (fd >= 0)
		log_fd = fd;
}

void log_set_role(const char *role, int id)
{
	log_role = role;
	log_id = id;
	log_dropped = 0;	/* a new worker's count is its own */
}

static void log_emit(const char *level, int with_errno, int saved_errno, const char *fmt,
    va_list ap) LOG_PRINTF(4, 0);

static void log_emit(const char *level, int with_errno, int saved_errno, const char *fmt,
    va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	/* UTC, to the second, first on the line: what every log collector parses. */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (log_id >= 0)
		r = snprintf(line + n, sizeof(line) - n, " sidemeter[%ld] %s %d: %s", (long)getpid(),
		    log_role, log_id, level);
	else
		r = snprintf(line + n, sizeof(line) - n, " sidemeter[%ld] %s: %s", (long)getpid(),
		    log_role, level);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	if (with_errno && n < sizeof(line) - 1) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved_errno));
		if (r > 0)
			n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	}
	if (log_dropped > 0 && n < sizeof(line) - 1) {
		r = snprintf(line + n, sizeof(line) - n,
		    " (%lu earlier log lines dropped: stderr was full)", log_dropped);
		if (r > 0)
			n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* A line is shorter than PIPE_BUF: a pipe takes it whole or refuses it.  Other failed
	 * writes of a log line have nowhere better to be reported. */
	if (write(log_fd, line, n) >= 0)
		log_dropped = 0;
	else if (errno == EAGAIN || errno == EWOULDBLOCK)
		log_dropped++;
}

/* errno is kept across a log call: code that logs and then tests errno sees the error it
 * had, not strftime's or write's. */
#define LOG_VERB(name, level, with_errno)                                                  \
	void name(const char *fmt, ...)                                                    \
	{                                                                                  \
		int saved_errno = errno;                                                   \
		va_list ap;                                                                \
		va_start(ap, fmt);                                                         \
		log_emit(level, with_errno, saved_errno, fmt, ap);                         \
		va_end(ap);                                                                \
		errno = saved_errno;                                                       \
	}

LOG_VERB(log_info, "", 0)
LOG_VERB(log_warn, "warning: ", 1)
LOG_VERB(log_warnx, "warning: ", 0)

void fatal(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal: ", 1, saved_errno, fmt, ap);
	va_end(ap);
	exit(1);
}

/* ASSERT() (log.h): our own invariant broke.  abort() rather than exit(): a core, and the
 * sanitizers' and the fuzzer's report, show where; the master replaces a dead worker. */
void assert_failed(const char *cond, const char *file, int line)
{
	log_warnx("assertion failed: %s (%s:%d)", cond, file, line);
	abort();
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal: ", 0, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
