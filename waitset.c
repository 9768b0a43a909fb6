/* waitset.c: the wait set of include/waitset.h.  With epoll each change is one epoll_ctl and
 * each wait one epoll_wait.  The portable fallback keeps one pollfd per descriptor, found by
 * a linear search on change (the keeper's set changes once per park and hand-back; the wait
 * itself is one poll()), and starts each scan where the last stopped, so that a busy
 * descriptor early in the array cannot starve the rest.
 *
 * It touches: its own epoll descriptor or arrays; the descriptors only to watch them. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__) && !defined(SIDEMETER_NO_EPOLL)
#include <sys/epoll.h>
#define HAVE_EPOLL 1
#endif

#include "waitset.h"

#define EVENTS 256		/* events taken per wait, at most */

#if defined(HAVE_EPOLL)
static int ws_fd;

int ws_init(void)
{
	ws_fd = epoll_create1(EPOLL_CLOEXEC);
	return ws_fd == -1 ? -1 : 0;
}

/* Level-triggered, as the keeper wants: a pair whose byte it has not handed back yet is
 * reported again on the next wait, so nothing is lost if a hand-back must wait.  EPOLLRDHUP
 * tells a client's half-close apart from data without a read. */
static int ws_ctl(int op, int fd, uint64_t tag, int want)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = (want & WANT_IN ? EPOLLIN | EPOLLRDHUP : 0) | (want & WANT_OUT ? EPOLLOUT : 0);
	ev.data.u64 = tag;
	return epoll_ctl(ws_fd, op, fd, &ev);
}

int ws_add(int fd, uint64_t tag, int want)
{
	return ws_ctl(EPOLL_CTL_ADD, fd, tag, want);
}

/* Changing or removing a descriptor that is in the set cannot fail but for a bug of ours;
 * nothing useful could be done with the error then. */
void ws_mod(int fd, uint64_t tag, int want)
{
	(void)ws_ctl(EPOLL_CTL_MOD, fd, tag, want);
}

void ws_del(int fd)
{
	(void)ws_ctl(EPOLL_CTL_DEL, fd, 0, 0);
}

int ws_wait(struct ws_event *out, int max, int ms)
{
	struct epoll_event ev[EVENTS];
	int n, i;

	if (max > EVENTS)
		max = EVENTS;
	n = epoll_wait(ws_fd, ev, max, ms);
	for (i = 0; i < n; i++) {
		out[i].we_tag = ev[i].data.u64;
		out[i].we_in = (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
		out[i].we_out = (ev[i].events & (EPOLLOUT | EPOLLERR)) != 0;
	}
	return n;
}
#else
/* Portable fallback: one pollfd per descriptor, found by a linear search on change (the
 * keeper's set changes once per park and hand-back; the wait itself is one poll()). */
static struct pollfd *ws_pfd;
static uint64_t *ws_tags;
static size_t ws_n, ws_cap;
static size_t ws_next;		/* where the last wait's scan stopped: fairness */

int ws_init(void)
{
	return 0;
}

static size_t ws_find(int fd)
{
	size_t i;

	for (i = 0; i < ws_n; i++)
		if (ws_pfd[i].fd == fd)
			return i;
	return ws_n;
}

static short ws_events(int want)
{
	return (short)((want & WANT_IN ? POLLIN : 0) | (want & WANT_OUT ? POLLOUT : 0));
}

int ws_add(int fd, uint64_t tag, int want)
{
	/* The arrays grow together; a failure leaves the larger one in place, which is only
	 * room, never a wrong entry. */
	if (ws_n == ws_cap) {
		size_t cap = ws_cap ? 2 * ws_cap : 64;
		struct pollfd *p = realloc(ws_pfd, cap * sizeof(*p));
		uint64_t *t;

		if (p == NULL)
			return -1;
		ws_pfd = p;
		t = realloc(ws_tags, cap * sizeof(*t));
		if (t == NULL)
			return -1;
		ws_tags = t;
		ws_cap = cap;
	}
	ws_pfd[ws_n].fd = fd;
	ws_pfd[ws_n].events = ws_events(want);
	ws_pfd[ws_n].revents = 0;
	ws_tags[ws_n++] = tag;
	return 0;
}

void ws_mod(int fd, uint64_t tag, int want)
{
	size_t i = ws_find(fd);

	if (i < ws_n) {
		ws_pfd[i].events = ws_events(want);
		ws_tags[i] = tag;
	}
}

/* The last entry moves into the hole: order does not matter, ws_next only spreads the
 * scans. */
void ws_del(int fd)
{
	size_t i = ws_find(fd);

	if (i < ws_n) {
		ws_pfd[i] = ws_pfd[ws_n - 1];
		ws_tags[i] = ws_tags[ws_n - 1];
		ws_n--;
	}
}

int ws_wait(struct ws_event *out, int max, int ms)
{
	size_t k, i;
	int n = 0;

	if (poll(ws_pfd, (nfds_t)ws_n, ms) <= 0)
		return 0;
	for (k = 0; k < ws_n && n < max; k++) {
		i = (ws_next + k) % ws_n;
		if (ws_pfd[i].revents == 0)
			continue;
		out[n].we_tag = ws_tags[i];
		out[n].we_in = (ws_pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
		out[n].we_out = (ws_pfd[i].revents & (POLLOUT | POLLERR)) != 0;
		n++;
	}
	ws_next = ws_n ? (ws_next + k) % ws_n : 0;
	return n;
}
#endif
