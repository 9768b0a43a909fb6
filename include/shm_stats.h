/* shm_stats.h: the shared memory between the master and its workers.
 *
 * One anonymous shared mapping, made by the master before the first fork:
 *
 *   offset 0      +--------------------------------------+
 *                 | struct shm_header   (one page)       |  magic, version, sizes
 *   4096          +--------------------------------------+
 *                 | struct shm_slot [0]                  |  the keeper's (sh_keeper_slot)
 *                 +--------------------------------------+
 *                 | struct shm_slot [1]                  |  one per worker slot,
 *                 |   scoreboard       64 B              |  page-aligned so no two
 *                 |   counters[CTR_MAX] 8 B each         |  workers share a page
 *                 |   ring head  (own cache line)        |  written by the worker
 *                 |   ring tail  (own cache line)        |  written by the master
 *                 |   ring[SHM_RING_CAP]  64 B records   |
 *                 |   route names[SHM_ROUTES]            |  append-only, published
 *                 |   request counts[SHM_REQ_CAP]        |  by a count (release)
 *                 +--------------------------------------+
 *                 | struct shm_slot [2] ...              |
 *                 +--------------------------------------+
 *
 * Each slot has exactly one writer at a time: the worker that occupies it.  A slot outlives
 * its worker: a replacement takes over the counters, ring and tables where the last one left
 * them, so nothing the master sums ever goes backwards.  The master is the only reader of
 * the ring and the only writer of its tail.  No lock is shared: single-writer fields are
 * written with relaxed stores, and what a count publishes is written before it (release)
 * and read after it (acquire).
 *
 * Pages are touched only when used, so an idle slot costs address space, not memory.
 */
#ifndef SIDEMETER_SHM_STATS_H
#define SIDEMETER_SHM_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"

#define SHM_MAGIC 0x534d4554u	/* "SMET" */
#define SHM_VERSION 3u		/* 3: the access log's ring */
#define SHM_PAGE 4096
#define SHM_RING_CAP 1024u	/* records per slot, a power of two: 50 ms at 20k/s */
#define SHM_ROUTES 512u		/* route names per slot; index 0 is "other", never stored */
#define SHM_ROUTE_LEN 128u	/* bytes per route name, NUL included */
#define SHM_REQ_CAP 4096u	/* distinct (route, method, code) per slot */
#define SHM_ROUTE_OTHER 0u
#define SHM_LOG_BYTES 131072u	/* the access log's ring per slot: 400 lines or so */

/* The exact counters of a slot: families of consecutive entries indexed by a label enum. */
enum shm_counter {
	CTR_CLOSE = 0,				 /* + enum close_reason */
	CTR_OPAQUE = CTR_CLOSE + CLOSE_MAX,	 /* + enum opaque_reason */
	CTR_UPSTREAM = CTR_OPAQUE + OPAQUE_MAX,	 /* + enum upstream_error */
	CTR_INCOMPLETE = CTR_UPSTREAM + UPSTREAM_MAX, /* + enum incomplete_reason */
	CTR_BYTES_IN = CTR_INCOMPLETE + INCOMPLETE_MAX, /* client to application */
	CTR_BYTES_OUT,				 /* application to client */
	CTR_TUNNELS,				 /* connections upgraded (101, CONNECT) */
	CTR_ACCEPT_EMFILE,			 /* accept failed for lack of descriptors */
	CTR_ACCEPT_ERROR,			 /* accept failed otherwise */
	CTR_RING_DROPPED,			 /* records dropped: ring full */
	CTR_REQ_UNCLASSIFIED,			 /* requests counted without labels: table full */
	CTR_PARKS,				 /* connections a worker handed to the keeper */
	CTR_UNPARKS,				 /* connections the keeper handed back */
	CTR_PARK_REFUSED,			 /* kept by a worker: the keeper had no room */
	CTR_LOG_DROPPED,			 /* access log lines dropped: its ring full */
	CTR_MAX
};

enum shm_record_kind { REC_CONN = 1, REC_REQUEST = 2, REC_EXEMPLAR = 3 };

/* r_flags of a request record */
#define REC_ANSWERED 0x01	/* the answer was ours (502/504): no application time */
#define REC_HTTP10 0x02		/* request, exemplar: the request was HTTP/1.0 */

/* One finished connection or request.  Times are CLOCK_MONOTONIC nanoseconds, 0 when the
 * moment never came. */
struct shm_record {
	union {
		struct {
			int64_t r_start;	/* conn: accepted            request: its first byte */
			int64_t r_mid;		/* conn: application reached request: its last byte */
			int64_t r_first;	/* conn: -                   request: first byte of the response */
			int64_t r_end;		/* conn: closed              request: last byte of the response */
			uint64_t r_bytes_in;	/* conn: client to app       request: request body bytes */
			uint64_t r_bytes_out;	/* conn: app to client       request: response body bytes */
		};
		/* exemplar: a request that carried a valid traceparent, after its own record */
		struct {
			uint8_t r_trace[16];	/* trace-id */
			uint8_t r_span[8];	/* parent-id */
			uint64_t r_value;	/* the exchange's duration, ns */
			uint64_t r_app;		/* the application's time, ns (0: none) */
			int64_t r_wall;		/* when it ended, CLOCK_REALTIME ns */
		};
	};
	uint16_t r_route;	/* request, exemplar: route index in the slot's table */
	uint16_t r_code;	/* request, exemplar: status code, 0 if none */
	uint8_t r_kind;		/* enum shm_record_kind */
	uint8_t r_method;	/* request, exemplar: enum http_method */
	uint8_t r_reason;	/* conn: enum close_reason; request: rec_reason() */
	uint8_t r_flags;
	uint32_t r_requests;	/* conn: requests seen on it */
	uint32_t r_pad;
};

/* One line of the access log as its process wrote it: this head, then the strings (the
 * request-target, User-Agent, Referer, X-Request-Id, lr_len[] bytes each, in that order),
 * padded to 8 bytes. */
enum shm_log_kind { LOG_EXCHANGE = 1, LOG_CONN = 2 };
#define LOG_HTTP10 0x01		/* the request was HTTP/1.0 */
#define LOG_TRACED 0x02		/* lr_trace holds its traceparent's trace-id */
#define LOG_ANSWERED 0x04	/* the answer was ours (502/504) */
#define LOG_META 0x08		/* the strings were captured (else all lengths are 0) */
#define LOG_TAP_ONLY 0x10	/* for /tap only: --access-log is off, or its filter said no */
struct shm_logrec {
	uint16_t lr_size;	/* the whole record, a multiple of 8; 0: skip to the ring's start */
	uint8_t lr_kind;	/* enum shm_log_kind */
	uint8_t lr_flags;
	uint16_t lr_code;	/* exchange: status code, 0 if none */
	uint8_t lr_method;	/* exchange: enum http_method */
	uint8_t lr_reason;	/* exchange: rec_reason(); conn: enum close_reason */
	uint32_t lr_requests;	/* exchange: its number on the connection; conn: exchanges */
	uint16_t lr_route;	/* exchange: route index in the slot's table */
	uint16_t lr_port;	/* the client's, host order */
	uint8_t lr_family;	/* the client's address: 4, 6, or 0 when unknown */
	uint8_t lr_opaque;	/* conn: why the observer stopped, rec_reason() */
	uint8_t lr_pad[6];
	uint16_t lr_len[4];
	uint8_t lr_addr[16];
	uint8_t lr_trace[16];
	int64_t lr_wall;	/* when it ended, ns since the epoch */
	uint64_t lr_dur;	/* exchange: request's first byte to answer's last; conn: its life */
	uint64_t lr_app;	/* exchange: the application's time (0: none) */
	uint64_t lr_in, lr_out;	/* body bytes (exchange) or all bytes (conn), each way */
};

/* What the master can see of a worker at a glance. */
struct shm_scoreboard {
	_Atomic int32_t sb_pid;
	_Atomic uint32_t sb_state;	/* enum worker_state */
	_Atomic uint32_t sb_generation;	/* bumped by HUP: tells old workers from new */
	_Atomic uint32_t sb_spare;
	_Atomic int64_t sb_last_busy;	/* it last took or let go of a connection (or started) */
	_Atomic int64_t sb_heartbeat;	/* last sign of life, at least once a second */
	_Atomic int64_t sb_conn_start;	/* current connection's accept, 0 when idle */
	_Atomic int64_t sb_req_start;	/* current request's first byte, 0 when none */
	_Atomic uint64_t sb_conns;	/* connections served by this occupant */
	_Atomic uint64_t sb_requests;	/* requests served by this occupant */
};

struct shm_reqcount {
	_Atomic uint32_t rq_key;	/* route << 16 | method << 12 | code */
	uint32_t rq_pad;
	_Atomic uint64_t rq_count;
};

struct shm_slot {
	_Alignas(SHM_PAGE) struct shm_scoreboard sl_sb;
	_Atomic uint64_t sl_ctr[CTR_MAX];
	_Alignas(64) _Atomic uint64_t sl_head;	/* next record to write (worker) */
	_Alignas(64) _Atomic uint64_t sl_tail;	/* next record to read (master) */
	_Alignas(64) struct shm_record sl_ring[SHM_RING_CAP];
	_Atomic uint32_t sl_nroutes;		/* names published, counting the implicit "other" at 0 */
	_Atomic uint32_t sl_nreq;		/* request counts published */
	char sl_routes[SHM_ROUTES][SHM_ROUTE_LEN];
	struct shm_reqcount sl_req[SHM_REQ_CAP];
	/* the access log: bytes, written by the occupant, read by the master */
	_Alignas(64) _Atomic uint64_t sl_log_head;
	_Alignas(64) _Atomic uint64_t sl_log_tail;
	_Alignas(64) unsigned char sl_log[SHM_LOG_BYTES];
};

struct shm_header {
	_Alignas(SHM_PAGE) uint32_t sh_magic;
	uint32_t sh_version;
	uint32_t sh_nslots;
	uint32_t sh_ring_cap;
	uint64_t sh_size;
	uint64_t sh_slot_size;
	int64_t sh_started;		/* monotonic start of the master */
	int32_t sh_master_pid;
	uint32_t sh_spare;
	uint64_t sh_restarts;		/* workers replaced after an unplanned end (master) */
	uint64_t sh_lines_skipped;	/* summary lines skipped: stdout still full (master) */
	uint32_t sh_keeper_slot;	/* the keeper's slot: the first (master, at map) */
	uint32_t sh_max_parked;		/* the keeper holds at most this many (master) */
	_Atomic uint32_t sh_held;	/* connections the keeper holds now (keeper) */
	_Atomic uint32_t sh_held_requests; /* ... of them with a request head in progress */
	_Atomic uint32_t sh_hurry;	/* no worker idle and connections wait: park at once (master) */
	_Atomic uint32_t sh_tapping;	/* a /tap client listens: write log lines (master) */
	uint64_t sh_quit_requests;	/* POST /quitquitquit taken (master) */
	uint64_t sh_upstream_down_exits; /* stops because the application stayed down (master) */
};

_Static_assert(sizeof(struct shm_record) == 64, "a record is one cache line");

/* An optional reason in a record's or a log line's byte (the byte has no room for a sign):
 * 0 for none, else 1 + the enum's value.  An exchange's incomplete_reason (none: it
 * completed) and a connection line's opaque_reason (none: it stayed observed) are stored
 * so; a connection's close_reason, never absent, is stored as it is. */
#define REC_NONE 0
static inline uint8_t rec_reason(int why)
{
	return (uint8_t)(why < 0 ? REC_NONE : why + 1);
}

/* The enum value of a stored optional reason, or -1 for none. */
static inline int rec_why(uint8_t reason)
{
	return (int)reason - 1;
}

_Static_assert(sizeof(struct shm_logrec) % 8 == 0, "log records stay 8-byte aligned");
_Static_assert((SHM_LOG_BYTES & (SHM_LOG_BYTES - 1)) == 0, "log ring a power of two");
_Static_assert(sizeof(struct shm_scoreboard) == 64, "the scoreboard is one cache line");
_Static_assert(sizeof(struct shm_reqcount) == 16, "request counts pack four to a line");
_Static_assert(sizeof(struct shm_header) == SHM_PAGE, "the header is one page");
_Static_assert(sizeof(struct shm_slot) % SHM_PAGE == 0, "slots are whole pages");
_Static_assert(offsetof(struct shm_slot, sl_sb) == 0, "scoreboard first");
_Static_assert(offsetof(struct shm_slot, sl_head) % 64 == 0, "ring head on its own line");
_Static_assert(offsetof(struct shm_slot, sl_tail) == offsetof(struct shm_slot, sl_head) + 64,
    "ring tail on the next line");
_Static_assert(offsetof(struct shm_slot, sl_ring) % 64 == 0, "records line-aligned");
_Static_assert((SHM_RING_CAP & (SHM_RING_CAP - 1)) == 0, "ring capacity a power of two");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free in shared memory");

/* ---- both sides ---- */

/* Map the region for nslots slots (master, before the first fork).  *fd is the region's
 * descriptor, kept so that a re-executed master can map it again (-1 where the system has
 * no anonymous shared file).  NULL and err on failure. */
struct shm_header *shm_stats_map(unsigned nslots, int *fd, char *err, size_t errlen);

/* Map a region inherited across exec through its descriptor; NULL and err when it cannot
 * be used (another layout version, or not a region at all). */
struct shm_header *shm_stats_inherit(int fd, char *err, size_t errlen);

static inline struct shm_slot *shm_stats_slot(struct shm_header *sh, unsigned i)
{
	return (struct shm_slot *)(void *)((char *)sh + SHM_PAGE + (size_t)i * sizeof(struct shm_slot));
}

/* A counter's value (relaxed: a counter read races only with its own increments). */
static inline uint64_t shm_stats_get(const struct shm_slot *sl, enum shm_counter c)
{
	return atomic_load_explicit(&sl->sl_ctr[c], memory_order_relaxed);
}

/* ---- the scoreboard: a slot's row ----
 *
 * The occupant writes its row (and the master, when it forks into the slot or finds it
 * empty); the master, the metrics port and the keeper's neighbours read it.  Every field
 * stands alone: a gauge for people and for the master's decisions, never a flag that
 * publishes other memory (records travel through the rings, with acquire and release).  So
 * one memory order serves every access, chosen here and nowhere else: relaxed.  A row read
 * whole may mix two moments a few nanoseconds apart; nothing reads it as one. */
#define SCORE_ORDER memory_order_relaxed

struct score_row {
	int32_t sr_pid;			/* 0: none */
	enum worker_state sr_state;
	unsigned sr_generation;
	int64_t sr_last_busy, sr_heartbeat, sr_conn_start, sr_req_start;
	uint64_t sr_conns, sr_requests;
};

static inline void score_read(const struct shm_slot *sl, struct score_row *r)
{
	const struct shm_scoreboard *sb = &sl->sl_sb;
	unsigned st = atomic_load_explicit(&sb->sb_state, SCORE_ORDER);

	r->sr_pid = atomic_load_explicit(&sb->sb_pid, SCORE_ORDER);
	r->sr_state = st < WORKER_STATE_MAX ? (enum worker_state)st : WORKER_FREE;
	r->sr_generation = atomic_load_explicit(&sb->sb_generation, SCORE_ORDER);
	r->sr_last_busy = atomic_load_explicit(&sb->sb_last_busy, SCORE_ORDER);
	r->sr_heartbeat = atomic_load_explicit(&sb->sb_heartbeat, SCORE_ORDER);
	r->sr_conn_start = atomic_load_explicit(&sb->sb_conn_start, SCORE_ORDER);
	r->sr_req_start = atomic_load_explicit(&sb->sb_req_start, SCORE_ORDER);
	r->sr_conns = atomic_load_explicit(&sb->sb_conns, SCORE_ORDER);
	r->sr_requests = atomic_load_explicit(&sb->sb_requests, SCORE_ORDER);
}

/* One field, for the readers that need only it. */
static inline enum worker_state score_state(const struct shm_slot *sl)
{
	unsigned st = atomic_load_explicit(&sl->sl_sb.sb_state, SCORE_ORDER);

	return st < WORKER_STATE_MAX ? (enum worker_state)st : WORKER_FREE;
}

static inline int32_t score_pid(const struct shm_slot *sl)
{
	return atomic_load_explicit(&sl->sl_sb.sb_pid, SCORE_ORDER);
}

static inline int64_t score_conn_start(const struct shm_slot *sl)
{
	return atomic_load_explicit(&sl->sl_sb.sb_conn_start, SCORE_ORDER);
}

/* The master, forking into the slot: a row for an occupant that is starting. */
static inline void score_prepare(struct shm_slot *sl, unsigned generation, int64_t now)
{
	struct shm_scoreboard *sb = &sl->sl_sb;

	atomic_store_explicit(&sb->sb_pid, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_generation, generation, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_heartbeat, now, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_last_busy, now, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_conn_start, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_req_start, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_state, WORKER_STARTING, SCORE_ORDER);
}

/* The master, once the occupant is gone (or never came): an empty row. */
static inline void score_clear(struct shm_slot *sl)
{
	struct shm_scoreboard *sb = &sl->sl_sb;

	atomic_store_explicit(&sb->sb_conn_start, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_req_start, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_pid, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_state, WORKER_FREE, SCORE_ORDER);
}

/* The occupant, once it is ready: its pid, its counts from zero, its first sign of life. */
static inline void score_hello(struct shm_slot *sl, int32_t pid, enum worker_state st,
    int64_t now)
{
	struct shm_scoreboard *sb = &sl->sl_sb;

	atomic_store_explicit(&sb->sb_conns, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_requests, 0, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_pid, pid, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_heartbeat, now, SCORE_ORDER);
	atomic_store_explicit(&sb->sb_state, st, SCORE_ORDER);
}

static inline void score_set_state(struct shm_slot *sl, enum worker_state st)
{
	atomic_store_explicit(&sl->sl_sb.sb_state, st, SCORE_ORDER);
}

static inline void score_beat(struct shm_slot *sl, int64_t now)
{
	atomic_store_explicit(&sl->sl_sb.sb_heartbeat, now, SCORE_ORDER);
}

/* About to take a connection (accept one, or receive a pair handed back) at now.  The
 * claim comes first because the kernel may hand the descriptor over and the worker die
 * before it could say so: a death from here on books one aborted connection (the master
 * reads sb_conn_start when it reaps), where the other order would lose a client's failure
 * uncounted.  What is left wrong is the other way, and smaller: a death inside an accept
 * that found nothing books one that was not there. */
static inline void score_taking(struct shm_slot *sl, int64_t now)
{
	atomic_store_explicit(&sl->sl_sb.sb_conn_start, now, SCORE_ORDER);
}

/* There was nothing to take after all (another worker was quicker). */
static inline void score_took_nothing(struct shm_slot *sl)
{
	atomic_store_explicit(&sl->sl_sb.sb_conn_start, 0, SCORE_ORDER);
}

/* A connection taken at now (accepted at accepted), and let go at now: since when this
 * stay has tied the worker up (the master's pool reads it) and what it holds. */
static inline void score_conn_taken(struct shm_slot *sl, int64_t accepted, int64_t now)
{
	atomic_store_explicit(&sl->sl_sb.sb_last_busy, now, SCORE_ORDER);
	atomic_store_explicit(&sl->sl_sb.sb_conn_start, accepted, SCORE_ORDER);
}

static inline void score_conn_over(struct shm_slot *sl, int64_t now)
{
	atomic_store_explicit(&sl->sl_sb.sb_last_busy, now, SCORE_ORDER);
	atomic_store_explicit(&sl->sl_sb.sb_req_start, 0, SCORE_ORDER);
	atomic_store_explicit(&sl->sl_sb.sb_conn_start, 0, SCORE_ORDER);
}

/* The oldest request in flight began at start (0: none). */
static inline void score_request(struct shm_slot *sl, int64_t start)
{
	atomic_store_explicit(&sl->sl_sb.sb_req_start, start, SCORE_ORDER);
}

/* A connection ended here; a request was answered here (the occupant is their only writer:
 * a load and a store, not a read-modify-write). */
static inline void score_count_conn(struct shm_slot *sl)
{
	atomic_store_explicit(&sl->sl_sb.sb_conns,
	    atomic_load_explicit(&sl->sl_sb.sb_conns, SCORE_ORDER) + 1, SCORE_ORDER);
}

static inline void score_count_request(struct shm_slot *sl)
{
	atomic_store_explicit(&sl->sl_sb.sb_requests,
	    atomic_load_explicit(&sl->sl_sb.sb_requests, SCORE_ORDER) + 1, SCORE_ORDER);
}

/* ---- the worker, the slot's only writer ---- */

/* Take over a slot: rebuild the private index of its request counts. */
void shm_stats_attach(struct shm_slot *sl);

static inline void shm_stats_add(struct shm_slot *sl, enum shm_counter c, uint64_t n)
{
	atomic_store_explicit(&sl->sl_ctr[c],
	    atomic_load_explicit(&sl->sl_ctr[c], memory_order_relaxed) + n, memory_order_relaxed);
}

/* Append a record; when the ring is full the record is dropped and the drop counted.
 * Never waits. */
void shm_stats_put(struct shm_slot *sl, const struct shm_record *r);

/* Append an access log line (its strings: str[i] of h->lr_len[i] bytes); when the ring has
 * no room the line is dropped whole and the drop counted.  Never waits. */
void shm_log_put(struct shm_slot *sl, struct shm_logrec *h, const char *const str[4]);

/* Count one request exactly.  route is an index from shm_stats_route_add (or 0). */
void shm_stats_count_request(struct shm_slot *sl, unsigned route, enum http_method m,
    unsigned code);

/* Publish a route name; returns its index, or -1 when the table holds limit names. */
int shm_stats_route_add(struct shm_slot *sl, const char *name, size_t len, unsigned limit);

/* ---- the master, the only reader ---- */

typedef void shm_drain_fn(void *ctx, unsigned slot, const struct shm_record *r);

/* Hand every record published in the slot's ring to fn; returns how many. */
size_t shm_stats_drain(struct shm_slot *sl, unsigned slot, shm_drain_fn *fn, void *ctx);

typedef void shm_log_fn(void *ctx, unsigned slot, const struct shm_logrec *h,
    const char *strings);

/* Hand every access log line published in the slot's ring to fn; returns how many. */
size_t shm_log_drain(struct shm_slot *sl, unsigned slot, shm_log_fn *fn, void *ctx);

/* Split a request key. */
#define SHM_REQ_KEY(route, method, code) (((uint32_t)(route) << 16) | ((uint32_t)(method) << 12) | (uint32_t)(code))
#define SHM_REQ_ROUTE(key) ((key) >> 16)
#define SHM_REQ_METHOD(key) (((key) >> 12) & 0xf)
#define SHM_REQ_CODE(key) ((key) & 0xfff)

#endif
