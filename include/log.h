/* log.h: logging verbs for the master and the workers.  One line per call, written with a
 * single write(2) to stderr, so lines from many processes never interleave. */
#ifndef SIDEMETER_LOG_H
#define SIDEMETER_LOG_H

#include <stdarg.h>

#if defined(__GNUC__)
#define LOG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LOG_NORETURN __attribute__((noreturn))
#else
#define LOG_PRINTF(f, a)
#define LOG_NORETURN
#endif

/* Who is speaking: "master", or "worker" with its slot number (id < 0: no number). */
void log_set_role(const char *role, int id);

/* From now on a pipe on stderr (a container's log) is written without blocking: a line that
 * finds it full is dropped, and the next line written says how many were.  A terminal or a
 * file keeps blocking writes.  The master calls it once, before it forks. */
void log_nonblocking(void);


/* _warn/_fatal append ": strerror(errno)"; the x forms do not.  fatal exits with status 1
 * and is only for start-up or inside a worker. */
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;

/* ASSERT(cond): an invariant of sidemeter's own, never a check of what a peer sent (that
 * is input: it gets an answer and a count).  On in every build: when one breaks, the
 * process logs the condition and where, and aborts; a worker is respawned, and the fuzzer
 * and the sanitizer runs report it as a finding instead of a silent wrong turn. */
#define ASSERT(cond) ((cond) ? (void)0 : assert_failed(#cond, __FILE__, __LINE__))
void assert_failed(const char *cond, const char *file, int line) LOG_NORETURN;

#endif
