#!/usr/bin/env bats
# The metrics port: valid Prometheus text, read by a real Prometheus, robust to hostile
# traffic, counters that never go back, health endpoints, and the status page in a browser.

load helpers

setup() {
	common_setup
	printf 'hello\n' >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
}

# start_prometheus [FLAGS...]: a real Prometheus on $prom_port scraping the metrics port
# every second, ready to answer.
start_prometheus() {
	local d=$BATS_TEST_TMPDIR/prom
	prom_port=$(free_ports 1)
	mkdir -p "$d"
	cat >"$d/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sidemeter
    static_configs:
      - targets: ['127.0.0.1:$MET_PORT']
CONF
	spawn prom prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" \
		--web.listen-address="127.0.0.1:$prom_port" "$@"
	wait_until 30 curl -sf "http://127.0.0.1:$prom_port/-/ready"
}

@test "/metrics: promtool finds nothing, the content type is right, +Inf = _count = requests" {
	start_sm
	local i
	for ((i = 0; i < 25; i++)); do curl -sS -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	for ((i = 0; i < 7; i++)); do curl -sS -o /dev/null "http://127.0.0.1:$SM_PORT/nope/$i"; done
	run curl -sS -D "$BATS_TEST_TMPDIR/headers" -o "$BATS_TEST_TMPDIR/metrics.txt" \
		"http://127.0.0.1:$MET_PORT/metrics"
	assert_success
	grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$BATS_TEST_TMPDIR/headers"
	run promtool check metrics <"$BATS_TEST_TMPDIR/metrics.txt"
	echo "$output"
	assert_success
	assert_output ""
	expect_eq "GET 200" 25 "$(metric 'sidemeter_http_requests_total{method="GET",code="200",route="/index.html"}')"
	expect_eq "GET 404" 7 "$(metric 'sidemeter_http_requests_total{method="GET",code="404",route="/nope/:id"}')"
	expect_eq "+Inf" 25 "$(metric 'sidemeter_http_request_duration_seconds_bucket{route="/index.html",le="+Inf"}')"
	expect_eq "_count" 25 "$(metric 'sidemeter_http_request_duration_seconds_count{route="/index.html"}')"
	expect_eq "app time _count" 25 "$(metric 'sidemeter_http_upstream_duration_seconds_count{route="/index.html"}')"
	# who closes first (client or app) varies; that they all closed does not
	expect_eq "connections" 32 "$(metric_sum sidemeter_connections_total)"
	expect_eq "build info" 1 "$(metric "sidemeter_build_info{version=\"$(cat "$ROOT/VERSION")\"}")"
	expect_gt "process_open_fds" 4 "$(metric process_open_fds)"
	expect_gt "process_resident_memory_bytes" 100000 "$(metric process_resident_memory_bytes)"
	# every family once, HELP and TYPE
	expect_eq "families with more than one TYPE" "" \
		"$(grep '^# TYPE' "$BATS_TEST_TMPDIR/metrics.txt" | awk '{print $3}' | sort | uniq -d)"
}

@test "a real Prometheus scrapes the port: rate() and histogram_quantile() return numbers" {
	start_sm
	start_prometheus
	spawn ab ab -q -t 20 -c 2 "http://127.0.0.1:$SM_PORT/index.html"
	query() {
		curl -sS --get "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
			"$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
	}
	# rate() needs two scrapes inside its window: ask until it has them
	local rq='sum(rate(sidemeter_http_requests_total[10s]))'
	local pq='histogram_quantile(0.99, sum by (le) (rate(sidemeter_http_request_duration_seconds_bucket[10s])))'
	wait_until 20 eval "[ \"\$(query '$rq')\" != none ] && [ \"\$(query '$pq')\" != none ]"
	local up rate p99
	up=$(query 'up{job="sidemeter"}')
	rate=$(query "$rq")
	p99=$(query "$pq")
	echo "# up=$up rate=$rate req/s p99=$p99 s" >&3
	expect_eq "up" 1 "$up"
	"$PY" -c "import sys; r, q = float('$rate'), float('$p99'); sys.exit(0 if r > 1 and 0 < q < 10 else 1)"
}

@test "hostile paths, methods and bytes leave /metrics valid; 10000 paths keep it bounded" {
	stop_pid "$app_pid"
	spawn app "$PY" "$ROOT/t/upstreams/edge.py" serve "$UP_PORT"
	wait_port "$UP_PORT" "$app_pid"
	start_sm --max-routes 100
	"$PY" - "$SM_PORT" <<'PYEOF'
import socket, sys
port = int(sys.argv[1])
nasty = [b'/q"uote', b'/back\\slash', b'/nl%0aline', b'/\xff\xfe\xc3(', b'/caf\xc3\xa9',
         b'/' + b'x' * 7000, b'/a/b/c/d/e/f/g/h/i/j', b'/\xe2\x80\xae/rtl', b'/{"json":1}']
methods = [b"GET", b"FROBNICATE", b"M-SEARCH", b"GET\x00", b'G"T']
def one(req):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(req)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
for m in methods:
    for p in nasty:
        one(m + b" " + p + b" HTTP/1.1\r\nX-Evil: \"\\\n\xff\r\nConnection: close\r\n\r\n")
        one(m + b" " + p + b"?q=\"\\ HTTP/1.1\r\nConnection: close\r\n\r\n")
PYEOF
	"$PY" "$ROOT/t/lib/gets.py" "$SM_PORT" 10000 "/page-%d-name/x" hello
	scrape
	run promtool check metrics <"$BATS_TEST_TMPDIR/metrics.txt"
	echo "$output"
	assert_success
	assert_output ""
	run iconv -f UTF-8 -t UTF-8 "$BATS_TEST_TMPDIR/metrics.txt"
	assert_success
	local routes
	routes=$(grep -o 'route="[^"]*"' "$BATS_TEST_TMPDIR/metrics.txt" | sort -u | wc -l)
	echo "# distinct routes on the page: $routes; lines: $(wc -l <"$BATS_TEST_TMPDIR/metrics.txt")" >&3
	expect_le "distinct routes" 101 "$routes"
	expect_ge "requests" 10000 "$(metric_sum sidemeter_http_requests_total)"
}

# counters_ok BEFORE AFTER: no counter series (nor histogram count/sum/bucket) went down.
counters_ok() {
	"$PY" - "$1" "$2" <<'PYEOF'
import re, sys
def read(p):
    out = {}
    for line in open(p):
        m = re.match(r'^(\S+?)(\{.*\})? (\S+)$', line.strip())
        if m and not line.startswith("#") and re.search(r'(_total|_bucket|_count|_sum)$', m.group(1)) \
                and not m.group(1).startswith("process_"):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
down = [(k, a[k], b.get(k)) for k in a if b.get(k) is None or b[k] < a[k]]
for d in down:
    print("went down or vanished: %s %s -> %s" % d)
print("%d series compared" % len(a))
sys.exit(1 if down else 0)
PYEOF
}

@test "counters never go backwards: across a killed worker and a HUP" {
	SM_WORKERS_WANTED=3 start_sm --workers 3
	spawn ab ab -q -n 3000 -c 3 "http://127.0.0.1:$SM_PORT/index.html"
	sleep 0.5
	scrape
	cp "$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/m1"
	kill -KILL "$(worker_pids "$sm_pid" | head -1)"
	sleep 0.5
	scrape
	cp "$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/m2"
	kill -HUP "$sm_pid"
	wait_gone "$ab_pid" 30
	sleep 0.5
	scrape
	cp "$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/m3"
	run counters_ok "$BATS_TEST_TMPDIR/m1" "$BATS_TEST_TMPDIR/m2"
	echo "$output"
	assert_success
	run counters_ok "$BATS_TEST_TMPDIR/m2" "$BATS_TEST_TMPDIR/m3"
	echo "$output"
	assert_success
	expect_eq "restarts" 1 "$(metric sidemeter_worker_restarts_total)"
}

@test "/healthz and /readyz: 503 when the application is down and right after TERM" {
	start_sm
	run curl -sS -w '%{http_code}' "http://127.0.0.1:$MET_PORT/healthz"
	assert_output $'ok\n200'
	run curl -sS -w '%{http_code}' "http://127.0.0.1:$MET_PORT/readyz"
	assert_output $'ready\n200'
	run curl -sS -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MET_PORT/readyz"
	assert_output 200
	stop_pid "$app_pid"
	# the application is probed at most once a second
	wait_until 3 eval "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MET_PORT/readyz)\" = 503 ]"
	run curl -sS "http://127.0.0.1:$MET_PORT/readyz"
	assert_output "not ready: the application at 127.0.0.1:$UP_PORT: Connection refused"
	start_app "$BATS_TEST_TMPDIR"
	wait_until 3 eval "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MET_PORT/readyz)\" = 200 ]"
	# TERM with a slow request in flight: the master drains, and is not ready at once
	spawn slow curl -sS "http://127.0.0.1:$SM_PORT/slow?ms=1500"
	sleep 0.3
	kill -TERM "$sm_pid"
	run curl -sS -w '%{http_code}' "http://127.0.0.1:$MET_PORT/readyz"
	assert_output $'not ready: stopping\n503'
	run curl -sS -w '%{http_code}' "http://127.0.0.1:$MET_PORT/healthz"
	assert_output $'ok\n200'
	wait "$slow_pid"
}

@test "the port refuses what it does not serve, and slow clients cannot lock it up" {
	start_sm
	run curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MET_PORT/metrics"
	assert_output 405
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MET_PORT/etc/passwd"
	assert_output 404
	run curl -sS -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 5000 /dev/zero | tr '\0' a)" \
		"http://127.0.0.1:$MET_PORT/metrics"
	assert_output 431
	run curl -sS -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MET_PORT/metrics"
	assert_output 200
	# 30 clients that connect and say nothing: a scraper still gets in at once
	spawn idle "$PY" -c "
import socket, time
held = [socket.create_connection(('127.0.0.1', $MET_PORT)) for _ in range(30)]
time.sleep(20)"
	sleep 0.5
	local t0=$EPOCHREALTIME
	run curl -sS --max-time 4 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MET_PORT/metrics"
	assert_output 200
	expect_le "ms for a scrape past 30 silent clients" 1000 \
		"$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")"
	# and the data path never noticed
	run curl -sS "http://127.0.0.1:$SM_PORT/index.html"
	assert_output hello
}

@test "/metrics stays quick to scrape under load (a figure)" {
	SM_WORKERS_WANTED=4 start_sm --workers 4
	spawn wrk wrk -t1 -c4 -d4s "http://127.0.0.1:$SM_PORT/index.html"
	sleep 1
	local t times=()
	for i in 1 2 3 4 5; do
		t=$(curl -sS -o /dev/null -w '%{time_total}' "http://127.0.0.1:$MET_PORT/metrics")
		times+=("$t")
		sleep 0.3
	done
	wait_gone "$wrk_pid" 10
	local med
	med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
	echo "# /metrics scrape under wrk load, median of 5: ${med}s (${times[*]})" >&3
	expect_le "median scrape seconds" 1 "$med"
}

@test "the status page renders its charts with data, and fetches nothing from outside" {
	start_sm --dump-interval 1
	spawn ab ab -q -t 5 -c 2 "http://127.0.0.1:$SM_PORT/index.html"
	local i
	for ((i = 0; i < 20; i++)); do curl -sS -o /dev/null "http://127.0.0.1:$SM_PORT/missing/$i"; done
	wait_gone "$ab_pid" 15
	local d=$BATS_TEST_TMPDIR/chrome art="$ROOT/build/artifacts"
	mkdir -p "$d" "$art"
	local flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
		--disable-background-networking --disable-component-update --disable-sync
		--disable-default-apps --user-data-dir="$d/profile" --window-size=1400,1000
		--virtual-time-budget=4000)
	timeout 60 chromium "${flags[@]}" --log-net-log="$d/net.json" --dump-dom \
		"http://127.0.0.1:$MET_PORT/" >"$d/dom.html" 2>"$d/chromium.err"
	timeout 60 chromium "${flags[@]}" --screenshot="$art/status-page.png" \
		"http://127.0.0.1:$MET_PORT/" >/dev/null 2>&1
	[ -s "$art/status-page.png" ]
	run "$PY" - "$d/dom.html" <<'PYEOF'
import re, sys
dom = open(sys.argv[1]).read()
checks = {
    "rendered from /stats.json": 'data-ready="1"' in dom,
    "history points": int((re.search(r'data-points="(\d+)"', dom) or [0, 0])[1] or 0) >= 1,
    "a request-rate line with points": re.search(r'data-series="rps" data-points="[1-9]', dom),
    "latency lines with points": re.search(r'data-series="p99" data-points="[1-9]', dom),
    "status-code areas": re.search(r'data-series="2xx" data-points="[1-9]', dom),
    "a route row": "/index.html</td>" in dom,
    "the 404 route": "/missing/:id</td>" in dom,
    "a worker": 'class="w ' in dom,
}
for k, v in checks.items():
    print("%-35s %s" % (k, "ok" if v else "MISSING"))
sys.exit(0 if all(checks.values()) else 1)
PYEOF
	echo "$output"
	assert_success
	# Every request the page made (those keyed to the page's site in Chromium's net log;
	# the browser's own update and account checks are keyed otherwise) went to the port.
	run "$PY" - "$d/net.json" "$MET_PORT" <<'PYEOF'
import json, sys
log = json.load(open(sys.argv[1]))
names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
urls = set()
for e in log["events"]:
    p = e.get("params") or {}
    if names.get(e["type"]) == "URL_REQUEST_START_JOB" and \
            str(p.get("network_isolation_key", "")).startswith("http://127.0.0.1"):
        urls.add(p["url"])
outside = sorted(u for u in urls if not u.startswith("http://127.0.0.1:%s/" % sys.argv[2]))
print("the page asked for:", sorted(urls))
print("outside the pod:", outside)
sys.exit(1 if outside or not any(u.endswith("/stats.json") for u in urls) else 0)
PYEOF
	echo "$output"
	assert_success
	echo "# screenshot: build/artifacts/status-page.png" >&3
}

# What Prometheus asks for when it scrapes (2.42, as Debian has it).
PROM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
TRACE_A=4bf92f3577b34da6a3ce929d0e0e4736
TRACE_B=0af7651916cd43dd8448eb211c80319c
TRACE_C=b7ad6b7169203331b7ad6b7169203331
SPAN=00f067aa0ba902b7

# page ACCEPT: /metrics with that Accept header (none if empty) into page.txt, its headers
# into page.headers.
page() {
	local h=()
	[[ -n $1 ]] && h=(-H "Accept: $1")
	curl -sS "${h[@]}" -D "$BATS_TEST_TMPDIR/page.headers" -o "$BATS_TEST_TMPDIR/page.txt" \
		"http://127.0.0.1:$MET_PORT/metrics"
}

@test "OpenMetrics when the scrape asks for it, read by the reference parser; else the text format, unchanged" {
	start_sm --metric-names both --label pod=web-1 --label namespace=shop --label 'team=ü "q"'
	local i accept
	for ((i = 0; i < 10; i++)); do curl -sS -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
	curl -sS -o /dev/null --http1.0 "http://127.0.0.1:$SM_PORT/index.html"
	curl -sS -o /dev/null -X PROPFIND "http://127.0.0.1:$SM_PORT/index.html"
	for accept in "" "text/plain" "*/*" "application/openmetrics-text;version=0.0.1" \
		"application/openmetrics-text;q=0,text/plain" "application/openmetrics-text;q=0.2,text/plain;q=0.5"; do
		page "$accept"
		grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$BATS_TEST_TMPDIR/page.headers" ||
			{ echo "Accept: $accept did not get the text format"; cat "$BATS_TEST_TMPDIR/page.headers"; return 1; }
		run promtool check metrics <"$BATS_TEST_TMPDIR/page.txt"
		assert_success
		assert_output ""
		expect_absent "# EOF (text format, Accept: $accept)" "# EOF" "$BATS_TEST_TMPDIR/page.txt"
		expect_absent "an exemplar (text format)" " # {" "$BATS_TEST_TMPDIR/page.txt"
	done
	grep -qx '# TYPE sidemeter_connections_total counter' "$BATS_TEST_TMPDIR/page.txt"
	grep -qx '# TYPE target_info gauge' "$BATS_TEST_TMPDIR/page.txt"
	grep -qx 'target_info{pod="web-1",namespace="shop",team="ü \\"q\\""} 1' "$BATS_TEST_TMPDIR/page.txt"
	for accept in "$PROM_ACCEPT" "application/openmetrics-text" "application/openmetrics-text; version=1.0.0"; do
		page "$accept"
		grep -qi '^content-type: application/openmetrics-text; version=1.0.0; charset=utf-8' \
			"$BATS_TEST_TMPDIR/page.headers" ||
			{ echo "Accept: $accept did not get OpenMetrics"; cat "$BATS_TEST_TMPDIR/page.headers"; return 1; }
		run "$DEB_PY" "$ROOT/t/lib/om.py" "$BATS_TEST_TMPDIR/page.txt"
		echo "$output" | head -c 600
		assert_success
	done
	expect_eq "the last line" "# EOF" "$(tail -1 "$BATS_TEST_TMPDIR/page.txt")"
	local f=$BATS_TEST_TMPDIR/om.json
	echo "$output" >"$f"
	fam() { "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d[sys.argv[2]].get(sys.argv[3], "absent"))' "$f" "$@"; }
	expect_eq "a counter family, named without _total" counter "$(fam families sidemeter_connections)"
	expect_eq "the build, an info" info "$(fam families sidemeter_build)"
	expect_eq "target, an info" info "$(fam families target)"
	expect_eq "the OpenTelemetry histogram" histogram "$(fam families http_server_request_duration_seconds)"
	expect_eq "its unit" seconds "$(fam units http_server_request_duration_seconds)"
	expect_eq "bytes" bytes "$(fam units sidemeter_received_bytes)"
	expect_gt "_created samples" 10 "$(json_field "$f" created)"
	grep -qx 'target_info{pod="web-1",namespace="shop",team="ü \\"q\\""} 1' "$BATS_TEST_TMPDIR/page.txt"
	# the OpenTelemetry series: its labels, HTTP/1.0 apart, an unknown method as _OTHER
	local otel='http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/index.html",network_protocol_name="http"'
	cp "$BATS_TEST_TMPDIR/page.txt" "$BATS_TEST_TMPDIR/metrics.txt"
	expect_eq "GET 200 over HTTP/1.1" 10 "$(metric "$otel,network_protocol_version=\"1.1\",url_scheme=\"http\"}")"
	expect_eq "GET 200 over HTTP/1.0" 1 "$(metric "$otel,network_protocol_version=\"1.0\",url_scheme=\"http\"}")"
	expect_eq "PROPFIND, as _OTHER" 1 "$(metric_sum http_server_request_duration_seconds_count http_request_method=_OTHER)"
	expect_eq "sidemeter's names as well (both)" 12 "$(metric_sum sidemeter_http_request_duration_seconds_count)"
}

@test "--metric-names otel: the OpenTelemetry histogram instead of sidemeter's, with its advised bounds" {
	start_sm --metric-names otel
	curl -sS -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"
	scrape
	run promtool check metrics <"$BATS_TEST_TMPDIR/metrics.txt"
	assert_output ""
	expect_eq "sidemeter's duration histogram" absent \
		"$(metric 'sidemeter_http_request_duration_seconds_count{route="/index.html"}')"
	expect_eq "the exact request count stays" 1 "$(metric_sum sidemeter_http_requests_total)"
	expect_eq "le bounds" "0.005 0.01 0.025 0.05 0.075 0.1 0.25 0.5 0.75 1 2.5 5 7.5 10 +Inf" \
		"$(grep '^http_server_request_duration_seconds_bucket{' "$BATS_TEST_TMPDIR/metrics.txt" |
			sed 's/.*le="\([^"]*\)".*/\1/' | tr '\n' ' ' | sed 's/ $//')"
	expect_eq "no target_info without --label" "" "$(grep '^target_info' "$BATS_TEST_TMPDIR/metrics.txt")"
}

@test "exemplars: a valid traceparent's ids on its buckets; malformed, absent or doubled ones never" {
	start_sm --metric-names both
	tp() { curl -sS -o /dev/null "$@"; }
	tp -H "traceparent: 00-$TRACE_A-$SPAN-01" "http://127.0.0.1:$SM_PORT/slow?ms=300"
	tp -H "traceparent: 00-$TRACE_B-$SPAN-00" "http://127.0.0.1:$SM_PORT/index.html"
	# a later version may carry more fields
	tp -H "traceparent: 01-$TRACE_C-$SPAN-01-more" "http://127.0.0.1:$SM_PORT/index.html"
	local bad=(
		"00-${TRACE_A^^}-$SPAN-01"			# uppercase
		"00-00000000000000000000000000000000-$SPAN-01"	# an all-zero trace-id
		"00-$TRACE_A-0000000000000000-01"		# an all-zero parent-id
		"ff-$TRACE_A-$SPAN-01"				# version ff
		"00-${TRACE_A:1}-$SPAN-01"			# one digit short
		"00-$TRACE_A-$SPAN-01-more"			# version 00 is exactly 55 characters
		"00-$TRACE_A-$SPAN-0g"				# not hex
		"00_${TRACE_A}_${SPAN}_01"			# not dashes
	)
	local b
	for b in "${bad[@]}"; do tp -H "traceparent: $b" "http://127.0.0.1:$SM_PORT/bad/1"; done
	# two valid headers: neither counts
	tp -H "traceparent: 00-$TRACE_A-$SPAN-01" -H "traceparent: 00-$TRACE_B-$SPAN-01" "http://127.0.0.1:$SM_PORT/bad/2"
	tp "http://127.0.0.1:$SM_PORT/bad/3"
	page "$PROM_ACCEPT"
	run "$DEB_PY" "$ROOT/t/lib/om.py" "$BATS_TEST_TMPDIR/page.txt"
	assert_success
	local f=$BATS_TEST_TMPDIR/om.json
	echo "$output" >"$f"
	ex() { "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); print(' '.join(sorted({$1 for e in d['exemplars'] if $2})))" "$f"; }
	expect_eq "trace ids with an exemplar" "$(printf '%s\n' "$TRACE_A" "$TRACE_B" "$TRACE_C" | sort | tr '\n' ' ' | sed 's/ $//')" \
		"$(ex 'e["trace_id"]' True)"
	expect_eq "span ids" "$SPAN" "$(ex 'e["span_id"]' True)"
	expect_eq "no exemplar on the routes of bad headers" "" "$(ex 'e["trace_id"]' '"/bad" in str(e["labels"])')"
	expect_eq "the slow request's families" \
		"http_server_request_duration_seconds_bucket sidemeter_http_request_duration_seconds_bucket sidemeter_http_upstream_duration_seconds_bucket" \
		"$(ex 'e["sample"]' "e['trace_id'] == '$TRACE_A'")"
	# its value lies in its bucket, and it is the slow one's
	run "$PY" -c "import json, sys
d = json.load(open(sys.argv[1]))
bounds = {}
for e in d['exemplars']:
    if e['trace_id'] != '$TRACE_A':
        continue
    le = float(e['labels']['le'])
    assert e['value'] <= le, e
    assert e['value'] >= 0.3 or 'upstream' in e['sample'], e
    assert abs(e['timestamp'] - __import__('time').time()) < 60, e
print('ok')" "$f"
	assert_output ok
	page ""
	expect_absent "an exemplar (text format)" " # {" "$BATS_TEST_TMPDIR/page.txt"
}

@test "a real Prometheus with exemplar storage scrapes OpenMetrics: query_exemplars returns the slow requests' trace ids" {
	start_sm --metric-names both
	start_prometheus --enable-feature=exemplar-storage
	# discovery hands the target to a scraper a few seconds after start: from its first
	# scrape on, every page is seen
	scraped() {
		curl -sS --get "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode 'query=up{job="sidemeter"}' |
			"$PY" -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and r[0]["value"][1] == "1" else 1)'
	}
	wait_until 30 scraped
	# three slow requests, a scrape apart (only a bucket's latest exemplar is on the page),
	# among fast ones with traces of their own
	local slow=() i id
	for i in 1 2 3; do
		id=$(printf '5%031x' "$i")
		slow+=("$id")
		curl -sS -o /dev/null -H "traceparent: 00-$id-$SPAN-01" "http://127.0.0.1:$SM_PORT/slow?ms=250"
		for id in $(seq 5); do
			curl -sS -o /dev/null -H "traceparent: 00-$(printf 'f%031x' "$((i * 10 + id))")-$SPAN-01" \
				"http://127.0.0.1:$SM_PORT/index.html"
		done
		sleep 1.5
	done
	exemplars() {
		curl -sS --get "http://127.0.0.1:$prom_port/api/v1/query_exemplars" --data-urlencode "query=$1" \
			--data-urlencode "start=$(($(date +%s) - 120))" --data-urlencode "end=$(($(date +%s) + 5))" |
			"$PY" -c 'import json, sys
d = json.load(sys.stdin)["data"]
print(" ".join(sorted({e["labels"]["trace_id"] for s in d for e in s["exemplars"] if float(e["value"]) >= 0.25})))'
	}
	local want
	want=$(printf '%s\n' "${slow[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
	wait_until 10 eval "[ \"\$(exemplars 'sidemeter_http_request_duration_seconds_bucket{route=\"/slow\"}')\" = '$want' ]" || true
	expect_eq "slow trace ids, sidemeter's histogram" "$want" \
		"$(exemplars 'sidemeter_http_request_duration_seconds_bucket{route="/slow"}')"
	expect_eq "slow trace ids, OpenTelemetry's" "$want" \
		"$(exemplars 'http_server_request_duration_seconds_bucket{http_route="/slow"}')"
	run curl -sS "http://127.0.0.1:$prom_port/api/v1/targets"
	echo "$output" | "$PY" -c 'import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"][0]
print("# target health %s, last error %r" % (t["health"], t["lastError"]))
sys.exit(0 if t["health"] == "up" and t["lastError"] == "" else 1)' >&3
}

@test "the outputs agree: every total /metrics, /stats.json and the summary lines share, in both line formats" {
	local fmt
	for fmt in json text; do
		start_sm --workers 2 --response-timeout 0.3 --dump-format "$fmt"
		spawn load "$PY" "$ROOT/t/lib/mixed.py" "$SM_PORT" 4 3
		sleep 1
		kill -KILL "$(worker_pids "$sm_pid" | head -1)"
		wait_gone "$load_pid" 30
		stop_pid "$app_pid"	# sidemeter's own 502s
		local i
		for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"; done
		wait_until 10 eval 'scrape && [[ $(metric sidemeter_connections_active) == 0 ]]'
		sm_dump
		scrape
		curl -sf -o "$BATS_TEST_TMPDIR/stats.json" "http://127.0.0.1:$MET_PORT/stats.json"
		run "$PY" "$ROOT/t/lib/agree.py" "$BATS_TEST_TMPDIR/metrics.txt" \
			"$BATS_TEST_TMPDIR/stats.json" "$BATS_TEST_TMPDIR/sm.out" "$fmt"
		echo "$output"
		assert_success
		echo "# $fmt: $(grep -E '^(requests|connections) ' <<<"$output" | tr -s ' ' | tr '\n' ';')" >&3
		stop_pid "$sm_pid"
		start_app "$BATS_TEST_TMPDIR"
	done
}
