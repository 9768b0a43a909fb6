#!/usr/bin/env python3
"""A keep-alive load whose accounting is exact, for the fault tests.

    kaload.py PORT CONNECTIONS SECONDS [PATH [close]]

Each connection sends a GET, reads the whole answer (by Content-Length), and repeats, for
SECONDS; a request in flight when time is up is still awaited.  A connection that closes
or resets before an answer is complete is reopened and counted as a connection error.
With "close", every request has a connection of its own (Connection: close), and every
connection error is a failed request.  Prints one JSON object:
{"answers": n, "conn_errors": n, "by_code": {...}}.  Whether an unanswered request reached
the application only its log can tell: the tests compare.
"""
import json
import socket
import sys
import threading
import time

port, conns, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
path = sys.argv[4] if len(sys.argv) > 4 else "/index.html"
close = len(sys.argv) > 5 and sys.argv[5] == "close"
request = b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path.encode(), b"Connection: close\r\n" if close else b"")
lock = threading.Lock()
totals = {"answers": 0, "conn_errors": 0, "by_code": {}}


def answer(s, buf):
    """Read one answer; returns (code, rest of buf) or None if the connection ended first."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(buf) < length:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    return code, buf[length:]


def run():
    end = time.monotonic() + secs
    mine = {"answers": 0, "conn_errors": 0, "by_code": {}}
    s, buf = None, b""
    while time.monotonic() < end:
        if s is None:
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(15)
            buf = b""
        try:
            s.sendall(request)
        except OSError:
            mine["conn_errors"] += 1
            s.close()
            s = None
            continue
        try:
            got = answer(s, buf)
        except OSError:
            got = None
        if got is None:
            mine["conn_errors"] += 1
            s.close()
            s = None
            continue
        code, buf = got
        mine["answers"] += 1
        mine["by_code"][code] = mine["by_code"].get(code, 0) + 1
        if close:
            s.close()
            s = None
    if s is not None:
        s.close()
    with lock:
        for k in ("answers", "conn_errors"):
            totals[k] += mine[k]
        for c, n in mine["by_code"].items():
            totals["by_code"][c] = totals["by_code"].get(c, 0) + n


threads = [threading.Thread(target=run) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(totals, sort_keys=True))
