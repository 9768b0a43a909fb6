/* dump.h: the periodic summary line on stdout (the container log), as text or JSON.  Its
 * fields come from the metric table (include/metric_table.h). */
#ifndef SIDEMETER_DUMP_H
#define SIDEMETER_DUMP_H

#include <poll.h>
#include <stdint.h>

/* Start counting the first interval at now; open the output. */
void dump_init(int64_t now);

/* Write one line covering the interval that ends now; the caller then starts the next
 * with aggregate_rotate().  While the last line is still going out (a full pipe), the new
 * one is skipped and counted, and the next covers both intervals' counters. */
void dump_write(int64_t now);

/* Write more of the line still going out: 1 while some of it waits for room, else 0. */
int dump_flush(void);

/* Is a line partly written (another writer of stdout must wait for its end)? */
int dump_pending(void);

/* 1 and a POLLOUT entry for the output while a line waits for room, else 0. */
int dump_pollfd(struct pollfd *pfd);

/* Wait for the line still going out, until the monotonic deadline at most (at exit). */
void dump_flush_until(int64_t deadline);

/* In a worker: close the master's descriptor of the output. */
void dump_forget(void);

#endif
