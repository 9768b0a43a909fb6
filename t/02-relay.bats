#!/usr/bin/env bats
# Every byte gets through, unchanged, both ways, one connection or many at once.

load helpers

sha() { sha256sum "$1" | cut -d' ' -f1; }

setup() {
	common_setup
	head -c 5242880 /dev/urandom >"$BATS_TEST_TMPDIR/random.bin"
	head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/one.bin"
	start_app "$BATS_TEST_TMPDIR"
}

@test "a 5 MB random download arrives identical, in tcp and http mode" {
	for mode in tcp http; do
		start_sm --mode "$mode"
		curl -sS -o "$BATS_TEST_TMPDIR/got.bin" "http://127.0.0.1:$SM_PORT/random.bin"
		expect_eq "sha256 through sidemeter ($mode)" "$(sha "$BATS_TEST_TMPDIR/random.bin")" \
			"$(sha "$BATS_TEST_TMPDIR/got.bin")"
		stop_pid "$sm_pid"
	done
}

@test "a 5 MB random upload arrives identical" {
	start_sm
	run curl -sS --data-binary "@$BATS_TEST_TMPDIR/random.bin" "http://127.0.0.1:$SM_PORT/sha256"
	assert_success
	assert_output "$(sha "$BATS_TEST_TMPDIR/random.bin") 5242880"
	# chunked too
	run curl -sS -H 'Transfer-Encoding: chunked' --data-binary "@$BATS_TEST_TMPDIR/random.bin" \
		"http://127.0.0.1:$SM_PORT/sha256"
	assert_success
	assert_output "$(sha "$BATS_TEST_TMPDIR/random.bin") 5242880"
}

@test "200 sequential connections, each answer identical" {
	start_sm --workers 2
	local want i bad=0
	want=$(sha "$BATS_TEST_TMPDIR/one.bin")
	for ((i = 0; i < 200; i++)); do
		curl -sS -o "$BATS_TEST_TMPDIR/got.bin" "http://127.0.0.1:$SM_PORT/one.bin" || bad=$((bad + 1))
		[[ $(sha "$BATS_TEST_TMPDIR/got.bin") == "$want" ]] || bad=$((bad + 1))
	done
	expect_eq "bad answers of 200" 0 "$bad"
	sm_dump
	expect_eq "connections counted" 200 "$(dump_total conns)"
}

@test "32 concurrent connections, each answer identical" {
	start_sm --workers 34
	local want
	want=$(sha "$BATS_TEST_TMPDIR/one.bin")
	seq 32 | xargs -P 32 -I{} sh -c \
		'curl -sS -o "$0/c{}.bin" "http://127.0.0.1:$1/one.bin?n={}"' "$BATS_TEST_TMPDIR" "$SM_PORT"
	local i bad=0
	for ((i = 1; i <= 32; i++)); do
		[[ $(sha "$BATS_TEST_TMPDIR/c$i.bin") == "$want" ]] || bad=$((bad + 1))
	done
	expect_eq "bad answers of 32" 0 "$bad"
	sm_dump
	expect_eq "connections counted" 32 "$(dump_total conns)"
}

@test "half-close: a client that shuts down its write side still gets the whole answer" {
	stop_pid "$app_pid"
	# the answer (2 MB) is larger than the socket buffers, so it is still flowing after the
	# client's FIN has gone through to the application
	spawn app "$PY" "$ROOT/t/upstreams/halfclose.py" "$UP_PORT" 2097152
	wait_port "$UP_PORT" "$app_pid"
	start_sm --mode tcp
	run "$PY" - "$SM_PORT" "$BATS_TEST_TMPDIR/random.bin" <<'EOF'
import hashlib, socket, sys
data = open(sys.argv[2], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
head, _, rest = bytes(got).partition(b"\n")
want = b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())
print("ok" if head == want and rest == b"f" * 2097152 else "bad: %r %d" % (head, len(rest)))
EOF
	assert_success
	assert_output "ok"
	scrape
	expect_eq "connections that ended with the client's close" 1 \
		"$(metric 'sidemeter_connections_total{reason="client_closed"}')"
	expect_eq "connections in all" 1 "$(metric_sum sidemeter_connections_total)"
}
