#!/usr/bin/env bats
# Faults and abuse: reloads and crashes under load, slow and idle clients, drains, a new
# binary, wedged workers, PID 1, and running out of descriptors.  Every test prints the
# numbers it saw.  (The dead and the silent application, 502 and 504, are in t/07.)

load helpers

# cpu_ticks PID...: user+system clock ticks used so far by these processes together.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do
		t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# nginx_answers: requests the application logged.
nginx_answers() {
	wc -l <"$BATS_TEST_TMPDIR/nginx/access.log"
}

@test "1. 20 HUPs during load with a new connection per request: 0 failed, all counted" {
	start_nginx
	SM_WORKERS_WANTED=4 start_sm --workers 4
	local first
	first=$(worker_pids "$sm_pid" | sort | tr '\n' ' ')
	# load.py rather than ab: ab may open a connection more than its -n and leave it unused
	spawn load "$PY" "$ROOT/t/lib/load.py" exact "$SM_PORT" 16 3 /index.html close
	signal_sm HUP 20 0.1
	wait_gone "$load_pid" 60
	local answers failed
	answers=$(load_result answers)
	failed=$(load_result conn_errors)
	echo "# 16 connections at a time, each for one request: $answers answers, $failed failed" >&3
	expect_gt "answers" 1000 "$answers"
	expect_eq "failed" 0 "$failed"
	expect_eq "rotations" 20 "$(grep -c 'rotating workers' "$BATS_TEST_TMPDIR/sm.err")"
	expect_ne "workers replaced" "$first" "$(worker_pids "$sm_pid" | sort | tr '\n' ' ')"
	sleep 0.3
	scrape
	expect_eq "counted" "$answers" "$(metric_sum sidemeter_http_requests_total)"
	expect_eq "the app answered" "$answers" "$(nginx_answers)"
	sm_dump
	expect_eq "connections in the summary lines" "$answers" "$(dump_total conns)"
	expect_eq "requests in the summary lines" "$answers" "$(dump_total requests)"
	expect_eq "restarts (rotation is not a restart)" 0 "$(dump_total restarts)"
}

@test "2. 20 HUPs during keep-alive load: every answer the app gave reached its client" {
	start_nginx
	SM_WORKERS_WANTED=4 start_sm --workers 4
	spawn load "$PY" "$ROOT/t/lib/load.py" exact "$SM_PORT" 8 4
	signal_sm HUP 20 0.15
	wait_gone "$load_pid" 60
	local answers errors
	answers=$(load_result answers)
	errors=$(load_result conn_errors)
	echo "# keep-alive: $answers answers received, $errors connection errors (closed idle by a leaving worker), app logged $(nginx_answers)" >&3
	expect_gt "answers" 1000 "$answers"
	expect_eq "answers the app gave that the clients did not get" 0 $(($(nginx_answers) - answers))
	sleep 0.3
	scrape
	expect_eq "counted" "$answers" "$(metric_sum sidemeter_http_requests_total)"
}

@test "3. a worker SIGKILLed every 0.5 s under load: at most one failure per kill" {
	start_nginx
	SM_WORKERS_WANTED=4 start_sm --workers 4
	# a new connection per request, every failure counted once (ab counts some twice)
	spawn load "$PY" "$ROOT/t/lib/load.py" exact "$SM_PORT" 8 5 /index.html close
	local i kills=0 victim
	sleep 0.3
	for ((i = 0; i < 8; i++)); do
		victim=$(worker_pids "$sm_pid" | shuf -n 1)
		[[ -n $victim ]] && kill -KILL "$victim" && kills=$((kills + 1))
		sleep 0.5
	done
	wait_gone "$load_pid" 60
	local answers failed
	answers=$(load_result answers)
	failed=$(load_result conn_errors)
	scrape
	echo "# $kills kills: $failed failed requests, $answers answered; aborted connections counted $(metric 'sidemeter_connections_total{reason="aborted"}'), restarts $(metric sidemeter_worker_restarts_total), workers now $(worker_pids "$sm_pid" | wc -l)" >&3
	# a kill may cut a connection whose answer was already out (the worker was closing it):
	# counted as aborted, not a failure for the client
	local aborted
	aborted=$(metric 'sidemeter_connections_total{reason="aborted"}')
	expect_le "failed requests" "$aborted" "$failed"
	expect_le "aborted connections" "$kills" "$aborted"
	expect_eq "restarts counted" "$kills" "$(metric sidemeter_worker_restarts_total)"
	expect_ge "workers" 4 "$(worker_pids "$sm_pid" | wc -l)"
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	assert_output 200
}

@test "3b. a worker killed once the kernel gave it a connection, before it could say so: counted" {
	start_nginx
	start_sm --workers 1
	local victim
	victim=$(worker_pids "$sm_pid")
	# the accept is done (the descriptor is the worker's) and the worker has not seen it
	hold_syscall strace "$victim" accept4
	spawn client curl -sS --max-time 20 -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$SM_PORT/index.html"
	wait_held strace
	local t0=$EPOCHREALTIME
	kill -KILL "$victim"
	wait_gone "$client_pid" 20
	echo "# killed in accept's return: the client saw '$(cat "$BATS_TEST_TMPDIR/client.err")' after $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $t0 }") s (the hold's end)" >&3
	expect_eq "status the client got" 000 "$(cat "$BATS_TEST_TMPDIR/client.out")"
	wait_until 5 eval 'scrape && [[ $(metric sidemeter_worker_restarts_total) == 1 ]]'
	expect_eq "aborted connections" 1 "$(metric 'sidemeter_connections_total{reason="aborted"}')"
	expect_eq "connections in all" 1 "$(metric_sum sidemeter_connections_total)"
	sm_workers_ready 1
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	assert_output 200
}

@test "4. 50 slow-header clients against 4 workers: others are served, the slow are cut" {
	start_nginx
	SM_WORKERS_WANTED=4 start_sm --workers 4 --header-timeout 2
	cat >"$BATS_TEST_TMPDIR/slowloris.py" <<'PYEOF'
import socket, sys, threading, time
port, closed, lock = int(sys.argv[1]), [], threading.Lock()
def one():
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(1)
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: t\r\n")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            s.sendall(b"X")
            if s.recv(1) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    with lock:
        closed.append(time.monotonic() - t0)
threads = [threading.Thread(target=one) for _ in range(50)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(closed), max(closed))
PYEOF
	spawn slowloris "$PY" "$BATS_TEST_TMPDIR/slowloris.py" "$SM_PORT"
	sleep 0.5
	local t0=$EPOCHREALTIME
	run curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	assert_output 200
	wait_gone "$slowloris_pid" 20
	local n slowest
	read -r n slowest <"$BATS_TEST_TMPDIR/slowloris.out"
	echo "# a normal client served in $ms ms while 50 slow ones hung; all $n slow ones cut, the last after ${slowest%.*}s" >&3
	expect_le "ms for the normal client" 1000 "$ms"
	expect_eq "slow clients cut" 50 "$n"
	expect_le "seconds until the last was cut" 4 "$slowest"
	scrape
	expect_eq "counted as header timeouts" 50 "$(metric 'sidemeter_connections_total{reason="header_timeout"}')"
}

@test "5. without a keeper (--max-parked 0), 200 idle keep-alive connections: the pool grows to hold them, a new client is served; then they and the pool shrink" {
	start_nginx
	SM_WORKERS_WANTED=4 start_sm --workers 4 --max-workers 220 --keepalive-timeout 2 \
		--pool-idle-timeout 1 --max-parked 0
	cat >"$BATS_TEST_TMPDIR/idle.py" <<'PYEOF'
import socket, sys, time
port = int(sys.argv[1])
held = []
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    while b"</p>" not in got:
        d = s.recv(65536)
        if not d:
            sys.exit("closed before the first answer")
        got += d
    held.append(s)
print("opened", flush=True)
t0 = time.monotonic()
closed = 0
for s in held:
    try:
        if s.recv(1) == b"":
            closed += 1
    except OSError:
        closed += 1
print(closed, round(time.monotonic() - t0, 1), flush=True)
PYEOF
	spawn idle "$PY" "$BATS_TEST_TMPDIR/idle.py" "$SM_PORT"
	wait_until 30 grep -q opened "$BATS_TEST_TMPDIR/idle.out"
	local peak
	peak=$(worker_pids "$sm_pid" | wc -l)
	local t0=$EPOCHREALTIME
	run curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	assert_output 200
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	wait_gone "$idle_pid" 20
	local closed after
	closed=$(sed -n 2p "$BATS_TEST_TMPDIR/idle.out")
	wait_until 10 eval "[ \$(worker_pids $sm_pid | wc -l) -le 4 ]"
	after=$(worker_pids "$sm_pid" | wc -l)
	echo "# pool grew to $peak workers for 200 idle connections; a new client took $ms ms; closed by keep-alive timeout: $closed s; pool back to $after" >&3
	expect_ge "peak workers" 200 "$peak"
	expect_le "ms for the new client" 1000 "$ms"
	expect_eq "idle connections closed" 200 "${closed%% *}"
	scrape
	expect_eq "counted as keep-alive timeouts" 200 "$(metric 'sidemeter_connections_total{reason="keepalive_timeout"}')"
}

@test "6. TERM with 20 slow requests in flight: all complete, exit 0, /readyz 503 meanwhile" {
	printf 'x\n' >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
	SM_WORKERS_WANTED=4 start_sm --workers 4
	local i
	for ((i = 0; i < 20; i++)); do
		spawn "slow$i" curl -sS --max-time 20 "http://127.0.0.1:$SM_PORT/slow?ms=2000"
	done
	wait_until 5 eval "[ \$(curl -s http://127.0.0.1:$MET_PORT/stats.json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"totals\"][\"active\"])') -eq 20 ]"
	kill -TERM "$sm_pid"
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MET_PORT/readyz"
	assert_output 503
	local st=0 done=0
	wait "$sm_pid" || st=$?
	for ((i = 0; i < 20; i++)); do
		wait_gone "$(eval echo "\$slow${i}_pid")" 5
		[[ $(cat "$BATS_TEST_TMPDIR/slow$i.out") == "slow done" ]] && done=$((done + 1))
	done
	echo "# $done of 20 slow requests completed during the drain; exit status $st" >&3
	expect_eq "completed" 20 "$done"
	expect_eq "exit status" 0 "$st"
}

# build_version V DIR: a copy of the tree at DIR built as version V.
build_version() {
	mkdir -p "$2"
	(cd "$ROOT" && tar cf - --exclude=./build --exclude=./sidemeter --exclude=./fuzz/corpus .) |
		tar xf - -C "$2"
	# a plain build from an empty environment, whatever the suite's own make was asked
	# (SAN=... reaches us in the environment and in MAKEFLAGS)
	env -i PATH=/usr/bin:/bin make -s -C "$2" -j2 VERSION="$1" >/dev/null
}

@test "7. USR2 under load: 0 failed, the new binary serves; a bad binary changes nothing" {
	start_nginx
	local d=$BATS_TEST_TMPDIR/bin
	build_version 0.0.0-usr2 "$d/new"
	cp "$SM_BIN" "$d/sidemeter"
	SM_BIN=$d/sidemeter SM_WORKERS_WANTED=4 start_sm --workers 4
	local old_workers
	old_workers=$(worker_pids "$sm_pid" | sort | tr '\n' ' ')
	spawn load "$PY" "$ROOT/t/lib/load.py" exact "$SM_PORT" 8 3 /index.html close
	sleep 0.5
	scrape
	local before
	before=$(metric_sum sidemeter_http_requests_total)
	mv "$d/new/sidemeter" "$d/sidemeter"
	kill -USR2 "$sm_pid"
	wait_gone "$load_pid" 60
	grep -Eq "re-executed $d/sidemeter: [0-9]+ workers adopted" "$BATS_TEST_TMPDIR/sm.err"
	scrape
	expect_eq "version" 1 "$(metric 'sidemeter_build_info{version="0.0.0-usr2"}')"
	local answers
	answers=$(load_result answers)
	echo "# USR2 under load: $answers answers, $(load_result conn_errors) failed; counters $before before, $(metric_sum sidemeter_http_requests_total) after" >&3
	expect_gt "requests before USR2" 0 "$before"
	expect_eq "failed" 0 "$(load_result conn_errors)"
	expect_eq "counters went on" "$answers" "$(metric_sum sidemeter_http_requests_total)"
	[[ $(worker_pids "$sm_pid" | sort | tr '\n' ' ') != "$old_workers" ]]
	# a binary that cannot start: nothing changes
	local workers
	workers=$(worker_pids "$sm_pid" | sort | tr '\n' ' ')
	printf '#!/bin/sh\necho "not a sidemeter" >&2\nexit 3\n' >"$d/broken"
	chmod +x "$d/broken"
	mv "$d/broken" "$d/sidemeter"
	kill -USR2 "$sm_pid"
	wait_until 5 grep -q -- "--check failed (status 3): carrying on" "$BATS_TEST_TMPDIR/sm.err"
	expect_eq "workers" "$workers" "$(worker_pids "$sm_pid" | sort | tr '\n' ' ')"
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	assert_output 200
	scrape
	expect_eq "still the new version" 1 "$(metric 'sidemeter_build_info{version="0.0.0-usr2"}')"
}

@test "8. a worker stopped with SIGSTOP is replaced within the heartbeat timeout" {
	start_nginx
	SM_WORKERS_WANTED=2 start_sm --workers 2 --heartbeat-timeout 2
	local victim t0=$EPOCHREALTIME
	victim=$(worker_pids "$sm_pid" | head -1)
	kill -STOP "$victim"
	wait_until 6 eval "! worker_pids $sm_pid | grep -qx $victim"
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	wait_until 3 eval "[ \$(worker_pids $sm_pid | wc -l) -ge 2 ]"
	echo "# a stopped worker was killed and replaced after $ms ms (heartbeat timeout 2 s)" >&3
	expect_le "ms until replaced" 4000 "$ms"
	grep -q "worker [0-9]* (pid $victim) silent for" "$BATS_TEST_TMPDIR/sm.err"
	scrape
	expect_eq "restarts" 1 "$(metric sidemeter_worker_restarts_total)"
}

@test "9. as PID 1 in its own PID namespace: orphans are reaped, TERM exits cleanly" {
	start_nginx
	spawn sm unshare --pid --fork --mount-proc "$SM_BIN" --listen "127.0.0.1:$SM_PORT" \
		--upstream "127.0.0.1:$UP_PORT" --metrics off --dump-interval 0 --workers 2
	wait_port "$SM_PORT" "$sm_pid"
	local init
	wait_until 5 eval "[ -n \"\$(worker_pids $sm_pid)\" ]"
	init=$(children "$sm_pid")	# sidemeter, PID 1 inside
	expect_eq "PID inside its namespace" 1 "$(awk '/^NSpid/ { print $3 }' "/proc/$init/status")"
	# an orphan: a shell in the namespace starts a child and exits
	nsenter --target "$init" --pid --mount -- sh -c 'sleep 0.5 & exit 0'
	sleep 1.5
	local zombies
	zombies=$(ps -o stat=,comm= --ppid "$init" | awk '$1 ~ /Z/' | wc -l)
	echo "# zombies under sidemeter as PID 1 after an orphan exited: $zombies" >&3
	expect_eq "zombies" 0 "$zombies"
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	assert_output 200
	kill -TERM "$init"
	local st=0
	wait "$sm_pid" || st=$?
	expect_eq "exit status (through unshare)" 0 "$st"
}

@test "11. out of descriptors: no spin while accept fails, service resumes when they free up" {
	start_nginx
	start_sm --workers 1 --max-workers 1
	local w
	w=$(worker_pids "$sm_pid")
	# With a (soft) limit of 5 the worker has no descriptor left for accept().  An accept()
	# already waiting holds its descriptor: the next one, within a second, has none.
	prlimit --pid "$w" --nofile=5:
	sleep 1.2
	spawn client curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	sleep 0.5
	local t0 t1
	t0=$(cpu_ticks "$w" "$sm_pid")
	sleep 2
	t1=$(cpu_ticks "$w" "$sm_pid")
	scrape
	local emfile
	emfile=$(metric 'sidemeter_accept_errors_total{reason="emfile"}')
	prlimit --pid "$w" --nofile=1024:
	wait_gone "$client_pid" 10
	echo "# 2 s out of descriptors: $((t1 - t0)) CPU ticks (of 200) for master and worker, $emfile failed accepts counted; the waiting client then got $(cat "$BATS_TEST_TMPDIR/client.out")" >&3
	expect_le "CPU ticks in 2 s" 20 "$((t1 - t0))"
	expect_gt "accepts failed for lack of descriptors" 0 "$emfile"
	expect_eq "the waiting client" 200 "$(cat "$BATS_TEST_TMPDIR/client.out")"
}

@test "11b. ulimit -n 64 and 200 connections at once: all served, nothing spins" {
	printf 'x\n' >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
	spawn sm bash -c "ulimit -n 64 && exec \"$SM_BIN\" --listen 127.0.0.1:$SM_PORT --upstream 127.0.0.1:$UP_PORT --metrics 127.0.0.1:$MET_PORT --dump-interval 0 --workers 4 --max-workers 64"
	wait_port "$SM_PORT" "$sm_pid"
	run "$PY" - "$SM_PORT" <<'PYEOF'
import socket, sys, threading
port, codes, lock = int(sys.argv[1]), [], threading.Lock()
def one():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"GET /slow?ms=300 HTTP/1.0\r\n\r\n")
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        code = got.split(b" ", 2)[1].decode() if got else "none"
    except OSError as e:
        code = type(e).__name__
    with lock:
        codes.append(code)
threads = [threading.Thread(target=one) for _ in range(200)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len([c for c in codes if c == "200"]), sorted(set(codes)))
PYEOF
	echo "# ulimit -n 64, 200 connections at once: $output" >&3
	assert_output "200 ['200']"
	scrape
	expect_le "workers" 64 "$(metric_sum sidemeter_workers)"
}

@test "a client that resets mid-answer ends only its own connection" {
	start_nginx
	head -c 20000000 /dev/urandom >"$BATS_TEST_TMPDIR/nginx/www/big.bin"
	SM_WORKERS_WANTED=2 start_sm --workers 2
	spawn other curl -sS --max-time 20 -o "$BATS_TEST_TMPDIR/other.bin" --limit-rate 5M \
		"http://127.0.0.1:$SM_PORT/big.bin"
	"$PY" - "$SM_PORT" <<'PYEOF'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
s.recv(100000)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
PYEOF
	wait_gone "$other_pid" 30
	cmp "$BATS_TEST_TMPDIR/nginx/www/big.bin" "$BATS_TEST_TMPDIR/other.bin"
	sleep 0.3
	scrape
	expect_eq "client errors" 1 "$(metric 'sidemeter_connections_total{reason="client_error"}')"
	expect_eq "restarts" 0 "$(metric sidemeter_worker_restarts_total)"
}

@test "the metrics port out of descriptors: the master does not spin, and recovers" {
	start_sm
	scrape
	local n
	n=$(ls "/proc/$sm_pid/fd" | wc -l)
	prlimit --pid "$sm_pid" --nofile="$n:"
	spawn scraper curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MET_PORT/metrics"
	sleep 0.3
	local t0 t1
	t0=$(cpu_ticks "$sm_pid")
	sleep 2
	t1=$(cpu_ticks "$sm_pid")
	prlimit --pid "$sm_pid" --nofile=1024:
	wait_gone "$scraper_pid" 10
	echo "# master out of descriptors for 2 s: $((t1 - t0)) CPU ticks; the scrape then got $(cat "$BATS_TEST_TMPDIR/scraper.out")" >&3
	expect_le "CPU ticks in 2 s" 20 "$((t1 - t0))"
	expect_eq "the waiting scrape" 200 "$(cat "$BATS_TEST_TMPDIR/scraper.out")"
}
