#!/usr/bin/env python3
"""Do the three outputs agree?  Every total that /metrics, /stats.json and the summary lines
share, compared.

    agree.py METRICS STATS_JSON SUMMARY_LINES json|text

METRICS is a scrape of /metrics, STATS_JSON a fetch of /stats.json, SUMMARY_LINES the
sidemeter's stdout (every line since the start, the last one asked for with USR1 after the
traffic ended: counters are per interval, so their sum is the total).  Prints one line per
total; exits 1 when any differs.
"""
import json
import re
import sys

page, stats_file, lines_file, fmt = sys.argv[1:5]


def series(name):
    """name's series: {labels: value}, labels a dict."""
    out = []
    for line in open(page):
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-z_:]+)(\{([^}]*)\})? (\S+)', line)
        if m and m.group(1) == name:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            out.append((labels, float(m.group(4))))
    return out


def msum(name, **want):
    return int(sum(v for l, v in series(name) if all(l.get(k) == x for k, x in want.items())))


def mclass(c):
    return int(sum(v for l, v in series("sidemeter_http_requests_total")
                   if l.get("code", "")[:1] == str(c) and len(l.get("code", "")) == 3))


stats = json.load(open(stats_file))
tot = stats["totals"]

# the summary lines, added up: JSON objects, or text "key=value" words
sums, classes, seen_classes = {}, {}, set()
for line in open(lines_file):
    line = line.strip()
    if fmt == "json":
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        for k, v in d.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                sums[k] = sums.get(k, 0) + v
        for k, v in (d.get("codes") or {}).items():
            classes[k[0]] = classes.get(k[0], 0) + v
            seen_classes.add(k)
    else:
        if " requests=" not in line and " conns=" not in line:
            continue
        for k, v in re.findall(r' (\w+)=([0-9]+)(?= |$)', line):
            if re.fullmatch(r'[1-5]xx', k):
                classes[k[0]] = classes.get(k[0], 0) + int(v)
                seen_classes.add(k)
            else:
                sums[k] = sums.get(k, 0) + int(v)

checks = [
    ("connections", msum("sidemeter_connections_total"), tot["conns"], sums.get("conns", "absent")),
    ("requests", msum("sidemeter_http_requests_total"), tot["requests"], sums.get("requests", "absent")),
    ("incomplete", msum("sidemeter_http_requests_incomplete_total"), tot["incomplete"],
     sums.get("incomplete", "absent")),
    ("opaque", msum("sidemeter_opaque_connections_total"), tot["opaque"], sums.get("opaque", "absent")),
    ("tunnels", msum("sidemeter_tunnels_total"), tot["tunnels"], sums.get("tunnels", "absent")),
    ("upstream errors", msum("sidemeter_upstream_errors_total"), tot["upstream_errors"],
     sums.get("upstream_errors", "absent")),
    ("bytes in", msum("sidemeter_received_bytes_total"), tot["in_bytes"], sums.get("in_bytes", "absent")),
    ("bytes out", msum("sidemeter_sent_bytes_total"), tot["out_bytes"], sums.get("out_bytes", "absent")),
    ("worker restarts", msum("sidemeter_worker_restarts_total"), tot["restarts"],
     sums.get("restarts", "absent")),
    ("ring drops", msum("sidemeter_ring_dropped_records_total"), tot["dropped"],
     sums.get("dropped", "absent")),
    ("accept errors", msum("sidemeter_accept_errors_total"), tot["accept_errors"],
     sums.get("accept_errors", "absent")),
    ("active now", msum("sidemeter_connections_active"), tot["active"], None),
]
# One vocabulary: every counter of /stats.json's totals is in the lines under its name, with
# the same sum (the gauges' sums over lines mean nothing; their names must still be there).
for k in sorted(tot):
    if k in ("active", "queued", "parked"):
        checks.append(("name %s in the lines" % k, 1, 1, 1 if k in sums else "absent"))
    else:
        checks.append(("total %s" % k, tot[k], tot[k], sums.get(k, "absent")))
for k in stats["codes"]:
    if k != "other":
        checks.append(("class name %s in the lines" % k, 1, 1, 1 if k in seen_classes else "absent"))
for c in range(1, 6):
    checks.append(("%dxx" % c, mclass(c), stats["codes"]["%dxx" % c], classes.get(str(c), 0)))
# the routes: /metrics by route against /stats.json's table
for r in stats["routes"]:
    checks.append(("route %s" % r["route"], msum("sidemeter_http_requests_total", route=r["route"]),
                   r["count"], None))

bad = 0
for what, m, s, d in checks:
    same = m == s and (d is None or d == m)
    bad += not same
    print("%-22s /metrics %-8s /stats.json %-8s summary lines %-8s%s" % (
        what, m, s, "-" if d is None else d, "" if same else "   <- differ"))
sys.exit(1 if bad else 0)
