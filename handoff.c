/* handoff.c: the hand-off of a pair between a worker and the keeper (contract in
 * include/keeper.h): one SOCK_SEQPACKET message on a socketpair channel, carrying the park
 * message (the connection's record, the observer's state, the partial request line) and
 * the pair's two descriptors as SCM_RIGHTS.  Sends never block and never raise SIGPIPE; a
 * receive checks that the message is whole and carried exactly two descriptors, and
 * closes whatever came with a broken one.
 *
 * It touches: the channel and the descriptors it carries; nothing else. */
#if defined(__linux__)
#define _GNU_SOURCE		/* MSG_CMSG_CLOEXEC */
#endif
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keeper.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
#ifndef MSG_CMSG_CLOEXEC
#define MSG_CMSG_CLOEXEC 0
#endif

/* Only the partial request line's bytes travel, not the whole OBS_LINE_MAX buffer: most
 * parked pairs are between requests and carry none. */
static size_t msg_size(uint32_t linelen)
{
	return offsetof(struct park_msg, pk_line) + linelen;
}

/* Never blocks: a full channel (the keeper behind, or gone) returns -1 and the caller keeps
 * the pair, which degrades to the worker holding it, as before the keeper existed. */
int keeper_send(int chan, const struct park_msg *pm, int cfd, int ufd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} u;
	struct iovec iov = { (void *)(uintptr_t)pm, msg_size(pm->pk_linelen) };
	struct msghdr mh;
	struct cmsghdr *cm;
	int fds[2] = { cfd, ufd };
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	memset(&u, 0, sizeof(u));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	do
		n = sendmsg(chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	/* SOCK_SEQPACKET sends a message whole or not at all. */
	return 0;
}

/* 1: a pair taken; 0: none there (another worker took it: the channel is shared); -1: a
 * broken message, whose descriptors are closed here so that none leaks.  MSG_CMSG_CLOEXEC:
 * a descriptor received never survives into an exec (USR2) by accident. */
int keeper_recv(int chan, struct park_msg *pm, int *cfd, int *ufd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} u;
	struct iovec iov = { pm, sizeof(*pm) };
	struct msghdr mh;
	struct cmsghdr *cm;
	int fds[2] = { -1, -1 }, got = 0;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	do
		n = recvmsg(chan, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(fds))) {
			memcpy(fds, CMSG_DATA(cm), sizeof(fds));
			got = 1;
		}
	if (!got || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || (size_t)n < msg_size(0) ||
	    pm->pk_version != PARK_VERSION || pm->pk_linelen > OBS_LINE_MAX ||
	    (size_t)n != msg_size(pm->pk_linelen)) {
		if (got) {
			close(fds[0]);
			close(fds[1]);
		}
		return -1;
	}
	*cfd = fds[0];
	*ufd = fds[1];
	return 1;
}
