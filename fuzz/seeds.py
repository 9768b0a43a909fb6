#!/usr/bin/env python3
"""Write the fuzz corpus's seed inputs (fuzz/corpus/seed-*) from a few exchanges.  The
format is fuzz_observer.c's: segments of a header byte ((len - 1) << 1 | dir) and bytes."""
import os
import sys

REQ, RESP = 0, 1
SEEDS = {
    "get": [(REQ, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")],
    "pipeline": [(REQ, b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\n"),
                 (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")],
    "chunked": [(REQ, b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n"),
                (RESP, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")],
    "continue": [(REQ, b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
                 (RESP, b"HTTP/1.1 100 Continue\r\n\r\n"), (REQ, b"abc"),
                 (RESP, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")],
    "upgrade": [(REQ, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
                (RESP, b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x00"), (REQ, b"\x81\x80")],
    "connect": [(REQ, b"CONNECT h:443 HTTP/1.1\r\n\r\n"), (RESP, b"HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n"),
                (REQ, b"GET / HTTP/1.0\r\n\r\n"), (RESP, b"HTTP/1.0 200 OK\r\n\r\nuntil close"), ("eof", RESP)],
    "early": [(REQ, b"POST /e HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"),
              (RESP, b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n"), (REQ, b"67890")],
    "bad": [(REQ, b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")],
    "tls": [(REQ, b"\x16\x03\x01\x00\x05hello")],
    "traceparent": [(REQ, b"GET /t HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"
                          b"GET /u HTTP/1.1\r\ntraceparent: 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\r\n"
                          b"traceparent: ff-0\r\n\r\n"),
                    (RESP, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")],
}


def encode(events):
    out = bytearray()
    for d, data in events:
        if d == "eof":
            out += bytes([0xff, data])
            continue
        for i in range(0, len(data), 127):   # a header of 0xff would mean end of stream
            part = data[i:i + 127]
            out.append(((len(part) - 1) << 1) | d)
            out += part
    return bytes(out)


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    for name, events in SEEDS.items():
        with open(os.path.join(folder, "seed-" + name), "wb") as f:
            f.write(encode(events))


if __name__ == "__main__":
    main()
