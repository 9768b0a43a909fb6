#!/usr/bin/env python3
"""Tap clients that ask for /tap and then never read: what a stuck terminal or a frozen
kubectl port-forward looks like to the metrics port.

    stuck_tap.py PORT COUNT SECONDS

Opens COUNT connections with a small receive buffer, sends each a GET /tap, prints "ready",
and holds them, unread, for SECONDS.
"""
import socket
import sys
import time

port, count, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /tap HTTP/1.1\r\nHost: t\r\n\r\n")
    socks.append(s)
print("ready", flush=True)
time.sleep(secs)
