#!/usr/bin/env python3
"""Many GETs on one keep-alive connection, each answer read whole before the next.

    gets.py PORT COUNT PATH MARKER

PATH may hold a %d (the request's number); an answer is whole when what came ends with
MARKER.  Exits 1 if the connection ends first; every read is bounded (10 s).
"""
import socket
import sys

port, count, path, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(10)
for i in range(count):
    target = path % i if "%d" in path else path
    s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target.encode())
    got = b""
    while not got.endswith(marker):
        d = s.recv(65536)
        if not d:
            sys.exit("closed after %d answers" % i)
        got += d
s.close()
