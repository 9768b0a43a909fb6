#!/usr/bin/env python3
"""Do the access log's lines (or the tap's) agree with /metrics, request by request?

    lines_vs_metrics.py LINES METRICS [CODE...]

LINES holds JSON lines; METRICS a scrape of /metrics.  The lines with a status, by code, must
equal sidemeter_http_requests_total by code; the lines of requests cut short, by reason,
sidemeter_http_requests_incomplete_total by reason; and each CODE given (default 200 404 500
502 504) must be among them.  Prints the figures; exits 1 when they differ.
"""
import json
import sys
log, page = sys.argv[1:3]
need = sys.argv[3:] or ["200", "404", "500", "502", "504"]
lines = [json.loads(l) for l in open(log)]
by_code, by_reason = {}, {}
for l in lines:
    for k in ("time", "req_bytes", "resp_bytes", "duration_s", "conn_requests"):
        assert k in l, (k, l)
    if "status" in l:
        by_code[str(l["status"])] = by_code.get(str(l["status"]), 0) + 1
    elif "method" in l:
        by_reason[l["reason"]] = by_reason.get(l["reason"], 0) + 1
def series(name):
    out = {}
    for line in open(page):
        if line.startswith(name + "{"):
            labels = dict(p.split("=", 1) for p in line[len(name) + 1:line.index("}")].replace('"', "").split(","))
            key = labels.get("code", labels.get("reason"))
            out[key] = out.get(key, 0) + int(float(line.split()[-1]))
    return {k: v for k, v in out.items() if v}
want_codes = series("sidemeter_http_requests_total")
want_reasons = series("sidemeter_http_requests_incomplete_total")
print("lines %d; by code %s (metrics %s); cut short %s (metrics %s)" % (
    len(lines), sorted(by_code.items()), sorted(want_codes.items()), sorted(by_reason.items()),
    sorted(want_reasons.items())))
ok = by_code == want_codes and by_reason == want_reasons
ok &= all(k in by_code for k in need)
sys.exit(0 if ok else 1)
