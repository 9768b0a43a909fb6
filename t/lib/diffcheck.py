#!/usr/bin/env python3
"""Compare one run of t/lib/difftest.mjs with what sidemeter counted meanwhile.

    diffcheck.py BEFORE.txt AFTER.txt RUN.json

BEFORE and AFTER are /metrics pages scraped around the run.  sidemeter's requests by
"METHOD code" (the difference of the two pages, all routes added up) must equal what node
answered and what the clients parsed; no session's bytes may differ; node must have refused
nothing (the sessions are valid HTTP).  Prints one line of figures; exits 1 on any
disagreement, saying which.
"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prom import series  # noqa: E402


def by_code(path):
    c = collections.Counter()
    for labels, v in series(path, "sidemeter_http_requests_total"):
        c["%s %s" % (labels["method"], labels["code"])] += int(v)
    return c


def family(path, name):
    c = collections.Counter()
    for labels, v in series(path, name):
        c[labels.get("reason", "")] += int(v)
    return c


before, after, run = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
sm = by_code(after)
sm.subtract(by_code(before))
sm = {k: v for k, v in sm.items() if v}
node = {k: v for k, v in run["answered"].items()}
clients = run["parsed"]
bad = []
if sm != node:
    bad.append("sidemeter %s\n  node      %s" % (sorted(sm.items()), sorted(node.items())))
if clients != node:
    bad.append("clients %s\n  node    %s" % (sorted(clients.items()), sorted(node.items())))
if run["badBytes"]:
    bad.append("bytes differ: %s" % "; ".join(run["badBytes"][:10]))
if run["nodeErrors"]:
    bad.append("node refused %d requests as invalid" % run["nodeErrors"])
inc = family(after, "sidemeter_http_requests_incomplete_total")
inc.subtract(family(before, "sidemeter_http_requests_incomplete_total"))
opq = family(after, "sidemeter_opaque_connections_total")
opq.subtract(family(before, "sidemeter_opaque_connections_total"))
if sum(opq.values()):
    bad.append("opaque connections: %s" % {k: v for k, v in opq.items() if v})
classes = collections.Counter()
for k, v in node.items():
    classes[k.split()[1][0] + "xx"] += v
print("seed %d: %d sessions, %d requests sent, %d answered (%s), incomplete %s" % (
    run["seed"], run["sessions"], run["requests"], sum(node.values()),
    " ".join("%s=%d" % kv for kv in sorted(classes.items())),
    {k: v for k, v in inc.items() if v}))
for b in bad:
    print("DISAGREE: " + b)
sys.exit(1 if bad else 0)
