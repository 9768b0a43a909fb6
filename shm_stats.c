/* shm_stats.c: the shared-memory region: mapping it, and the single-writer ring, counters
 * and tables of each worker slot (layout and rules in include/shm_stats.h).
 *
 * It touches: the region; each function states whose side it is (a slot's one writer, or
 * the master, its one reader). */
#if defined(__linux__)
#define _GNU_SOURCE		/* MAP_ANONYMOUS, memfd_create */
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "shm_stats.h"

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

/* The region is mapped once by the master before any fork, so every child has it at the
 * same address (a fork's mapping is shared, not copied).  The header's layout fields are
 * what a new image checks after USR2 before trusting it. */
struct shm_header *shm_stats_map(unsigned nslots, int *fd, char *err, size_t errlen)
{
	size_t size = SHM_PAGE + (size_t)nslots * sizeof(struct shm_slot);
	struct shm_header *sh;

	*fd = -1;
#if defined(__linux__) && defined(MFD_CLOEXEC)
	/* A file with no name: the region can be mapped again after exec (USR2). */
	*fd = memfd_create("sidemeter", MFD_CLOEXEC);
	if (*fd >= 0 && ftruncate(*fd, (off_t)size) == -1) {
		close(*fd);
		*fd = -1;
	}
#endif
	if (*fd >= 0)
		sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	else
		sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		snprintf(err, errlen, "mmap %zu bytes of shared memory: %s", size, strerror(errno));
		return NULL;
	}
	sh->sh_magic = SHM_MAGIC;
	sh->sh_version = SHM_VERSION;
	sh->sh_nslots = nslots;
	sh->sh_keeper_slot = 0;
	sh->sh_ring_cap = SHM_RING_CAP;
	sh->sh_size = size;
	sh->sh_slot_size = sizeof(struct shm_slot);
	sh->sh_started = clock_mono_ns();
	sh->sh_master_pid = (int32_t)getpid();
	return sh;
}

/* After USR2: the header first, read-only, to learn the size and check the layout; then the
 * whole region.  A binary with another layout gets an error and a fresh region instead
 * (its counters start over; its workers still serve). */
struct shm_header *shm_stats_inherit(int fd, char *err, size_t errlen)
{
	struct shm_header *sh;
	uint64_t size;

	sh = mmap(NULL, SHM_PAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED) {
		snprintf(err, errlen, "mmap the inherited region: %s", strerror(errno));
		return NULL;
	}
	if (sh->sh_magic != SHM_MAGIC || sh->sh_version != SHM_VERSION ||
	    sh->sh_slot_size != sizeof(struct shm_slot) || sh->sh_ring_cap != SHM_RING_CAP) {
		snprintf(err, errlen, "the inherited region has another layout (version %u, ours %u)",
		    sh->sh_version, SHM_VERSION);
		munmap(sh, SHM_PAGE);
		return NULL;
	}
	size = sh->sh_size;
	munmap(sh, SHM_PAGE);
	sh = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED) {
		snprintf(err, errlen, "mmap the inherited region: %s", strerror(errno));
		return NULL;
	}
	return sh;
}

/* ---- the worker side ---- */

/* The worker's private index over its slot's request counts: open addressing from a key's
 * hash to 1 + its position in sl_req (0: empty).  Rebuilt by each new occupant. */
#define REQ_INDEX_SIZE (2 * SHM_REQ_CAP)
static uint16_t req_index[REQ_INDEX_SIZE];

/* Fibonacci hashing: the multiply mixes the route's, method's and code's bits into the high
 * half, and the index is taken from there. */
static unsigned req_hash(uint32_t key)
{
	key *= 0x9e3779b1u;
	return (key >> 16) & (REQ_INDEX_SIZE - 1);
}

static unsigned req_find(const struct shm_slot *sl, uint32_t key, int *found)
{
	unsigned h = req_hash(key);

	for (;;) {
		unsigned at = req_index[h];

		if (at == 0) {
			*found = 0;
			return h;
		}
		if (atomic_load_explicit(&sl->sl_req[at - 1].rq_key, memory_order_relaxed) == key) {
			*found = 1;
			return at - 1;
		}
		h = (h + 1) & (REQ_INDEX_SIZE - 1);
	}
}

/* A worker that takes over a slot keeps its counts: the index is rebuilt from the table
 * it finds, and counting goes on in the same entries. */
void shm_stats_attach(struct shm_slot *sl)
{
	unsigned i, n = atomic_load_explicit(&sl->sl_nreq, memory_order_relaxed);
	int found;

	memset(req_index, 0, sizeof(req_index));
	for (i = 0; i < n; i++) {
		uint32_t key = atomic_load_explicit(&sl->sl_req[i].rq_key, memory_order_relaxed);
		unsigned h = req_find(sl, key, &found);

		if (!found)
			req_index[h] = (uint16_t)(i + 1);
	}
}

/* The ring is single-producer single-consumer: the worker moves head, the master tail.  A
 * full ring drops the new record (counted) rather than overwrite one the master may be
 * reading; the exact counts were written before, so only a sample is lost. */
void shm_stats_put(struct shm_slot *sl, const struct shm_record *r)
{
	uint64_t head = atomic_load_explicit(&sl->sl_head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&sl->sl_tail, memory_order_acquire);

	if (head - tail >= SHM_RING_CAP) {
		shm_stats_add(sl, CTR_RING_DROPPED, 1);
		return;
	}
	sl->sl_ring[head & (SHM_RING_CAP - 1)] = *r;
	/* Written first, published last. */
	atomic_store_explicit(&sl->sl_head, head + 1, memory_order_release);
}

/* The log ring holds whole records: one that does not fit before the ring's end starts at
 * 0, behind a record of size 0 that says so.  head and tail count bytes, ever. */
void shm_log_put(struct shm_slot *sl, struct shm_logrec *h, const char *const str[4])
{
	uint64_t head = atomic_load_explicit(&sl->sl_log_head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&sl->sl_log_tail, memory_order_acquire);
	size_t need = sizeof(*h), pos = (size_t)(head & (SHM_LOG_BYTES - 1)), skip = 0, at;
	unsigned i;

	/* 8-byte aligned, so the next record's header can be read with memcpy from an aligned
	 * place; a record over a quarter of the ring is refused, so one huge line cannot make
	 * the ring drop many small ones. */
	for (i = 0; i < 4; i++)
		need += h->lr_len[i];
	need = (need + 7) & ~(size_t)7;
	if (pos + need > SHM_LOG_BYTES)
		skip = SHM_LOG_BYTES - pos;
	if (need > SHM_LOG_BYTES / 4 || head + skip + need - tail > SHM_LOG_BYTES) {
		shm_stats_add(sl, CTR_LOG_DROPPED, 1);
		return;
	}
	if (skip) {
		uint16_t zero = 0;

		memcpy(sl->sl_log + pos, &zero, sizeof(zero));
		pos = 0;
	}
	h->lr_size = (uint16_t)need;
	memcpy(sl->sl_log + pos, h, sizeof(*h));
	at = pos + sizeof(*h);
	for (i = 0; i < 4; i++) {
		memcpy(sl->sl_log + at, str[i], h->lr_len[i]);
		at += h->lr_len[i];
	}
	/* Written first, published last. */
	atomic_store_explicit(&sl->sl_log_head, head + skip + need, memory_order_release);
}

/* The master's side of the log ring: every whole record from tail to head, then tail moved
 * once (release), which gives the worker the room back. */
size_t shm_log_drain(struct shm_slot *sl, unsigned slot, shm_log_fn *fn, void *ctx)
{
	uint64_t head = atomic_load_explicit(&sl->sl_log_head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&sl->sl_log_tail, memory_order_relaxed);
	size_t n = 0;

	while (tail < head) {
		size_t pos = (size_t)(tail & (SHM_LOG_BYTES - 1));
		struct shm_logrec h;

		memcpy(&h.lr_size, sl->sl_log + pos, sizeof(h.lr_size));
		if (h.lr_size == 0) {
			tail += SHM_LOG_BYTES - pos;
			continue;
		}
		memcpy(&h, sl->sl_log + pos, sizeof(h));
		/* Not a record: a worker's bug, which the master outlives (no ASSERT on another
		 * process's bytes): the rest of this ring is skipped, the log loses lines, the
		 * counts nothing. */
		if (h.lr_size < sizeof(h) || pos + h.lr_size > SHM_LOG_BYTES) {
			tail = head;
			break;
		}
		fn(ctx, slot, &h, (const char *)sl->sl_log + pos + sizeof(h));
		tail += h.lr_size;
		n++;
	}
	atomic_store_explicit(&sl->sl_log_tail, tail, memory_order_release);
	return n;
}

/* A new key takes the next free entry.  Past three quarters full, new routes fold into
 * "other" so that every method and code can still be told apart; a full table counts the
 * request without labels (the total stays exact either way). */
void shm_stats_count_request(struct shm_slot *sl, unsigned route, enum http_method m,
    unsigned code)
{
	uint32_t key = SHM_REQ_KEY(route, m, code);
	unsigned at, n;
	int found;

	at = req_find(sl, key, &found);
	if (!found) {
		n = atomic_load_explicit(&sl->sl_nreq, memory_order_relaxed);
		if (n >= SHM_REQ_CAP * 3 / 4 && route != SHM_ROUTE_OTHER) {
			shm_stats_count_request(sl, SHM_ROUTE_OTHER, m, code);
			return;
		}
		if (n >= SHM_REQ_CAP) {
			shm_stats_add(sl, CTR_REQ_UNCLASSIFIED, 1);
			return;
		}
		atomic_store_explicit(&sl->sl_req[n].rq_key, key, memory_order_relaxed);
		atomic_store_explicit(&sl->sl_req[n].rq_count, 0, memory_order_relaxed);
		atomic_store_explicit(&sl->sl_nreq, n + 1, memory_order_release);
		req_index[at] = (uint16_t)(n + 1);
		at = n;
	}
	atomic_store_explicit(&sl->sl_req[at].rq_count,
	    atomic_load_explicit(&sl->sl_req[at].rq_count, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

int shm_stats_route_add(struct shm_slot *sl, const char *name, size_t len, unsigned limit)
{
	unsigned n = atomic_load_explicit(&sl->sl_nroutes, memory_order_relaxed);

	if (n == 0)
		n = 1;		/* index 0 is "other", never stored */
	if (n >= limit || n >= SHM_ROUTES || len >= SHM_ROUTE_LEN)
		return -1;
	memcpy(sl->sl_routes[n], name, len);
	sl->sl_routes[n][len] = '\0';
	atomic_store_explicit(&sl->sl_nroutes, n + 1, memory_order_release);
	return (int)n;
}

/* ---- the master side ---- */

size_t shm_stats_drain(struct shm_slot *sl, unsigned slot, shm_drain_fn *fn, void *ctx)
{
	uint64_t tail = atomic_load_explicit(&sl->sl_tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&sl->sl_head, memory_order_acquire);
	uint64_t i;

	for (i = tail; i != head; i++)
		fn(ctx, slot, &sl->sl_ring[i & (SHM_RING_CAP - 1)]);
	/* Release: the worker may reuse these records only after we are done with them. */
	atomic_store_explicit(&sl->sl_tail, head, memory_order_release);
	return (size_t)(head - tail);
}
