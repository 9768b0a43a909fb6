/* relay.c: the two-socket pump (contract in include/relay.h).
 *
 * The sockets are blocking; each wait is one poll() over both sockets and the watch fd.
 * Sends never wait (MSG_DONTWAIT): a destination that is full keeps its bytes in the
 * direction's buffer and the source is not read again until they are gone.  So a peer that
 * does not read can stall only its own direction; the other keeps moving, and an
 * application that answers before the request body is in cannot deadlock the pump. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "relay.h"

#ifndef MSG_DONTWAIT
#error "relay.c needs MSG_DONTWAIT"
#endif
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0		/* SIGPIPE is ignored by the worker anyway */
#endif

/* The longest wait without a check: heartbeats and the watch fd rely on it. */
#define RELAY_TICK_MS 1000

/* Errors that mean "the peer is gone", as opposed to our own failure. */
static int peer_gone(int err)
{
	return err == ECONNRESET || err == EPIPE || err == ENOTCONN || err == ETIMEDOUT ||
	    err == EHOSTUNREACH || err == ENETUNREACH || err == ECONNABORTED;
}

static enum close_reason side_error(int side)
{
	return side == RELAY_CLIENT ? CLOSE_CLIENT_ERROR : CLOSE_UPSTREAM_ERROR;
}

int relay_pending(const struct relay *rl, int dir)
{
	return rl->rl_dir[dir].rd_len > 0;
}

/* Write what direction d holds; 0 when all of it went (or would block), -1 on error. */
static int flush_dir(struct relay *rl, int d)
{
	struct relay_dir *rd = &rl->rl_dir[d];
	ssize_t n;

	while (rd->rd_len > 0) {
		n = send(rl->rl_fd[!d], rd->rd_buf + rd->rd_off, rd->rd_len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			rd->rd_off += (size_t)n;
			rd->rd_len -= (size_t)n;
			rl->rl_bytes[d] += (uint64_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	rd->rd_off = 0;
	if (rd->rd_eof && !rd->rd_shut) {
		/* The source is done and everything it sent is out: pass the half-close on. */
		rd->rd_shut = 1;
		(void)shutdown(rl->rl_fd[!d], SHUT_WR);
	}
	return 0;
}

/* Read once from the source of direction d.  Returns 0, or a close reason + 1. */
static int read_dir(struct relay *rl, int d, int64_t now)
{
	struct relay_dir *rd = &rl->rl_dir[d];
	ssize_t n;
	int stop;

	do
		n = recv(rl->rl_fd[d], rd->rd_buf, sizeof(rd->rd_buf), MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n > 0) {
		rd->rd_off = 0;
		rd->rd_len = (size_t)n;
		stop = rl->rl_ops->ro_data(rl->rl_ctx, d, rd->rd_buf, (size_t)n, now);
		if (flush_dir(rl, d) == -1)
			return (int)side_error(!d) + 1;
		return stop;
	}
	if (n == 0) {
		rd->rd_eof = 1;
		if (rl->rl_first_eof < 0)
			rl->rl_first_eof = d;
		stop = rl->rl_ops->ro_eof(rl->rl_ctx, d, now);
		if (stop)
			return stop;
		flush_dir(rl, d);	/* nothing pending: just passes the half-close on */
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	return (int)(peer_gone(errno) ? side_error(d) : CLOSE_ERROR) + 1;
}

void relay_init(struct relay *rl, int client_fd, int upstream_fd, int watch,
    const struct relay_ops *ops, void *ctx)
{
	int d;

	rl->rl_fd[RELAY_CLIENT] = client_fd;
	rl->rl_fd[RELAY_UPSTREAM] = upstream_fd;
	rl->rl_watch = watch;
	rl->rl_ops = ops;
	rl->rl_ctx = ctx;
	rl->rl_first_eof = -1;
	for (d = 0; d < 2; d++) {
		rl->rl_dir[d].rd_off = rl->rl_dir[d].rd_len = 0;
		rl->rl_dir[d].rd_eof = rl->rl_dir[d].rd_shut = 0;
		rl->rl_bytes[d] = 0;
	}
}

enum close_reason relay_pump(struct relay *rl)
{
	struct pollfd pfd[3];
	int64_t now, deadline;
	int d, stop, rc, nfds;

	for (;;) {
		if (rl->rl_dir[0].rd_shut && rl->rl_dir[1].rd_shut)
			return rl->rl_first_eof == RELAY_C2U ? CLOSE_CLIENT_CLOSED : CLOSE_UPSTREAM_CLOSED;

		now = clock_mono_ns();
		deadline = now + (int64_t)RELAY_TICK_MS * NS_PER_MS;
		stop = rl->rl_ops->ro_check(rl->rl_ctx, now, &deadline);
		if (stop)
			return (enum close_reason)(stop - 1);

		/* pfd[i] is socket i: readable as the source of direction i, writable as the
		 * destination of direction !i. */
		for (d = 0; d < 2; d++) {
			struct relay_dir *rd = &rl->rl_dir[d];

			pfd[d].fd = rl->rl_fd[d];
			pfd[d].events = 0;
			pfd[d].revents = 0;
			if (rd->rd_len == 0 && !rd->rd_eof)
				pfd[d].events |= POLLIN;
		}
		for (d = 0; d < 2; d++)
			if (rl->rl_dir[d].rd_len > 0)
				pfd[!d].events |= POLLOUT;
		nfds = 2;
		if (rl->rl_watch >= 0) {
			pfd[2].fd = rl->rl_watch;
			pfd[2].events = POLLIN;
			pfd[2].revents = 0;
			nfds = 3;
		}

		rc = poll(pfd, (nfds_t)nfds, clock_poll_ms(deadline, now, RELAY_TICK_MS));
		if (rc == -1) {
			if (errno == EINTR)
				continue;
			return CLOSE_ERROR;
		}
		if (rc == 0)
			continue;
		if (nfds == 3 && pfd[2].revents)
			return CLOSE_ABORTED;
		now = clock_mono_ns();

		for (d = 0; d < 2; d++) {
			struct relay_dir *rd = &rl->rl_dir[d];
			short out = pfd[!d].revents, in = pfd[d].revents;

			if (rd->rd_len > 0 && (out & (POLLOUT | POLLERR | POLLHUP))) {
				if (flush_dir(rl, d) == -1)
					return peer_gone(errno) ? side_error(!d) : CLOSE_ERROR;
			} else if (rd->rd_len == 0 && !rd->rd_eof && (in & (POLLIN | POLLERR | POLLHUP))) {
				stop = read_dir(rl, d, now);
				if (stop)
					return (enum close_reason)(stop - 1);
			}
		}
	}
}

int relay_write_all(int fd, const char *p, size_t n, int timeout_ms)
{
	int64_t deadline = clock_mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
	struct pollfd pfd;
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, clock_poll_ms(deadline, clock_mono_ns(), timeout_ms)) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

void relay_lingering_close(int fd, int timeout_ms)
{
	int64_t deadline = clock_mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
	char sink[4096];
	struct pollfd pfd;
	ssize_t n;

	if (shutdown(fd, SHUT_WR) == 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		for (;;) {
			int ms = clock_poll_ms(deadline, clock_mono_ns(), timeout_ms);

			if (ms == 0 || poll(&pfd, 1, ms) == 0)
				break;
			n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
			if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN))
				break;
		}
	}
	close(fd);
}
