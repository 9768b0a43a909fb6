#!/usr/bin/env python3
"""A raw TCP application for half-close tests: for each connection, read until the client
shuts down its write side, then answer with the byte count and sha256 of what came, padded
with N bytes of filler so the answer is larger than any socket buffer, and close.

    halfclose.py PORT [FILLER_BYTES]
"""
import hashlib
import socket
import sys
import threading


def serve(conn, filler):
    h, n = hashlib.sha256(), 0
    while True:
        b = conn.recv(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    conn.sendall(b"%d %s\n" % (n, h.hexdigest().encode()) + b"f" * filler)
    conn.close()


def main():
    port = int(sys.argv[1])
    filler = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, filler), daemon=True).start()


if __name__ == "__main__":
    main()
