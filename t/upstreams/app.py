#!/usr/bin/env python3
"""A small scripted application for the tests, on loopback.

    app.py PORT [ROOT]

Serves files from ROOT like python -m http.server, plus a few endpoints:
    GET  /slow?ms=N       answers 200 after N milliseconds
    POST /sha256          answers with the hex sha256 and length of the request body
    GET  /status/NNN      answers with that status code
    GET  /bytes?n=N       N bytes of a fixed pattern
Keeps connections alive (HTTP/1.1) unless the client asks otherwise.
"""
import hashlib
import http.server
import os
import sys
import time
import urllib.parse


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def send_text(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            return self.send_text(200, "slow done\n")
        if url.path.startswith("/status/"):
            return self.send_text(int(url.path[8:11]), "status\n")
        if url.path == "/bytes":
            n = int(q.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = bytes(range(256)) * 256
            while n > 0:
                self.wfile.write(chunk[: min(n, len(chunk))])
                n -= min(n, len(chunk))
            return
        return super().do_GET()

    def do_POST(self):
        body = self.read_body()
        if urllib.parse.urlsplit(self.path).path == "/sha256":
            return self.send_text(200, "%s %d\n" % (hashlib.sha256(body).hexdigest(), len(body)))
        return self.send_text(200, "posted %d\n" % len(body))

    do_PUT = do_POST


def main():
    port = int(sys.argv[1])
    if len(sys.argv) > 2:
        os.chdir(sys.argv[2])
    http.server.ThreadingHTTPServer.daemon_threads = True
    http.server.ThreadingHTTPServer.request_queue_size = 128
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.serve_forever()


if __name__ == "__main__":
    main()
