#!/usr/bin/env bash
# tools/fleet.sh BIN: a fleet of pods on loopback watched by a real Prometheus.
#
# FLEET_PODS pods (default 8), each a Python application (t/upstreams/app.py) and a
# sidemeter in front of it, with roles taken in turn: healthy, slow (answers in 1.5 s),
# failing (one answer in five is a 503), appdown (the application never started) and
# sidecardown (sidemeter killed a few seconds in).  Prometheus (Debian's package) finds
# them through file_sd_configs carrying the __meta_kubernetes_* labels a cluster would
# give, run through the relabeling of yaml/prometheus.yml, and evaluates yaml/rules/ with
# its windows and `for:` durations scaled from minutes to seconds.  A load of FLEET_SECS
# seconds (default 40) is spread over the pods; then the fleet-wide rate, error ratio, p99
# by route and the firing alerts are read from Prometheus' HTTP API and checked against
# what the load generator counted.  Exits 1 if a check fails.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
pods=${FLEET_PODS:-8}
secs=${FLEET_SECS:-40}
for t in prometheus promtool python3 curl; do
	command -v "$t" >/dev/null || { echo "fleet: $t is missing (Debian: see t/debian-packages)" >&2; exit 2; }
done
lab=$(mktemp -d /tmp/sidemeter-fleet.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$lab"
}
trap cleanup EXIT
bg() { "$@" >>"$lab/log" 2>&1 & pids+=($!); }
ports() { python3 -c "import socket
s = [socket.socket() for _ in range($1)]
for x in s: x.bind(('127.0.0.1', 0))
print(*[x.getsockname()[1] for x in s])"; }

roles=(healthy slow failing appdown sidecardown)
read -ra all <<<"$(ports $((pods * 3 + 1)))"
prom_port=${all[$((pods * 3))]}
mkdir -p "$lab/www"
printf '<!doctype html><title>pod</title><p>%0300d</p>\n' 0 >"$lab/www/index.html"
targets="["
load_args=()
declare -A sm_pid role_of
for ((i = 0; i < pods; i++)); do
	pod=pod-$i role=${roles[$((i % ${#roles[@]}))]}
	app=${all[$((i * 3))]} sm=${all[$((i * 3 + 1))]} met=${all[$((i * 3 + 2))]}
	role_of[$pod]=$role
	[[ $role != appdown ]] && bg python3 "$root/t/upstreams/app.py" "$app" "$lab/www"
	"$bin" --listen "127.0.0.1:$sm" --upstream "127.0.0.1:$app" --metrics "127.0.0.1:$met" \
		--workers 2 --dump-interval 0 >>"$lab/log" 2>&1 &
	pids+=($!)
	sm_pid[$pod]=$!
	disown $!	# one of them is killed on purpose: no notice from the shell
	targets+="$( ((i)) && echo ,){\"targets\":[\"127.0.0.1:$met\"],\"labels\":{
		\"__meta_kubernetes_namespace\":\"fleet\",\"__meta_kubernetes_pod_name\":\"$pod\",
		\"__meta_kubernetes_pod_annotation_prometheus_io_scrape\":\"true\",
		\"__meta_kubernetes_pod_annotation_prometheus_io_port\":\"$met\",
		\"__meta_kubernetes_pod_annotation_prometheus_io_path\":\"/metrics\",
		\"__meta_kubernetes_pod_container_port_name\":\"metrics\"}}"
	load_args+=("$pod=$role:$sm")
done
echo "$targets]" >"$lab/targets.json"

# The cluster's configuration, discovery aside: kubernetes_sd_configs (which Debian's
# Prometheus is built without) becomes file_sd_configs with the same meta labels.
python3 - "$root/yaml/prometheus.yml" "$lab/prometheus.yml" "$lab/targets.json" <<'EOF'
import re, sys
src, dst, targets = sys.argv[1:]
text = open(src).read()
text = text.replace("scrape_interval: 15s", "scrape_interval: 1s")
text = text.replace("evaluation_interval: 15s", "evaluation_interval: 1s")
text = text.replace("rules/sidemeter.rules.yml", "fleet.rules.yml")
text = re.sub(r"kubernetes_sd_configs:\n\s+- role: pod",
              "file_sd_configs:\n      - files: ['%s']" % targets, text)
open(dst, "w").write(text)
EOF
# The rules, with time scaled for a run of seconds: minutes become seconds ([5m] -> [5s]
# would hold too few 1 s scrapes for rate(), so windows are 10 s; for: becomes 3 s).
python3 - "$root/yaml/rules/sidemeter.rules.yml" "$lab/fleet.rules.yml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"\[(5|15)m\]", "[10s]", text)
text = re.sub(r"for: \d+m", "for: 3s", text)
open(sys.argv[2], "w").write(text)
EOF
promtool check config "$lab/prometheus.yml" >"$lab/check.log" 2>&1 ||
	{ echo "fleet: the generated configuration is not valid:"; cat "$lab/check.log"; exit 1; }
bg prometheus --config.file="$lab/prometheus.yml" --storage.tsdb.path="$lab/data" \
	--web.listen-address="127.0.0.1:$prom_port"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$prom_port/-/ready" >/dev/null && break; sleep 0.2; done
query() {
	curl -sS --get "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1"
}

# Discovery hands targets to the scrapers in batches, seconds apart: begin once every
# sidecar has been scraped.
for _ in $(seq 150); do
	up=$(query 'count(up{job="sidemeter"} == 1)' | python3 -c 'import json,sys
r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
	[[ $up == "$pods" ]] && break
	sleep 0.2
done
[[ $up == "$pods" ]] || { echo "fleet: Prometheus scrapes $up of $pods sidecars"; exit 1; }
echo "fleet: $pods pods, Prometheus on 127.0.0.1:$prom_port, ${secs}s of load"
python3 "$root/t/lib/load.py" fleet "$secs" "${load_args[@]}" >"$lab/load.json" &
load=$!
pids+=($load)
# a sidecar dies a few seconds in
sleep 5
for pod in "${!role_of[@]}"; do
	[[ ${role_of[$pod]} == sidecardown ]] && kill -9 "${sm_pid[$pod]}" 2>/dev/null
done
# while the load runs: the recordings and the alerts
sleep $((secs - 10 > 12 ? secs - 10 : 12))
query 'job:sidemeter_http_requests:rate5m' >"$lab/rate.json"
query 'job:sidemeter_http_errors:ratio_rate5m' >"$lab/ratio.json"
query 'route:sidemeter_http_request_duration_seconds:p99_5m' >"$lab/p99.json"
curl -sS "http://127.0.0.1:$prom_port/api/v1/alerts" >"$lab/alerts.json"
# every query of the Grafana dashboard, with its variables set for the whole fleet
python3 "$root/tools/dashboard.py" exprs "$root/yaml/grafana-dashboard.json" >"$lab/dash.jsonl"
n=0
while IFS= read -r line; do
	query "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["expr"])' "$line")" \
		>"$lab/dash.$n.json"
	n=$((n + 1))
done <"$lab/dash.jsonl"
wait "$load"
sleep 3	# two more scrapes: the counters' last values
query 'sum by (pod, method, code, route) (sidemeter_http_requests_total)' >"$lab/totals.json"
# the killed sidecar's series went stale: its last counts
query 'sum by (pod) (max_over_time(sidemeter_http_requests_total[5m]))' >"$lab/last.json"

python3 - "$lab" "$(declare -p role_of)" <<'EOF'
import json, sys
lab = sys.argv[1]
roles = dict(x.split("]=") for x in sys.argv[2].split("(")[1].rstrip(")").replace('"', "").replace("[", "").split())
ok = True
def check(what, good, detail):
    global ok
    ok &= bool(good)
    print("  %-4s %s: %s" % ("ok" if good else "FAIL", what, detail))
def result(name):
    return json.load(open("%s/%s.json" % (lab, name)))["data"]["result"]

load = json.load(open(lab + "/load.json"))
sent = load["answers"]
rate = {r["metric"].get("job"): float(r["value"][1]) for r in result("rate")}
ratio = {r["metric"].get("job"): float(r["value"][1]) for r in result("ratio")}
p99 = {r["metric"]["route"]: float(r["value"][1]) for r in result("p99") if r["value"][1] != "NaN"}
print("from Prometheus, during the load:")
print("  fleet rate          %.1f requests/s" % rate.get("sidemeter", 0))
print("  fleet error ratio   %.3f" % ratio.get("sidemeter", 0))
for route, v in sorted(p99.items()):
    print("  p99 %-16s %.3f s" % (route, v))
totals = {}
for r in result("totals"):
    m = r["metric"]
    totals.setdefault(m["pod"], {})["%s %s %s" % (m["method"], m["code"], m["route"])] = int(float(r["value"][1]))
print("checks against what the load generator counted:")
last = {r["metric"]["pod"]: int(float(r["value"][1])) for r in result("last")}
for pod in sorted(sent):
    if roles[pod] == "sidecardown":
        # its last scrape came before its death: some counted, never more than answered
        got, want = last.get(pod, 0), sum(sent[pod].values())
        check(pod + " (sidecar killed)", 0 < got <= want,
              "%d counted by its last scrape, %d answered before it died" % (got, want))
        continue
    check(pod + " (" + roles[pod] + ")", totals.get(pod, {}) == sent[pod],
          "counts by code and route %s" % ("equal" if totals.get(pod, {}) == sent[pod] else
                                            "%s vs %s" % (totals.get(pod), sent[pod])))
live = [p for p in sent if roles[p] != "sidecardown"]
n = sum(sum(sent[p].values()) for p in live)
n5 = sum(v for p in live for k, v in sent[p].items() if k.split()[1].startswith("5"))
got_n = sum(sum(totals.get(p, {}).values()) for p in live)
got_5 = sum(v for p in live for k, v in totals.get(p, {}).items() if k.split()[1].startswith("5"))
check("fleet error ratio", got_n and abs(got_5 / got_n - n5 / n) < 1e-9,
      "%.4f from Prometheus' counters, %.4f from the load" % (got_5 / max(got_n, 1), n5 / max(n, 1)))
check("p99 of /slow", p99.get("/slow", 0) >= 1.4, "%.3f s (the app answers in 1.5 s)" % p99.get("/slow", 0))
check("p99 of /index.html", 0 < p99.get("/index.html", 0) < 0.5, "%.3f s" % p99.get("/index.html", 0))
firing = sorted({(a["labels"]["alertname"], a["labels"].get("pod", a["labels"].get("instance")))
                 for a in json.load(open(lab + "/alerts.json"))["data"]["alerts"] if a["state"] == "firing"})
print("alerts firing:")
for a in firing:
    print("  %s %s" % a)
want = set()
for pod, role in roles.items():
    if role == "slow":
        want.add(("SidemeterHighLatency", pod))
    if role == "failing":
        want.add(("SidemeterHighErrorRatio", pod))
    if role == "appdown":
        want.add(("SidemeterAppUnreachable", pod))
        want.add(("SidemeterHighErrorRatio", pod))     # every answer is a 502
    if role == "sidecardown":
        want.add(("SidemeterDown", pod))
print("the Grafana dashboard's queries (yaml/grafana-dashboard.json):")
for n, line in enumerate(open(lab + "/dash.jsonl")):
    q = json.loads(line)
    got = json.load(open("%s/dash.%d.json" % (lab, n)))
    series = got.get("data", {}).get("result", []) if got.get("status") == "success" else []
    check("%s %s" % (q["panel"], q["ref"]), len(series) > 0,
          "%d series" % len(series) if series else "no data: %s (%s)" % (q["expr"], got.get("error", "")))
check("alerts", set(firing) == want, "firing as the roles predict" if set(firing) == want else
      "expected %s" % sorted(want))
sys.exit(0 if ok else 1)
EOF
