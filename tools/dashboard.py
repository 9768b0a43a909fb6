#!/usr/bin/env python3
"""The Grafana dashboard in yaml/grafana-dashboard.json: its structure, and its queries.

    dashboard.py check FILE    the fields Grafana needs to load it (provisioning or the
                               grafana-operator): exits 1 naming each problem
    dashboard.py exprs FILE    each panel's PromQL, one JSON line {"panel", "ref", "expr"},
                               with the dashboard's variables set as for a whole fleet
                               ($namespace, $pod: every value; $__rate_interval: 10s, four
                               of make fleet's 1 s scrapes with room to spare), and each
                               query variable's label_values() as the PromQL it stands for
"""
import json
import re
import sys

BUILTIN = {"__rate_interval", "__interval", "__range"}
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge", "heatmap", "text", "row"}


def check(d):
    problems = []
    def need(cond, what):
        if not cond:
            problems.append(what)
    for key, kind in (("title", str), ("uid", str), ("panels", list), ("schemaVersion", int),
                      ("templating", dict), ("time", dict)):
        need(isinstance(d.get(key), kind), "top level: %s must be a %s" % (key, kind.__name__))
    need(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(d.get("uid", ""))) is not None,
         "uid: 1-40 of [A-Za-z0-9_-]")
    variables = {v.get("name") for v in d.get("templating", {}).get("list", [])}
    need(all(isinstance(v.get("type"), str) for v in d.get("templating", {}).get("list", [])),
         "templating: every variable has a type")
    ids = set()
    for p in d.get("panels", []):
        pid = p.get("id")
        where = "panel %s (%s)" % (pid, p.get("title"))
        need(isinstance(pid, int) and pid not in ids, where + ": id must be a unique integer")
        ids.add(pid)
        need(p.get("type") in PANEL_TYPES, where + ": unknown type %r" % p.get("type"))
        need(isinstance(p.get("title"), str) and p.get("title"), where + ": a title")
        g = p.get("gridPos", {})
        need(all(isinstance(g.get(k), int) for k in "xywh") and g.get("x", 0) + g.get("w", 0) <= 24,
             where + ": gridPos x, y, w, h integers within 24 columns")
        refs = set()
        targets = p.get("targets", [])
        need(targets, where + ": at least one target")
        for t in targets:
            need(t.get("refId") and t["refId"] not in refs, where + ": unique refIds")
            refs.add(t.get("refId"))
            need(isinstance(t.get("expr"), str) and t["expr"].strip(), where + ": an expr")
            for v in re.findall(r"\$\{?(\w+)", t.get("expr", "")):
                need(v in variables or v in BUILTIN, where + ": $%s is not a variable" % v)
        ds = json.dumps(p.get("datasource", {})) + "".join(json.dumps(t.get("datasource", {})) for t in targets)
        for v in re.findall(r"\$\{?(\w+)", ds):
            need(v in variables, where + ": datasource variable $%s is not defined" % v)
    return problems


def exprs(d):
    # a query variable's label_values(METRIC, LABEL) is, in PromQL, the groups of LABEL
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", (q or {}).get("query", "") if isinstance(q, dict) else "")
        if m:
            e = re.sub(r"\$\{?(namespace|pod)\}?", ".*", m.group(1))
            print(json.dumps({"panel": "variable $" + v["name"], "ref": "-",
                              "expr": "group by (%s) (%s)" % (m.group(2), e)}))
    for p in d["panels"]:
        for t in p.get("targets", []):
            e = t["expr"]
            e = re.sub(r"\$\{?__rate_interval\}?|\$\{?__interval\}?|\$\{?__range\}?", "10s", e)
            e = re.sub(r"\$\{?(namespace|pod)\}?", ".*", e)
            print(json.dumps({"panel": p["title"], "ref": t["refId"], "expr": e}))


if __name__ == "__main__":
    mode, path = sys.argv[1:3]
    dash = json.load(open(path))
    if mode == "check":
        bad = check(dash)
        for b in bad:
            print("dashboard: " + b)
        print("dashboard: %d panels, %d queries, %s" % (
            len(dash.get("panels", [])), sum(len(p.get("targets", [])) for p in dash.get("panels", [])),
            "ok" if not bad else "%d problems" % len(bad)))
        sys.exit(1 if bad else 0)
    exprs(dash)
