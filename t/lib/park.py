#!/usr/bin/env python3
"""One client's view of a connection that goes to the keeper and back (t/13-keeper.bats).
Every read is bounded; each verb prints one JSON object.

    park.py reuse PORT METRICS_PORT WAIT   GET, silence for WAIT s (scrape /metrics then),
                                           GET, silence, GET: answers, and what the page said
    park.py moment PORT N                  N connections: a GET, then two GETs in one write
                                           sent at random around --park-after (0-15 ms)
    park.py halfclose PORT WAIT            GET, silence, shutdown(SHUT_WR): how long to EOF
    park.py wait-close PORT SECS           GET, then wait for the other side to close
    park.py slowhead PORT DELAY            part of a head, DELAY s of silence, the rest: the
                                           status code of the answer
    park.py go-on PORT FILE                GET, silence until FILE exists (at most 30 s), GET:
                                           both status codes (0: none came)
"""
import json
import os
import random
import socket
import sys
import time
import urllib.request

REQ = b"GET /index.html HTTP/1.1\r\nHost: park\r\n\r\n"


def read_answer(s, buf=b""):
    """One whole answer (Content-Length framed) from s; (answer, rest), or (None, buf)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            length = 0
            for line in buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(buf) >= end + 4 + length:
                return buf[:end + 4 + length], buf[end + 4 + length:]
        d = s.recv(65536)
        if not d:
            return None, buf
        buf += d


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def scrape(port):
    page = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    out = {}
    for line in page.splitlines():
        if line.startswith(("sidemeter_parked_connections ", "sidemeter_workers{state=\"busy\"}",
                            "sidemeter_connections_active ")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def reuse(port, mport, wait):
    s = connect(port)
    codes, pages = [], []
    for i in range(3):
        s.sendall(REQ)
        a, _ = read_answer(s)
        codes.append(int(a.split()[1]) if a else 0)
        time.sleep(wait)
        pages.append(scrape(mport))
    s.close()
    print(json.dumps({"codes": codes, "pages": pages}))


def moment(port, n):
    ok = bad = 0
    rnd = random.Random(7)
    for _ in range(n):
        s = connect(port)
        s.sendall(REQ)
        first, rest = read_answer(s)
        time.sleep(rnd.uniform(0, 0.015))
        s.sendall(REQ + REQ)
        a, rest = read_answer(s, rest)
        b, rest = read_answer(s, rest)
        good = first and a and b and not rest and \
            first.split(b"\r\n\r\n")[1] == a.split(b"\r\n\r\n")[1] == b.split(b"\r\n\r\n")[1]
        ok += bool(good)
        bad += not good
        s.close()
    print(json.dumps({"n": n, "ok": ok, "bad": bad}))


def halfclose(port, wait):
    s = connect(port)
    s.sendall(REQ)
    read_answer(s)
    time.sleep(wait)
    t0 = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    eof = s.recv(1) == b""
    print(json.dumps({"eof": eof, "eof_s": round(time.monotonic() - t0, 3)}))


def wait_close(port, secs):
    s = connect(port)
    s.settimeout(secs)
    s.sendall(REQ)
    a, _ = read_answer(s)
    t0 = time.monotonic()
    try:
        eof = s.recv(1) == b""
    except socket.timeout:
        eof = False
    except OSError:
        eof = True
    print(json.dumps({"code": int(a.split()[1]) if a else 0, "closed": eof,
                      "closed_after_s": round(time.monotonic() - t0, 3)}))


def slowhead(port, delay):
    s = connect(port)
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: park\r\nX-Slow: ")
    time.sleep(delay)
    s.sendall(b"yes\r\n\r\n")
    a, _ = read_answer(s)
    print(json.dumps({"code": int(a.split()[1]) if a else 0}))


def go_on(port, flag):
    s = connect(port)
    s.settimeout(30)
    s.sendall(REQ)
    a, rest = read_answer(s)
    end = time.monotonic() + 30
    while not os.path.exists(flag) and time.monotonic() < end:
        time.sleep(0.02)
    try:
        s.sendall(REQ)
        b, _ = read_answer(s, rest)
    except OSError:
        b = None
    print(json.dumps({"first": int(a.split()[1]) if a else 0,
                      "second": int(b.split()[1]) if b else 0}))


def main():
    verb, port = sys.argv[1], int(sys.argv[2])
    if verb == "reuse":
        reuse(port, int(sys.argv[3]), float(sys.argv[4]))
    elif verb == "moment":
        moment(port, int(sys.argv[3]))
    elif verb == "halfclose":
        halfclose(port, float(sys.argv[3]))
    elif verb == "wait-close":
        wait_close(port, float(sys.argv[3]))
    elif verb == "slowhead":
        slowhead(port, float(sys.argv[3]))
    elif verb == "go-on":
        go_on(port, sys.argv[3])
    else:
        sys.exit("park.py: unknown verb " + verb)


if __name__ == "__main__":
    main()
