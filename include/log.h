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

/* _warn/_fatal append ": strerror(errno)"; the x forms do not.  fatal exits with status 1
 * and is only for start-up or inside a worker. */
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;

#endif
