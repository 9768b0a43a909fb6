#!/usr/bin/env bash
# bench/bench.sh BIN: sidemeter beside its peers, measured side by side in one run.
#
# On loopback: an nginx upstream serving a small page and a 100 MB file; in front of it
# sidemeter (http mode, and tcp mode), nginx's stream proxy (2 workers), HAProxy in HTTP
# mode (2 threads), Caddy's reverse_proxy with its Prometheus metrics on, and the previous
# build of sidemeter (BENCH_BASELINE, a git revision, default HEAD~1; "none" to skip).  wrk
# runs against each in turn, the order rotated every round, for BENCH_REPS rounds (default
# 4) of BENCH_SECS seconds (default 3) per run.  The idle-crowd scenario holds BENCH_CROWD
# (5000) idle keep-alive connections to a forwarder while wrk loads it on 4 more, and
# weighs its memory with and without them; a control holds the same crowd on the upstream
# itself (what the application's holding them costs).  The report gives medians and the ratios of
# issues 6 and 11, with p50/p99 latency, the CPU each forwarder used per request (its
# process group, from /proc), the whole machine's CPU, and memory (PSS).
# Results: build/bench/results.{tsv,md,svg}.  Needs nginx, libnginx-mod-stream, haproxy,
# caddy, wrk, python3 (and git for the baseline).  Not run in CI: the machine is shared and
# noisy; read medians, not runs.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)/build/bench
secs=${BENCH_SECS:-3}
reps=${BENCH_REPS:-4}
crowd=${BENCH_CROWD:-5000}
baseline=${BENCH_BASELINE:-HEAD~1}
mkdir -p "$out"
for t in nginx haproxy caddy wrk python3; do
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

read -r UP SMH SMT NGS HAP MET1 MET2 CAD CADM SMP MET3 SMO MET4 SML MET5 <<<"$(python3 -c 'import socket
s = [socket.socket() for _ in range(15)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')"

mkdir -p "$lab/www"
python3 -c "open('$lab/www/index.html','w').write('<!doctype html><html><head><title>demo</title></head><body>'+'x'*420+'</body></html>\n')"
head -c 104857600 /dev/zero >"$lab/www/big.bin"
cat >"$lab/up.conf" <<EOF
user root;
worker_processes 1; daemon off; pid $lab/up.pid; error_log $lab/up.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http { access_log off; sendfile on; keepalive_requests 100000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$UP backlog=4096; root $lab/www; } }
EOF
cat >"$lab/ngs.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2; daemon off; pid $lab/ngs.pid; error_log $lab/ngs.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
stream { server { listen 127.0.0.1:$NGS backlog=4096; proxy_pass 127.0.0.1:$UP; } }
EOF
cat >"$lab/hap.cfg" <<EOF
global
  nbthread 2
  maxconn 8000
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

cat >"$lab/Caddyfile" <<EOF
{
	admin 127.0.0.1:$CADM
	servers {
		metrics
	}
}
http://127.0.0.1:$CAD {
	reverse_proxy 127.0.0.1:$UP
}
EOF

# the previous build, from a plain export of that revision, built as a pod would
prev=
if [[ $baseline != none ]] && git -C "$here/.." rev-parse --verify -q "$baseline^{commit}" >/dev/null; then
	mkdir -p "$lab/prev"
	git -C "$here/.." archive "$baseline" | tar -x -C "$lab/prev"
	if make -s -C "$lab/prev" >"$lab/prev-build.log" 2>&1; then
		prev=$lab/prev/sidemeter
		echo "bench: the baseline is $(git -C "$here/.." rev-parse --short "$baseline") ($baseline)"
	else
		echo "bench: the baseline $baseline did not build: left out" >&2
	fi
fi

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
# both sets of names, and (with the traced scenarios' traceparent) exemplars
start sidemeter-otel "$bin" --listen "127.0.0.1:$SMO" --upstream "127.0.0.1:$UP" \
	--metrics "127.0.0.1:$MET4" --workers 4 --dump-interval 0 --metric-names both
# the access log on, to a file
start sidemeter-log "$bin" --listen "127.0.0.1:$SML" --upstream "127.0.0.1:$UP" \
	--metrics "127.0.0.1:$MET5" --workers 4 --dump-interval 0 --access-log "$lab/access.log"
start caddy caddy run --config "$lab/Caddyfile" --adapter caddyfile
declare -A port=([direct]=$UP [nginx-stream]=$NGS [haproxy-http]=$HAP [sidemeter]=$SMH
	[sidemeter-tcp]=$SMT [caddy]=$CAD [sidemeter-otel]=$SMO [sidemeter-log]=$SML)
declare -A metrics_port=([sidemeter]=$MET1 [sidemeter-otel]=$MET4)
others="caddy"
if [[ -n $prev ]]; then
	start sidemeter-prev "$prev" --listen "127.0.0.1:$SMP" --upstream "127.0.0.1:$UP" \
		--metrics "127.0.0.1:$MET3" --workers 4 --dump-interval 0
	port[sidemeter-prev]=$SMP
	metrics_port[sidemeter-prev]=$MET3
	others+=" sidemeter-prev"
fi
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
	# getline, not awk's own file list: a process that ends between the glob and the read
	# is skipped, where mawk would stop at its missing file
	awk -v g="$1" 'BEGIN {
		for (i = 1; i < ARGC; i++) {
			f = ARGV[i]
			split(f, path, "/")
			if (f ~ /\/stat$/) {
				if ((getline line < f) > 0) {
					sub(/^.*\) /, "", line)
					split(line, a, " ")
					if (a[3] == g) { member[path[3]] = 1; u += a[12] + a[14]; s += a[13] + a[15] }
				}
			} else if (path[3] in member) {
				while ((getline line < f) > 0)
					if (line ~ /ctxt_switches:/) { split(line, a, " "); c += a[2] }
			}
			close(f)
		}
		print u + 0, s + 0, c + 0
	}' /proc/[0-9]*/stat /proc/[0-9]*/task/[0-9]*/status 2>/dev/null
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
# (crowd: the same wrk load while $crowd idle keep-alive connections are held through the
# forwarder; crowd-app, the control: the same crowd held by the application itself, on
# its own port, while wrk loads the forwarder: what the application's holding them costs
# the forwarder's clients, which any forwarder that keeps a connection to the application
# per client connection passes on)
scenarios=(
	"keepalive-c1|1|/index.html||direct nginx-stream haproxy-http sidemeter sidemeter-tcp sidemeter-log $others"
	"keepalive-c4|4|/index.html||direct nginx-stream haproxy-http sidemeter sidemeter-tcp sidemeter-log $others"
	"close-c4|4|/index.html|Connection: close|direct nginx-stream haproxy-http sidemeter $others"
	"100MB-c1|1|/big.bin||direct nginx-stream haproxy-http sidemeter caddy"
	"crowd-c4|4|/index.html||nginx-stream haproxy-http sidemeter caddy"
	"crowd-app-c4|4|/index.html||nginx-stream sidemeter"
	"traced-c1|1|/index.html|traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01|sidemeter-otel"
	"traced-c4|4|/index.html|traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01|sidemeter-otel"
)
printf 'round\tserver\tpss_kib_before\tpss_kib_held\tidle_conns\n' >"$out/crowd.tsv"
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
			cpid=
			if [[ $name == crowd-* ]]; then
				# hold the crowd, weigh the forwarder with and without it
				rm -f "$lab/ready"
				before=$(pss "$g" | cut -f1)
				cport=${port[$srv]}
				[[ $name == crowd-app-* ]] && cport=${port[direct]}
				CROWD_READY=$lab/ready python3 "$here/../t/lib/crowd.py" hold "$cport" \
					"$crowd" 600 /index.html >"$lab/crowd.out" 2>&1 &
				cpid=$!
				for _ in $(seq 600); do [[ -f $lab/ready ]] && break; sleep 0.1; done
				sleep 1
				held=$(pss "$g" | cut -f1)
				[[ $name == crowd-c4 ]] &&
					printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$srv" "$before" "$held" "$crowd" >>"$out/crowd.tsv"
			fi
			read -r u0 s0 c0 <<<"$(usage "$g")"
			read -r b0 a0 <<<"$(machine)"
			res=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "${hdr[@]}" \
				"http://127.0.0.1:${port[$srv]}$path" 2>&1)
			read -r b1 a1 <<<"$(machine)"
			read -r u1 s1 c1 <<<"$(usage "$g")"
			# the access log's file is emptied after each run: hundreds of MB written back
			# to disk would weigh on the runs after it
			[[ $srv == sidemeter-log ]] && : >"$lab/access.log"
			if [[ -n $cpid ]]; then
				kill -TERM "$cpid" 2>/dev/null
				wait "$cpid" 2>/dev/null
				sleep 1	# the forwarder lets the crowd go before the next run
			fi
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
# /metrics at 100 routes: its size and render time, for each build and format (the median
# of 20 scrapes, curl's time to the last byte on loopback)
for srv in "${!metrics_port[@]}"; do
	for r in $(python3 -c 'import itertools, string
print(" ".join("".join(p) for p in itertools.islice(itertools.product(string.ascii_lowercase, repeat=2), 100)))'); do
		curl -s -o /dev/null "http://127.0.0.1:${port[$srv]}/route/$r"
	done
done
sleep 0.5
printf 'server\tformat\tbytes\tmedian_ms\n' >"$out/render.tsv"
for srv in "${!metrics_port[@]}"; do
	for fmt in text openmetrics; do
		accept=text/plain
		[[ $fmt == openmetrics ]] && accept='application/openmetrics-text;version=1.0.0'
		for _ in $(seq 20); do
			curl -s -o /dev/null -H "Accept: $accept" -w '%{size_download} %{time_total}\n' \
				"http://127.0.0.1:${metrics_port[$srv]}/metrics"
		done | sort -k2 -n | awk -v s="$srv" -v f="$fmt" 'NR == 10 { printf "%s\t%s\t%d\t%.3f\n", s, f, $1, $2 * 1000 }' \
			>>"$out/render.tsv"
	done
done
{
	for s in nginx-stream haproxy-http sidemeter caddy; do
		printf '%s\t%s\n' "$s" "$(pss "${group[$s]}")"
	done
} >"$out/memory.tsv"
python3 "$here/report.py" "$tsv" "$out/memory.tsv" "$out/results.md" "$out/results.svg" "$secs" "$reps" \
	"$out/crowd.tsv" "$out/render.tsv"
cat "$out/results.md"
