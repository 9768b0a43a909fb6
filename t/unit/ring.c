/* ring.c: unit tests of a slot's ring, counters and tables (shm_stats.c), including a
 * writer and a reader in two processes at full speed. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm_stats.h"
#include "unit.h"

static uint64_t expect_next;
static uint64_t got;
static int in_order = 1;

static void take(void *ctx, unsigned slot, const struct shm_record *r)
{
	(void)ctx;
	(void)slot;
	/* strictly increasing: a drop leaves a gap, never a reordering */
	if (r->r_bytes_in < expect_next)
		in_order = 0;
	expect_next = r->r_bytes_in + 1;
	got++;
}

static void fill_and_drain(struct shm_slot *sl)
{
	struct shm_record r;
	uint64_t i;

	memset(&r, 0, sizeof(r));
	for (i = 0; i < SHM_RING_CAP + 10; i++) {
		r.r_bytes_in = i;
		shm_stats_put(sl, &r);
	}
	CHECK_EQ_U("dropped when full", 10, shm_stats_get(sl, CTR_RING_DROPPED));
	expect_next = 0;
	got = 0;
	CHECK_EQ_U("drained", SHM_RING_CAP, shm_stats_drain(sl, 0, take, NULL));
	CHECK(in_order, "records came out of order");
	CHECK_EQ_U("nothing left", 0, shm_stats_drain(sl, 0, take, NULL));
	/* wrap around: the ring is reusable after a drain */
	for (i = 0; i < 100; i++) {
		r.r_bytes_in = SHM_RING_CAP + i;
		shm_stats_put(sl, &r);
	}
	expect_next = SHM_RING_CAP;
	CHECK_EQ_U("after wrap", 100, shm_stats_drain(sl, 0, take, NULL));
	CHECK(in_order, "records came out of order after wrapping");
}

static void tables(struct shm_slot *sl)
{
	char name[32];
	int i, idx;

	shm_stats_attach(sl);
	shm_stats_count_request(sl, 1, METHOD_GET, 200);
	shm_stats_count_request(sl, 1, METHOD_GET, 200);
	shm_stats_count_request(sl, 1, METHOD_POST, 200);
	shm_stats_count_request(sl, 2, METHOD_GET, 404);
	CHECK_EQ_U("distinct keys", 3, atomic_load(&sl->sl_nreq));
	CHECK_EQ_U("GET 200 on route 1", 2, atomic_load(&sl->sl_req[0].rq_count));
	CHECK_EQ_U("its key", SHM_REQ_KEY(1, METHOD_GET, 200), atomic_load(&sl->sl_req[0].rq_key));
	/* a new occupant finds the same entries */
	shm_stats_attach(sl);
	shm_stats_count_request(sl, 2, METHOD_GET, 404);
	CHECK_EQ_U("still 3 keys after attach", 3, atomic_load(&sl->sl_nreq));
	CHECK_EQ_U("count carried over", 2, atomic_load(&sl->sl_req[2].rq_count));

	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "/r%d", i);
		idx = shm_stats_route_add(sl, name, strlen(name), 6);
		if (i < 5)
			CHECK_EQ_U("route index", (unsigned)(i + 1), (unsigned)idx);
		else
			CHECK(idx == -1, "route %d past the limit got index %d", i, idx);
	}
	CHECK(strcmp(sl->sl_routes[3], "/r2") == 0, "route 3 is %s", sl->sl_routes[3]);
}

/* A child writes 2 million records as fast as it can while we drain: every record either
 * arrives, in order, or is counted as dropped. */
static void two_processes(struct shm_slot *sl)
{
	const uint64_t n = 2000000;
	struct shm_record r;
	uint64_t dropped0 = shm_stats_get(sl, CTR_RING_DROPPED), i;
	int status;
	pid_t pid;

	shm_stats_drain(sl, 0, take, NULL);
	pid = fork();
	if (pid == 0) {
		memset(&r, 0, sizeof(r));
		for (i = 0; i < n; i++) {
			volatile unsigned spin;

			r.r_bytes_in = i;
			shm_stats_put(sl, &r);
			for (spin = 0; spin < 40; spin++)
				;	/* about the pace of a busy worker */
		}
		atomic_store(&sl->sl_sb.sb_spare, 1);	/* done */
		_exit(0);
	}
	got = 0;
	expect_next = 0;
	in_order = 1;
	while (!atomic_load(&sl->sl_sb.sb_spare))
		shm_stats_drain(sl, 0, take, NULL);
	shm_stats_drain(sl, 0, take, NULL);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer status 0x%x", status);
	CHECK(in_order, "records came out of order across processes");
	CHECK_EQ_U("received + dropped = sent", n,
	    got + shm_stats_get(sl, CTR_RING_DROPPED) - dropped0);
	printf("two processes: %llu received, %llu dropped\n", (unsigned long long)got,
	    (unsigned long long)(shm_stats_get(sl, CTR_RING_DROPPED) - dropped0));
}

int main(void)
{
	char err[256];
	int fd;
	struct shm_header *sh = shm_stats_map(2, &fd, err, sizeof(err));

	CHECK(sh != NULL, "map: %s", err);
	if (sh == NULL)
		return 1;
	CHECK_EQ_U("magic", SHM_MAGIC, sh->sh_magic);
	fill_and_drain(shm_stats_slot(sh, 0));
	tables(shm_stats_slot(sh, 1));
	two_processes(shm_stats_slot(sh, 0));
	return unit_done("ring");
}
