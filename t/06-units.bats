#!/usr/bin/env bats
# The C unit tests (built by make into the build folder), run one by one.

load helpers

unit() {
	run "$SM_UNITS/unit_$1"
	echo "$output"
	assert_success
	assert_output --regexp "$1: [0-9]+ checks, 0 failed"
}

@test "unit: the shared-memory ring, counters and tables" {
	unit ring
	echo "$output" | grep '^two processes' | sed 's/^/# /' >&3
}

@test "unit: histograms" {
	unit hist
}

@test "unit: the HTTP observer, every vector whole, byte by byte and split at every byte" {
	unit observer
	echo "$output" | grep '^observer: [0-9]* vectors' | sed 's/^/# /' >&3
}

@test "unit: route naming and the worker's route table" {
	unit route
}

@test "fuzz corpus: every input ever found replays without a finding" {
	run "$SM_UNITS/fuzz_replay" "$ROOT/fuzz/corpus"
	echo "$output"
	assert_success
	assert_output --regexp 'fuzz replay: [0-9]+ inputs, no finding'
	echo "# $output" >&3
}

@test "fuzz replay fails on an empty or missing corpus: it would test nothing" {
	mkdir -p "$BATS_TEST_TMPDIR/empty"
	run "$SM_UNITS/fuzz_replay" "$BATS_TEST_TMPDIR/empty"
	assert_failure
	assert_output --partial "no inputs found"
	run "$SM_UNITS/fuzz_replay" "$BATS_TEST_TMPDIR/missing"
	assert_failure
}

@test "unit: the JSON reader of the subcommands and the tap's filters, with bad input" {
	unit reader
}
