#!/usr/bin/env python3
"""A mixed keep-alive load for the access log's tests, bounded in time.

    mixed.py PORT CONNECTIONS SECONDS

Each connection repeats, until SECONDS are up: a GET of /index.html, of /status/404 and of
/status/500, two GETs pipelined in one write, and a GET of /slow?ms=800 (a 504 when
--response-timeout is shorter), reading every answer whole.  A connection the other side
closes (after a 504, or a killed worker) is opened again.  Prints one JSON object:
{"answers": n, "by_code": {...}, "reconnects": n}.
"""
import json
import socket
import sys
import threading
import time

port, conns, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
lock = threading.Lock()
totals = {"answers": 0, "by_code": {}, "reconnects": 0}


def get(path):
    return b"GET %s HTTP/1.1\r\nHost: t\r\nUser-Agent: mixed.py\r\n\r\n" % path


def answer(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    length, close = 0, False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
        if k.strip().lower() == b"connection" and v.strip().lower() == b"close":
            close = True
    while len(buf) < length:
        d = s.recv(65536)
        if not d:
            return None, buf
        buf += d
    return (code, close), buf[length:]


def run():
    end = time.time() + secs
    steps = [[get(b"/index.html")], [get(b"/status/404")], [get(b"/status/500")],
             [get(b"/index.html"), get(b"/index.html")], [get(b"/slow?ms=800")]]
    s, i = None, 0
    while time.time() < end:
        if s is None:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        step = steps[i % len(steps)]
        i += 1
        buf = b""
        try:
            s.sendall(b"".join(step))
            for _ in step:
                got, buf = answer(s, buf)
                if got is None:
                    raise ConnectionError
                with lock:
                    totals["answers"] += 1
                    totals["by_code"][str(got[0])] = totals["by_code"].get(str(got[0]), 0) + 1
                if got[1]:
                    raise ConnectionError
        except (ConnectionError, OSError):
            s.close()
            s = None
            with lock:
                totals["reconnects"] += 1
    if s is not None:
        s.close()


threads = [threading.Thread(target=run) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(totals))
