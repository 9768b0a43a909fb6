/* proc.c: what the processes cost, from /proc (contract in include/proc.h).
 * It touches: /proc, read-only. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "proc.h"

#if defined(__linux__)
/* One process's figures, added in.  A process that has just exited has no /proc entry: it
 * adds nothing, which a scrape during a HUP shows as a brief dip, not an error. */
static void proc_add(pid_t pid, struct proc_sum *ps)
{
	char path[64], stat[1024], *p;
	unsigned long utime, stime;
	long rss;
	FILE *f;
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return;
	p = fgets(stat, sizeof(stat), f);
	fclose(f);
	/* The command name is in parentheses and may hold spaces or ')': the fields start
	 * after the last ')'. */
	if (p == NULL || (p = strrchr(stat, ')')) == NULL)
		return;
	/* after "pid (comm)": state is field 3; utime 14, stime 15, rss 24 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
	    "%*d %*d %*u %*u %ld", &utime, &stime, &rss) != 3)
		return;
	ps->ps_cpu += (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	ps->ps_rss += (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
	/* Descriptors by counting /proc/PID/fd: the keeper's are most of them (two a parked
	 * pair), which is what a user watches against the limit. */
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			ps->ps_fds++;
	closedir(d);
}
#else
static void proc_add(pid_t pid, struct proc_sum *ps)
{
	(void)pid;
	(void)ps;	/* no /proc: the figures stay 0 */
}
#endif

void proc_sum(const int32_t *pids, unsigned n, struct proc_sum *ps)
{
	unsigned i;

	memset(ps, 0, sizeof(*ps));
	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			proc_add(pids[i], ps);
}
