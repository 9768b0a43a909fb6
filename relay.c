/* relay.c: the two-socket pump (contract in include/relay.h).
 *
 * The sockets are blocking; each wait is one poll() over both sockets and the watch fd, or,
 * when the policy knows which side speaks next, one blocking read of that side (bounded by
 * its SO_RCVTIMEO tick): half the system calls of a request and its answer.  Sends never
 * wait (MSG_DONTWAIT): a destination that is full keeps its bytes in the direction's
 * buffer (or pipe) and the source is not read again until they are gone.  So a peer that
 * does not read can stall only its own direction; the other keeps moving, and an
 * application that answers before the request body is in cannot deadlock the pump.
 *
 * Bytes the policy need not see (bodies of known length, tunnels, tcp mode) go through a
 * pipe with splice() on Linux: from socket to socket without a copy into user space.
 *
 * It touches: the two sockets and the watch descriptor it is given, its own buffers and
 * pipes; it knows nothing of HTTP and nothing of shared memory (its policy does). */
#if defined(__linux__)
#define _GNU_SOURCE		/* splice, pipe2, F_SETPIPE_SZ */
#endif
#include <errno.h>
#include <fcntl.h>
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
#if defined(__linux__) && defined(SPLICE_F_MOVE)
#define HAVE_SPLICE 1
#define PIPE_SIZE (1024 * 1024)	/* asked for; the kernel may give less */
#endif

/* Not a close reason: read_dir(wait) found nothing to read within the tick. */
#define READ_TIMED_OUT ((enum close_reason)(CLOSE_MAX + 1))

/* Errors that mean "the peer is gone", as opposed to our own failure. */
static int peer_gone(int err)
{
	return err == ECONNRESET || err == EPIPE || err == ENOTCONN || err == ETIMEDOUT ||
	    err == EHOSTUNREACH || err == ENETUNREACH || err == ECONNABORTED;
}

/* A peer's error is that side's end (counted as client_error or upstream_error); any other
 * error is ours (CLOSE_ERROR), which the fault tests keep at zero. */
static enum close_reason side_error(int side)
{
	return side == RELAY_CLIENT ? CLOSE_CLIENT_ERROR : CLOSE_UPSTREAM_ERROR;
}

static int dir_pending(const struct relay_dir *rd)
{
	return rd->rd_len > 0 || rd->rd_piped > 0;
}

int relay_pending(const struct relay *rl, int dir)
{
	return dir_pending(&rl->rl_dir[dir]);
}

/* Nothing buffered, nothing half-closed: the state in which a connection may be handed to
 * the keeper (the keeper holds sockets, never bytes). */
int relay_quiet(const struct relay *rl)
{
	int d;

	for (d = 0; d < 2; d++)
		if (dir_pending(&rl->rl_dir[d]) || rl->rl_dir[d].rd_eof || rl->rl_dir[d].rd_shut)
			return 0;
	return 1;
}

void relay_set_ticks(struct relay *rl, int client_ms, int upstream_ms)
{
	rl->rl_tick_ms[RELAY_CLIENT] = client_ms;
	rl->rl_tick_ms[RELAY_UPSTREAM] = upstream_ms;
}

/* A write that moved nothing (n <= 0): 1 to try again (a signal), 0 when the destination
 * is full, -1 on error. */
static int write_stalled(ssize_t n)
{
	if (n == -1 && errno == EINTR)
		return 1;
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return -1;
}

/* Write what direction d holds; 0 when all of it went (or would block), -1 on error.  Bytes
 * count as relayed when the destination took them, not when they were read: a connection
 * cut with bytes still held reports what the other side actually got. */
static int flush_dir(struct relay *rl, int d)
{
	struct relay_dir *rd = &rl->rl_dir[d];
	ssize_t n;
	int rc;

#if defined(HAVE_SPLICE)
	while (rd->rd_piped > 0) {
		n = splice(rd->rd_pipe[0], NULL, rl->rl_fd[!d], NULL, rd->rd_piped,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			rd->rd_piped -= (size_t)n;
			rl->rl_bytes[d] += (uint64_t)n;
		} else if ((rc = write_stalled(n)) != 1) {
			return rc;
		}
	}
#endif
	while (rd->rd_len > 0) {
		n = send(rl->rl_fd[!d], rd->rd_buf + rd->rd_off, rd->rd_len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			rd->rd_off += (size_t)n;
			rd->rd_len -= (size_t)n;
			rl->rl_bytes[d] += (uint64_t)n;
		} else if ((rc = write_stalled(n)) != 1) {
			return rc;
		}
	}
	rd->rd_off = 0;
	if (rd->rd_eof && !rd->rd_shut) {
		/* The source is done and everything it sent is out: pass the half-close on. */
		rd->rd_shut = 1;
		(void)shutdown(rl->rl_fd[!d], SHUT_WR);
	}
	return 0;
}

/* What a read of the source of direction d returned: n bytes (already handed on), 0 for
 * the end of the stream, -1 with errno.  Returns CLOSE_NONE to go on, why to stop, or
 * READ_TIMED_OUT. */
static enum close_reason after_read(struct relay *rl, int d, ssize_t n, int wait, int64_t now)
{
	struct relay_dir *rd = &rl->rl_dir[d];
	enum close_reason stop;

	if (n > 0)
		return flush_dir(rl, d) == -1 ? side_error(!d) : CLOSE_NONE;
	if (n == 0) {
		/* The first side to end names the close (client_closed or upstream_closed); the
		 * policy may stop at once (an end between exchanges) or let the other side go on
		 * (a half-close after a request: the answer still comes). */
		rd->rd_eof = 1;
		if (rl->rl_first_eof < 0)
			rl->rl_first_eof = d;
		stop = rl->rl_ops->ro_eof(rl->rl_ctx, d, now);
		if (stop != CLOSE_NONE)
			return stop;
		flush_dir(rl, d);	/* nothing pending: just passes the half-close on */
		return CLOSE_NONE;
	}
	if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
		return wait ? READ_TIMED_OUT : CLOSE_NONE;
	return peer_gone(errno) ? side_error(d) : CLOSE_ERROR;
}

#if defined(HAVE_SPLICE)
/* The pipe of direction d, made the first time it is needed; -1 if none can be had. */
static int pipe_of(struct relay_dir *rd)
{
	if (rd->rd_pipe[0] >= 0)
		return 0;
	if (pipe2(rd->rd_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		rd->rd_pipe[0] = rd->rd_pipe[1] = -1;
		return -1;
	}
	/* A 1 MiB pipe moves a large body in a quarter of the splices of the default 64 KiB;
	 * an unprivileged process may get less (pipe-max-size), and less is fine. */
	(void)fcntl(rd->rd_pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	return 0;
}
#endif

/* Read once from the source of direction d, at most unseen bytes without looking at them;
 * wait: block until data or the socket's tick.  Returns as after_read(). */
static enum close_reason read_dir(struct relay *rl, int d, int64_t now, int wait,
    uint64_t unseen)
{
	struct relay_dir *rd = &rl->rl_dir[d];
	enum close_reason stop, after;
	ssize_t n;

#if defined(HAVE_SPLICE)
	/* Worth a pipe only for a body larger than a buffer.  The pipe is empty here; the
	 * socket's own blocking (and tick) decide whether the splice waits. */
	if (unseen >= RELAY_BUF && pipe_of(rd) == 0) {
		n = splice(rl->rl_fd[d], NULL, rd->rd_pipe[1], NULL,
		    unseen < PIPE_SIZE ? (size_t)unseen : PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (wait)
			now = clock_mono_ns();
		if (n > 0) {
			rd->rd_piped = (size_t)n;
			rl->rl_ops->ro_unseen(rl->rl_ctx, d, (size_t)n, now);
		}
		return after_read(rl, d, n, wait, now);
	}
#endif
	/* The policy sees the bytes before they are sent on (ro_data): the observer's view
	 * of a request is complete before the application can answer it. */
	n = recv(rl->rl_fd[d], rd->rd_buf, sizeof(rd->rd_buf), wait ? 0 : MSG_DONTWAIT);
	if (wait)
		now = clock_mono_ns();	/* the read may have waited */
	if (n > 0) {
		rd->rd_off = 0;
		rd->rd_len = (size_t)n;
		stop = rl->rl_ops->ro_data(rl->rl_ctx, d, rd->rd_buf, (size_t)n, now);
		after = after_read(rl, d, n, wait, now);
		return stop != CLOSE_NONE ? stop : after;
	}
	return after_read(rl, d, n, wait, now);
}

/* The relay is reused connection after connection by its worker: pipes made once stay for
 * the next (two fewer system calls a connection), unless a pipe still holds bytes. */
void relay_init(struct relay *rl, int client_fd, int upstream_fd, int watch,
    const struct relay_ops *ops, void *ctx)
{
	int d;

	for (d = 0; d < 2; d++) {
		struct relay_dir *rd = &rl->rl_dir[d];

		/* A pipe left holding bytes of an earlier connection is not reused. */
		if (!rl->rl_set_up || rd->rd_piped > 0) {
			if (rl->rl_set_up && rd->rd_pipe[0] >= 0) {
				close(rd->rd_pipe[0]);
				close(rd->rd_pipe[1]);
			}
			rd->rd_pipe[0] = rd->rd_pipe[1] = -1;
		}
		rd->rd_off = rd->rd_len = rd->rd_piped = 0;
		rd->rd_eof = rd->rd_shut = 0;
		rl->rl_bytes[d] = 0;
	}
	rl->rl_set_up = 1;
	rl->rl_fd[RELAY_CLIENT] = client_fd;
	rl->rl_fd[RELAY_UPSTREAM] = upstream_fd;
	rl->rl_watch = watch;
	rl->rl_ops = ops;
	rl->rl_ctx = ctx;
	rl->rl_first_eof = -1;
	rl->rl_tick_ms[0] = rl->rl_tick_ms[1] = RELAY_TICK_MS;
}

/* Until the connection ends or the policy stops it: each turn asks the policy (timeouts,
 * parking, a leaving worker), then either reads the side that speaks next or polls both.
 * The watch descriptor (the master's pipe) ends the pump when the master dies. */
enum close_reason relay_pump(struct relay *rl)
{
	struct relay_plan plan;
	struct pollfd pfd[3];
	enum close_reason stop;
	int64_t now;
	int d, rc, nfds, polled = 1;

	for (;;) {
		if (rl->rl_dir[0].rd_shut && rl->rl_dir[1].rd_shut)
			return rl->rl_first_eof == RELAY_C2U ? CLOSE_CLIENT_CLOSED : CLOSE_UPSTREAM_CLOSED;

		now = clock_mono_ns();
		plan.rp_deadline = INT64_MAX;
		plan.rp_expect = -1;
		plan.rp_unseen[0] = plan.rp_unseen[1] = 0;
		stop = rl->rl_ops->ro_check(rl->rl_ctx, now, &plan);
		if (stop != CLOSE_NONE)
			return stop;

		/* Who speaks next is known, nothing waits to be written, and no deadline falls
		 * within the read's tick (that socket's SO_RCVTIMEO): read that side without a poll.  A read that waited a
		 * whole tick is followed by a poll of both sides, so that whatever the other
		 * side did (an unexpected close) is seen within a tick. */
		d = plan.rp_expect;
		if (d >= 0 && polled && !dir_pending(&rl->rl_dir[d]) && !rl->rl_dir[d].rd_eof &&
		    !dir_pending(&rl->rl_dir[!d]) &&
		    plan.rp_deadline - now > (int64_t)rl->rl_tick_ms[d] * NS_PER_MS) {
			stop = read_dir(rl, d, now, 1, plan.rp_unseen[d]);
			if (stop == READ_TIMED_OUT) {
				polled = 0;
				continue;
			}
			if (stop != CLOSE_NONE)
				return stop;
			continue;
		}
		polled = 1;

		/* pfd[i] is socket i: readable as the source of direction i, writable as the
		 * destination of direction !i. */
		for (d = 0; d < 2; d++) {
			pfd[d].fd = rl->rl_fd[d];
			pfd[d].events = !dir_pending(&rl->rl_dir[d]) && !rl->rl_dir[d].rd_eof ? POLLIN : 0;
			pfd[d].revents = 0;
		}
		for (d = 0; d < 2; d++)
			if (dir_pending(&rl->rl_dir[d]))
				pfd[!d].events |= POLLOUT;
		nfds = 2;
		if (rl->rl_watch >= 0) {
			pfd[2].fd = rl->rl_watch;
			pfd[2].events = POLLIN;
			pfd[2].revents = 0;
			nfds = 3;
		}

		/* The wait ends at the policy's nearest deadline, or within a tick at the latest:
		 * the heartbeat and a leaving worker's drain are checked at least that often. */
		rc = poll(pfd, (nfds_t)nfds, clock_poll_ms(plan.rp_deadline, now, RELAY_TICK_MS));
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

		/* A direction either drains what it holds or reads more, never both: a source is
		 * read only once its last bytes are out, which is what bounds each direction to
		 * one buffer (or pipe) of memory. */
		for (d = 0; d < 2; d++) {
			struct relay_dir *rd = &rl->rl_dir[d];
			short out = pfd[!d].revents, in = pfd[d].revents;

			if (dir_pending(rd) && (out & (POLLOUT | POLLERR | POLLHUP))) {
				if (flush_dir(rl, d) == -1)
					return peer_gone(errno) ? side_error(!d) : CLOSE_ERROR;
			} else if (!dir_pending(rd) && !rd->rd_eof && (in & (POLLIN | POLLERR | POLLHUP))) {
				stop = read_dir(rl, d, now, 0, plan.rp_unseen[d]);
				if (stop != CLOSE_NONE)
					return stop;
			}
		}
	}
}

int relay_eof_read(const struct relay *rl, int dir)
{
	return rl->rl_dir[dir].rd_eof;
}

int relay_shut(const struct relay *rl, int dir)
{
	return rl->rl_dir[dir].rd_shut;
}

uint64_t relay_bytes(const struct relay *rl, int dir)
{
	return rl->rl_bytes[dir];
}

void relay_set_bytes(struct relay *rl, uint64_t c2u, uint64_t u2c)
{
	rl->rl_bytes[RELAY_C2U] = c2u;
	rl->rl_bytes[RELAY_U2C] = u2c;
}

void relay_set_upstream(struct relay *rl, int fd)
{
	rl->rl_fd[RELAY_UPSTREAM] = fd;
}

