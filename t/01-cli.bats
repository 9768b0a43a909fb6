#!/usr/bin/env bats
# The command line: --help, --version, --check, the environment, and every bad value.

load helpers

@test "--version prints the version" {
	run "$SM_BIN" --version
	assert_success
	assert_output "sidemeter $(cat "$ROOT/VERSION")"
}

@test "--help lists every option with its environment variable" {
	run "$SM_BIN" --help
	assert_success
	for opt in listen upstream workers max-workers metrics dump-interval dump-format mode \
		connect-timeout idle-timeout drain-timeout metric-names label check version help; do
		assert_output --partial -- "--$opt"
	done
	assert_output --partial "SIDEMETER_DUMP_INTERVAL"
	assert_output --partial "SIDEMETER_LABELS"
}

@test "--check prints the effective configuration and exits 0" {
	run "$SM_BIN" --check --workers 3 --upstream localhost:9999
	assert_success
	assert_line --regexp '^workers += 3  \(flag\)$'
	assert_line --regexp '^upstream += localhost:9999  \(flag\)$'
	assert_line --regexp '^listen += 0\.0\.0\.0:8080  \(default\)$'
}

@test "every option comes from the environment, and a flag wins over it" {
	SIDEMETER_WORKERS=7 SIDEMETER_DUMP_FORMAT=json SIDEMETER_IDLE_TIMEOUT=1.5 \
		run "$SM_BIN" --check
	assert_success
	assert_line --regexp '^workers += 7  \(env\)$'
	assert_line --regexp '^dump-format += json  \(env\)$'
	assert_line --regexp '^idle-timeout += 1500ms  \(env\)$'
	SIDEMETER_WORKERS=7 run "$SM_BIN" --check --workers 2
	assert_success
	assert_line --regexp '^workers += 2  \(flag\)$'
	# a bad value in the environment is ignored when a flag overrides it
	SIDEMETER_WORKERS=nope run "$SM_BIN" --check --workers 2
	assert_success
}

# bad_value EXPECTED-MESSAGE ARGS...: exit 2, one line on stderr that names the problem, no
# output on stdout, and nothing bound.
bad_value() {
	local want=$1
	shift
	run --separate-stderr "$SM_BIN" --listen "127.0.0.1:$SM_PORT" "$@"
	expect_eq "exit status for $*" 2 "$status"
	expect_eq "stdout for $*" "" "$output"
	expect_eq "stderr lines for $*" 1 "$(printf '%s\n' "$stderr" | wc -l)"
	[[ $stderr == *"$want"* ]] || { echo "stderr for $*: expected *$want*, got: $stderr" >&2; return 1; }
	expect_closed "listen port after a bad $*" "$SM_PORT"
}

@test "bad flags and values: one line naming the problem, exit 2" {
	bad_value "--listen: port 70000 is out of range (1-65535)" --listen 127.0.0.1:70000
	bad_value "--workers: 0 is out of range (1-512)" --workers 0
	bad_value "--upstream: cannot resolve 'no-such-host.invalid'" --upstream no-such-host.invalid:8087
	bad_value "--dump-interval: '-1' is not a duration" --dump-interval -1
	bad_value "--workers: '4x' is not a whole number" --workers 4x
	bad_value "--connect-timeout: '5s5' is not a duration" --connect-timeout 5s5
	bad_value "--upstream: port 'http' is not a number" --upstream 127.0.0.1:http
	bad_value "--upstream: '127.0.0.1' has no :PORT" --upstream 127.0.0.1
	bad_value "unknown option '--frobnicate'" --frobnicate
	bad_value "--workers needs a value (N)" --workers
	bad_value "--mode: 'udp' is not http or tcp" --mode udp
	bad_value "--dump-format: 'xml' is not text or json" --dump-format xml
	bad_value "--connect-timeout: 0 is out of range" --connect-timeout 0
	bad_value "--max-workers 2 is below --workers 4" --workers 4 --max-workers 2
	bad_value "--buckets: bounds must increase" --buckets 0.5,0.1
	bad_value "--buckets: '0.1,,2' is not a list" --buckets 0.1,,2
	bad_value "--route: '/a/*/b': * may only stand as the last segment" --route '/a/*/b'
	bad_value "unexpected argument 'extra'" extra
	bad_value "--version takes no value" --version=1
	bad_value "--metrics and --listen are the same address" --metrics "127.0.0.1:$SM_PORT"
	bad_value "--metric-names: 'prom' is not sidemeter, otel or both" --metric-names prom
	bad_value "--label: 'pod' is not NAME=VALUE" --label pod
	bad_value "--label: '=x' is not NAME=VALUE" --label =x
	bad_value "--label: '9pod' is not a label name" --label 9pod=a
	bad_value "--label: 'a-b' is not a label name" --label a-b=c
	bad_value "--label: '__name__' is not a label name" --label __name__=x
	bad_value "--label: the value of label 'pod' must be at most 256 bytes of printable UTF-8" \
		--label "pod=$(printf 'a\tb')"
	bad_value "--label: the value of label 'pod' must be at most 256 bytes of printable UTF-8" \
		--label "pod=$(printf '\xff\xfe')"
	bad_value "--label: the value of label 'pod' must be at most 256 bytes of printable UTF-8" \
		--label "pod=$(printf 'x%.0s' $(seq 257))"
	bad_value "--label: label 'pod' is given twice" --label pod=a --label pod=b
	bad_value "--access-log-format: 'xml' is not json or combined" --access-log-format xml
	bad_value "--access-log-filter: 'status=6xx': status classes are 1xx to 5xx" --access-log-filter status=6xx
	bad_value "--access-log-filter: 'sample=0' needs a whole number from 1" --access-log-filter sample=0
	bad_value "--access-log-filter: 'min_ms=soon' needs a whole number" --access-log-filter min_ms=soon
	bad_value "--access-log-filter: 'level=error' is not status=, min_ms= or sample=" --access-log-filter level=error
	bad_value "--label: more than 16 labels" $(for i in $(seq 17); do echo --label "l$i=v"; done)
}

@test "--label and SIDEMETER_LABELS: validated, listed by --check; a flag replaces the variable" {
	SIDEMETER_LABELS="pod=web-1,namespace=shop,app_version=1.2.3" run "$SM_BIN" --check
	assert_success
	assert_line --regexp '^label += pod=web-1,namespace=shop,app_version=1\.2\.3  \(env\)$'
	SIDEMETER_LABELS="pod=web-1" run "$SM_BIN" --check --label node=n1 --label zone=été
	assert_success
	assert_line --regexp '^label += node=n1,zone=été  \(flag\)$'
	SIDEMETER_LABELS="pod=a,pod=b" run --separate-stderr "$SM_BIN" --check
	assert_failure 2
	expect_eq stderr "sidemeter: SIDEMETER_LABELS: label 'pod' is given twice" "$stderr"
	# one variable per label, as the Downward API fills them; with the list, both count
	SIDEMETER_LABEL_zone=eu-1 SIDEMETER_LABELS=pod=a run "$SM_BIN" --check
	assert_success
	assert_line --regexp '^label += zone=eu-1,pod=a  \(env\)$'
	SIDEMETER_LABEL_9x=1 run --separate-stderr "$SM_BIN" --check
	assert_failure 2
	[[ $stderr == "sidemeter: SIDEMETER_LABEL_9x: '9x' is not a label name"* ]] || { echo "$stderr"; return 1; }
	SIDEMETER_LABEL_pod=b SIDEMETER_LABELS=pod=a run --separate-stderr "$SM_BIN" --check
	assert_failure 2
	expect_eq stderr "sidemeter: SIDEMETER_LABELS: label 'pod' is given twice" "$stderr"
	# an empty value (a Downward API field left empty) is no label, not an error
	run "$SM_BIN" --check --label pod= --label node=n1
	assert_success
	assert_line --regexp '^label += node=n1  \(flag\)$'
	SIDEMETER_METRIC_NAMES=both run "$SM_BIN" --check
	assert_line --regexp '^metric-names += both  \(env\)$'
}

@test "an access log that cannot be opened: a clear error, exit 1" {
	run --separate-stderr "$SM_BIN" --listen "127.0.0.1:$SM_PORT" --metrics off \
		--access-log /nonexistent/dir/access.log
	assert_failure 1
	[[ $stderr == *"--access-log /nonexistent/dir/access.log: No such file or directory"* ]] ||
		{ echo "$stderr"; return 1; }
}

@test "a bad value in the environment names the variable" {
	SIDEMETER_WORKERS=abc run --separate-stderr "$SM_BIN" --check
	assert_failure 2
	expect_eq stderr "sidemeter: SIDEMETER_WORKERS: 'abc' is not a whole number" "$stderr"
}

@test "a listen port in use: a clear error and a non-zero exit" {
	spawn holder "$PY" -c "import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $SM_PORT)); s.listen(1); time.sleep(30)"
	wait_port "$SM_PORT" "$holder_pid"
	run --separate-stderr "$SM_BIN" --listen "127.0.0.1:$SM_PORT" --metrics off
	assert_failure 1
	[[ $stderr == *"bind 127.0.0.1:$SM_PORT: Address already in use"* ]]
}
