#!/usr/bin/env python3
"""The bench's report: medians of bench.sh's runs, the ratios issues 6 and 11 ask for, as
a Markdown table and an SVG chart (written by hand: no plotting library is needed).

    report.py RESULTS.tsv MEMORY.tsv OUT.md OUT.svg SECS REPS [CROWD.tsv [RENDER.tsv]]
"""
import csv
import statistics
import sys
from xml.sax.saxutils import escape

tsv, mem_tsv, md_out, svg_out, secs, reps = sys.argv[1:7]
crowd_tsv = sys.argv[7] if len(sys.argv) > 7 else None
runs = list(csv.DictReader(open(tsv), delimiter="\t"))
crowd = list(csv.DictReader(open(crowd_tsv), delimiter="\t")) if crowd_tsv else []
render_tsv = sys.argv[8] if len(sys.argv) > 8 else None
render = list(csv.DictReader(open(render_tsv), delimiter="\t")) if render_tsv else []
# server -> (PSS KiB, processes)
memory = {row[0]: (int(row[1]), int(row[2])) for row in csv.reader(open(mem_tsv), delimiter="\t")}


def med(scenario, server, field):
    values = [float(r[field]) for r in runs if r["scenario"] == scenario and r["server"] == server]
    return statistics.median(values) if values else 0.0


def ratio(a, b):
    return a / b if b else 0.0


def per_idle(server):
    """Memory (bytes of PSS) each idle connection of the crowd cost a forwarder, from the
    crowd's first arrival: a server keeps what it grew to, so the later rounds' crowds find
    the memory there already and measure (close to) nothing; they are not a median's."""
    v = [(int(c["pss_kib_held"]) - int(c["pss_kib_before"])) * 1024.0 / int(c["idle_conns"])
         for c in sorted(crowd, key=lambda c: int(c["round"])) if c["server"] == server]
    return v[0] if v else 0.0


# (figure, sidemeter's value, the peer's, the ratio, the target, higher is better)
S, NGS, HAP = "sidemeter", "nginx-stream", "haproxy-http"
figures = []
for sc, label in (("keepalive-c1", "1"), ("keepalive-c4", "4")):
    figures.append(("keep-alive rps, %s conn., vs nginx-stream" % label, med(sc, S, "rps"),
                    med(sc, NGS, "rps"), 1.0, True))
    figures.append(("keep-alive rps, %s conn., vs HAProxy" % label, med(sc, S, "rps"),
                    med(sc, HAP, "rps"), 1.2, True))
for sc, label in (("keepalive-c1", "1"), ("keepalive-c4", "4")):
    figures.append(("CPU per request, %s conn., vs nginx-stream" % label,
                    med(sc, S, "cpu_ns_per_req"), med(sc, NGS, "cpu_ns_per_req"), 1.0, False))
figures.append(("100 MB answer, MiB/s, vs direct", med("100MB-c1", S, "mib_s"),
                med("100MB-c1", "direct", "mib_s"), 0.85, True))
figures.append(("memory (PSS), vs nginx-stream", memory.get(S, (0,))[0], memory.get(NGS, (0,))[0], 0.5, False))
figures.append(("Connection: close rps, 4 conn., vs nginx-stream", med("close-c4", S, "rps"),
                med("close-c4", NGS, "rps"), 1.0, True))
for sc, label in (("keepalive-c1", "1"), ("keepalive-c4", "4")):
    figures.append(("http mode vs tcp mode rps, %s conn." % label, med(sc, S, "rps"),
                    med(sc, "sidemeter-tcp", "rps"), 0.95, True))
CAD, PREV = "caddy", "sidemeter-prev"
for sc, label in (("keepalive-c1", "keep-alive rps, 1 conn."), ("keepalive-c4", "keep-alive rps, 4 conn."),
                  ("close-c4", "Connection: close rps, 4 conn.")):
    if med(sc, CAD, "rps"):
        figures.append(("%s, vs Caddy" % label, med(sc, S, "rps"), med(sc, CAD, "rps"), 1.0, True))
if med("100MB-c1", CAD, "mib_s"):
    figures.append(("100 MB answer, MiB/s, vs Caddy", med("100MB-c1", S, "mib_s"),
                    med("100MB-c1", CAD, "mib_s"), 1.0, True))
for sc, label in (("keepalive-c1", "keep-alive rps, 1 conn."), ("keepalive-c4", "keep-alive rps, 4 conn."),
                  ("close-c4", "Connection: close rps, 4 conn.")):
    if med(sc, PREV, "rps"):
        figures.append(("%s, vs the previous build" % label, med(sc, S, "rps"), med(sc, PREV, "rps"),
                        0.97, True))
if crowd:
    figures.append(("idle crowd: rps, 4 conn., vs its own without the crowd",
                    med("crowd-c4", S, "rps"), med("keepalive-c4", S, "rps"), 0.9, True))
    figures.append(("idle crowd: p99, 4 conn., vs its own without the crowd",
                    med("crowd-c4", S, "p99_us"), med("keepalive-c4", S, "p99_us"), 1.1, False))
    figures.append(("idle crowd: memory per idle connection (bytes), vs nginx-stream",
                    per_idle(S), per_idle(NGS), 1.0, False))
    if med("crowd-app-c4", S, "p99_us"):
        # The control: the same crowd held by the application itself.  Its cost to p99 is the
        # application's (and the machine's), which sidemeter passes on as any forwarder does
        # that keeps one application connection per client connection; the second figure is
        # what is left for sidemeter's own keeping of the crowd.
        figures.append(("idle crowd held by the application itself (control): p99, 4 conn., "
                        "vs without a crowd", med("crowd-app-c4", S, "p99_us"),
                        med("keepalive-c4", S, "p99_us"), 1.1, False))
        figures.append(("idle crowd: p99, 4 conn., vs the same crowd held by the application",
                        med("crowd-c4", S, "p99_us"), med("crowd-app-c4", S, "p99_us"), 1.1, False))

OT = "sidemeter-otel"
for c in ("1", "4"):
    if med("traced-c" + c, OT, "rps"):
        figures.append(("traced keep-alive rps, %s conn., --metric-names both and exemplars, vs the default" % c,
                        med("traced-c" + c, OT, "rps"), med("keepalive-c" + c, S, "rps"), 0.97, True))

for c in ("1", "4"):
    if med("keepalive-c" + c, "sidemeter-log", "rps"):
        figures.append(("keep-alive rps, %s conn., --access-log to a file, vs off" % c,
                        med("keepalive-c" + c, "sidemeter-log", "rps"), med("keepalive-c" + c, S, "rps"),
                        0.95, True))

lines = ["## sidemeter beside its peers", "",
         "%s rounds, %s s per run, medians; ratios are sidemeter / peer." % (reps, secs), "",
         "| figure | sidemeter | peer | ratio | target | met |", "|---|---:|---:|---:|---:|:---:|"]
for name, ours, theirs, target, higher in figures:
    r = ratio(ours, theirs)
    met = r >= target if higher else 0 < r <= target
    lines.append("| %s | %s | %s | %.2f | %s %.2f | %s |" % (
        name, "%.0f" % ours, "%.0f" % theirs, r, ">=" if higher else "<=", target,
        "yes" if met else "**no**"))
lines += ["", "| scenario | server | rps | MiB/s | p50 µs | p99 µs | CPU ns/req | of it user | "
          "switches/req | machine busy % | errors |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
seen = []
for r in runs:
    key = (r["scenario"], r["server"])
    if key in seen:
        continue
    seen.append(key)
    lines.append("| %s | %s | %.0f | %.1f | %.0f | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f |" % (
        key[0], key[1], med(*key, "rps"), med(*key, "mib_s"), med(*key, "p50_us"),
        med(*key, "p99_us"), med(*key, "cpu_ns_per_req"), med(*key, "user_ns_per_req"),
        med(*key, "switches_per_req"), med(*key, "machine_busy_pct"),
        sum(float(x["errors"]) for x in runs if (x["scenario"], x["server"]) == key)))
if crowd:
    n = crowd[0]["idle_conns"]
    lines += ["", "idle crowd (%s connections held, wrk on 4 more): memory per idle connection, "
              "PSS with the crowd less PSS without, at its first arrival: " % n +
              ", ".join("%s %.0f B" % (srv, per_idle(srv)) for srv in sorted({c["server"] for c in crowd}))]
if render:
    lines += ["", "/metrics at 100 routes (median of 20 scrapes):", "",
              "| build | format | bytes | render and fetch, ms |", "|---|---|---:|---:|"]
    for r in sorted(render, key=lambda r: (r["server"], r["format"])):
        lines.append("| %s | %s | %s | %s |" % (r["server"], r["format"], r["bytes"], r["median_ms"]))
lines += ["", "memory (PSS, KiB, after the runs): " +
          ", ".join("%s %d (%d process%s)" % (k, kib, n, "" if n == 1 else "es") for k, (kib, n) in sorted(memory.items())), ""]
open(md_out, "w").write("\n".join(lines))

# The chart: one bar per figure, its ratio against the target's line.
W, ROW, LEFT, TOP = 900, 30, 360, 50
scale_max = max([2.0] + [ratio(o, t) * 1.1 for _, o, t, _, _ in figures])
H = TOP + ROW * len(figures) + 40
x = lambda v: LEFT + (W - LEFT - 30) * min(v, scale_max) / scale_max
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
       'font-size="12">' % (W, H),
       '<rect width="100%" height="100%" fill="#fff"/>',
       '<text x="10" y="22" font-size="15" font-weight="bold">sidemeter / peer (medians of %s rounds)'
       '</text>' % escape(reps),
       '<text x="10" y="40" fill="#666">green: target met; red: not; the black tick is the '
       'target</text>']
for v in (0.5, 1.0, 1.5, 2.0):
    if v <= scale_max:
        svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x(v), TOP - 5, x(v), H - 30))
        svg.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#666">%.1fx</text>' % (x(v), H - 14, v))
for i, (name, ours, theirs, target, higher) in enumerate(figures):
    y = TOP + i * ROW
    r = ratio(ours, theirs)
    met = r >= target if higher else 0 < r <= target
    svg.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (LEFT - 8, y + 16, escape(name)))
    svg.append('<rect x="%d" y="%d" width="%.1f" height="18" fill="%s"/>' % (
        LEFT, y + 3, x(r) - LEFT, "#3fa34d" if met else "#d9534f"))
    svg.append('<text x="%.1f" y="%d">%.2f</text>' % (x(r) + 4, y + 16, r))
    svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-width="2"/>' % (
        x(target), y, x(target), y + 24))
svg.append("</svg>")
open(svg_out, "w").write("\n".join(svg))
