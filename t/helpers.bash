# t/helpers.bash: what every test file shares.  Real processes on loopback; every wait is
# bounded and notices a dead process; everything a test starts is stopped by its pid.

bats_require_minimum_version 1.5.0

load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
SM_BIN=${SM_BIN:-$ROOT/sidemeter}
PY=${PY:-python3}
# Debian's own Python, for what t/debian-packages installs for it (prometheus_client); the
# python3 on PATH may be another one
DEB_PY=/usr/bin/python3

# free_ports N: N distinct free loopback ports (all held at once while they are chosen).
free_ports() {
	"$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# spawn NAME CMD...: run CMD in the background, output in $BATS_TEST_TMPDIR/NAME.{out,err},
# without bats' fd 3 (a daemon holding it would keep bats waiting); sets NAME_pid.
spawn() {
	local name=$1
	shift
	"$@" >"$BATS_TEST_TMPDIR/$name.out" 2>"$BATS_TEST_TMPDIR/$name.err" 3>&- &
	printf -v "${name}_pid" %s "$!"
	echo "$! $name" >>"$BATS_TEST_TMPDIR/.pids"
}

# wait_until SECS CMD...: run CMD every 50 ms until it succeeds; fail after SECS.
wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 20; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "not within ${secs}s: $*" >&2
	return 1
}

# port_open PORT: something listens on PORT.  Read from the kernel's table rather than by
# connecting, so that no test connection is ever counted.
port_open() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" 'substr($2, length($2) - 4) == p && $4 == "0A" { f = 1 } END { exit !f }' \
		/proc/net/tcp /proc/net/tcp6
}

# wait_port PORT [PID] [SECS]: until PORT listens; fail early if PID dies.
wait_port() {
	local port=$1 pid=${2:-} secs=${3:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		port_open "$port" && return 0
		if [[ -n $pid ]] && ! alive "$pid"; then
			echo "process $pid ended before port $port opened" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "port $port did not open within ${secs}s" >&2
	return 1
}

# alive PID: PID runs (a zombie has ended: this machine's PID 1 may be slow to reap it).
alive() {
	local st
	st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z ]]
}

# wait_gone PID [SECS]: until PID has ended.
wait_gone() {
	local pid=$1 secs=${2:-10}
	wait_until "$secs" eval "! alive $pid"
}

# stop_pid PID [SECS]: TERM, then KILL if it is still there after SECS.
stop_pid() {
	local pid=$1 secs=${2:-10}
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	wait_gone "$pid" "$secs" 2>/dev/null && return 0
	kill -KILL "$pid" 2>/dev/null
	wait_gone "$pid" 2 2>/dev/null
}

# children PID: the pids of PID's children.
children() {
	ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

# worker_pids PID: the master PID's workers (its children but the keeper, which names
# itself sidemeter-keep).
worker_pids() {
	ps -o pid=,comm= --ppid "$1" 2>/dev/null | awk '$2 != "sidemeter-keep" { print $1 }'
}

# hold_syscall NAME PID CALL: strace, spawned as NAME, holds PID for 3 s on its way out of
# each CALL it makes: the call is done in the kernel (a descriptor it returned is PID's
# already) and PID has not seen its result.  A SIGKILL sent meanwhile ends PID when the hold
# ends, before it runs another instruction of its own.  Returns once strace is attached.
hold_syscall() {
	local name=$1 pid=$2 call=$3
	spawn "$name" strace -qq -p "$pid" -o "$BATS_TEST_TMPDIR/$name.trace" \
		-e trace="$call" -e inject="$call:delay_exit=3000000"
	wait_until 5 eval "awk '/^TracerPid:/ { exit \$2 == 0 }' /proc/$pid/status"
}

# wait_held NAME: until the strace spawned as NAME holds a call that succeeded (a descriptor
# or a length, not an error).
wait_held() {
	wait_until 10 grep -Eq '= [0-9]+ \(DELAYED\)$' "$BATS_TEST_TMPDIR/$1.trace"
}

# keeper_pid PID: the master PID's keeper, if one runs.
keeper_pid() {
	ps -o pid=,comm= --ppid "$1" 2>/dev/null | awk '$2 == "sidemeter-keep" { print $1 }'
}

# The load tools, bounded: a hang of ours must fail a test, not stall the suite.
ab() { timeout 120 ab "$@"; }
wrk() { timeout 120 wrk "$@"; }

# ---- the application and sidemeter -----------------------------------------------------

# start_app [ROOT]: the scripted application on $UP_PORT, serving files from ROOT.
start_app() {
	spawn app "$PY" "$ROOT/t/upstreams/app.py" "$UP_PORT" "${1:-$BATS_TEST_TMPDIR}"
	wait_port "$UP_PORT" "$app_pid"
}

# start_sm [ARGS...]: sidemeter on $SM_PORT in front of $UP_PORT, metrics on $MET_PORT, JSON
# dumps on request only.
start_sm() {
	spawn sm "$SM_BIN" --listen "127.0.0.1:$SM_PORT" --upstream "127.0.0.1:$UP_PORT" \
		--metrics "127.0.0.1:$MET_PORT" --dump-interval 3600 --dump-format json "$@"
	wait_port "$SM_PORT" "$sm_pid"
	sm_workers_ready "${SM_WORKERS_WANTED:-1}"
}

# scrape: fetch /metrics into $BATS_TEST_TMPDIR/metrics.txt.
scrape() {
	curl -sS --max-time 5 -o "$BATS_TEST_TMPDIR/metrics.txt" "http://127.0.0.1:$MET_PORT/metrics"
}

# metric SERIES: one series of the last scrape, written exactly as on the page
# (name{labels}), or "absent".
metric() {
	awk -v k="$1" '$1 == k { v = $2 } END { print v == "" ? "absent" : v }' \
		"$BATS_TEST_TMPDIR/metrics.txt"
}

# metric_sum NAME [LABEL=VALUE ...]: a family's series of the last scrape, added up.
metric_sum() {
	"$PY" "$ROOT/t/lib/prom.py" "$BATS_TEST_TMPDIR/metrics.txt" sum "$@"
}

# load_result FIELD: FIELD (answers, conn_errors) of what t/lib/load.py exact, spawned as
# "load", printed.
load_result() {
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$BATS_TEST_TMPDIR/load.out" "$1"
}

# sm_workers_ready N: until the master has at least N workers.
sm_workers_ready() {
	wait_until 10 eval "[ \$(worker_pids $sm_pid | wc -l) -ge $1 ]"
}

# signal_sm SIG TIMES SECS: send SIG to the master TIMES times, SECS apart (the first after
# SECS too), so that a load already started sees every one.
signal_sm() {
	local i
	for ((i = 0; i < $2; i++)); do
		sleep "$3"
		kill -"$1" "$sm_pid"
	done
}

# sm_dump: ask for a dump now and wait for its line.
sm_dump() {
	local before
	before=$(wc -l <"$BATS_TEST_TMPDIR/sm.out")
	kill -USR1 "$sm_pid"
	wait_until 5 eval "[ \$(wc -l < '$BATS_TEST_TMPDIR/sm.out') -gt $before ]"
}

# dump_total FIELD: FIELD summed over every JSON dump line so far (counters are per interval).
dump_total() {
	"$PY" -c '
import json, sys
total = 0
for line in open(sys.argv[1]):
    v = json.loads(line).get(sys.argv[2])
    total += v if isinstance(v, (int, float)) else 0
print(total)' "$BATS_TEST_TMPDIR/sm.out" "$1"
}

# dump_last FIELD: FIELD of the newest dump line.
dump_last() {
	"$PY" -c '
import json, sys
print(json.loads(open(sys.argv[1]).read().splitlines()[-1]).get(sys.argv[2]))' \
		"$BATS_TEST_TMPDIR/sm.out" "$1"
}

# start_nginx: nginx on $UP_PORT as the application, with an access log of its own
# ($NGINX_HTTP: more directives for its http block).  Its workers run as the test's user
# (root in CI) so that they can read the test's folder.
start_nginx() {
	local d=$BATS_TEST_TMPDIR/nginx
	mkdir -p "$d/www"
	printf '<!doctype html><title>t</title><p>%0400d</p>\n' 0 >"$d/www/index.html"
	printf 'small\n' >"$d/www/small.txt"
	cat >"$d/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
	log_format counted '\$request_method \$status \$uri';
	access_log $d/access.log counted;
	keepalive_requests 1000000;
	${NGINX_HTTP:-}
	server {
		listen 127.0.0.1:$UP_PORT;
		root $d/www;
		location = /teapot { return 418; }
	}
}
CONF
	spawn nginx nginx -c "$d/nginx.conf" -e "$d/error.log"
	wait_port "$UP_PORT" "$nginx_pid"
}

# json_field FILE KEY: KEY of the JSON object in FILE (one of t/lib/*.py's answers).
json_field() {
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# ---- assertions that say what was expected and what came ---------------------------------

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
	[[ "$2" == "$3" ]] && return 0
	printf '%s: expected [%s], got [%s]\n' "$1" "$2" "$3" >&2
	return 1
}

# expect_number WHAT OP BOUND ACTUAL WORDS: ACTUAL OP BOUND (<=, >=, >) as numbers, or say
# "WHAT: expected WORDS BOUND, got ACTUAL"; an ACTUAL that is no number fails.
expect_number() {
	"$PY" -c 'import operator, sys
op = {"<=": operator.le, ">=": operator.ge, ">": operator.gt}[sys.argv[1]]
sys.exit(0 if op(float(sys.argv[3]), float(sys.argv[2])) else 1)' "$2" "$3" "$4" 2>/dev/null && return 0
	printf '%s: expected %s %s, got %s\n' "$1" "$5" "$3" "$4" >&2
	return 1
}

# expect_le WHAT LIMIT ACTUAL, expect_ge WHAT MIN ACTUAL, expect_gt WHAT BOUND ACTUAL
expect_le() { expect_number "$1" "<=" "$2" "$3" "at most"; }
expect_ge() { expect_number "$1" ">=" "$2" "$3" "at least"; }
expect_gt() { expect_number "$1" ">" "$2" "$3" "more than"; }

# expect_ne WHAT UNEXPECTED ACTUAL
expect_ne() {
	[[ "$2" != "$3" ]] && return 0
	printf '%s: expected anything but [%s], got it\n' "$1" "$2" >&2
	return 1
}

# expect_gone WHAT PID: the process has ended.
expect_gone() {
	alive "$2" || return 0
	printf '%s: expected process %s to have ended, it runs\n' "$1" "$2" >&2
	return 1
}

# expect_absent WHAT TEXT FILE: FILE does not hold TEXT (a fixed string).
expect_absent() {
	grep -qF -- "$2" "$3" || return 0
	printf '%s: expected no [%s] in %s, found: %s\n' "$1" "$2" "$3" "$(grep -m1 -F -- "$2" "$3")" >&2
	return 1
}

# expect_closed WHAT PORT: nothing listens on PORT.
expect_closed() {
	port_open "$2" || return 0
	printf '%s: expected nothing to listen on port %s, something does\n' "$1" "$2" >&2
	return 1
}

# ---- set-up and tear-down ----------------------------------------------------------------

common_setup() {
	read -r SM_PORT UP_PORT MET_PORT <<<"$(free_ports 3)"
	export SM_PORT UP_PORT MET_PORT
	: >"$BATS_TEST_TMPDIR/.pids"
}

# Stop what the test started (newest first), then fail the test if a sidemeter log shows a
# sanitizer report or a fatal error it did not expect.
common_teardown() {
	local pid name kids f
	if [[ -f $BATS_TEST_TMPDIR/.pids ]]; then
		while read -r pid name; do
			kids=$(children "$pid")
			stop_pid "$pid" 10
			for k in $kids; do wait_gone "$k" 3 2>/dev/null || kill -KILL "$k" 2>/dev/null; done
		done < <(tac "$BATS_TEST_TMPDIR/.pids")
	fi
	# a network namespace a test made (its name in the test's folder)
	if [[ -f $BATS_TEST_TMPDIR/netns ]]; then
		f=$(cat "$BATS_TEST_TMPDIR/netns")
		ip link del "v$f" 2>/dev/null
		ip netns del "$f" 2>/dev/null
	fi
	# folders a test made outside its own
	if [[ -f $BATS_TEST_TMPDIR/.cleanup ]]; then
		while read -r f; do [[ $f == /tmp/sidemeter-* ]] && rm -rf "$f"; done <"$BATS_TEST_TMPDIR/.cleanup"
	fi
	local pat='AddressSanitizer|LeakSanitizer|runtime error:'
	[[ -n ${SM_EXPECT_FATAL:-} ]] || pat="$pat|fatal:"
	for f in "$BATS_TEST_TMPDIR"/sm*.err; do
		[[ -f $f ]] || continue
		if grep -E "$pat" "$f" >&2; then
			echo "sidemeter log $f shows an error (above)" >&2
			return 1
		fi
	done
}

setup() { common_setup; }
teardown() { common_teardown; }
