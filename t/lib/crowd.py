#!/usr/bin/env python3
"""Crowds of clients on loopback, for the keeper's tests and figures.  Bounded in count and
time; every wait has a deadline.

    crowd.py idle PORT N HOLD PATH      N keep-alive connections: one GET each, then HOLD
                                        seconds of silence, then one GET more on each; the
                                        second answer's status line and body must equal the
                                        first's, byte for byte
    crowd.py heads PORT N SECS          N clients that send part of a request head and stall;
                                        waits up to SECS for each to be closed
    crowd.py newcomers PORT N           N new connections one after the other, one GET each:
                                        the time to the whole answer
    crowd.py silent PORT N SECS         N connections that send nothing; waits up to SECS
                                        for each to be closed
    crowd.py hold PORT N SECS PATH      N keep-alive connections: one GET each, then silence
                                        for SECS or until SIGTERM (bench/bench.sh's crowd)

Each prints one JSON object.  An idle crowd arrives $CROWD_BATCH (100) at a time, each
batch once the last is answered, at most $CROWD_RATE connections a second (if set).  It writes "ready" to the file named by
$CROWD_READY (if set) once every first answer is in, so that a test can act during the
silence.
"""
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def answer_len(buf):
    """Bytes of the whole answer at the start of buf, or None while it is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return end + 4 + length if len(buf) >= end + 4 + length else None


def connect_all(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def exchange(socks, request, deadline):
    """Send request on every socket and read one whole answer from each, all at once.
    Returns {index: answer bytes or None (closed, failed or late)}."""
    sel = selectors.DefaultSelector()
    out = {i: bytearray() for i in range(len(socks))}
    todo = {}
    for i, s in enumerate(socks):
        todo[i] = request
        sel.register(s, selectors.EVENT_WRITE, i)
    done = {}
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, ev in sel.select(max(0.0, min(0.5, deadline - time.monotonic()))):
            i, s = key.data, key.fileobj
            try:
                if ev & selectors.EVENT_WRITE and todo[i]:
                    k = s.send(todo[i])
                    todo[i] = todo[i][k:]
                    if not todo[i]:
                        sel.modify(s, selectors.EVENT_READ, i)
                    continue
                d = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                d = b""
            if not d:
                done[i] = None
                sel.unregister(s)
                continue
            out[i] += d
            whole = answer_len(out[i])
            if whole is not None:
                done[i] = bytes(out[i][:whole])
                sel.unregister(s)
    sel.close()
    return {i: done.get(i) for i in range(len(socks))}


def closed_during(socks, secs):
    """Which sockets the other side closed within secs (without sending anything)."""
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    closed, deadline = {}, time.monotonic() + secs
    while time.monotonic() < deadline and len(closed) < len(socks):
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            try:
                key.fileobj.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                pass
            # a close, a reset, or bytes nobody asked for: over, as far as the crowd goes
            closed[key.data] = time.monotonic()
            sel.unregister(key.fileobj)
    sel.close()
    return closed


def arrive(port, n, req):
    """n connections, a batch at a time, each with its first answer: (sockets, answers)."""
    batch = int(os.environ.get("CROWD_BATCH", "100"))
    rate = float(os.environ.get("CROWD_RATE", "0"))	# connections a second at most (0: no cap)
    socks, first = [], {}
    t0 = time.monotonic()
    for at in range(0, n, batch):
        if rate > 0:
            time.sleep(max(0.0, t0 + at / rate - time.monotonic()))
        group = connect_all(port, min(batch, n - at))
        for i, a in exchange(group, req, time.monotonic() + 60).items():
            first[at + i] = a
        socks += group
    return socks, first


def stop(*_):
    raise KeyboardInterrupt


def hold(port, n, secs, path):
    signal.signal(signal.SIGTERM, stop)
    req = b"GET %s HTTP/1.1\r\nHost: crowd\r\n\r\n" % path.encode()
    socks, first = arrive(port, n, req)
    if os.environ.get("CROWD_READY"):
        with open(os.environ["CROWD_READY"], "w") as f:
            f.write("ready\n")
    try:
        closed = len(closed_during(socks, secs))
    except KeyboardInterrupt:
        closed = -1
    for s in socks:
        s.close()
    print(json.dumps({"n": n, "first_ok": sum(1 for v in first.values() if v),
                      "closed_while_held": closed}), flush=True)


def idle(port, n, hold_s, path):
    req = b"GET %s HTTP/1.1\r\nHost: crowd\r\n\r\n" % path.encode()
    # They arrive as browsers do, a batch at a time, not as one burst of SYNs (a burst
    # rightly grows the pool: every worker is busy while the backlog fills).
    t0 = time.monotonic()
    socks, first = arrive(port, n, req)
    setup_s = time.monotonic() - t0
    if os.environ.get("CROWD_READY"):
        with open(os.environ["CROWD_READY"], "w") as f:
            f.write("ready\n")
    closed = closed_during(socks, hold_s)
    alive = [s for i, s in enumerate(socks) if i not in closed]
    idx = [i for i in range(n) if i not in closed]
    second = exchange(alive, req, time.monotonic() + 60)
    def body(a):  # the status line and the body: a Date header may change between the two
        return a.split(b"\r\n", 1)[0] + a[a.find(b"\r\n\r\n"):] if a else None
    same = sum(1 for k, i in enumerate(idx) if second[k] is not None and body(second[k]) == body(first[i]))
    for s in socks:
        s.close()
    print(json.dumps({"n": n, "first_ok": sum(1 for v in first.values() if v),
                      "setup_s": round(setup_s, 3), "closed_while_idle": len(closed),
                      "reused_ok": same, "reused_failed": len(idx) - same}))


def heads(port, n, secs):
    socks = connect_all(port, n)
    time.sleep(0.2)
    t0 = time.monotonic()
    for s in socks:
        try:
            s.send(b"GET /slow-head HTTP/1.1\r\nHost: crowd\r\nX-Part: ")
        except OSError:
            pass
    closed = closed_during(socks, secs)
    times = sorted(t - t0 for t in closed.values())
    for s in socks:
        s.close()
    print(json.dumps({"n": n, "closed": len(closed),
                      "median_close_s": round(times[len(times) // 2], 3) if times else None,
                      "max_close_s": round(times[-1], 3) if times else None}))


def silent(port, n, secs):
    t0 = time.monotonic()
    socks = connect_all(port, n)
    closed = closed_during(socks, secs)
    times = sorted(t - t0 for t in closed.values())
    for s in socks:
        s.close()
    print(json.dumps({"n": n, "closed": len(closed),
                      "median_close_s": round(times[len(times) // 2], 3) if times else None}))


def newcomers(port, n):
    lat = []
    for _ in range(n):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: newcomer\r\nConnection: close\r\n\r\n")
        got = bytearray()
        while answer_len(got) is None:
            d = s.recv(65536)
            if not d:
                break
            got += d
        s.close()
        lat.append((time.monotonic() - t0) * 1000)
        time.sleep(0.01)
    lat.sort()
    print(json.dumps({"n": n, "median_ms": round(lat[len(lat) // 2], 2),
                      "p90_ms": round(lat[int(len(lat) * 0.9)], 2), "max_ms": round(lat[-1], 2)}))


def main():
    verb, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if verb == "idle":
        idle(port, n, float(sys.argv[4]), sys.argv[5])
    elif verb == "heads":
        heads(port, n, float(sys.argv[4]))
    elif verb == "silent":
        silent(port, n, float(sys.argv[4]))
    elif verb == "hold":
        hold(port, n, float(sys.argv[4]), sys.argv[5])
    elif verb == "newcomers":
        newcomers(port, n)
    else:
        sys.exit("crowd.py: unknown verb " + verb)


if __name__ == "__main__":
    main()
