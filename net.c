/* net.c: socket helpers shared by the master, the workers, the keeper and the metrics port
 * (contract in include/net.h): addresses, listening, connecting, accepting, descriptor
 * flags, writing all of a buffer, a lingering close, a pipe opened again non-blocking.
 * It touches: the descriptors it is given, and the resolver. */
#if defined(__linux__)
#define _GNU_SOURCE		/* accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0		/* SIGPIPE is ignored where these are used */
#endif

/* HOST:PORT, [IPV6]:PORT, or :PORT and *:PORT (every address) where passive.  The port is
 * checked by hand before the resolver sees it: getaddrinfo would take a service name
 * ("http") or "+80", and a pod's variable should be exactly a number.  The first address
 * the resolver gives is the one used, for the process's life. */
int net_parse_addr(struct net_addr *na, const char *text, int passive, char *err,
    size_t errlen)
{
	char host[256], *end;
	const char *colon, *port_text;
	struct addrinfo hints, *res;
	size_t hostlen;
	long port;
	int rc;

	memset(na, 0, sizeof(*na));
	/* The last colon splits host and port, except inside brackets: an IPv6 literal has
	 * colons of its own. */
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "'%s' is not [IPV6]:PORT", text);
			return -1;
		}
		hostlen = (size_t)(close - text - 1);
		text++;
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "'%s' has no :PORT", text);
			return -1;
		}
		hostlen = (size_t)(colon - text);
	}
	if (hostlen >= sizeof(host)) {
		snprintf(err, errlen, "host name is too long");
		return -1;
	}
	memcpy(host, text, hostlen);
	host[hostlen] = '\0';
	port_text = colon + 1;
	errno = 0;
	port = strtol(port_text, &end, 10);
	if (*port_text == '\0' || *end != '\0' || errno != 0 || port_text[0] == '-' ||
	    port_text[0] == '+' || port_text[0] == ' ') {
		snprintf(err, errlen, "port '%s' is not a number", port_text);
		return -1;
	}
	if (port < 1 || port > 65535) {
		snprintf(err, errlen, "port %s is out of range (1-65535)", port_text);
		return -1;
	}
	if (strcmp(host, "*") == 0 || host[0] == '\0') {
		if (!passive) {
			snprintf(err, errlen, "'%s' needs a host", text);
			return -1;
		}
		host[0] = '\0';
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	rc = getaddrinfo(host[0] ? host : NULL, port_text, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	/* na_text is what every message and /stats.json show: the name as given, not the
	 * address it resolved to, which is what a user recognises. */
	memcpy(&na->na_ss, res->ai_addr, res->ai_addrlen);
	na->na_len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(na->na_text, sizeof(na->na_text), "%s%s%s:%ld",
	    strchr(host, ':') ? "[" : "", host[0] ? host : "0.0.0.0", strchr(host, ':') ? "]" : "",
	    port);
	return 0;
}

int net_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

int net_set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl == -1)
		return -1;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

void net_set_nodelay(int fd)
{
	int one = 1;

	/* Fails only on sockets that are not TCP; nothing to do about it then. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Socket timeouts are how blocking workers bound every wait without a poll per call: a
 * recv or send that waits longer returns EAGAIN, and the relay decides what that means. */
static int set_timeo(int fd, int opt, int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

int net_set_rcvtimeo(int fd, int ms)
{
	return set_timeo(fd, SO_RCVTIMEO, ms);
}

int net_set_sndtimeo(int fd, int ms)
{
	return set_timeo(fd, SO_SNDTIMEO, ms);
}

/* SO_REUSEADDR so that a restart binds at once over connections in TIME_WAIT; never
 * SO_REUSEPORT, which would let a second sidemeter share the port unnoticed.  The error
 * names the address and the step that failed ("bind 0.0.0.0:8080: Address in use"). */
int net_listen(const struct net_addr *na, int backlog, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(na->na_ss.ss_family, SOCK_STREAM, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket %s: %s", na->na_text, strerror(errno));
		return -1;
	}
	if (net_set_cloexec(fd) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
		snprintf(err, errlen, "setsockopt %s: %s", na->na_text, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)&na->na_ss, na->na_len) == -1) {
		snprintf(err, errlen, "bind %s: %s", na->na_text, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, backlog) == -1) {
		snprintf(err, errlen, "listen %s: %s", na->na_text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* A blocking connect bounded by timeout_ms; the socket returned is blocking.  Elsewhere
 * than Linux (or after a signal) it is a non-blocking connect and a poll for POLLOUT, then
 * SO_ERROR for how the handshake ended.  errno is kept across the close on failure: the
 * caller counts by it (refused, timed out, other). */
int net_connect(const struct net_addr *na, int timeout_ms)
{
	struct pollfd pfd;
	socklen_t len;
	int fd, rc, soerr, saved;
	int64_t deadline;

#if defined(__linux__) && defined(SOCK_CLOEXEC)
	/* Linux bounds a blocking connect() by SO_SNDTIMEO: three calls instead of ten. */
	fd = socket(na->na_ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (net_set_sndtimeo(fd, timeout_ms) == 0) {
		if (connect(fd, (const struct sockaddr *)&na->na_ss, na->na_len) == 0)
			return fd;
		if (errno != EINTR) {
			saved = errno == EINPROGRESS ? ETIMEDOUT : errno;
			close(fd);
			errno = saved;
			return -1;
		}
		/* A signal cut the wait short: the handshake goes on; wait for it below. */
		if (net_set_nonblock(fd, 1) == -1)
			goto fail;
		goto wait;
	}
	close(fd);
#endif
	fd = socket(na->na_ss.ss_family, SOCK_STREAM, 0);
	if (fd == -1)
		return -1;
	if (net_set_cloexec(fd) == -1 || net_set_nonblock(fd, 1) == -1)
		goto fail;
	if (connect(fd, (const struct sockaddr *)&na->na_ss, na->na_len) == 0)
		goto done;
	if (errno != EINPROGRESS)
		goto fail;
#if defined(__linux__) && defined(SOCK_CLOEXEC)
wait:
#endif
	deadline = clock_mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	for (;;) {
		pfd.revents = 0;
		rc = poll(&pfd, 1, clock_poll_ms(deadline, clock_mono_ns(), timeout_ms));
		if (rc == 1)
			break;
		if (rc == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (errno != EINTR)
			goto fail;
	}
	len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		goto fail;
	if (soerr != 0) {
		errno = soerr;
		goto fail;
	}
done:
	if (net_set_nonblock(fd, 0) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* getpeername fails on a socket the client has already reset: the address is then unknown
 * (family 0) rather than an error, as the access log shows it as "-". */
void net_peer(int fd, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);

	if (getpeername(fd, (struct sockaddr *)(void *)ss, &len) == -1)
		ss->ss_family = 0;
}

/* Whether a request to the metrics port may stop the pod (POST /quitquitquit): only from
 * this machine.  In a pod that is the pod's own containers (they share its loopback). */
int net_peer_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)(void *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return 0;
}

int net_accept(int lfd, struct sockaddr_storage *peer, int nonblock)
{
	socklen_t len = sizeof(*peer);
	struct sockaddr *addr = peer ? (struct sockaddr *)(void *)peer : NULL;
	int fd;

	if (peer)
		peer->ss_family = 0;
#if defined(__linux__)
	/* Accepted sockets do not inherit O_NONBLOCK on Linux; they do inherit SO_RCVTIMEO and
	 * TCP_NODELAY from the listen socket. */
	fd = accept4(lfd, addr, addr ? &len : NULL, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
#else
	fd = accept(lfd, addr, addr ? &len : NULL);
	if (fd >= 0 && (net_set_cloexec(fd) == -1 || net_set_nonblock(fd, nonblock) == -1)) {
		close(fd);
		errno = EMFILE;		/* as if out of descriptors: the caller backs off */
		return -1;
	}
#endif
	return fd;
}

int net_write_all(int fd, const char *p, size_t n, int timeout_ms)
{
	int64_t deadline = clock_mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
	struct pollfd pfd;
	ssize_t w;

	/* MSG_DONTWAIT whatever the socket's mode, and a poll when it is full: a blocking
	 * send with SO_SNDTIMEO would restart the timeout on every partial write. */
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

/* Why linger: a close with unread bytes in the receive buffer makes the kernel send a RST,
 * and a RST can reach the client before the answer it was sent after, which then loses the
 * answer (RFC 9112 9.6; Apache's and nginx's lingering close do the same). */
void net_lingering_close(int fd, int timeout_ms)
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

int net_reopen_nonblocking(int fd)
{
	char path[32];
	struct stat st;

	/* Only a pipe: O_NONBLOCK on a shared description (the container's log pipe) would
	 * change it for every process that writes to it. */
	if (fstat(fd, &st) == -1 || !S_ISFIFO(st.st_mode))
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
}
