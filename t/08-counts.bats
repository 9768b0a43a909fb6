#!/usr/bin/env bats
# Heavy runs through the forwarder, counted against the application's own access log.

load helpers

# compare_with_log: sidemeter's counts by method and code equal the access log's.
compare_with_log() {
	scrape
	run "$PY" - "$BATS_TEST_TMPDIR" "$ROOT/t/lib/prom.py" <<'PYEOF'
import collections, json, subprocess, sys
d, prom = sys.argv[1], sys.argv[2]
log = collections.Counter()
for line in open(d + "/nginx/access.log"):
    method, status, _ = line.split(" ", 2)
    log["%s %s" % (method, status)] += 1
out = subprocess.run([sys.executable, prom, d + "/metrics.txt", "json",
                      "sidemeter_http_requests_total"], capture_output=True, text=True).stdout
ours = collections.Counter()
for labels, v in json.loads(out).items():
    l = dict(kv.split("=", 1) for kv in labels.split(","))
    ours["%s %s" % (l["method"], l["code"])] += int(v)
print("access log %s; sidemeter %s" % (dict(log), dict(ours)))
sys.exit(0 if log == ours else 1)
PYEOF
	echo "$output"
	echo "# $output" >&3
	assert_success
}

@test "ab: 10000 requests, new connection each, counted exactly as nginx logged them" {
	start_nginx
	start_sm --workers 4
	run ab -q -n 10000 -c 8 "http://127.0.0.1:$SM_PORT/index.html"
	assert_success
	expect_eq "ab failed requests" 0 "$(awk '/^Failed requests:/ { print $3 }' <<<"$output")"
	sleep 0.3
	compare_with_log
	expect_eq "GET 200" 10000 "$(metric 'sidemeter_http_requests_total{method="GET",code="200",route="/index.html"}')"
	expect_eq "+Inf bucket = _count = requests" "10000 10000" \
		"$(metric 'sidemeter_http_request_duration_seconds_bucket{route="/index.html",le="+Inf"}') $(metric 'sidemeter_http_request_duration_seconds_count{route="/index.html"}')"
}

@test "wrk: keep-alive load for 3 s, mixed codes, counted exactly as nginx logged them" {
	start_nginx
	start_sm --workers 4
	cat >"$BATS_TEST_TMPDIR/mix.lua" <<'LUA'
local paths = { "/index.html", "/small.txt", "/missing", "/teapot" }
local i = 0
request = function()
	i = i + 1
	-- no HEAD: wrk's parser would wait for a body that never comes
	return wrk.format(i % 7 == 0 and "POST" or "GET", paths[i % #paths + 1])
end
LUA
	run wrk -t2 -c8 -d3s -s "$BATS_TEST_TMPDIR/mix.lua" "http://127.0.0.1:$SM_PORT/"
	assert_success
	echo "$output" | grep -E 'requests in|Requests/sec' | sed 's/^/# /' >&3
	# wrk may leave requests in flight when it stops: they are finished or cut short,
	# and either way counted once; give them a moment
	sleep 0.5
	compare_with_log
	expect_eq "cut short" 0 "$(metric_sum sidemeter_http_requests_incomplete_total)"
}
