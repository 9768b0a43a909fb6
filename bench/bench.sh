#!/usr/bin/env bash
# bench/bench.sh BIN: sidemeter beside its peers, measured side by side in one run.
#
# On loopback: an nginx upstream serving a small page and a 100 MB file; in front of it
# sidemeter (http mode, and tcp mode), nginx's stream proxy (2 workers) and HAProxy in HTTP
# mode (2 threads).  wrk runs against each in turn, the order rotated every round, for
# BENCH_REPS rounds (default 4) of BENCH_SECS seconds (default 3) per run; the report gives
# medians and the ratios of issue 6, with p50/p99 latency, the CPU each forwarder used per
# request (its process group, from /proc), the whole machine's CPU, and memory (PSS).
# Results: build/bench/results.{tsv,md,svg}.  Needs nginx, libnginx-mod-stream, haproxy,
# wrk, python3.  Not run in CI: the machine is shared and noisy; read medians, not runs.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)/build/bench
secs=${BENCH_SECS:-3}
reps=${BENCH_REPS:-4}
mkdir -p "$out"
for t in nginx haproxy wrk python3; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing (Debian: see t/debian-packages)" >&2; exit 2; }
done
[[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] ||
	{ echo "bench: libnginx-mod-stream is missing" >&2; exit 2; }

lab=$(mktemp -d /tmp/sidemeter-bench.XXXXXX)
chmod 755 "$lab"
groups=()
cleanup() {
	local g
	for g in "${groups[@]}"; do kill -- "-$g" 2>/dev/null; done
	sleep 0.5
	for g in "${groups[@]}"; do kill -9 -- "-$g" 2>/dev/null; done
	rm -rf "$lab"
}
trap cleanup EXIT

read -r UP SMH SMT NGS HAP MET1 MET2 <<<"$(python3 -c 'import socket
s = [socket.socket() for _ in range(7)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')"

mkdir -p "$lab/www"
python3 -c "open('$lab/www/index.html','w').write('<!doctype html><html><head><title>demo</title></head><body>'+'x'*420+'</body></html>\n')"
head -c 104857600 /dev/zero >"$lab/www/big.bin"
cat >"$lab/up.conf" <<EOF
user root;
worker_processes 1; daemon off; pid $lab/up.pid; error_log $lab/up.err warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; keepalive_requests 100000000;
  server { listen 127.0.0.1:$UP backlog=4096; root $lab/www; } }
EOF
cat >"$lab/ngs.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2; daemon off; pid $lab/ngs.pid; error_log $lab/ngs.err warn;
events { worker_connections 4096; }
stream { server { listen 127.0.0.1:$NGS backlog=4096; proxy_pass 127.0.0.1:$UP; } }
EOF
cat >"$lab/hap.cfg" <<EOF
global
  nbthread 2
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$HAP
  default_backend b
backend b
  server s1 127.0.0.1:$UP
EOF

# start NAME CMD...: a server as the leader of its own process group (its CPU and memory
# are summed over the group)
declare -A group
start() {
	local name=$1
	shift
	setsid "$@" >"$lab/$name.log" 2>&1 &
	group[$name]=$!
	groups+=($!)
}
start upstream nginx -c "$lab/up.conf"
start nginx-stream nginx -c "$lab/ngs.conf"
start haproxy-http haproxy -f "$lab/hap.cfg" -db
start sidemeter "$bin" --listen "127.0.0.1:$SMH" --upstream "127.0.0.1:$UP" \
	--metrics "127.0.0.1:$MET1" --workers 4 --dump-interval 0
start sidemeter-tcp "$bin" --listen "127.0.0.1:$SMT" --upstream "127.0.0.1:$UP" \
	--metrics "127.0.0.1:$MET2" --workers 4 --dump-interval 0 --mode tcp
declare -A port=([direct]=$UP [nginx-stream]=$NGS [haproxy-http]=$HAP [sidemeter]=$SMH
	[sidemeter-tcp]=$SMT)
for _ in $(seq 50); do
	ok=1
	for p in "${port[@]}"; do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/index.html" || ok=0; done
	((ok)) && break
	sleep 0.2
done
((ok)) || { echo "bench: a server did not come up" >&2; tail -3 "$lab"/*.log >&2; exit 3; }

# usage GROUP: "user-ticks system-ticks context-switches" of a process group. Times include
# children already reaped (cutime, cstime), so a worker that retires mid-run keeps its
# share; switches, voluntary and not (a blocking worker sleeps in each read it waits on),
# are summed over every live thread, HAProxy's too.
usage() {
	[[ $1 == 0 ]] && { echo 0 0 0; return; }
	awk -v g="$1" '
		FILENAME ~ /\/stat$/ {
			split(FILENAME, path, "/")
			sub(/^.*\) /, "")
			if ($3 == g) { member[path[3]] = 1; u += $12 + $14; s += $13 + $15 }
			next
		}
		/ctxt_switches:/ { split(FILENAME, path, "/"); if (path[3] in member) c += $2 }
		END { print u + 0, s + 0, c + 0 }' /proc/[0-9]*/stat /proc/[0-9]*/task/[0-9]*/status 2>/dev/null
}
# machine: busy and total jiffies of the whole machine
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
# pss GROUP: proportional set size (KiB) summed over a group, a tab, and how many processes
pss() {
	local t=0 n=0 f
	for f in /proc/[0-9]*/stat; do
		[[ $(awk '{ sub(/^.*\) /, ""); print $3 }' "$f" 2>/dev/null) == "$1" ]] || continue
		t=$((t + $(awk '/^Pss:/ { print $2 }' "${f%stat}smaps_rollup" 2>/dev/null || echo 0)))
		n=$((n + 1))
	done
	printf '%s\t%s\n' "$t" "$n"
}

# scenario: name, wrk connections, path, extra header, servers
scenarios=(
	"keepalive-c1|1|/index.html||direct nginx-stream haproxy-http sidemeter sidemeter-tcp"
	"keepalive-c4|4|/index.html||direct nginx-stream haproxy-http sidemeter sidemeter-tcp"
	"close-c4|4|/index.html|Connection: close|direct nginx-stream haproxy-http sidemeter"
	"100MB-c1|1|/big.bin||direct nginx-stream haproxy-http sidemeter"
)
tsv=$out/results.tsv
printf 'round\tscenario\tserver\trps\tmib_s\tp50_us\tp99_us\tcpu_ns_per_req\tuser_ns_per_req\tswitches_per_req\tmachine_busy_pct\terrors\n' >"$tsv"
echo "bench: $reps rounds of ${secs}s runs; results in $out"
for ((r = 1; r <= reps; r++)); do
	for sc in "${scenarios[@]}"; do
		IFS='|' read -r name conns path header servers <<<"$sc"
		read -ra list <<<"$servers"
		# rotate the order each round, so that no server always runs first or last
		for ((k = 0; k < ${#list[@]}; k++)); do
			srv=${list[$(((k + r) % ${#list[@]}))]}
			g=0
			[[ $srv != direct ]] && g=${group[$srv]}
			hdr=()
			[[ -n $header ]] && hdr=(-H "$header")
			read -r u0 s0 c0 <<<"$(usage "$g")"
			read -r b0 a0 <<<"$(machine)"
			res=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "${hdr[@]}" \
				"http://127.0.0.1:${port[$srv]}$path" 2>&1)
			read -r b1 a1 <<<"$(machine)"
			read -r u1 s1 c1 <<<"$(usage "$g")"
			python3 - "$r" "$name" "$srv" "$u0 $s0 $c0" "$u1 $s1 $c1" "$b0" "$a0" "$b1" "$a1" <<EOF >>"$tsv"
import re, sys
r, name, srv, use0, use1, b0, a0, b1, a1 = sys.argv[1:]
out = """$res"""
def num(pat, default=0.0):
    m = re.search(pat, out)
    return m.group(1) if m else default
def us(v):
    m = re.match(r'([\d.]+)(us|ms|s)', str(v))
    if not m:
        return 0.0
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
def mib(v):
    m = re.match(r'([\d.]+)([KMG]?B)', str(v))
    if not m:
        return 0.0
    return float(m.group(1)) * {"B": 1 / 1048576, "KB": 1 / 1024, "MB": 1, "GB": 1024}[m.group(2)]
reqs = int(num(r'(\d+) requests in', 0))
secs = float(num(r'requests in ([\d.]+)s', 1))
user, system, switches = (int(b) - int(a) for a, b in zip(use0.split(), use1.split()))
per = lambda v: v / reqs if reqs else 0
cpu, user_ns = per((user + system) * 1e7), per(user * 1e7)     # ticks are 10 ms
busy = 100.0 * (float(b1) - float(b0)) / max(1.0, float(a1) - float(a0))
errors = sum(int(x) for x in re.findall(r'(?:connect|read|write|timeout) (\d+)', out))
errors += int(num(r'Non-2xx or 3xx responses: (\d+)', 0))
print("\t".join(str(x) for x in (r, name, srv, round(reqs / secs), round(mib(num(r'Transfer/sec:\s+(\S+)', '0B')), 1),
      us(num(r'(?m)^\s+50%\s+(\S+)')), us(num(r'(?m)^\s+99%\s+(\S+)')), round(cpu), round(user_ns),
      round(per(switches), 2), round(busy), errors)))
EOF
			tail -1 "$tsv" | awk -F'\t' '{ printf "  round %s %-13s %-14s %8s rps %8s MiB/s  p50 %sus p99 %sus  cpu %s ns/req (user %s)  switches %s/req  machine %s%%\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }'
		done
	done
done
{
	for s in nginx-stream haproxy-http sidemeter; do
		printf '%s\t%s\n' "$s" "$(pss "${group[$s]}")"
	done
} >"$out/memory.tsv"
python3 "$here/report.py" "$tsv" "$out/memory.tsv" "$out/results.md" "$out/results.svg" "$secs" "$reps"
cat "$out/results.md"
