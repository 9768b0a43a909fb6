#!/usr/bin/env python3
"""Read a Prometheus text page (as sidemeter writes it) for the tests.

    prom.py FILE sum NAME [LABEL=VALUE ...]   the sum of a family's series, optionally filtered
    prom.py FILE series NAME                  every series of a family, "labels value" per line
    prom.py FILE json NAME                    {"label=value,...": value} of a family
"""
import json
import re
import sys

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series(path, name):
    for line in open(path, encoding="utf-8"):
        m = LINE.match(line.rstrip("\n"))
        if m and m.group(1) == name:
            yield dict(LABEL.findall(m.group(3) or "")), float(m.group(4))


def main():
    path, verb, name, *filters = sys.argv[1:]
    want = [f.split("=", 1) for f in filters]
    rows = [(l, v) for l, v in series(path, name) if all(l.get(k) == val for k, val in want)]
    if verb == "sum":
        total = sum(v for _, v in rows)
        print(int(total) if total == int(total) else total)
    elif verb == "series":
        for l, v in rows:
            print(",".join("%s=%s" % kv for kv in sorted(l.items())), int(v) if v == int(v) else v)
    elif verb == "json":
        print(json.dumps({",".join("%s=%s" % kv for kv in sorted(l.items())): v for l, v in rows},
                         sort_keys=True))


if __name__ == "__main__":
    main()
