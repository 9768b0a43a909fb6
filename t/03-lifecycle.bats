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

@test "HUP ten times under load, a new connection per request: 0 failed, every one counted" {
	SM_WORKERS_WANTED=4 start_sm --workers 4
	local first
	first=$(worker_pids "$sm_pid" | sort | tr '\n' ' ')
	# kaload rather than ab: ab may open a connection more than its -n and leave it unused
	spawn load "$PY" "$ROOT/t/lib/kaload.py" "$SM_PORT" 8 3 /index.html close
	signal_sm HUP 10 0.2
	wait_gone "$load_pid" 60
	local answers
	answers=$(load_result answers)
	echo "# $answers answers, $(load_result conn_errors) failed" >&3
	expect_gt "answers" 500 "$answers"
	expect_eq "failed requests" 0 "$(load_result conn_errors)"
	[[ $(worker_pids "$sm_pid" | sort | tr '\n' ' ') != "$first" ]]
	expect_eq "rotations logged" 10 "$(grep -c 'rotating workers' "$BATS_TEST_TMPDIR/sm.err")"
	sm_dump
	expect_eq "connections counted" "$answers" "$(dump_total conns)"
	expect_eq "requests counted" "$answers" "$(dump_total reqs)"
	expect_eq "restarts (rotation is not a restart)" 0 "$(dump_total restarts)"
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
