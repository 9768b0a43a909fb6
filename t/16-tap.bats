#!/usr/bin/env bats
# The live tap (GET /tap on the metrics port) and the subcommands that read the metrics
# port: `sidemeter tap` and `sidemeter top` (in a real terminal: tmux).

load helpers

setup() {
	common_setup
	printf 'hello\n' >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
}

teardown() {
	[[ -S $BATS_TEST_TMPDIR/tmux.sock ]] && tmux -S "$BATS_TEST_TMPDIR/tmux.sock" kill-server 2>/dev/null
	common_teardown
}

# tap_listening N: /metrics says N tap clients listen.
tap_listening() {
	scrape && [[ $(metric sidemeter_tap_clients) == "$1" ]]
}

# tap_from NAME QUERY: a tap client (curl), its lines in $BATS_TEST_TMPDIR/NAME.out.
tap_from() {
	spawn "$1" curl -sN --max-time 60 "http://127.0.0.1:$MET_PORT/tap$2"
}

# refusal QUERY: how /tap?QUERY is refused: "CODE BODY".
refusal() {
	curl -s -w '%{http_code} ' -o "$BATS_TEST_TMPDIR/refusal" "http://127.0.0.1:$MET_PORT/tap$1"
	cat "$BATS_TEST_TMPDIR/refusal"
}

# count_lines FILE [PYTHON-CONDITION on l]: the JSON lines of FILE (each must parse) that
# pass the condition.
count_lines() {
	"$PY" -c 'import json, sys
n = 0
for x in open(sys.argv[1]):
    l = json.loads(x)
    n += bool(eval(sys.argv[2]))
print(n)' "$1" "${2:-True}"
}

@test "/tap streams one JSON line per request counted on /metrics, with the access log off" {
	start_sm --workers 2 --response-timeout 0.3
	tap_from tap ""
	wait_until 5 tap_listening 1
	spawn load "$PY" "$ROOT/t/lib/mixed.py" "$SM_PORT" 4 4
	sleep 1.5
	kill -KILL "$(worker_pids "$sm_pid" | head -1)"
	wait_gone "$load_pid" 30
	cat "$BATS_TEST_TMPDIR/load.out"
	stop_pid "$app_pid"	# sidemeter's own 502s
	local i
	for i in 1 2 3 4 5; do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	sleep 0.5
	scrape
	stop_pid "$tap_pid"
	run "$PY" "$ROOT/t/lib/lines_vs_metrics.py" "$BATS_TEST_TMPDIR/tap.out" "$BATS_TEST_TMPDIR/metrics.txt"
	echo "$output"
	echo "# $output" >&3
	assert_success
	expect_eq "lines queued for the tap" "$(metric sidemeter_tap_lines_total)" \
		"$(wc -l <"$BATS_TEST_TMPDIR/tap.out")"
	expect_eq "tap lines dropped" 0 "$(metric_sum sidemeter_tap_dropped_total)"
}

@test "/tap filters by route, method, code and class, min_ms and max_rps; a bad filter gets a 400 naming it" {
	# the access log on too, in the other format and with a filter of its own: neither
	# changes what the tap's clients get
	local log=$BATS_TEST_TMPDIR/access.log
	start_sm --access-log "$log" --access-log-format combined --access-log-filter status=5xx
	tap_from t404 "?code=404"
	tap_from tclass "?code=4xx,503"
	tap_from tpost "?method=POST"
	tap_from tslow "?min_ms=300"
	tap_from troute "?route=/status/:id"
	tap_from tmix "?route=/status/:id&method=GET&code=5xx"
	tap_from trate "?max_rps=5"
	wait_until 5 tap_listening 7
	local i
	for i in $(seq 1 10); do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	for i in $(seq 1 6); do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/404"; done
	for i in $(seq 1 4); do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/503"; done
	for i in $(seq 1 3); do curl -s -o /dev/null -d x "http://127.0.0.1:$SM_PORT/sha256"; done
	for i in 1 2; do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/slow?ms=400"; done
	sleep 0.5
	scrape
	for n in t404 tclass tpost tslow troute tmix trate; do stop_pid "$(eval echo "\$${n}_pid")"; done
	local d=$BATS_TEST_TMPDIR
	expect_eq "code=404 lines" 6 "$(count_lines "$d/t404.out")"
	expect_eq "code=404 lines that are 404s" 6 "$(count_lines "$d/t404.out" 'l["status"] == 404')"
	expect_eq "code=4xx,503 lines" 10 "$(count_lines "$d/tclass.out")"
	expect_eq "method=POST lines" 3 "$(count_lines "$d/tpost.out" 'l["method"] == "POST"')"
	expect_eq "method=POST lines" 3 "$(count_lines "$d/tpost.out")"
	expect_eq "min_ms=300 lines" 2 "$(count_lines "$d/tslow.out" 'l["duration_s"] >= 0.3')"
	expect_eq "min_ms=300 lines" 2 "$(count_lines "$d/tslow.out")"
	expect_eq "route=/status/:id lines" 10 "$(count_lines "$d/troute.out" 'l["route"] == "/status/:id"')"
	expect_eq "route=/status/:id lines" 10 "$(count_lines "$d/troute.out")"
	expect_eq "route, method and 5xx together" 4 "$(count_lines "$d/tmix.out" 'l["status"] == 503')"
	expect_eq "route, method and 5xx together" 4 "$(count_lines "$d/tmix.out")"
	expect_eq "lines with an RFC 3339 time" 6 \
		"$(count_lines "$d/t404.out" '__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", l["time"])')"
	# the file has its own: the 503s, combined
	expect_eq "the access log's lines" 4 "$(wc -l <"$log")"
	expect_eq "the access log's 503 lines" 4 "$(grep -cE '^127\.0\.0\.1 - - \[[^]]+\] "GET /status/503 HTTP/1\.1" 503 ' "$log")"
	# max_rps=5: what it did not get is counted, and it got at most 5 a second
	local got
	got=$(count_lines "$d/trate.out")
	expect_eq "max_rps lines got and dropped" 25 "$((got + $(metric 'sidemeter_tap_dropped_total{reason="max_rps"}')))"
	expect_le "max_rps=5 lines (the requests took under 3 s)" 15 "$got"
	expect_ge "max_rps=5 lines" 5 "$got"

	# bad filters: a 400 that names the problem, and nothing is left listening
	run refusal "?code=7xx"
	assert_output "400 code: '7xx' is neither a status (100-599) nor a class (1xx-5xx)"
	run refusal "?colour=red"
	assert_output "400 unknown filter 'colour' (route, method, code, min_ms, max_rps)"
	run refusal "?min_ms=soon"
	assert_output "400 min_ms: 'soon' is not a number of milliseconds"
	run refusal "?method=BREW"
	assert_output --partial "400 method: 'BREW' is not one of the metrics' methods"
	run refusal "?max_rps=0"
	assert_output "400 max_rps: '0' is not a number of lines a second (1-1000000)"
	run refusal "?route"
	assert_output "400 'route' is not key=value"
	wait_until 5 tap_listening 0
}

@test "two stuck tap clients change nothing for the traffic: they lose lines (counted) and are cut; one that reads gets every line" {
	stop_pid "$app_pid"
	start_nginx	# quick: the load outruns what a stuck client's queue holds
	start_sm
	spawn stuck "$PY" "$ROOT/t/lib/stuck_tap.py" "$MET_PORT" 2 25
	tap_from tap ""
	wait_until 5 tap_listening 3
	run ab -q -k -n 6000 -c 4 "http://127.0.0.1:$SM_PORT/index.html"
	echo "$output" | grep -E 'Complete|Failed|Requests per'
	expect_eq "ab complete requests" 6000 "$(awk '/^Complete requests:/ { print $3 }' <<<"$output")"
	expect_eq "ab failed requests" 0 "$(awk '/^Failed requests:/ { print $3 }' <<<"$output")"
	sleep 0.5
	scrape
	expect_eq "requests counted" 6000 "$(metric_sum sidemeter_http_requests_total)"
	local slow ring
	slow=$(metric 'sidemeter_tap_dropped_total{reason="slow"}')
	ring=$(metric 'sidemeter_access_log_dropped_total{where="ring"}')
	echo "# 6000 requests with two stuck tap clients: $slow lines dropped for them, the reading client got $(wc -l <"$BATS_TEST_TMPDIR/tap.out") lines ($ring dropped at the rings)" >&3
	expect_gt "lines the stuck clients could not take" 0 "$slow"
	# the client that reads lost nothing but what the rings dropped (counted)
	expect_eq "the reading client's lines and the rings' drops" 6000 \
		"$(($(count_lines "$BATS_TEST_TMPDIR/tap.out") + ring))"
	# stuck for 10 s: cut (a reset: the kernel lets go of their bytes too), while the one that
	# reads stays
	wait_until 20 tap_listening 1
	expect_eq "tap clients cut" 2 "$(metric sidemeter_tap_clients_cut_total)"
	ss -tnp state all "( sport = :$MET_PORT )" >"$BATS_TEST_TMPDIR/ss.txt"
	grep -v TIME-WAIT "$BATS_TEST_TMPDIR/ss.txt"
	expect_eq "connections of the metrics port left (the reading client's)" 1 \
		"$(grep -c '^ESTAB.*sidemeter' "$BATS_TEST_TMPDIR/ss.txt")"
	expect_eq "connections of the metrics port left, orphans too" 0 \
		"$(grep -c '^\(ESTAB\|FIN-WAIT\|LAST-ACK\|CLOSING\).*[^)]$' "$BATS_TEST_TMPDIR/ss.txt")"
	# and the traffic still flows
	curl -sf -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"
}

@test "/tap: at most 8 clients (a 503 past them), HEAD, HTTP/1.0 as bare lines, the last chunk on TERM" {
	start_sm
	local i
	for i in 1 2 3 4 5 6 7 8; do tap_from "tap$i" ""; done
	wait_until 5 tap_listening 8
	run refusal ""
	assert_output "503 8 tap clients already listen; try again later"
	# the other pages are still served
	curl -sf -o /dev/null "http://127.0.0.1:$MET_PORT/metrics"
	for i in 1 2 3 4 5 6 7; do stop_pid "$(eval echo "\$tap${i}_pid")"; done
	wait_until 5 tap_listening 1
	run curl -sI --max-time 5 "http://127.0.0.1:$MET_PORT/tap"
	assert_success
	assert_output --partial "Content-Type: application/x-ndjson"
	# HTTP/1.0: no chunks, the lines as they are, ended by the connection
	run "$PY" - "$MET_PORT" "$SM_PORT" <<'PYEOF'
import json, socket, sys, time, urllib.request
met, sm = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", met), timeout=10)
s.sendall(b"GET /tap?code=200 HTTP/1.0\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(4096)
head, body = head.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.0 200"), head
assert b"chunked" not in head.lower(), head
time.sleep(0.3)
for _ in range(3):
    urllib.request.urlopen("http://127.0.0.1:%d/index.html" % sm).read()
while body.count(b"\n") < 3:
    body += s.recv(4096)
lines = [json.loads(x) for x in body.decode().splitlines()]
assert [l["status"] for l in lines] == [200, 200, 200], lines
print("HTTP/1.0: 3 bare lines")
PYEOF
	echo "$output"
	assert_success
	# TERM: the stream ends properly (curl says 0, not 18 for a cut transfer)
	kill -TERM "$sm_pid"
	local rc=0
	wait "$tap8_pid" || rc=$?
	expect_eq "curl's exit status when sidemeter stops" 0 "$rc"
	wait_gone "$sm_pid" 10
}

@test "sidemeter tap: aligned lines or --json, filters as flags, clear errors; it ends when sidemeter stops" {
	start_sm
	spawn smtap "$SM_BIN" tap --metrics "127.0.0.1:$MET_PORT" --code 404
	# the port from the environment, a wildcard host meaning this machine
	spawn smtapj env SIDEMETER_METRICS="0.0.0.0:$MET_PORT" "$SM_BIN" tap --json --method=GET --route /index.html
	wait_until 5 tap_listening 2
	local i
	for i in 1 2 3; do
		curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"
		curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/404?token=s3cr3t"
	done
	sleep 0.5
	stop_pid "$sm_pid"
	wait_gone "$smtap_pid" 5
	wait_gone "$smtapj_pid" 5
	cat "$BATS_TEST_TMPDIR/smtap.out"
	run grep -cE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}  404  GET +[0-9]+\.[0-9]{2}ms +[0-9]+  127\.0\.0\.1:[0-9]+ +/status/404\?token=…$' \
		"$BATS_TEST_TMPDIR/smtap.out"
	assert_output 3
	expect_eq "all of its lines" 3 "$(wc -l <"$BATS_TEST_TMPDIR/smtap.out")"
	expect_absent "the token" s3cr3t "$BATS_TEST_TMPDIR/smtap.out"
	expect_eq "--json lines for GET /index.html" 3 \
		"$(count_lines "$BATS_TEST_TMPDIR/smtapj.out" 'l["route"] == "/index.html" and l["status"] == 200')"
	expect_eq "--json lines" 3 "$(wc -l <"$BATS_TEST_TMPDIR/smtapj.out")"

	# errors: a bad filter (the server's words), a bad flag, no one there, the port off
	start_sm
	run "$SM_BIN" tap --metrics "127.0.0.1:$MET_PORT" --code 7xx
	assert_failure 2
	assert_output "sidemeter tap: code: '7xx' is neither a status (100-599) nor a class (1xx-5xx)"
	run "$SM_BIN" tap --colour red
	assert_failure 2
	assert_output "sidemeter tap: unknown option '--colour' (see --help)"
	run "$SM_BIN" tap --code
	assert_failure 2
	assert_output "sidemeter tap: --code needs a value (see --help)"
	run "$SM_BIN" tap --metrics "127.0.0.1:$UP_PORT"
	assert_failure 1
	run "$SM_BIN" tap --metrics "127.0.0.1:$(free_ports 1)"
	assert_failure 1
	assert_output --partial "cannot reach sidemeter's metrics port at 127.0.0.1:"
	assert_output --partial "Connection refused"
	SIDEMETER_METRICS=off run "$SM_BIN" tap
	assert_failure 2
	assert_output --partial "the metrics port is off"
	run "$SM_BIN" tap --help
	assert_success
	assert_output --partial "usage: sidemeter tap"
	run "$SM_BIN" --help
	assert_output --partial "sidemeter top"
}

# screen: what the tmux pane shows now.
screen() {
	tmux -S "$BATS_TEST_TMPDIR/tmux.sock" capture-pane -p -t top
}

# screen_has REGEX
screen_has() {
	screen | grep -qE "$1"
}

# route_order: the route column of the screen's table, in order.
route_order() {
	screen | awk '/^ROUTE/ { t = 1; next } t && /^\// { print $1 } /^sort:/ { t = 0 }' | tr '\n' ' '
}

@test "sidemeter top in a real terminal (tmux): live figures, sort keys, resize, q quits" {
	start_sm
	spawn load "$PY" "$ROOT/t/lib/mixed.py" "$SM_PORT" 2 20
	local sock=$BATS_TEST_TMPDIR/tmux.sock
	tmux -S "$sock" new-session -d -s top -x 150 -y 30 "'$SM_BIN' top --metrics 127.0.0.1:$MET_PORT"
	echo "$(tmux -S "$sock" display-message -p '#{pid}') tmux" >>"$BATS_TEST_TMPDIR/.pids"
	wait_until 10 screen_has '^/status/:id '
	wait_until 10 screen_has '^/slow '
	wait_until 10 screen_has '^rps [1-9]'
	screen
	screen_has '^sidemeter .* up 0h00m[0-9]{2}s'
	screen_has '^workers [0-9]+ busy / 4 +connections [0-9]+ active, [0-9]+ parked'
	screen_has '^ROUTE +REQUESTS +RATE/s +4XX +5XX +P50ms +P99ms +MAXms'
	screen_has '^sort: rate'
	# n: by name; p: by p99 (the slow route first); e: by errors (500s first)
	tmux -S "$sock" send-keys -t top n
	wait_until 5 screen_has '^sort: name'
	assert_equal "$(route_order)" "/index.html /slow /status/:id "
	tmux -S "$sock" send-keys -t top p
	wait_until 5 screen_has '^sort: p99'
	[[ $(route_order) == "/slow "* ]]
	tmux -S "$sock" send-keys -t top e
	wait_until 5 screen_has '^sort: errors'
	[[ $(route_order) == "/status/:id "* ]]
	# a smaller terminal: the view fits it, the keys still on its last line
	tmux -S "$sock" resize-window -t top -x 90 -y 12
	wait_until 5 eval '[[ $(screen | awk "length > 90" | wc -l) == 0 ]] && screen | sed -n 12p | grep -q "^sort: errors"'
	screen
	tmux -S "$sock" send-keys -t top q
	wait_until 5 eval '! tmux -S "$sock" has-session -t top'
}

@test "sidemeter top --once: the same table for a pipe, no escape codes, counts as on /metrics" {
	start_sm
	local i
	for i in $(seq 1 7); do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	for i in $(seq 1 3); do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/status/500"; done
	sleep 0.3
	run "$SM_BIN" top --once --metrics "127.0.0.1:$MET_PORT" --sort name
	assert_success
	echo "$output"
	run grep -c $'\033' <<<"$output"
	assert_output 0
	run "$SM_BIN" top --once --metrics "127.0.0.1:$MET_PORT" --sort name
	grep -qE '^/index.html +7 +[0-9.]+ +0 +0 ' <<<"$output"
	grep -qE '^/status/:id +3 +[0-9.]+ +0 +3 ' <<<"$output"
	grep -qE '^workers [0-9]+ busy / 4 ' <<<"$output"
	run "$SM_BIN" top --sort fast
	assert_failure 2
	assert_output "sidemeter top: --sort 'fast' is not rate, p99, errors or name"
	run "$SM_BIN" top --metrics "127.0.0.1:$MET_PORT" </dev/null
	assert_failure 2
	assert_output "sidemeter top: needs a terminal (use --once for a pipe)"
	run "$SM_BIN" top --once --metrics "127.0.0.1:$(free_ports 1)"
	assert_failure 1
	assert_output --partial "Connection refused"
}
