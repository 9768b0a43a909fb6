/* proc.h: what the processes cost, read from /proc (Linux; elsewhere 0): CPU time,
 * resident memory and open descriptors, added up over the pids given. */
#ifndef SIDEMETER_PROC_H
#define SIDEMETER_PROC_H

#include <stdint.h>

struct proc_sum {
	double ps_cpu;			/* seconds, user and system */
	uint64_t ps_rss;		/* bytes (shared pages count in each process) */
	unsigned ps_fds;
};

/* The sum over pids[0..n) (a pid of 0 or less is skipped; one that is gone adds nothing). */
void proc_sum(const int32_t *pids, unsigned n, struct proc_sum *ps);

#endif
