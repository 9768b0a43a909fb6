#!/usr/bin/env bats
# The periodic summary line: at the interval, as text or JSON, and adding up.

load helpers

setup() {
	common_setup
	printf 'hello\n' >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
}

@test "text dump lines appear at the interval" {
	spawn sm "$SM_BIN" --listen "127.0.0.1:$SM_PORT" --upstream "127.0.0.1:$UP_PORT" \
		--metrics off --dump-interval 0.5
	wait_port "$SM_PORT" "$sm_pid"
	sleep 2.3
	local n
	n=$(wc -l <"$BATS_TEST_TMPDIR/sm.out")
	expect_ge "lines in 2.3 s at 0.5 s" 3 "$n"
	expect_le "lines in 2.3 s at 0.5 s" 5 "$n"
	run head -1 "$BATS_TEST_TMPDIR/sm.out"
	assert_output --regexp '^20[0-9-]{8}T[0-9:]{8}Z interval_s=0\.[45][0-9]* conns=0 conns_per_s=0\.0 active=0 in_bytes=0 out_bytes=0 connect_ms=- conn_ms=- requests=0 requests_per_s=0\.0 1xx=0 2xx=0 3xx=0 4xx=0 5xx=0 request_ms=- top=- slow=- app_ms=- incomplete=0 opaque=0 tunnels=0 upstream_errors=0 accept_errors=0 workers=0/4 queued=0 parked=0 restarts=0 dropped=0 quit_requests=0 upstream_down_exits=0$'
}

@test "JSON dump lines parse and add up to what the clients did" {
	start_sm
	local i in=0 out=0 sizes
	for ((i = 0; i < 37; i++)); do
		sizes=$(curl -sS -o /dev/null -w '%{size_request} %{size_header} %{size_download}' \
			"http://127.0.0.1:$SM_PORT/index.html?i=$i")
		read -r rq hd dl <<<"$sizes"
		in=$((in + rq))
		out=$((out + hd + dl))
		# a dump now and then, so the totals span several lines
		((i % 10 == 5)) && sm_dump
	done
	stop_pid "$sm_pid"	# the last dump is written at exit
	run "$PY" -c "
import json, sys
for line in open('$BATS_TEST_TMPDIR/sm.out'):
    d = json.loads(line)
    assert set(d) >= {'time', 'interval_s', 'conns', 'conns_per_s', 'active', 'in_bytes',
                      'out_bytes', 'connect_ms', 'conn_ms', 'workers', 'workers_busy',
                      'restarts', 'dropped'}, sorted(d)
print('ok')"
	assert_success
	assert_output ok
	expect_eq "connections" 37 "$(dump_total conns)"
	expect_eq "bytes in" "$in" "$(dump_total in_bytes)"
	expect_eq "bytes out" "$out" "$(dump_total out_bytes)"
	run "$PY" -c "
import json
for line in open('$BATS_TEST_TMPDIR/sm.out'):
    d = json.loads(line)
    if d['conns']:
        c = d['conn_ms']
        assert 0 < c['p50'] <= c['p90'] <= c['p99'] <= c['max'], c
print('ok')"
	assert_output ok
}

@test "a log reader that stops reading: lines are skipped and counted, the master never waits" {
	# stdout and stderr are 4 KiB pipes that nobody reads for 3 s: a summary line every
	# 0.1 s, and TTIN/TTOU pairs that make the master log
	run "$PY" "$ROOT/t/lib/stuck_stdout.py" "$SM_BIN" "$SM_PORT" "$UP_PORT" "$MET_PORT" \
		"$BATS_TEST_TMPDIR"
	echo "# $output" >&3
	assert_success
}
