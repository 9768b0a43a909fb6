#!/usr/bin/env bats
# An application that refuses, does not answer the connect, or goes silent: the client's
# connection is closed, and the outcome is counted by reason.

load helpers

@test "tcp mode, the application refuses: the client's connection is closed and counted" {
	start_sm --mode tcp
	run curl -sS --max-time 5 "http://127.0.0.1:$SM_PORT/"
	expect_eq "curl exit (52: empty reply)" 52 "$status"
	sm_dump
	expect_eq "connections" 1 "$(dump_total conns)"
	expect_eq "upstream errors" 1 "$(dump_total upstream_errors)"
}

@test "tcp mode, the application never completes the handshake: --connect-timeout" {
	# A listener whose accept queue is full drops further SYNs: connects to it hang.
	spawn app "$PY" -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $UP_PORT)); s.listen(0)
fill = [socket.socket() for _ in range(3)]
for c in fill:
    c.setblocking(False)
    c.connect_ex(('127.0.0.1', $UP_PORT))
time.sleep(60)"
	wait_port "$UP_PORT" "$app_pid"
	sleep 0.2
	start_sm --mode tcp --connect-timeout 0.3
	local t0=$EPOCHREALTIME
	run curl -sS --max-time 5 "http://127.0.0.1:$SM_PORT/"
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	expect_eq "curl exit (52: empty reply)" 52 "$status"
	expect_le "ms until the client was closed" 2000 "$ms"
	expect_le "at least the timeout (ms)" "$ms" 300
	sm_dump
	expect_eq "upstream errors" 1 "$(dump_total upstream_errors)"
}

@test "tcp mode, a silent connection is closed after --idle-timeout" {
	spawn app "$PY" -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $UP_PORT)); s.listen(8)
conns = []
while True:
    conns.append(s.accept()[0])"
	wait_port "$UP_PORT" "$app_pid"
	start_sm --mode tcp --idle-timeout 0.5
	local t0=$EPOCHREALTIME
	run "$PY" -c "
import socket
s = socket.create_connection(('127.0.0.1', $SM_PORT))
s.settimeout(5)
print(repr(s.recv(10)))"
	assert_success
	assert_output "b''"
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	expect_le "ms until closed" 2500 "$ms"
	expect_le "at least the timeout (ms)" "$ms" 500
	sm_dump
	expect_eq "connections" 1 "$(dump_total conns)"
}
