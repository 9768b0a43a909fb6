#!/usr/bin/env bats
# sidemeter's counts against a reference nobody here wrote: Node.js's own HTTP server
# (llhttp) as the application, seeded random sessions of valid, tricky HTTP/1.x, and smuggling-
# style inputs.  Counts per (method, code) must equal what node answered and what the clients
# parsed, and every byte must arrive unchanged both ways.

load helpers

DIFF_SEEDS=${DIFF_SEEDS:-10}
DIFF_SESSIONS=${DIFF_SESSIONS:-500}

@test "differential: $DIFF_SEEDS seeds x $DIFF_SESSIONS sessions agree with node and its clients, bytes unchanged" {
	start_sm --workers 4
	local seed
	scrape
	for ((seed = 1; seed <= DIFF_SEEDS; seed++)); do
		mv "$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/before.txt"
		timeout 120 node "$ROOT/t/lib/difftest.mjs" "$UP_PORT" "$SM_PORT" "$seed" "$DIFF_SESSIONS" \
			>"$BATS_TEST_TMPDIR/run-$seed.json"
		sleep 0.2	# the master drains the rings at least ten times a second
		scrape
		run "$PY" "$ROOT/t/lib/diffcheck.py" "$BATS_TEST_TMPDIR/before.txt" \
			"$BATS_TEST_TMPDIR/metrics.txt" "$BATS_TEST_TMPDIR/run-$seed.json"
		echo "# $output" >&3
		assert_success
	done
}

# What each smuggling-style input in t/lib/smuggle-cases.json must do: node's answers ("-":
# none, "200x20": twenty 200s), and what moved on sidemeter's page ("METHOD code" counted, or the connection made opaque, with the
# request cut short as opaque).  The bytes pass unchanged both ways in every case.
smuggle_expected() {
	cat <<'EOF'
the same Content-Length twice	400	{"POST 400": 1}
two different Content-Lengths	400	{"incomplete:opaque": 1, "opaque:bad_content_length": 1}
Content-Length as a list of different values	400	{"incomplete:opaque": 1, "opaque:bad_content_length": 1}
Content-Length with a sign	400	{"incomplete:opaque": 1, "opaque:bad_content_length": 1}
Content-Length and Transfer-Encoding (CL.TE)	400	{"incomplete:opaque": 1, "opaque:bad_content_length": 1}
Transfer-Encoding and Content-Length (TE.CL)	400	{"incomplete:opaque": 1, "opaque:bad_content_length": 1}
a coding after chunked	400	{"incomplete:opaque": 1, "opaque:bad_transfer_encoding": 1}
Transfer-Encoding in HTTP/1.0	200	{"incomplete:opaque": 1, "opaque:bad_transfer_encoding": 1}
obs-fold	400	{"incomplete:opaque": 1, "opaque:bad_request": 1}
a space before the colon	400	{"incomplete:opaque": 1, "opaque:bad_request": 1}
a bare CR in a field value	400	{"incomplete:opaque": 1, "opaque:bad_request": 1}
a NUL in a field value	400	{"incomplete:opaque": 1, "opaque:bad_request": 1}
bare LF line endings	400	{"GET 400": 1}
a chunk size with a bare LF	400	{"POST 400": 1}
a double space in the request line	200	{"opaque:bad_request": 1}
reproducer: a GET pipelined behind an answer with Connection: close	200	{"GET 200": 1, "incomplete:unanswered": 1}
reproducer: a GET pipelined behind an answer ended by the close	200	{"GET 200": 1, "incomplete:unanswered": 1}
reproducer: a GET pipelined behind node's 400 that closes	400	{"POST 400": 1, "incomplete:unanswered": 1}
reproducer: 20 pipelined GETs in one write	200x20	{"GET 200": 20}
reproducer: 5 of 50 body bytes, then the client closes	-	{"incomplete:client_closed": 1}
5 of 50 body bytes, then the client's FIN (a half-close)	400	{"incomplete:client_closed": 1}
EOF
}

@test "smuggling-style inputs and the issue's reproducers: bytes unchanged both ways, each one's stated outcome" {
	start_sm
	timeout 60 node "$ROOT/t/lib/difftest.mjs" "$UP_PORT" "$SM_PORT" raw "$MET_PORT" \
		<"$ROOT/t/lib/smuggle-cases.json" >"$BATS_TEST_TMPDIR/smuggle.jsonl"
	smuggle_expected >"$BATS_TEST_TMPDIR/expected.tsv"
	run "$PY" - "$BATS_TEST_TMPDIR/smuggle.jsonl" "$BATS_TEST_TMPDIR/expected.tsv" <<'EOF'
import json, sys
got = {}
for line in open(sys.argv[1]):
    c = json.loads(line)
    got[c["name"]] = c
bad = 0
for line in open(sys.argv[2]):
    name, code, moved = line.rstrip("\n").split("\t")
    c = got.pop(name, None)
    if c is None:
        print("%s: not run" % name); bad += 1; continue
    problems = []
    if not (c["bytes_to_app"] and c["bytes_to_client"]):
        problems.append("bytes changed (to the app %s, to the client %s)" % (c["bytes_to_app"], c["bytes_to_client"]))
    want = [] if code == "-" else sum(([t.split("x")[0]] * int(t.split("x")[1]) if "x" in t else [t]
                                       for t in code.split()), [])
    if [s.split()[1] for s in c["node"]] != want:
        problems.append("node answered %s, expected %s" % (c["node"], code))
    if c["sidemeter"] != json.loads(moved):
        problems.append("sidemeter moved %s, expected %s" % (json.dumps(c["sidemeter"], sort_keys=True), moved))
    print("%-48s node %s, sidemeter %s%s" % (name, code, moved, ": " + "; ".join(problems) if problems else ""))
    bad += bool(problems)
for name in got:
    print("%s: no stated outcome" % name); bad += 1
sys.exit(1 if bad else 0)
EOF
	echo "$output"
	assert_success
	echo "$output" | sed 's/^/# /' >&3
}
