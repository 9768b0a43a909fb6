/* reexec.c: USR2, a new binary in place.  The master execs the binary on disk again and
 * keeps its PID (it may be PID 1 in a pod), its workers, the keeper and what it holds, the
 * listen socket, the metrics socket, the keeper's channels and the shared memory: they pass
 * through exec as descriptors named in SIDEMETER_INHERIT.  The new image starts a new
 * generation of workers; the old ones leave once it is ready, or carry on if it cannot
 * start.  A binary that does not pass --check with the same arguments is not run at all.
 *
 * It touches: the master's state (include/master.h), its descriptors' close-on-exec flags,
 * the environment; the region only to map it again in the new image. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include "accesslog.h"
#include "clock.h"
#include "config.h"
#include "dump.h"
#include "log.h"
#include "master.h"
#include "tap.h"

#define CHECK_WAIT_MS 5000
#define INHERIT_ENV "SIDEMETER_INHERIT"

/* Run the binary on disk with our arguments and --check: 0 if it passed in time. */
static int check_binary(void)
{
	char *args[256];
	int i, n, status = 0, devnull;
	int64_t until = clock_mono_ns() + CHECK_WAIT_MS * NS_PER_MS;
	pid_t pid, got;

	for (n = 0; m.m_argv[n] && n < 254; n++)
		args[n] = m.m_argv[n];
	args[n++] = (char *)(uintptr_t)"--check";
	args[n] = NULL;
	pid = fork();
	if (pid == -1) {
		log_warn("USR2: fork");
		return -1;
	}
	/* The check's stdout (the whole configuration) would land in the pod's log as if it
	 * were ours: to /dev/null; its stderr stays, so a failed check says why there. */
	if (pid == 0) {
		devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, STDOUT_FILENO);
		execv(m.m_exe, args);
		_exit(127);
	}
	/* Polled, not waited on: a binary that hangs in --check must not hang the master,
	 * whose loop is not running meanwhile (CHECK_WAIT_MS at most). */
	for (i = 0;; i++) {
		got = waitpid(pid, &status, WNOHANG);
		if (got == pid)
			break;
		if (clock_mono_ns() >= until) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			log_warnx("USR2: %s --check did not finish within %ds: carrying on", m.m_exe,
			    CHECK_WAIT_MS / 1000);
			return -1;
		}
		poll(NULL, 0, 20);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_warnx("USR2: %s --check failed (%s %d): carrying on", m.m_exe,
		    WIFEXITED(status) ? "status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -1;
	}
	return 0;
}

/* The descriptors that pass through exec: inherited (on) or closed by it again. */
static void set_inheritable(int on)
{
	int fds[] = { m.m_listen_fd, m.m_metrics_fd, m.m_alive_r, m.m_alive_w, m.m_shm_fd,
		m.m_park[0], m.m_park[1], m.m_back[0], m.m_back[1] };
	size_t i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		int fl;

		if (fds[i] < 0 || (fl = fcntl(fds[i], F_GETFD)) == -1)
			continue;
		fcntl(fds[i], F_SETFD, on ? fl & ~FD_CLOEXEC : fl | FD_CLOEXEC);
	}
}

void master_reexec(void)
{
	char env[8192];
	size_t n;
	unsigned i;
	sigset_t all, old;

	if (m.m_shm_fd < 0) {
		log_warnx("USR2: this system keeps no shared memory across exec: not supported");
		return;
	}
	if (check_binary() == -1)
		return;
	n = (size_t)snprintf(env, sizeof(env), "listen=%d metrics=%d alive=%d,%d shm=%d gen=%u "
	    "park=%d,%d back=%d,%d workers=", m.m_listen_fd, m.m_metrics_fd, m.m_alive_r,
	    m.m_alive_w, m.m_shm_fd, m.m_gen, m.m_park[0], m.m_park[1], m.m_back[0], m.m_back[1]);
	for (i = 0; i < m.m_nslots && n < sizeof(env) - 64; i++) {
		const struct master_slot *ms = &m.m_slots[i];

		if (ms->ms_pid)
			n += (size_t)snprintf(env + n, sizeof(env) - n, "%ld:%u:%u:%d,",
			    (long)ms->ms_pid, i, ms->ms_gen, ms->ms_leaving);
	}
	log_info("USR2: %s passed --check: re-executing", m.m_exe);
	dump_flush_until(clock_mono_ns() + NS_PER_S);	/* the new image starts a line afresh */
	accesslog_flush_until(clock_mono_ns() + NS_PER_S);	/* ... and with an empty queue */
	tap_close_all();	/* the streams end; a tap client asks the new image again */
	/* From here until execv returns (only on failure) every step is undone on failure:
	 * the master carries on as the old image, with nothing leaked into its children. */
	set_inheritable(1);
	setenv(INHERIT_ENV, env, 1);
	/* Signals wait until the new image has its handlers. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	execv(m.m_exe, m.m_argv);
	sigprocmask(SIG_SETMASK, &old, NULL);
	log_warn("USR2: exec %s", m.m_exe);
	unsetenv(INHERIT_ENV);
	set_inheritable(0);
}

/* After USR2: take over what the previous image left in SIDEMETER_INHERIT.  Returns 0 if
 * there was nothing to inherit. */
int master_inherit(int64_t now)
{
	const char *env = getenv(INHERIT_ENV), *w;
	int listen_fd, metrics_fd, alive_r, alive_w, shm_fd, accepting = 0, adopted = 0;
	unsigned gen, newest = 0;
	socklen_t len = sizeof(accepting);
	char err[512];
	int fresh = 0;

	if (env == NULL)
		return 0;
	if (sscanf(env, "listen=%d metrics=%d alive=%d,%d shm=%d gen=%u park=%d,%d back=%d,%d",
	    &listen_fd, &metrics_fd, &alive_r, &alive_w, &shm_fd, &gen, &m.m_park[0], &m.m_park[1],
	    &m.m_back[0], &m.m_back[1]) != 10 || (w = strstr(env, "workers=")) == NULL)
		fatalx("%s is malformed", INHERIT_ENV);
	if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == -1 || !accepting)
		fatalx("%s: descriptor %d is not a listening socket", INHERIT_ENV, listen_fd);
	m.m_listen_fd = listen_fd;
	m.m_metrics_fd = metrics_fd;
	m.m_alive_r = alive_r;
	m.m_alive_w = alive_w;
	m.m_shm_fd = shm_fd;
	m.m_shm = shm_stats_inherit(shm_fd, err, sizeof(err));
	if (m.m_shm != NULL) {
		m.m_nslots = m.m_shm->sh_nslots;
	} else {
		log_warnx("%s: counters start over", err);
		close(shm_fd);
		master_map_shm();
		fresh = 1;	/* the adopted workers write to the old region: no heartbeat here */
	}
	m.m_slots = calloc(m.m_nslots, sizeof(*m.m_slots));
	if (m.m_slots == NULL)
		fatal("calloc");
	/* Every worker the old image had, with its slot and generation: they keep serving
	 * until the new generation is ready, and are reaped by this image as its own. */
	for (w += strlen("workers="); *w;) {
		long pid;
		unsigned slot, wgen;
		int leaving, used;

		if (sscanf(w, "%ld:%u:%u:%d,%n", &pid, &slot, &wgen, &leaving, &used) != 4)
			break;
		w += used;
		if (slot >= m.m_nslots) {
			kill((pid_t)pid, SIGQUIT);	/* no room to follow it: let it finish */
			continue;
		}
		m.m_slots[slot].ms_pid = (pid_t)pid;
		m.m_slots[slot].ms_gen = wgen;
		m.m_slots[slot].ms_ready = 1;
		m.m_slots[slot].ms_forked = now;
		m.m_slots[slot].ms_leaving = leaving;
		m.m_slots[slot].ms_kill_at = now + cfg.cf_drain_ms * NS_PER_MS;
		m.m_slots[slot].ms_foreign = fresh;
		if (wgen > newest)
			newest = wgen;
		adopted++;
	}
	/* A new generation from the new binary; the adopted one leaves once it is ready. */
	m.m_gen = (newest > gen ? newest : gen) + 1;
	unsetenv(INHERIT_ENV);
	set_inheritable(0);
	log_info("re-executed %s: %d workers adopted, starting generation %u", m.m_exe, adopted,
	    m.m_gen);
	return 1;
}
