#!/usr/bin/env bats
# The keeper: connections that only wait (idle keep-alive, no first byte yet, a stalled
# request head) cost no worker.  Each test uses nginx as the application and checks that
# the bytes are right and the counts exact wherever the connection ended.

load helpers

# keeper_now: the keeper's pid (empty if none runs).
keeper_now() {
	keeper_pid "$sm_pid"
}

# page_value JSON-FILE INDEX SERIES: a value park.py reuse read off the page.
page_value() {
	"$PY" -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["pages"][int(sys.argv[2])].get(sys.argv[3], -1)))' "$@"
}

@test "an idle keep-alive connection waits in the keeper, not a worker, and carries on with the same books" {
	start_nginx
	start_sm --workers 2
	"$PY" "$ROOT/t/lib/park.py" reuse "$SM_PORT" "$MET_PORT" 0.3 >"$BATS_TEST_TMPDIR/reuse.json"
	cat "$BATS_TEST_TMPDIR/reuse.json"
	expect_eq "answers" "[200, 200, 200]" "$(json_field "$BATS_TEST_TMPDIR/reuse.json" codes)"
	local f=$BATS_TEST_TMPDIR/reuse.json
	expect_eq "parked while silent" 1 "$(page_value "$f" 0 sidemeter_parked_connections)"
	expect_eq "no worker busy with it" 0 "$(page_value "$f" 0 'sidemeter_workers{state="busy"}')"
	expect_eq "still an open connection" 1 "$(page_value "$f" 0 sidemeter_connections_active)"
	sleep 0.2
	scrape
	expect_eq "requests" 3 "$(metric 'sidemeter_http_requests_total{method="GET",code="200",route="/index.html"}')"
	expect_eq "one connection, ended in the keeper by the client" 1 \
		"$(metric 'sidemeter_connections_total{reason="client_closed"}')"
	expect_eq "connections in all" 1 "$(metric_sum sidemeter_connections_total)"
	expect_eq "parks" 3 "$(metric sidemeter_parks_total)"
	expect_eq "unparks" 2 "$(metric sidemeter_unparks_total)"
	expect_eq "parked now" 0 "$(metric sidemeter_parked_connections)"
	# its duration runs from the accept to the close, across both processes
	expect_ge "connection duration (s)" 0.9 "$(metric sidemeter_connection_duration_seconds_sum)"
	curl -sS -o "$BATS_TEST_TMPDIR/stats.json" "http://127.0.0.1:$MET_PORT/stats.json"
	run "$PY" -c 'import json, sys; s = json.load(open(sys.argv[1])); print([w["role"] for w in s["workers"]["slots"]].count("keeper"), s["keeper"]["pid"] > 0)' "$BATS_TEST_TMPDIR/stats.json"
	assert_output "1 True"
}

@test "a worker killed as a pair from the keeper reaches it, before it could say so: counted once" {
	start_nginx
	start_sm --workers 1
	spawn client "$PY" "$ROOT/t/lib/park.py" go-on "$SM_PORT" "$BATS_TEST_TMPDIR/go"
	wait_until 5 eval 'scrape && [[ $(metric sidemeter_parked_connections) == 1 ]]'
	local victim
	victim=$(worker_pids "$sm_pid")
	# the second request wakes the keeper, which hands the pair back: the worker's recvmsg
	# has the descriptors, and the worker has not seen them
	hold_syscall strace "$victim" recvmsg
	touch "$BATS_TEST_TMPDIR/go"
	wait_held strace
	kill -KILL "$victim"
	wait_gone "$client_pid" 40
	cat "$BATS_TEST_TMPDIR/client.out"
	expect_eq "the client's answers" '{"first": 200, "second": 0}' "$(cat "$BATS_TEST_TMPDIR/client.out")"
	wait_until 5 eval 'scrape && [[ $(metric sidemeter_worker_restarts_total) == 1 ]]'
	expect_eq "aborted connections" 1 "$(metric 'sidemeter_connections_total{reason="aborted"}')"
	expect_eq "connections in all" 1 "$(metric_sum sidemeter_connections_total)"
	expect_eq "unparks" 1 "$(metric sidemeter_unparks_total)"
	expect_eq "parked now" 0 "$(metric sidemeter_parked_connections)"
}

@test "bytes that arrive just as a connection is parked: every answer right, none lost" {
	start_nginx
	start_sm --workers 2
	run "$PY" "$ROOT/t/lib/park.py" moment "$SM_PORT" 150
	echo "$output"
	expect_eq "connections whose three answers were right" 150 "$(json_field <(echo "$output") ok)"
	scrape
	expect_eq "requests" 450 "$(metric_sum sidemeter_http_requests_total)"
	expect_eq "incomplete" 0 "$(metric_sum sidemeter_http_requests_incomplete_total)"
	expect_eq "opaque" 0 "$(metric_sum sidemeter_opaque_connections_total)"
	echo "# 150 connections, each its second and third requests at 0-15 ms (--park-after 5 ms): $(metric sidemeter_parks_total) parks, $(metric sidemeter_unparks_total) unparks, every answer right" >&3
}

@test "a half-close while parked: the client gets its EOF, counted as the client's close" {
	start_nginx
	start_sm --workers 2
	run "$PY" "$ROOT/t/lib/park.py" halfclose "$SM_PORT" 0.3
	echo "$output"
	expect_eq "EOF" True "$(json_field <(echo "$output") eof)"
	expect_le "seconds to the EOF" 1 "$(json_field <(echo "$output") eof_s)"
	sleep 0.2
	scrape
	expect_eq "client_closed" 1 "$(metric 'sidemeter_connections_total{reason="client_closed"}')"
	expect_eq "parked now" 0 "$(metric sidemeter_parked_connections)"
	expect_eq "requests" 1 "$(metric_sum sidemeter_http_requests_total)"
}

@test "the application closes a parked connection: the client sees the close, counted as the application's" {
	NGINX_HTTP='keepalive_timeout 1s;' start_nginx
	start_sm --workers 2
	run "$PY" "$ROOT/t/lib/park.py" wait-close "$SM_PORT" 5
	echo "$output"
	expect_eq "closed" True "$(json_field <(echo "$output") closed)"
	expect_ge "closed after (s)" 0.8 "$(json_field <(echo "$output") closed_after_s)"
	expect_le "closed after (s)" 2.5 "$(json_field <(echo "$output") closed_after_s)"
	sleep 0.2
	scrape
	expect_eq "upstream_closed" 1 "$(metric 'sidemeter_connections_total{reason="upstream_closed"}')"
	expect_eq "parks" 1 "$(metric sidemeter_parks_total)"
	expect_eq "unparks" 0 "$(metric sidemeter_unparks_total)"
}

@test "--keepalive-timeout is kept by the keeper for parked connections" {
	start_nginx
	start_sm --workers 2 --keepalive-timeout 0.5
	run "$PY" "$ROOT/t/lib/park.py" wait-close "$SM_PORT" 5
	echo "$output"
	expect_eq "closed" True "$(json_field <(echo "$output") closed)"
	expect_ge "closed after (s)" 0.4 "$(json_field <(echo "$output") closed_after_s)"
	expect_le "closed after (s)" 1.0 "$(json_field <(echo "$output") closed_after_s)"
	sleep 0.2
	scrape
	expect_eq "keepalive_timeout" 1 "$(metric 'sidemeter_connections_total{reason="keepalive_timeout"}')"
	expect_eq "parked now" 0 "$(metric sidemeter_parked_connections)"
}

@test "silent new connections and stalled request heads wait in the keeper and are cut at --header-timeout" {
	start_nginx
	start_sm --workers 2 --header-timeout 1
	spawn silent "$PY" "$ROOT/t/lib/crowd.py" silent "$SM_PORT" 60 5
	spawn heads "$PY" "$ROOT/t/lib/crowd.py" heads "$SM_PORT" 60 5
	sleep 0.6
	scrape
	local parked busy
	parked=$(metric sidemeter_parked_connections)
	busy=$(metric 'sidemeter_workers{state="busy"}')
	wait_gone "$silent_pid" 10
	wait_gone "$heads_pid" 10
	cat "$BATS_TEST_TMPDIR/silent.out" "$BATS_TEST_TMPDIR/heads.out"
	expect_eq "parked while they waited" 120 "$parked"
	expect_le "workers busy meanwhile" 0 "$busy"
	expect_eq "silent ones closed" 60 "$(json_field "$BATS_TEST_TMPDIR/silent.out" closed)"
	expect_eq "stalled heads closed" 60 "$(json_field "$BATS_TEST_TMPDIR/heads.out" closed)"
	expect_le "stalled heads cut after (s, median)" 1.5 "$(json_field "$BATS_TEST_TMPDIR/heads.out" median_close_s)"
	expect_ge "stalled heads cut after (s, median)" 0.8 "$(json_field "$BATS_TEST_TMPDIR/heads.out" median_close_s)"
	sleep 0.2
	scrape
	expect_eq "header timeouts" 120 "$(metric 'sidemeter_connections_total{reason="header_timeout"}')"
	expect_eq "the stalled requests, cut short by the timeout" 60 \
		"$(metric 'sidemeter_http_requests_incomplete_total{reason="timeout"}')"
	echo "# 60 silent connections and 60 stalled heads: $parked parked, $busy workers busy; cut at $(json_field "$BATS_TEST_TMPDIR/heads.out" median_close_s) s (median) by --header-timeout 1" >&3
}

@test "a stalled head that goes on is handed back and answered, its head timed from where it began" {
	start_nginx
	start_sm --workers 2
	run "$PY" "$ROOT/t/lib/park.py" slowhead "$SM_PORT" 0.4
	echo "$output"
	expect_eq "answer" 200 "$(json_field <(echo "$output") code)"
	sleep 0.2
	scrape
	expect_eq "requests" 1 "$(metric 'sidemeter_http_requests_total{method="GET",code="200",route="/index.html"}')"
	expect_ge "parks" 1 "$(metric sidemeter_parks_total)"
	expect_ge "unparks" 1 "$(metric sidemeter_unparks_total)"
	expect_eq "incomplete" 0 "$(metric_sum sidemeter_http_requests_incomplete_total)"
}

@test "TERM: parked idle connections close at once, a stalled head is handed back and finished, exit 0" {
	start_nginx
	start_sm --workers 2 --dump-interval 3600
	CROWD_READY=$BATS_TEST_TMPDIR/ready spawn idle "$PY" "$ROOT/t/lib/crowd.py" idle "$SM_PORT" 20 5 /index.html
	wait_until 10 test -f "$BATS_TEST_TMPDIR/ready"
	spawn slow "$PY" "$ROOT/t/lib/park.py" slowhead "$SM_PORT" 0.8
	sleep 0.3
	scrape
	expect_eq "parked before TERM" 21 "$(metric sidemeter_parked_connections)"
	local t0=$EPOCHREALTIME st=0
	kill -TERM "$sm_pid"
	wait_gone "$idle_pid" 10
	local idle_ms
	idle_ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	wait_gone "$sm_pid" 10
	wait "$sm_pid" || st=$?
	expect_eq "master exit status" 0 "$st"
	wait_gone "$slow_pid" 5
	cat "$BATS_TEST_TMPDIR/idle.out" "$BATS_TEST_TMPDIR/slow.out"
	expect_eq "idle connections closed while idle" 20 "$(json_field "$BATS_TEST_TMPDIR/idle.out" closed_while_idle)"
	expect_le "ms until the idle ones were closed" 1500 "$idle_ms"
	expect_eq "the stalled head's answer" 200 "$(json_field "$BATS_TEST_TMPDIR/slow.out" code)"
	expect_eq "connections counted in the last summary" 21 "$(dump_total conns)"
	expect_eq "requests counted in the last summary" 21 "$(dump_total requests)"
	echo "# TERM with 20 idle and 1 stalled head parked: the idle closed within $idle_ms ms, the head answered, exit 0" >&3
}

@test "HUP and USR2 keep parked connections: the new generation carries them on" {
	start_nginx
	start_sm --workers 2
	local sig
	for sig in HUP USR2; do
		rm -f "$BATS_TEST_TMPDIR/ready"
		CROWD_READY=$BATS_TEST_TMPDIR/ready spawn idle "$PY" "$ROOT/t/lib/crowd.py" idle "$SM_PORT" 50 2.5 /index.html
		wait_until 10 test -f "$BATS_TEST_TMPDIR/ready"
		local before
		before=$(worker_pids "$sm_pid" | sort | tr '\n' ' ')
		kill -"$sig" "$sm_pid"
		wait_gone "$idle_pid" 15
		cat "$BATS_TEST_TMPDIR/idle.out"
		expect_eq "reused after $sig" 50 "$(json_field "$BATS_TEST_TMPDIR/idle.out" reused_ok)"
		expect_eq "closed while idle across $sig" 0 "$(json_field "$BATS_TEST_TMPDIR/idle.out" closed_while_idle)"
		expect_ne "workers after $sig" "$before" "$(worker_pids "$sm_pid" | sort | tr '\n' ' ')"
	done
	sleep 0.2
	scrape
	expect_eq "requests" 200 "$(metric_sum sidemeter_http_requests_total)"
	expect_eq "incomplete" 0 "$(metric_sum sidemeter_http_requests_incomplete_total)"
	expect_eq "aborted" 0 "$(metric 'sidemeter_connections_total{reason="aborted"}')"
}

@test "the keeper killed with SIGKILL: what it held is lost and counted as aborted, a new keeper takes over" {
	start_nginx
	start_sm --workers 2
	CROWD_READY=$BATS_TEST_TMPDIR/ready spawn idle "$PY" "$ROOT/t/lib/crowd.py" idle "$SM_PORT" 30 1.5 /index.html
	wait_until 10 test -f "$BATS_TEST_TMPDIR/ready"
	sleep 0.2
	local old
	old=$(keeper_now)
	kill -KILL "$old"
	wait_gone "$idle_pid" 10
	cat "$BATS_TEST_TMPDIR/idle.out"
	expect_eq "connections lost with the keeper" 30 "$(json_field "$BATS_TEST_TMPDIR/idle.out" closed_while_idle)"
	wait_until 5 eval "[ -n \"\$(keeper_now)\" ] && [ \"\$(keeper_now)\" != $old ]"
	grep -q "the keeper (pid $old) was killed by signal 9" "$BATS_TEST_TMPDIR/sm.err"
	scrape
	expect_eq "counted as aborted" 30 "$(metric 'sidemeter_connections_total{reason="aborted"}')"
	expect_eq "parked now" 0 "$(metric sidemeter_parked_connections)"
	# service goes on, and parking with it
	run "$PY" "$ROOT/t/lib/park.py" reuse "$SM_PORT" "$MET_PORT" 0.2
	echo "$output"
	expect_eq "answers after the new keeper" "[200, 200, 200]" "$(json_field <(echo "$output") codes)"
	scrape
	expect_ge "parks with the new keeper" 33 "$(metric sidemeter_parks_total)"
	SM_EXPECT_FATAL=1	# the log names the kill
}

@test "when --max-parked (or the descriptors) run out, workers keep the rest: degrade, never fail" {
	start_nginx
	start_sm --workers 2 --max-parked 10
	CROWD_READY=$BATS_TEST_TMPDIR/ready spawn idle "$PY" "$ROOT/t/lib/crowd.py" idle "$SM_PORT" 40 1.5 /index.html
	wait_until 10 test -f "$BATS_TEST_TMPDIR/ready"
	sleep 0.3
	scrape
	local parked
	parked=$(metric sidemeter_parked_connections)
	wait_gone "$idle_pid" 10
	cat "$BATS_TEST_TMPDIR/idle.out"
	expect_eq "parked, at most --max-parked" 10 "$parked"
	expect_eq "all reused" 40 "$(json_field "$BATS_TEST_TMPDIR/idle.out" reused_ok)"
	scrape
	expect_gt "refused for lack of room" 0 "$(metric sidemeter_park_refused_total)"
	expect_eq "requests" 80 "$(metric_sum sidemeter_http_requests_total)"
	stop_pid "$sm_pid"
	# a descriptor limit of 100: the keeper's room is what it leaves, and all still works
	SM_WORKERS_WANTED=2 spawn sm prlimit --nofile=100:100 "$SM_BIN" --listen "127.0.0.1:$SM_PORT" \
		--upstream "127.0.0.1:$UP_PORT" --metrics "127.0.0.1:$MET_PORT" --dump-interval 0 --workers 2
	wait_port "$SM_PORT" "$sm_pid"
	rm -f "$BATS_TEST_TMPDIR/ready"
	CROWD_READY=$BATS_TEST_TMPDIR/ready spawn idle "$PY" "$ROOT/t/lib/crowd.py" idle "$SM_PORT" 60 1 /index.html
	wait_gone "$idle_pid" 20
	cat "$BATS_TEST_TMPDIR/idle.out"
	expect_eq "all reused under a limit of 100 descriptors" 60 "$(json_field "$BATS_TEST_TMPDIR/idle.out" reused_ok)"
	grep -q "keeper started (pid [0-9]*), holding at most 18 connections" "$BATS_TEST_TMPDIR/sm.err"
}

@test "a pair handed back wakes one idle worker, and so does a new connection: no herd across 32" {
	start_nginx
	SM_WORKERS_WANTED=32 start_sm --workers 32 --max-workers 32
	switches() {
		local p total=0
		for p in $(worker_pids "$sm_pid"); do
			total=$((total + $(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$p/status")))
		done
		echo "$total"
	}
	local before after
	before=$(switches)
	run "$PY" "$ROOT/t/lib/park.py" moment "$SM_PORT" 100
	after=$(switches)
	expect_eq "right answers" 100 "$(json_field <(echo "$output") ok)"
	scrape
	local unparks per
	unparks=$(metric sidemeter_unparks_total)
	per=$(awk "BEGIN { printf \"%.1f\", ($after - $before) / 200 }")
	echo "# 32 idle workers, 100 connections (200 wake-ups: 100 accepts, $unparks hand-backs): $((after - before)) voluntary context switches in all the workers, $per per wake-up" >&3
	expect_le "context switches per wake-up across 32 workers" 8 "$per"
}

# pss_of PID...: the proportional set size of these processes, in KiB, added up.
pss_of() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

CROWD_IDLE=${CROWD_IDLE:-2000}
CROWD_HEADS=${CROWD_HEADS:-200}

@test "a crowd: $CROWD_IDLE idle keep-alive and $CROWD_HEADS stalled heads cost no worker; newcomers served at once; counts exact" {
	start_nginx
	# The defaults but for a shorter header timeout; the crowd arrives as fast as it can
	# (100 at a time), and the pool's idle workers would take 30 s to retire: what is
	# counted is what the arrival grew.
	start_sm --workers 4 --header-timeout 4
	CROWD_READY=$BATS_TEST_TMPDIR/ready \
		spawn idle "$PY" "$ROOT/t/lib/crowd.py" idle "$SM_PORT" "$CROWD_IDLE" 6 /index.html
	wait_until 60 test -f "$BATS_TEST_TMPDIR/ready"
	spawn heads "$PY" "$ROOT/t/lib/crowd.py" heads "$SM_PORT" "$CROWD_HEADS" 10
	parked_all() { scrape && [ "$(metric sidemeter_parked_connections)" = $((CROWD_IDLE + CROWD_HEADS)) ]; }
	wait_until 3 parked_all || true
	scrape
	local parked workers busy pss
	parked=$(metric sidemeter_parked_connections)
	workers=$(worker_pids "$sm_pid" | wc -l)
	busy=$(metric 'sidemeter_workers{state="busy"}')
	pss=$(pss_of "$sm_pid" $(children "$sm_pid"))
	run "$PY" "$ROOT/t/lib/crowd.py" newcomers "$SM_PORT" 100
	echo "$output" >"$BATS_TEST_TMPDIR/newcomers.json"
	wait_gone "$idle_pid" 60
	wait_gone "$heads_pid" 30
	cat "$BATS_TEST_TMPDIR/idle.out" "$BATS_TEST_TMPDIR/heads.out" "$BATS_TEST_TMPDIR/newcomers.json"
	sleep 0.3
	scrape
	echo "# $CROWD_IDLE idle + $CROWD_HEADS stalled heads: $parked parked, $workers workers ($busy busy), PSS of all sidemeter processes $((pss / 1024)) MiB; newcomers $(cat "$BATS_TEST_TMPDIR/newcomers.json"); heads cut at $(json_field "$BATS_TEST_TMPDIR/heads.out" median_close_s) s (median, --header-timeout 4)" >&3
	expect_eq "parked while the crowd waits" $((CROWD_IDLE + CROWD_HEADS)) "$parked"
	expect_le "workers while the crowd waits (--workers 4)" 6 "$workers"
	expect_le "newcomers: median ms" 20 "$(json_field "$BATS_TEST_TMPDIR/newcomers.json" median_ms)"
	expect_le "newcomers: slowest ms" 100 "$(json_field "$BATS_TEST_TMPDIR/newcomers.json" max_ms)"
	expect_eq "idle connections reused, right bytes" "$CROWD_IDLE" "$(json_field "$BATS_TEST_TMPDIR/idle.out" reused_ok)"
	expect_eq "stalled heads cut" "$CROWD_HEADS" "$(json_field "$BATS_TEST_TMPDIR/heads.out" closed)"
	expect_ge "cut at --header-timeout (median s)" 3.8 "$(json_field "$BATS_TEST_TMPDIR/heads.out" median_close_s)"
	expect_eq "requests" $((2 * CROWD_IDLE + 100)) "$(metric_sum sidemeter_http_requests_total)"
	expect_eq "the stalled requests, cut short" "$CROWD_HEADS" "$(metric 'sidemeter_http_requests_incomplete_total{reason="timeout"}')"
	expect_eq "header timeouts" "$CROWD_HEADS" "$(metric 'sidemeter_connections_total{reason="header_timeout"}')"
	expect_eq "connections" $((CROWD_IDLE + CROWD_HEADS + 100)) "$(metric_sum sidemeter_connections_total)"
	if [[ $SM_BIN == */san-* ]]; then
		echo "# (PSS not held to 40 MiB under a sanitizer: its shadow memory is counted)" >&3
	else
		expect_le "PSS of all sidemeter processes (KiB)" $((40 * 1024)) "$pss"
	fi
}

@test "with the keeper the pool still grows for workers a slow application ties up" {
	start_app
	start_sm --workers 2 --max-workers 16
	# 12 requests of 800 ms at once: 2 workers would take 6 rounds (4.8 s); a pool that
	# grows for workers tied up that long serves them in about one
	local t0=$EPOCHREALTIME i pids=() peak=0 n
	for i in $(seq 12); do
		curl -sS -o /dev/null -w '%{http_code}\n' --max-time 10 \
			"http://127.0.0.1:$SM_PORT/slow?ms=800" >"$BATS_TEST_TMPDIR/code.$i" &
		pids+=($!)
	done
	for i in $(seq 8); do
		sleep 0.1
		n=$(worker_pids "$sm_pid" | wc -l)
		((n > peak)) && peak=$n
	done
	for i in "${pids[@]}"; do wait_gone "$i" 10; done
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	echo "# 12 requests of 800 ms, --workers 2: the pool grew to $peak workers, all answered in $ms ms" >&3
	expect_eq "answers" "$(printf '200\n%.0s' $(seq 12))" "$(cat "$BATS_TEST_TMPDIR"/code.*)"
	expect_ge "workers at the peak" 8 "$peak"
	expect_le "all answered within (ms)" 2400 "$ms"
}
