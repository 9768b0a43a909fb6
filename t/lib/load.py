#!/usr/bin/env python3
"""Bounded HTTP/1.1 load on loopback whose every answer is counted: one generator for the
fault tests and for the fleet.

    load.py exact PORT CONNECTIONS SECONDS [PATH [close]]
    load.py fleet SECONDS POD=ROLE:PORT ...

Both run threads that send a GET, read the whole answer (by Content-Length) and repeat until
SECONDS are up; a request in flight then is still awaited.  A connection that closes,
resets or is refused before an answer is complete counts as a connection error and is
opened again.

exact: CONNECTIONS threads keep their connection alive (or, with "close", open one per
request, so that every connection error is a failed request).  Prints
{"answers": n, "conn_errors": n, "by_code": {...}}.  Whether an unanswered request reached
the application only its log can tell: the tests compare.

fleet: two threads a pod, one connection a request, 20 ms apart, paths by the pod's role:
healthy (a page, and ids that are not there: 404), slow (answers after 1.5 s), failing (one
request in five answered 503), appdown and sidecardown (whatever comes back).  Prints
{"answers": {pod: {"METHOD CODE ROUTE": n}}, "refused": {pod: n}}, routes named as
sidemeter names them.
"""
import json
import random
import socket
import sys
import threading
import time


def answer(s, buf):
    """Read one answer; returns (code, the bytes after it) or None if the connection ended."""
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


def client(port, secs, choose, close, on_answer, on_error, pause=0.0, error_pause=0.0):
    """One thread's loop: choose() gives (path, key); on_answer(code, key) and on_error()
    count.  With close, a connection a request."""
    end = time.monotonic() + secs
    s, buf = None, b""
    while time.monotonic() < end:
        path, key = choose()
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port))
                s.settimeout(15)
                buf = b""
            s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (
                path.encode(), b"Connection: close\r\n" if close else b""))
            got = answer(s, buf)
        except OSError:
            got = None
        if got is None:
            on_error()
            if s is not None:
                s.close()
            s = None
            time.sleep(error_pause)
            continue
        code, buf = got
        on_answer(code, key)
        if close:
            s.close()
            s = None
        time.sleep(pause)
    if s is not None:
        s.close()


def run_all(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def exact(args):
    port, conns, secs = int(args[0]), int(args[1]), float(args[2])
    path = args[3] if len(args) > 3 else "/index.html"
    close = len(args) > 4 and args[4] == "close"
    lock = threading.Lock()
    totals = {"answers": 0, "conn_errors": 0, "by_code": {}}

    def on_answer(code, key):
        with lock:
            totals["answers"] += 1
            totals["by_code"][code] = totals["by_code"].get(code, 0) + 1

    def on_error():
        with lock:
            totals["conn_errors"] += 1

    run_all([threading.Thread(target=client, args=(port, secs, lambda: (path, None), close,
                                                   on_answer, on_error))
             for _ in range(conns)])
    print(json.dumps(totals, sort_keys=True))


def pick(role, rng):
    """(path asked, route sidemeter will name it)"""
    if role == "slow":
        return ("/slow?ms=1500", "/slow") if rng.random() < 0.5 else ("/index.html", "/index.html")
    if role == "failing":
        return ("/status/503", "/status/:id") if rng.random() < 0.2 else ("/index.html", "/index.html")
    if rng.random() < 0.1:
        return ("/api/items/%d?token=secret" % rng.randrange(1000, 9999), "/api/items/:id")
    return ("/index.html", "/index.html")


def fleet(args):
    secs = float(args[0])
    pods = []
    for arg in args[1:]:
        pod, rest = arg.split("=", 1)
        role, port = rest.split(":")
        pods.append((pod, role, int(port)))
    answers = {p: {} for p, _, _ in pods}
    refused = {p: 0 for p, _, _ in pods}
    lock = threading.Lock()

    def thread(pod, role, port, seed):
        rng = random.Random(seed)

        def on_answer(code, route):
            with lock:
                key = "GET %d %s" % (code, route)
                answers[pod][key] = answers[pod].get(key, 0) + 1

        def on_error():
            with lock:
                refused[pod] += 1

        return threading.Thread(target=client, args=(port, secs, lambda: pick(role, rng), True,
                                                     on_answer, on_error, 0.02, 0.2))

    run_all([thread(p, r, port, i * 10 + k) for i, (p, r, port) in enumerate(pods)
             for k in range(2)])
    print(json.dumps({"answers": answers, "refused": refused}, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("exact", "fleet"):
        sys.exit(__doc__)
    (exact if sys.argv[1] == "exact" else fleet)(sys.argv[2:])
