/* net.h: small socket helpers.  Each returns 0 or a descriptor on success and -1 on failure,
 * with errno set and, where there is an err buffer, a message naming the call and object. */
#ifndef SIDEMETER_NET_H
#define SIDEMETER_NET_H

#include <stddef.h>
#include <sys/socket.h>

struct net_addr {
	struct sockaddr_storage na_ss;
	socklen_t na_len;
	char na_text[280];	/* as the user wrote it, for messages and --check */
};

/* Parse "HOST:PORT", "[V6]:PORT" or ":PORT"/"*:PORT" (passive only: the wildcard), resolving
 * HOST with getaddrinfo.  On failure err holds a one-line reason. */
int net_parse_addr(struct net_addr *na, const char *text, int passive, char *err, size_t errlen);

/* A listening TCP socket with SO_REUSEADDR, close-on-exec. */
int net_listen(const struct net_addr *na, int backlog, char *err, size_t errlen);

/* Connect to na within timeout_ms.  Returns a blocking, close-on-exec socket or -1 with errno
 * (ETIMEDOUT when the time ran out). */
int net_connect(const struct net_addr *na, int timeout_ms);

/* The peer's address into ss; its family is 0 when it cannot be had (a reset socket). */
void net_peer(int fd, struct sockaddr_storage *ss);

/* Is fd's peer on this machine's loopback (127.0.0.0/8, ::1, or 127/8 mapped in v6)? */
int net_peer_loopback(int fd);

/* Descriptor flags. */
int net_set_nonblock(int fd, int on);
int net_set_cloexec(int fd);
void net_set_nodelay(int fd);
/* SO_RCVTIMEO or SO_SNDTIMEO in milliseconds (0: none). */
int net_set_rcvtimeo(int fd, int ms);
int net_set_sndtimeo(int fd, int ms);

/* accept4, or accept and the flags after it: close-on-exec always, O_NONBLOCK if asked.
 * peer (NULL: not wanted, the kernel need not copy it) gets the client's address, family 0
 * when there is none.  -1 with errno as accept's. */
int net_accept(int lfd, struct sockaddr_storage *peer, int nonblock);

/* Write all of p to a blocking or non-blocking socket within timeout_ms.  0 or -1. */
int net_write_all(int fd, const char *p, size_t n, int timeout_ms);

/* Close a client socket without losing what was sent: FIN first, then discard what the
 * client still sends until it closes too or timeout_ms passes, then close. */
void net_lingering_close(int fd, int timeout_ms);

/* fd opened again through a description of its own, non-blocking, when fd is a pipe and the
 * system allows it (Linux: /proc/self/fd); else -1.  The flag then stays ours, not set on
 * the description that the other processes of the pod share. */
int net_reopen_nonblocking(int fd);

#endif
