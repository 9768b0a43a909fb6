#!/usr/bin/env bats
# The master's life: workers that die, graceful stop, rotation under load, its own death.

load helpers

setup() {
	common_setup
	printf '<!doctype html><title>t</title><p>%0500d</p>\n' 0 >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
}

@test "a worker killed with SIGKILL is replaced and the master keeps serving" {
	SM_WORKERS_WANTED=2 start_sm --workers 2
	local victim before after
	before=$(worker_pids "$sm_pid" | sort | tr '\n' ' ')
	victim=$(worker_pids "$sm_pid" | head -1)
	local t0=$EPOCHREALTIME
	kill -KILL "$victim"
	wait_until 5 eval "[ \$(worker_pids $sm_pid | grep -vx $victim | wc -l) -ge 2 ]"
	echo "# respawned in $(awk "BEGIN { printf \"%.0f\", ($EPOCHREALTIME - $t0) * 1000 }") ms" >&3
	after=$(worker_pids "$sm_pid" | sort | tr '\n' ' ')
	[[ $before != "$after" ]]
	run curl -sS "http://127.0.0.1:$SM_PORT/index.html"
	assert_success
	assert_output --partial "<title>t</title>"
	grep -q "worker [0-9]* (pid $victim) was killed by signal 9 (status 137)" "$BATS_TEST_TMPDIR/sm.err"
	sm_dump
	expect_eq "restarts" 1 "$(dump_total restarts)"
}

@test "TERM with a slow request in flight: it completes, the master exits 0, nothing is left" {
	start_sm --workers 2
	local workers
	workers=$(worker_pids "$sm_pid")
	spawn slow curl -sS "http://127.0.0.1:$SM_PORT/slow?ms=1500"
	sleep 0.4
	local t0=$EPOCHREALTIME
	kill -TERM "$sm_pid"
	wait "$slow_pid"
	expect_eq "the slow answer" "slow done" "$(cat "$BATS_TEST_TMPDIR/slow.out")"
	local st=0
	wait "$sm_pid" || st=$?
	expect_eq "master exit status" 0 "$st"
	echo "# drained and stopped $(awk "BEGIN { printf \"%.0f\", ($EPOCHREALTIME - $t0) * 1000 }") ms after TERM" >&3
	for w in $workers; do expect_gone "worker after TERM" "$w"; done
	expect_closed "listen port after TERM" "$SM_PORT"
	# the last dump at exit counts the slow connection
	expect_eq "connections" 1 "$(dump_total conns)"
}

@test "TERM: what is still busy after --drain-timeout is killed, and the master exits 0" {
	start_sm --workers 1 --drain-timeout 0.5
	spawn slow curl -sS "http://127.0.0.1:$SM_PORT/slow?ms=5000"
	sleep 0.3
	kill -TERM "$sm_pid"
	local st=0
	wait "$sm_pid" || st=$?
	expect_eq "master exit status" 0 "$st"
	grep -q "still busy after --drain-timeout: killing it" "$BATS_TEST_TMPDIR/sm.err"
	st=0
	wait "$slow_pid" || st=$?
	expect_ne "exit status of the cut-off client" 0 "$st"
	expect_eq "connections aborted and counted" 1 "$(dump_total conns)"
}

@test "the master killed with SIGKILL: its workers leave within 2 s and the port is free" {
	SM_WORKERS_WANTED=3 start_sm --workers 3
	local workers w
	workers=$(worker_pids "$sm_pid")
	kill -KILL "$sm_pid"
	local t0=$EPOCHREALTIME
	for w in $workers; do wait_gone "$w" 2; done
	echo "# workers gone $(awk "BEGIN { printf \"%.0f\", ($EPOCHREALTIME - $t0) * 1000 }") ms after the master" >&3
	run "$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', $SM_PORT)); s.listen(1)"
	assert_success
}

@test "TTIN and TTOU add and remove a worker" {
	SM_WORKERS_WANTED=2 start_sm --workers 2
	kill -TTIN "$sm_pid"
	wait_until 5 eval "[ \$(worker_pids $sm_pid | wc -l) -eq 3 ]"
	# signals of one kind do not queue: one at a time
	kill -TTOU "$sm_pid"
	wait_until 5 eval "[ \$(worker_pids $sm_pid | wc -l) -eq 2 ]"
	kill -TTOU "$sm_pid"
	wait_until 5 eval "[ \$(worker_pids $sm_pid | wc -l) -eq 1 ]"
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	assert_output 200
}

@test "TERM with a half-sent request head: the drain gives it 2 s, not the whole --header-timeout" {
	start_sm --header-timeout 30
	# one head that stalls for good, one that finishes within the drain's 2 s
	spawn stalled "$PY" "$ROOT/t/lib/crowd.py" heads "$SM_PORT" 1 20
	spawn finishing "$PY" "$ROOT/t/lib/park.py" slowhead "$SM_PORT" 1.5
	sleep 0.5
	local t0=$EPOCHREALTIME st=0
	kill -TERM "$sm_pid"
	wait_gone "$sm_pid" 10
	wait "$sm_pid" || st=$?
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	wait_gone "$stalled_pid" 5
	wait_gone "$finishing_pid" 5
	cat "$BATS_TEST_TMPDIR/stalled.out" "$BATS_TEST_TMPDIR/finishing.out"
	echo "# TERM with a stalled head (--header-timeout 30): the master exited ${ms} ms later; the head that finished in time got its answer" >&3
	expect_eq "master exit status" 0 "$st"
	expect_le "ms from TERM to exit" 4000 "$ms"
	expect_eq "the stalled head was closed" 1 "$(json_field "$BATS_TEST_TMPDIR/stalled.out" closed)"
	expect_eq "the head that finished in time was answered" 200 "$(json_field "$BATS_TEST_TMPDIR/finishing.out" code)"
	expect_eq "connections counted" 2 "$(dump_total conns)"
	expect_eq "the one request answered" 1 "$(dump_total requests)"
}

@test "job mode: POST /quitquitquit from loopback drains and exits 0, counted in the last summary line" {
	start_sm
	spawn slow curl -sS "http://127.0.0.1:$SM_PORT/slow?ms=1000"
	sleep 0.3
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MET_PORT/quitquitquit"
	assert_output 405	# GET does not stop anything
	run curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MET_PORT/metrics"
	assert_output 405
	run curl -sS -X POST "http://127.0.0.1:$MET_PORT/quitquitquit"
	assert_output "stopping: draining, then exit 0"
	local st=0
	wait_gone "$sm_pid" 10
	wait "$sm_pid" || st=$?
	wait "$slow_pid"
	expect_eq "master exit status" 0 "$st"
	expect_eq "the request in flight" "slow done" "$(cat "$BATS_TEST_TMPDIR/slow.out")"
	expect_eq "quit requests in the last summary line" 1 "$(dump_last quit_requests)"
	grep -q "POST /quitquitquit" "$BATS_TEST_TMPDIR/sm.err"
}

@test "job mode: /quitquitquit refuses a client that is not on loopback (403), from a network namespace of the test's own" {
	# a host of the test's own: the far end of a veth pair, in a namespace made here
	local ns=smq$$ host=10.213.0.1 peer=10.213.0.2
	echo "$ns" >"$BATS_TEST_TMPDIR/netns"
	ip netns add "$ns"
	ip link add "v$ns" type veth peer name "p$ns"
	ip link set "p$ns" netns "$ns"
	ip addr add "$host/30" dev "v$ns"
	ip link set "v$ns" up
	ip netns exec "$ns" ip addr add "$peer/30" dev "p$ns"
	ip netns exec "$ns" ip link set "p$ns" up
	ip netns exec "$ns" ip link set lo up
	spawn sm "$SM_BIN" --listen "127.0.0.1:$SM_PORT" --upstream "127.0.0.1:$UP_PORT" \
		--metrics "$host:$MET_PORT" --dump-interval 3600 --dump-format json
	wait_port "$SM_PORT" "$sm_pid"
	# the veth link takes a moment to carry traffic
	wait_until 10 ip netns exec "$ns" curl -sf --max-time 0.5 -o /dev/null "http://$host:$MET_PORT/healthz"
	run ip netns exec "$ns" curl -sS --max-time 5 -X POST "http://$host:$MET_PORT/quitquitquit"
	assert_output "only a client on loopback may stop sidemeter"
	run ip netns exec "$ns" curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X POST "http://$host:$MET_PORT/quitquitquit"
	assert_output 403
	sleep 0.3
	alive "$sm_pid"	# still running: a foreign client stops nothing
	curl -sS -o "$BATS_TEST_TMPDIR/metrics.txt" "http://$host:$MET_PORT/metrics"
	expect_eq "quit requests taken" 0 "$(metric sidemeter_quit_requests_total)"
}

@test "job mode: --exit-when-upstream-down stops once the application, seen up, stays down; not before it was up" {
	local first_app=$app_pid
	stop_pid "$first_app"	# this file's setup started one: here it comes later
	start_sm --exit-when-upstream-down 1
	sleep 2.5
	alive "$sm_pid"	# the application never came up: nothing to wait for the end of
	start_app "$BATS_TEST_TMPDIR"
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/"
	sleep 1.2	# seen up by a probe
	stop_pid "$app_pid"
	local t0=$EPOCHREALTIME st=0
	wait_gone "$sm_pid" 10
	wait "$sm_pid" || st=$?
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	echo "# the application stopped; sidemeter exited ${ms} ms later (--exit-when-upstream-down 1)" >&3
	expect_eq "master exit status" 0 "$st"
	expect_le "ms until sidemeter exited" 4000 "$ms"
	expect_eq "upstream-down exits in the last summary line" 1 "$(dump_last upstream_down_exits)"
	grep -q "has been unreachable for" "$BATS_TEST_TMPDIR/sm.err"
}
