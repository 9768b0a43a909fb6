#!/usr/bin/env bats
# sidemeter's counts against a reference nobody here wrote: Node.js's own HTTP server
# (llhttp) as the application, seeded random sessions of valid, tricky HTTP/1.x, and smuggling-
# style inputs.  Counts per (method, code) must equal what node answered and what the clients
# parsed, and every byte must arrive unchanged both ways.

load helpers

DIFF_SEEDS=${DIFF_SEEDS:-10}
DIFF_SESSIONS=${DIFF_SESSIONS:-500}

@test "differential: $DIFF_SEEDS seeds x $DIFF_SESSIONS sessions agree with node and its clients, bytes unchanged" {
	start_sm --workers 4
	local seed
	scrape
	for ((seed = 1; seed <= DIFF_SEEDS; seed++)); do
		mv "$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/before.txt"
		timeout 120 node "$ROOT/t/lib/difftest.mjs" "$UP_PORT" "$SM_PORT" "$seed" "$DIFF_SESSIONS" \
			>"$BATS_TEST_TMPDIR/run-$seed.json"
		sleep 0.2	# the master drains the rings at least ten times a second
		scrape
		run "$PY" "$ROOT/t/lib/diffcheck.py" "$BATS_TEST_TMPDIR/before.txt" \
			"$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/run-$seed.json"
		echo "# $output" >&3
		assert_success
	done
}
