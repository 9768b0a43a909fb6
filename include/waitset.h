/* waitset.h: one process's set of descriptors to wait on, each with a 64-bit tag: epoll on
 * Linux, poll() over an array elsewhere (or with -DSIDEMETER_NO_EPOLL).  The keeper waits
 * on every parked pair's two sockets and its channels with it.  Not for more than one set
 * per process. */
#ifndef SIDEMETER_WAITSET_H
#define SIDEMETER_WAITSET_H

#include <stdint.h>

#define WANT_IN 1		/* readable, or closed */
#define WANT_OUT 2		/* writable */

/* What one wait found of one descriptor. */
struct ws_event {
	uint64_t we_tag;
	int we_in;			/* readable, closed or failed */
	int we_out;			/* writable */
};

/* Set up: 0, or -1 with errno. */
int ws_init(void);

/* Watch fd for want (WANT_IN | WANT_OUT) under tag: 0, or -1 with errno (ENOMEM, EMFILE,
 * ...).  ws_mod changes what is wanted, ws_del stops watching (before fd is closed). */
int ws_add(int fd, uint64_t tag, int want);
void ws_mod(int fd, uint64_t tag, int want);
void ws_del(int fd);

/* Wait up to ms for events; at most max of them into out.  The count; 0 or -1 when none
 * came (the time ran out, or a signal). */
int ws_wait(struct ws_event *out, int max, int ms);

#endif
