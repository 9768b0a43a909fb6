/* accesslog.h: the access log (--access-log), the master's side: lines drained from the
 * slots' log rings, formatted (JSON or the NCSA combined format) and written without
 * blocking.  Workers and the keeper write the rings through account.h. */
#ifndef SIDEMETER_ACCESSLOG_H
#define SIDEMETER_ACCESSLOG_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "shm_stats.h"

/* Open the output --access-log names (the master, at start); a file that cannot be opened
 * is fatal. */
void accesslog_open(void);

/* USR1: open the file again (after logrotate moved it); the old one stays if that fails. */
void accesslog_reopen(void);

/* Format every line the rings of the region's first nslots slots hold into the queue (a
 * line that does not fit is dropped and counted) and give it to the tap; returns the
 * lines taken. */
size_t accesslog_drain(struct shm_header *sh, unsigned nslots);

/* Write what is queued, as far as the output takes it now. */
void accesslog_flush(void);

/* 1 and a POLLOUT entry while lines wait for the output, else 0. */
int accesslog_pollfd(struct pollfd *pfd);

/* At exit: write what is queued, until the monotonic deadline at most. */
void accesslog_flush_until(int64_t deadline);

/* In a child just forked: close the master's descriptor of the output. */
void accesslog_forget(void);

/* Lines dropped because the output did not keep up (the rings' drops are slot counters). */
uint64_t accesslog_dropped(void);

#endif
