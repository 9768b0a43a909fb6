#!/usr/bin/env python3
"""sidemeter with a log reader that stops reading, for t/05-dump.bats.

    stuck_stdout.py BINARY PORT UPSTREAM_PORT METRICS_PORT TMPDIR

Starts sidemeter with stdout and stderr on pipes of one page that nobody reads for 2 s, a
summary line every 0.1 s and TTIN/TTOU pairs that make the master log; then checks that the
metrics port stayed quick, that lines were skipped and counted whole without losing a
count, that stderr says lines were dropped, and that TERM still stops it at once.  Its pid
goes into TMPDIR/.pids (the test's teardown stops it) and its stderr into TMPDIR/sm.err.
Prints the figures; an assertion that fails exits non-zero.
"""
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
