/* worker_wait.c: an idle worker waiting for work, and accepting it.  An idle worker waits
 * on three things: new connections, pairs the keeper hands back, and the master's pipe.  On
 * Linux each worker has an epoll set of them, the first two added with EPOLLEXCLUSIVE: the
 * kernel wakes one waiting worker per event, not every idle one, and a busy worker (not
 * waiting) takes no wake-up away from an idle one.  Elsewhere poll() watches them, and
 * every idle worker wakes.
 *
 * It touches: the listen socket, the hand-back channel and the master's pipe (read only). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__linux__) && !defined(SIDEMETER_NO_EPOLL)
#include <sys/epoll.h>
#define HAVE_EPOLL 1
#endif

#include "account.h"
#include "log.h"
#include "net.h"
#include "worker_int.h"

#if defined(HAVE_EPOLL)
static int wait_fd = -1;

static int wait_add(int fd, uint32_t tag, uint32_t flags)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | flags;
	ev.data.u32 = tag;
	return epoll_ctl(wait_fd, EPOLL_CTL_ADD, fd, &ev);
}

void worker_wait_init(void)
{
	wait_fd = epoll_create1(EPOLL_CLOEXEC);
	if (wait_fd == -1 || wait_add(w_env->we_listen_fd, READY_ACCEPT, EPOLLEXCLUSIVE) == -1 ||
	    (w_env->we_keeper && wait_add(w_env->we_back_fd, READY_BACK, EPOLLEXCLUSIVE) == -1) ||
	    wait_add(w_env->we_alive_fd, READY_MASTER_GONE, 0) == -1)
		fatal("epoll for the listen socket and the hand-back channel");
}

unsigned worker_wait(void)
{
	struct epoll_event ev[3];
	unsigned ready = 0;
	int n, i;

	n = epoll_wait(wait_fd, ev, 3, 1000);
	for (i = 0; i < n; i++)
		ready |= ev[i].data.u32;
	return ready;
}
#else
void worker_wait_init(void)
{
}

unsigned worker_wait(void)
{
	struct pollfd pfd[3] = {
		{ .fd = w_env->we_listen_fd, .events = POLLIN },
		{ .fd = w_env->we_alive_fd, .events = POLLIN },
		{ .fd = w_env->we_keeper ? w_env->we_back_fd : -1, .events = POLLIN },
	};
	unsigned ready = 0;

	if (poll(pfd, 3, 1000) <= 0)
		return 0;
	if (pfd[0].revents)
		ready |= READY_ACCEPT;
	if (pfd[1].revents)
		ready |= READY_MASTER_GONE;
	if (pfd[2].revents)
		ready |= READY_BACK;
	return ready;
}
#endif

/* The listen socket is non-blocking (the master set it so): accept what is there, if
 * another worker has not taken it first.  The socket accepted is blocking; it inherits
 * SO_RCVTIMEO (the client tick) and TCP_NODELAY from the listen socket. */
int worker_accept(int lfd, struct sockaddr_storage *peer)
{
	/* The client's address only for the access log: the kernel need not copy it else. */
	peer->ss_family = 0;
	return net_accept(lfd, account_log_wants(w_env->we_shm) ? peer : NULL, 0);
}
