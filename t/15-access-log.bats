#!/usr/bin/env bats
# The access log: one line per exchange (and per connection that ended without one), as
# JSON or the NCSA combined format, redacted, filtered, written without ever holding up the
# traffic, reopened on USR1.

load helpers

setup() {
	common_setup
	printf 'hello\n' >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
	LOG=$BATS_TEST_TMPDIR/access.log
}

# lines FILE: the access log's lines, checked to be JSON objects, as one JSON list
lines() {
	"$PY" -c 'import json, sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1])]))' "$1"
}

@test "one JSON line per request counted on /metrics: keep-alive, pipelining, 504s, 502s, a killed worker" {
	start_sm --workers 2 --response-timeout 0.3 --access-log "$LOG"
	spawn load "$PY" "$ROOT/t/lib/mixed.py" "$SM_PORT" 4 4
	sleep 1.5
	kill -KILL "$(worker_pids "$sm_pid" | head -1)"
	wait_gone "$load_pid" 30
	cat "$BATS_TEST_TMPDIR/load.out"
	# the application gone: sidemeter's own 502s
	stop_pid "$app_pid"
	local i
	for i in 1 2 3 4 5; do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	sleep 0.5
	scrape
	run "$PY" "$ROOT/t/lib/lines_vs_metrics.py" "$LOG" "$BATS_TEST_TMPDIR/metrics.txt"
	echo "$output"
	echo "# $output" >&3
	assert_success
	# every line's fields, once
	run "$PY" -c 'import json, sys
l = [json.loads(x) for x in open(sys.argv[1]) if "\"status\":200" in x][0]
need = ["time", "client", "method", "path", "route", "proto", "status", "req_bytes", "resp_bytes",
        "duration_s", "app_s", "conn_requests", "user_agent"]
missing = [k for k in need if k not in l]
print(missing or "ok", l["time"], l["client"], l["proto"])
sys.exit(1 if missing else 0)' "$LOG"
	echo "$output"
	assert_success
	assert_output --regexp '^ok [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{6}Z 127\.0\.0\.1:[0-9]+ HTTP/1\.1$'
	grep -q '"answered_by":"sidemeter"' "$LOG"
	expect_eq "dropped" 0 "$(metric_sum sidemeter_access_log_dropped_total)"
}

@test "the combined format: every line parses with the NCSA combined regex" {
	start_sm --access-log "$LOG" --access-log-format combined
	curl -s -o /dev/null -A 'Mozilla/5.0 "quoted"' -e 'http://ref.example/a b' "http://127.0.0.1:$SM_PORT/index.html?q=1"
	curl -s -o /dev/null --http1.0 "http://127.0.0.1:$SM_PORT/status/404"
	curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/204"
	sleep 0.3
	cat "$LOG"
	run "$PY" -c 'import re, sys
ncsa = re.compile(r"^(\S+) (\S+) (\S+) \[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] \"((?:[^\"\\]|\\.)*)\" (\d{3}|-) (\d+|-) \"((?:[^\"\\]|\\.)*)\" \"((?:[^\"\\]|\\.)*)\"$")
lines = open(sys.argv[1]).read().splitlines()
bad = [l for l in lines if not ncsa.match(l)]
print(len(lines), "lines,", len(bad), "not combined:", bad)
m = [ncsa.match(l).groups() for l in lines]
print([g[4] for g in m], [g[5] for g in m], [g[6] for g in m])
sys.exit(1 if bad or len(lines) != 3 else 0)' "$LOG"
	echo "$output"
	assert_success
	assert_output --partial "'GET /status/404 HTTP/1.0', 'GET /status/204 HTTP/1.1'] ['200', '404', '204'] ['6', '7', '-']"
	grep -qF '"GET /index.html?q=\xE2\x80\xA6 HTTP/1.1" 200 6 "http://ref.example/a b"' "$LOG"
	grep -qF '"Mozilla/5.0 \"quoted\""' "$LOG"
}

@test "query values and credentials never reach the log; keys, numbers and names do" {
	start_sm --access-log "$LOG"
	local s
	for s in "/login?user=alice&token=s3cr3tV4lue&page=2" \
		"/api/keys/sk_live_51HxAbCdEfGhIjKl/rotate" \
		"/users/42/orders/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig" \
		"/reset/AbCdEfGhIjKlMnOpQrStUv?x=1" "/session/user:hunter2/x"; do
		curl -s -o /dev/null "http://127.0.0.1:$SM_PORT$s"
	done
	curl -s -o /dev/null -H "X-Request-Id: $(printf 'id\x01\x1b[31m')" "http://127.0.0.1:$SM_PORT/index.html"
	sleep 0.3
	cat "$LOG"
	for s in alice s3cr3tV4lue sk_live_51HxAbCdEfGhIjKl eyJhbGciOiJIUzI1NiJ9 AbCdEfGhIjKlMnOpQrStUv hunter2; do
		expect_absent "a secret in the access log" "$s" "$LOG"
	done
	grep -qF '"path":"/login?user=…&token=…&page=…"' "$LOG"
	grep -qF '"path":"/users/42/orders/…"' "$LOG"
	grep -qF '"path":"/api/keys/…/rotate"' "$LOG"
	# a control byte never reaches a terminal raw
	grep -qF '"request_id":"id\u0001\u001b[31m"' "$LOG"
	lines "$LOG" >/dev/null
}

@test "a reader that stops reading the log stops nothing: lines dropped whole and counted, counts exact" {
	stop_pid "$app_pid"
	start_nginx	# quick enough for wrk to outrun a pipe nobody reads
	mkfifo "$BATS_TEST_TMPDIR/pipe"
	# a reader that opens the pipe and never reads it
	spawn reader bash -c "exec 3<'$BATS_TEST_TMPDIR/pipe'; sleep 60"
	spawn sm bash -c "exec '$SM_BIN' --listen 127.0.0.1:$SM_PORT --upstream 127.0.0.1:$UP_PORT \
		--metrics 127.0.0.1:$MET_PORT --dump-interval 0 --access-log stdout >'$BATS_TEST_TMPDIR/pipe'"
	wait_port "$SM_PORT" "$sm_pid"
	run wrk -t1 -c4 -d3s "http://127.0.0.1:$SM_PORT/index.html"
	echo "$output"
	local sent
	sent=$(awk '/requests in/ { print $1 }' <<<"$output")
	local t0=$EPOCHREALTIME
	curl -sf -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	sleep 0.3
	scrape
	echo "# $sent requests with the log's reader stuck: $(metric 'sidemeter_access_log_dropped_total{where="output"}') lines dropped at the output, $(metric 'sidemeter_access_log_dropped_total{where="ring"}') at the rings; a request after it took $ms ms" >&3
	# wrk leaves out what was in flight when it stopped (4 connections), sidemeter does not
	expect_ge "requests counted" "$((sent + 1))" "$(metric_sum sidemeter_http_requests_total)"
	expect_le "requests counted" "$((sent + 5))" "$(metric_sum sidemeter_http_requests_total)"
	expect_gt "lines dropped" 0 "$(metric_sum sidemeter_access_log_dropped_total)"
	expect_le "a request while the log is stuck (ms)" 1000 "$ms"
	stop_pid "$sm_pid"
	stop_pid "$reader_pid"
}

@test "USR1 reopens a rotated log file" {
	start_sm --access-log "$LOG"
	local i
	for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	sleep 0.3
	mv "$LOG" "$LOG.1"
	kill -USR1 "$sm_pid"
	wait_until 5 test -f "$LOG"
	for i in 1 2; do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/404"; done
	sleep 0.3
	expect_eq "lines in the rotated file" 3 "$(wc -l <"$LOG.1")"
	expect_eq "lines in the new file" 2 "$(grep -c '"status":404' "$LOG")"
	grep -q "access log reopened" "$BATS_TEST_TMPDIR/sm.err"
}

@test "--access-log-filter: status classes, a minimum duration (either), then one in N" {
	start_sm --workers 1 --access-log "$LOG" --access-log-filter 'status=5xx|4xx,min_ms=250'
	curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"
	curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/404"
	curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/503"
	curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/slow?ms=300"
	curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/slow?ms=10"
	sleep 0.3
	expect_eq "the lines kept" "/status/404 404,/status/503 503,/slow?ms=… 200" \
		"$("$PY" -c 'import json, sys; print(",".join("%s %s" % (json.loads(l)["path"], json.loads(l)["status"]) for l in open(sys.argv[1])))' "$LOG")"
	stop_pid "$sm_pid"
	rm -f "$LOG"
	start_sm --workers 1 --access-log "$LOG" --access-log-filter sample=10
	local i
	for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	sleep 0.3
	expect_eq "one in ten of 100" 10 "$(wc -l <"$LOG")"
}
