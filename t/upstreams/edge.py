#!/usr/bin/env python3
"""HTTP/1.x edge cases on loopback, both ends.

    edge.py serve PORT              an application that answers each path its own way
                                    (/hangup, /reset and /silent never answer)
    edge.py run PORT [NAME...]      replay the scenarios against PORT; print one JSON object:
                                    {"bytes": {name: hex of all bytes received},
                                     "expect": {"METHOD CODE ROUTE": n, ...},
                                     "incomplete": n, "opaque": {reason: n}, "tunnels": n}

Each scenario is a list of steps on one connection: send bytes, read until a marker, shut
down the write side; at the end the client reads until the server closes.  Run against the
application directly and through sidemeter, the bytes must be identical.
"""
import json
import socket
import sys
import threading

# ---- the application -------------------------------------------------------------------


def read_exact(conn, buf, n):
    while len(buf) < n:
        d = conn.recv(65536)
        if not d:
            raise EOFError
        buf += d
    return buf[:n], buf[n:]


def read_line(conn, buf):
    while b"\n" not in buf:
        d = conn.recv(65536)
        if not d:
            raise EOFError
        buf += d
    line, _, rest = buf.partition(b"\n")
    return line.rstrip(b"\r"), rest


def read_body(conn, buf, headers):
    if headers.get("transfer-encoding", "").lower().endswith("chunked"):
        body = b""
        while True:
            line, buf = read_line(conn, buf)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while True:
                    line, buf = read_line(conn, buf)
                    if not line:
                        return body, buf
            data, buf = read_exact(conn, buf, size + 2)
            body += data[:size]
    n = int(headers.get("content-length", "0").split(",")[0])
    return read_exact(conn, buf, n)


def echo_until_eof(conn, buf):
    if buf:
        conn.sendall(buf)
    while True:
        d = conn.recv(65536)
        if not d:
            return
        conn.sendall(d)


def serve_conn(conn):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
                if buf[:1] == b"\x16":  # a TLS ClientHello: answer with an alert
                    conn.sendall(b"\x15\x03\x01\x00\x02\x02\x28")
                    return
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, version = lines[0].decode().split(" ")
            headers = {}
            for h in lines[1:]:
                k, _, v = h.decode().partition(":")
                k = k.strip().lower()
                headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
            close = headers.get("connection", "").lower() == "close" or (
                version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive")
            if "," in headers.get("content-length", "") and len(set(
                    x.strip() for x in headers["content-length"].split(","))) > 1:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            if path == "/continue" and headers.get("expect", "").lower() == "100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if path == "/hangup":    # closes without a word
                return
            if path == "/reset":     # resets without a word
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            if path == "/silent":    # never answers
                threading.Event().wait(60)
                return
            if path == "/early":
                conn.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n"
                             b"Connection: close\r\n\r\ntoo big\n")
                read_body(conn, buf, headers)  # drained, so that the close is clean
                return
            body, buf = read_body(conn, buf, headers)
            if method == "CONNECT":
                if path.startswith("refused"):
                    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 b"Content-Length: 4\r\n\r\nno!\n")
                    continue
                conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                return echo_until_eof(conn, buf)
            if path == "/ws":
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\n\r\n")
                return echo_until_eof(conn, buf)
            if path == "/garbage":
                conn.sendall(b"<html>this is not an HTTP answer</html>\n")
                return
            if path == "/chunked":
                resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
            elif path == "/close":
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                             b"delimited by the close\n")
                return
            elif path == "/nocontent":
                resp = b"HTTP/1.1 204 No Content\r\n\r\n"
            elif path == "/notmodified":
                resp = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
            elif path == "/hints":
                resp = (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi\n")
            elif path in ("/echo", "/continue"):
                text = b"got %d bytes\n" % len(body)
                resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)
            elif method == "PROPFIND":
                resp = b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 0\r\n\r\n"
            else:
                resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            if method == "HEAD":
                resp = resp.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            if close:
                resp = resp.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
            conn.sendall(resp)
            if close:
                return
    except (EOFError, ConnectionError, ValueError):
        pass
    finally:
        conn.close()


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()


# ---- the scenarios ---------------------------------------------------------------------

C = b"Connection: close\r\n"
SCENARIOS = [
    # name, steps, expected answered requests, incomplete, opaque reason, tunnels
    ("content-length", [("send", b"GET /cl HTTP/1.1\r\nHost: t\r\n" + C + b"\r\n")],
     ["GET 200 /cl"], 0, None, 0),
    ("keep-alive then close", [
        ("send", b"GET /cl HTTP/1.1\r\nHost: t\r\n\r\n"), ("until", b"hello"),
        ("send", b"GET /chunked HTTP/1.1\r\nHost: t\r\n" + C + b"\r\n")],
     ["GET 200 /cl", "GET 200 /chunked"], 0, None, 0),
    ("pipelining", [("send", b"GET /cl HTTP/1.1\r\n\r\nHEAD /cl HTTP/1.1\r\n\r\n"
                     b"GET /chunked HTTP/1.1\r\n\r\nGET /cl HTTP/1.1\r\n" + C + b"\r\n")],
     ["GET 200 /cl", "HEAD 200 /cl", "GET 200 /chunked", "GET 200 /cl"], 0, None, 0),
    ("request body by length", [("send", b"POST /echo HTTP/1.1\r\nContent-Length: 11\r\n" + C +
                                 b"\r\nhello world")], ["POST 200 /echo"], 0, None, 0),
    ("request body chunked, extensions and trailers", [
        ("send", b"PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" + C + b"\r\n"
         b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n")], ["PUT 200 /echo"], 0, None, 0),
    ("no body for 204 and 304", [
        ("send", b"GET /nocontent HTTP/1.1\r\n\r\nGET /notmodified HTTP/1.1\r\n" + C + b"\r\n")],
     ["GET 204 /nocontent", "GET 304 /notmodified"], 0, None, 0),
    ("answer delimited by the close", [("send", b"GET /close HTTP/1.0\r\n\r\n")],
     ["GET 200 /close"], 0, None, 0),
    ("HTTP/1.0 keep-alive", [
        ("send", b"GET /cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), ("until", b"hello"),
        ("send", b"GET /cl HTTP/1.0\r\n\r\n")], ["GET 200 /cl", "GET 200 /cl"], 0, None, 0),
    ("100 Continue", [
        ("send", b"POST /continue HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n" + C +
         b"\r\n"), ("until", b"100 Continue\r\n\r\n"), ("send", b"data")],
     ["POST 200 /continue"], 0, None, 0),
    ("103 Early Hints", [("send", b"GET /hints HTTP/1.1\r\n" + C + b"\r\n")],
     ["GET 200 /hints"], 0, None, 0),
    ("an early answer before the body is in", [
        ("send", b"POST /early HTTP/1.1\r\nContent-Length: 20000\r\n\r\n" + b"x" * 10),
        ("until", b"too big\n"), ("send", b"y" * 19990)],
     ["POST 413 /early"], 0, None, 0),
    ("other methods", [("send", b"PROPFIND /dav HTTP/1.1\r\n" + C + b"\r\n")],
     ["OTHER 207 /dav"], 0, None, 0),
    ("WebSocket upgrade: a tunnel", [
        ("send", b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        ("until", b"\r\n\r\n"), ("send", b"\x81\x85frame bytes, not HTTP\x00\xff"), ("shut",)],
     ["GET 101 /ws"], 0, None, 1),
    ("CONNECT: a tunnel", [
        ("send", b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"),
        ("until", b"\r\n\r\n"), ("send", b"\x16\x03\x01tunnelled"), ("shut",)],
     ["CONNECT 200 other"], 0, None, 1),
    ("CONNECT refused: HTTP goes on", [
        ("send", b"CONNECT refused.example:443 HTTP/1.1\r\n\r\n"), ("until", b"no!\n"),
        ("send", b"GET /cl HTTP/1.1\r\n" + C + b"\r\n")],
     ["CONNECT 407 other", "GET 200 /cl"], 0, None, 0),
    ("TLS: opaque", [("send", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 20)],
     [], 0, "tls", 0),
    ("an answer that is not HTTP: opaque", [("send", b"GET /garbage HTTP/1.1\r\n\r\n")],
     [], 1, "bad_response", 0),
    ("conflicting Content-Length: opaque", [
        ("send", b"POST /bad HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc")],
     [], 1, "bad_content_length", 0),
]


def run_one(port, steps):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    got = b""
    for step in steps:
        if step[0] == "send":
            s.sendall(step[1])
        elif step[0] == "until":
            while step[1] not in got:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        elif step[0] == "shut":
            s.shutdown(socket.SHUT_WR)
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            got += b"<reset>"
            break
        if not d:
            break
        got += d
    s.close()
    return got


def run(port, names):
    out = {"bytes": {}, "expect": {}, "incomplete": 0, "opaque": {}, "tunnels": 0}
    for name, steps, answered, incomplete, opaque, tunnels in SCENARIOS:
        if names and name not in names:
            continue
        out["bytes"][name] = run_one(port, steps).hex()
        for key in answered:
            out["expect"][key] = out["expect"].get(key, 0) + 1
        out["incomplete"] += incomplete
        if opaque:
            out["opaque"][opaque] = out["opaque"].get(opaque, 0) + 1
        out["tunnels"] += tunnels
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        run(int(sys.argv[2]), sys.argv[3:])
