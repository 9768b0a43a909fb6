#!/usr/bin/env bats
# The HTTP observer through the real forwarder: the client gets exactly the bytes it would
# get without sidemeter, and every request is counted by method, code and route.

load helpers

start_edge() {
	spawn app "$PY" "$ROOT/t/upstreams/edge.py" serve "$UP_PORT"
	wait_port "$UP_PORT" "$app_pid"
}

@test "edge cases: the same bytes as without sidemeter, and counts by method, code, route" {
	start_edge
	start_sm --workers 2
	"$PY" "$ROOT/t/upstreams/edge.py" run "$UP_PORT" >"$BATS_TEST_TMPDIR/direct.json"
	"$PY" "$ROOT/t/upstreams/edge.py" run "$SM_PORT" >"$BATS_TEST_TMPDIR/via.json"
	scrape
	run "$PY" - "$BATS_TEST_TMPDIR" <<'PYEOF'
import json, subprocess, sys
d = sys.argv[1]
direct, via = (json.load(open(d + f)) for f in ("/direct.json", "/via.json"))
bad = [n for n in direct["bytes"] if direct["bytes"][n] != via["bytes"][n]]
for n in bad:
    print("bytes differ: %s\n  direct %s\n  via    %s" % (n, bytes.fromhex(direct["bytes"][n])[:300],
          bytes.fromhex(via["bytes"][n])[:300]))
def family(name):
    out = subprocess.run([sys.executable, d + "/../../../t/lib/prom.py" if False else "t/lib/prom.py",
                          d + "/metrics.txt", "json", name], capture_output=True, text=True).stdout
    return json.loads(out)
got = {}
for labels, v in family("sidemeter_http_requests_total").items():
    l = dict(kv.split("=", 1) for kv in labels.split(","))
    got["%s %s %s" % (l["method"], l["code"], l["route"])] = int(v)
if got != via["expect"]:
    print("requests: expected %s\n          got      %s" % (via["expect"], got))
    bad.append("counts")
inc = sum(family("sidemeter_http_requests_incomplete_total").values())
opq = {k.split("=")[1]: int(v) for k, v in family("sidemeter_opaque_connections_total").items() if v}
tun = sum(family("sidemeter_tunnels_total").values())
for what, want, have in (("incomplete", via["incomplete"], inc), ("opaque", via["opaque"], opq),
                         ("tunnels", via["tunnels"], tun)):
    if want != have:
        print("%s: expected %s, got %s" % (what, want, have))
        bad.append(what)
print("%d scenarios, %d requests" % (len(direct["bytes"]), sum(via["expect"].values())))
sys.exit(1 if bad else 0)
PYEOF
	echo "$output"
	assert_success
	echo "# $output" >&3
}

@test "the application refuses: the client gets a 502 naming it, counted" {
	start_sm
	run curl -sS -i "http://127.0.0.1:$SM_PORT/api/users/7?token=x"
	assert_success
	assert_line --partial "HTTP/1.1 502 Bad Gateway"
	assert_line "sidemeter: the application at 127.0.0.1:$UP_PORT refused the connection"
	run curl -sS -I "http://127.0.0.1:$SM_PORT/"
	assert_line --partial "HTTP/1.1 502 Bad Gateway"
	scrape
	expect_eq "502s by route" 1 "$(metric 'sidemeter_http_requests_total{method="GET",code="502",route="/api/users/:id"}')"
	expect_eq "HEAD 502" 1 "$(metric 'sidemeter_http_requests_total{method="HEAD",code="502",route="/"}')"
	expect_eq "upstream errors" 2 "$(metric 'sidemeter_upstream_errors_total{reason="refused"}')"
	expect_eq "connections" 2 "$(metric 'sidemeter_connections_total{reason="upstream_refused"}')"
}

@test "the application hangs up or resets before answering: 502, counted by reason" {
	start_edge
	start_sm
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/hangup"
	assert_output 502
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/reset"
	assert_output 502
	scrape
	expect_eq "closed early" 1 "$(metric 'sidemeter_upstream_errors_total{reason="closed_early"}')"
	expect_eq "reset" 1 "$(metric 'sidemeter_upstream_errors_total{reason="reset"}')"
	expect_eq "502s" 2 "$(metric_sum sidemeter_http_requests_total code=502)"
}

@test "the application never answers: 504 after --response-timeout, counted" {
	start_edge
	start_sm --response-timeout 0.5
	local t0=$EPOCHREALTIME
	run curl -sS -i --max-time 10 "http://127.0.0.1:$SM_PORT/silent"
	local ms
	ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	assert_line --partial "HTTP/1.1 504 Gateway Timeout"
	assert_line "sidemeter: the application at 127.0.0.1:$UP_PORT did not answer within 0.5s"
	expect_le "ms until the 504" 2500 "$ms"
	expect_le "not before the timeout (ms)" "$ms" 500
	scrape
	expect_eq "504s" 1 "$(metric 'sidemeter_http_requests_total{method="GET",code="504",route="/silent"}')"
	expect_eq "timeouts" 1 "$(metric 'sidemeter_upstream_errors_total{reason="response_timeout"}')"
}

@test "tcp mode relays HTTP unobserved: bytes identical, no HTTP series" {
	start_edge
	start_sm --mode tcp
	"$PY" "$ROOT/t/upstreams/edge.py" run "$UP_PORT" >"$BATS_TEST_TMPDIR/direct.json"
	"$PY" "$ROOT/t/upstreams/edge.py" run "$SM_PORT" >"$BATS_TEST_TMPDIR/via.json"
	run "$PY" -c "
import json, sys
a, b = (json.load(open('$BATS_TEST_TMPDIR/' + f))['bytes'] for f in ('direct.json', 'via.json'))
print([n for n in a if a[n] != b[n]])"
	assert_output "[]"
	scrape
	expect_eq "http series" 0 "$(grep -c '^sidemeter_http_' "$BATS_TEST_TMPDIR/metrics.txt" || true)"
	expect_ge "connections" 18 "$(metric_sum sidemeter_connections_total)"
}

# Paths that carry what a user takes for a credential or an identifier, each with the part
# that must never reach an output (TAB-separated).  The app answers 404 to all but /page.
secret_paths() {
	cat <<'EOF'
/page?token=S3CR3T-TOKEN&password=hunter2	S3CR3T-TOKEN
/page?password=hunter2	hunter2
/login;jsessionid=S3CR3T-SESSION?x=y#S3CR3T-FRAG	S3CR3T
/app;JSESSIONID=0A1B2C3D4E5F/home	0A1B2C3D4E5F
/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c	eyJhbGci
/api/keys/sk_live_4eC39HqLyjWDarjtT1zdp7dc	4eC39HqLyjWDarjtT1zdp7dc
/gh/ghp_16C7e42F292c6912E7710c838347Ae178B4a	16C7e42F292c
/aws/AKIAIOSFODNN7EXAMPLE/object	AKIAIOSFODNN7EXAMPLE
/reset/Xk9mQ2vL8nR4tY7w	Xk9mQ2vL8nR4tY7w
/s/AbCdEfGhIjKlMnOpQrSt	AbCdEfGhIjKlMnOpQrSt
/share/5f4dcc3b5aa765d61d8327deb882cf99	5f4dcc3b5aa765d61d8327deb882cf99
/users/jane.doe@example.com/profile	jane.doe
/auth/token=WxYz0987tokenvalue	WxYz0987tokenvalue
/auth/admin:hunter3	hunter3
/files/c2VjcmV0LXBhc3N3b3Jk/raw	c2VjcmV0LXBhc3N3b3Jk
EOF
}

@test "credentials in paths and queries reach no output: metrics, stats.json, summaries, logs" {
	printf 'x\n' >"$BATS_TEST_TMPDIR/page"
	start_app "$BATS_TEST_TMPDIR"
	local fmt path needle n=0 f
	for fmt in text json; do
		start_sm --dump-interval 0.3 --dump-format "$fmt"
		while IFS=$'\t' read -r path needle; do
			curl -sS -o /dev/null "http://127.0.0.1:$SM_PORT$path"
			n=$((n + 1))
		done < <(secret_paths)
		sleep 0.5
		scrape
		cp "$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/metrics-$fmt.txt"
		curl -sS -o "$BATS_TEST_TMPDIR/stats-$fmt.json" "http://127.0.0.1:$MET_PORT/stats.json"
		expect_eq "requests counted ($fmt)" "$(secret_paths | wc -l)" \
			"$(metric_sum sidemeter_http_requests_total)"
		stop_pid "$sm_pid"
		mv "$BATS_TEST_TMPDIR/sm.out" "$BATS_TEST_TMPDIR/sm-$fmt.out"
		mv "$BATS_TEST_TMPDIR/sm.err" "$BATS_TEST_TMPDIR/sm-$fmt.err"
		grep -q 'route="/page"' "$BATS_TEST_TMPDIR/metrics-$fmt.txt"
		grep -q '/page' "$BATS_TEST_TMPDIR/sm-$fmt.out"
	done
	while IFS=$'\t' read -r path needle; do
		for f in "$BATS_TEST_TMPDIR"/{metrics-*.txt,stats-*.json,sm-*.out,sm-*.err}; do
			if grep -qF -- "$needle" "$f"; then
				echo "$needle (from $path) is in $(basename "$f"):" >&2
				grep -F -- "$needle" "$f" | head -3 >&2
				return 1
			fi
		done
	done < <(secret_paths)
	echo "# $n requests with secrets: none in /metrics, /stats.json, text or JSON summaries, logs" >&3
}

@test "5000 distinct paths stay within --max-routes, and every request is counted" {
	start_edge
	start_sm --max-routes 50
	"$PY" "$ROOT/t/lib/gets.py" "$SM_PORT" 5000 "/distinct-page-%d/view" hello
	scrape
	local routes
	routes=$("$PY" "$ROOT/t/lib/prom.py" "$BATS_TEST_TMPDIR/metrics.txt" series sidemeter_http_requests_total | wc -l)
	expect_le "route series" 51 "$routes"
	expect_eq "requests" 5000 "$(metric_sum sidemeter_http_requests_total)"
	# two histograms of 21 lines per route (18 bounds, +Inf, sum, count), 51 routes, and
	# the fixed families: the page is bounded by the route cap, not by the traffic
	expect_le "routes in the latency histogram" 51 \
		"$(grep -c '^sidemeter_http_request_duration_seconds_count' "$BATS_TEST_TMPDIR/metrics.txt")"
	expect_le "lines on the page" $((51 * 2 * 21 + 300)) "$(wc -l <"$BATS_TEST_TMPDIR/metrics.txt")"
	expect_ge "requests counted as other" 4950 "$(metric 'sidemeter_http_requests_total{method="GET",code="200",route="other"}')"
}

@test "counts stay exact when the ring overflows (master stopped while 5000 requests pass)" {
	start_edge
	start_sm --workers 1 --max-workers 1
	kill -STOP "$sm_pid"
	"$PY" "$ROOT/t/lib/gets.py" "$SM_PORT" 5000 /cl hello
	kill -CONT "$sm_pid"
	sleep 0.3
	scrape
	expect_eq "requests" 5000 "$(metric 'sidemeter_http_requests_total{method="GET",code="200",route="/cl"}')"
	local dropped samples
	dropped=$(metric sidemeter_ring_dropped_records_total)
	samples=$(metric 'sidemeter_http_request_duration_seconds_count{route="/cl"}')
	echo "# samples kept $samples, dropped $dropped" >&3
	expect_gt "records dropped" 0 "$dropped"
	# every request was either sampled or its sample dropped (plus the connection's record)
	expect_eq "samples + dropped" 5001 "$((samples + dropped + $(metric 'sidemeter_connection_duration_seconds_count')))"
}
