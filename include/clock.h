/* clock.h: monotonic time for durations and deadlines; wall-clock is only for timestamps. */
#ifndef SIDEMETER_CLOCK_H
#define SIDEMETER_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL

/* Nanoseconds on CLOCK_MONOTONIC (a vDSO call on Linux, not a syscall). */
static inline int64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME): for timestamps only. */
static inline int64_t clock_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Milliseconds from now until an absolute deadline in ns, clamped to [0, cap] for poll(). */
static inline int clock_poll_ms(int64_t deadline_ns, int64_t now_ns, int cap_ms)
{
	int64_t ms;

	if (deadline_ns <= now_ns)
		return 0;
	ms = (deadline_ns - now_ns + NS_PER_MS - 1) / NS_PER_MS;
	return ms > cap_ms ? cap_ms : (int)ms;
}

#endif
