#!/usr/bin/env bash
# bench/soak.sh BIN: ten minutes (SOAK_SECS) of mixed load through sidemeter on loopback,
# then the memory of the master and of the workers at the start and at the end.  Not run
# in CI.  Load: keep-alive (wrk), a new connection per request (ab), 404s, 10 MB
# downloads, and a HUP every 30 s.  Needs nginx, wrk, ab, python3, curl.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
secs=${SOAK_SECS:-600}
lab=$(mktemp -d /tmp/sidemeter-soak.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$lab"
}
trap cleanup EXIT
read -r UP SM MET <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')"

mkdir -p "$lab/www"
printf '<!doctype html><p>%0500d</p>\n' 0 >"$lab/www/index.html"
head -c 10485760 /dev/urandom >"$lab/www/big.bin"
cat >"$lab/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid $lab/nginx.pid;
error_log $lab/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$UP backlog=4096; root $lab/www; } }
CONF
nginx -c "$lab/nginx.conf" & pids+=($!)
"$bin" --listen "127.0.0.1:$SM" --upstream "127.0.0.1:$UP" --metrics "127.0.0.1:$MET" \
	--workers 4 --dump-interval 60 >"$lab/sm.out" 2>"$lab/sm.err" & pids+=($!)
master=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$SM/" && break; sleep 0.1; done

# memory: RSS and PSS (KiB) of the master and of all workers together
mem() {
	local w rss=0 pss=0
	for w in $(ps -o pid= --ppid "$master"); do
		rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$w/status" 2>/dev/null || echo 0)))
		pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$w/smaps_rollup" 2>/dev/null || echo 0)))
	done
	printf 'master rss=%sKiB pss=%sKiB; %s workers rss=%sKiB pss=%sKiB\n' \
		"$(awk '/^VmRSS/ {print $2}' "/proc/$master/status")" \
		"$(awk '/^Pss:/ {print $2}' "/proc/$master/smaps_rollup")" \
		"$(ps -o pid= --ppid "$master" | wc -l)" "$rss" "$pss"
}

# warm up so that "start" means "in service", not "just forked"
wrk -t1 -c4 -d5s "http://127.0.0.1:$SM/index.html" >/dev/null
echo "start: $(mem)"
end=$((SECONDS + secs))
wrk -t1 -c8 -d"${secs}s" "http://127.0.0.1:$SM/index.html" >"$lab/wrk.out" & pids+=($!)
(while ((SECONDS < end)); do ab -q -n 2000 -c 4 "http://127.0.0.1:$SM/index.html" >/dev/null 2>&1; done) & pids+=($!)
(while ((SECONDS < end)); do curl -s -o /dev/null "http://127.0.0.1:$SM/missing/$RANDOM"; \
	curl -s -o /dev/null "http://127.0.0.1:$SM/big.bin"; sleep 0.2; done) & pids+=($!)
(while ((SECONDS < end)); do sleep 30; kill -HUP "$master"; done) & pids+=($!)
while ((SECONDS < end)); do
	sleep $((end - SECONDS < 60 ? end - SECONDS : 60))
	echo "$(date -u +%H:%M:%S) $(mem)"
done
sleep 2
echo "end:   $(mem)"
grep -E 'requests in|Socket errors' "$lab/wrk.out"
curl -s "http://127.0.0.1:$MET/metrics" | grep -E '^sidemeter_(connections_total|worker_restarts_total|ring_dropped)' | grep -v ' 0$'
grep -c 'rotating workers' "$lab/sm.err" | sed 's/^/HUPs: /'
grep -E 'warning|fatal' "$lab/sm.err" | grep -v 'rotating' | sort | uniq -c | head
