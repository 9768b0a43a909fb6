#!/usr/bin/env bats
# The periodic summary line: at the interval, as text or JSON, and adding up.

load helpers

setup() {
	common_setup
	printf 'hello\n' >"$BATS_TEST_TMPDIR/index.html"
	start_app "$BATS_TEST_TMPDIR"
}

@test "text dump lines appear at the interval" {
	spawn sm "$SM_BIN" --listen "127.0.0.1:$SM_PORT" --upstream "127.0.0.1:$UP_PORT" \
		--metrics off --dump-interval 0.5
	wait_port "$SM_PORT" "$sm_pid"
	sleep 2.3
	local n
	n=$(wc -l <"$BATS_TEST_TMPDIR/sm.out")
	expect_ge "lines in 2.3 s at 0.5 s" 3 "$n"
	expect_le "lines in 2.3 s at 0.5 s" 5 "$n"
	run head -1 "$BATS_TEST_TMPDIR/sm.out"
	assert_output --regexp '^20[0-9-]{8}T[0-9:]{8}Z interval_s=0\.[45][0-9]* conns=0 conns_per_s=0\.0 active=0 in_bytes=0 out_bytes=0 connect_ms=- conn_ms=- reqs=0 reqs_per_s=0\.0 1xx=0 2xx=0 3xx=0 4xx=0 5xx=0 req_ms=- top=- slow=- app_ms=- incomplete=0 opaque=0 tunnels=0 upstream_errors=0 accept_errors=0 workers=0/4 queued=0 parked=0 restarts=0 dropped=0 quit_requests=0 upstream_down_exits=0$'
}

@test "JSON dump lines parse and add up to what the clients did" {
	start_sm
	local i in=0 out=0 sizes
	for ((i = 0; i < 37; i++)); do
		sizes=$(curl -sS -o /dev/null -w '%{size_request} %{size_header} %{size_download}' \
			"http://127.0.0.1:$SM_PORT/index.html?i=$i")
		read -r rq hd dl <<<"$sizes"
		in=$((in + rq))
		out=$((out + hd + dl))
		# a dump now and then, so the totals span several lines
		((i % 10 == 5)) && sm_dump
	done
	stop_pid "$sm_pid"	# the last dump is written at exit
	run "$PY" -c "
import json, sys
for line in open('$BATS_TEST_TMPDIR/sm.out'):
    d = json.loads(line)
    assert set(d) >= {'time', 'interval_s', 'conns', 'conns_per_s', 'active', 'in_bytes',
                      'out_bytes', 'connect_ms', 'conn_ms', 'workers', 'workers_busy',
                      'restarts', 'dropped'}, sorted(d)
print('ok')"
	assert_success
	assert_output ok
	expect_eq "connections" 37 "$(dump_total conns)"
	expect_eq "bytes in" "$in" "$(dump_total in_bytes)"
	expect_eq "bytes out" "$out" "$(dump_total out_bytes)"
	run "$PY" -c "
import json
for line in open('$BATS_TEST_TMPDIR/sm.out'):
    d = json.loads(line)
    if d['conns']:
        c = d['conn_ms']
        assert 0 < c['p50'] <= c['p90'] <= c['p99'] <= c['max'], c
print('ok')"
	assert_output ok
}

@test "a log reader that stops reading: lines are skipped and counted, the master never waits" {
	# stdout and stderr are 4 KiB pipes that nobody reads for 3 s: a summary line every
	# 0.1 s, and TTIN/TTOU pairs that make the master log
	run "$PY" - "$SM_BIN" "$SM_PORT" "$UP_PORT" "$MET_PORT" "$BATS_TEST_TMPDIR" <<'PYEOF'
import fcntl, json, os, signal, subprocess, sys, time, urllib.request
binary, port, up, met, tmp = sys.argv[1:]
out_r, out_w = os.pipe()
err_r, err_w = os.pipe()
for fd in (out_w, err_w):
    fcntl.fcntl(fd, 1031, 4096)                 # F_SETPIPE_SZ: one page
sm = subprocess.Popen([binary, "--listen", "127.0.0.1:" + port, "--upstream", "127.0.0.1:" + up,
                       "--metrics", "127.0.0.1:" + met, "--dump-interval", "0.1",
                       "--dump-format", "json", "--workers", "2"], stdout=out_w, stderr=err_w)
with open(tmp + "/.pids", "a") as f:               # teardown stops it, whatever happens here
    f.write("%d sm\n" % sm.pid)
os.close(out_w)
os.close(err_w)
def get(path, timeout=2):
    t = time.monotonic()
    with urllib.request.urlopen("http://127.0.0.1:%s%s" % (met, path), timeout=timeout) as f:
        return f.read().decode(), time.monotonic() - t
def drain(fd):
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk
for _ in range(100):
    try:
        get("/healthz")
        break
    except OSError:
        time.sleep(0.05)
for _ in range(50):                             # traffic, so that the lines are long
    urllib.request.urlopen("http://127.0.0.1:%s/index.html" % port, timeout=2).read()
for _ in range(40):                             # about 80 log lines: 8 KiB
    sm.send_signal(signal.SIGTTIN)
    time.sleep(0.01)
    sm.send_signal(signal.SIGTTOU)
    time.sleep(0.01)
time.sleep(2)                                   # nobody reads: both pipes are full by now
slowest = max(get(p)[1] for p in ("/healthz", "/metrics", "/healthz", "/stats.json"))
page = urllib.request.urlopen("http://127.0.0.1:%s/index.html" % port, timeout=2).read()
metrics = get("/metrics")[0]
skipped = int([l.split()[1] for l in metrics.splitlines()
               if l.startswith("sidemeter_dump_lines_skipped_total ")][0])
out, err = drain(out_r), drain(err_r)
sm.send_signal(signal.SIGTTIN)                  # one more log line, now that there is room
time.sleep(0.5)                                 # and summary lines come again
out, err = out + drain(out_r), err + drain(err_r)
t = time.monotonic()
sm.send_signal(signal.SIGTERM)
status = sm.wait(timeout=10)
stopped = time.monotonic() - t
out, err = out + drain(out_r), err + drain(err_r)
open(tmp + "/sm.err", "wb").write(err)          # teardown looks for errors in it
lines = out.decode().split("\n")
assert lines[-1] == "", "the output ends in the middle of a line"
parsed = [json.loads(l) for l in lines[:-1]]    # every line whole
conns = sum(p["conns"] for p in parsed)
dropped = [l for l in err.decode().splitlines() if "earlier log lines dropped" in l]
print("slowest answer of the metrics port with both pipes full: %.0f ms; summary lines "
      "skipped %d, written %d, connections in them %d of 51; %s; stopped %.2f s after TERM, "
      "status %d" % (slowest * 1000, skipped, len(parsed), conns,
                     dropped[0].split(": ", 1)[1] if dropped else "no drop reported",
                     stopped, status))
assert slowest < 1.0, slowest
assert b"hello" in page
assert skipped > 0, skipped
assert conns == 51, conns                       # skipped lines lose no counts
assert dropped, "no log line says that lines were dropped"
assert status == 0 and stopped < 5, (status, stopped)
PYEOF
	echo "# $output" >&3
	assert_success
}
