#!/usr/bin/env bats
# The zip a pod downloads builds with nothing but make and a C11 compiler, without a warning
# (checked with -Werror here), and a warning a newer compiler may add never stops the default
# build.

load helpers

# build_zip CC: unzip the zip of HEAD into an empty folder and run plain make there, with an
# empty environment as in a builder image.
build_zip() {
	local cc=$1 dir=$BATS_TEST_TMPDIR/$1
	mkdir -p "$dir"
	git -C "$ROOT" archive --format=zip -o "$BATS_TEST_TMPDIR/sidemeter.zip" HEAD
	(cd "$dir" && unzip -q "$BATS_TEST_TMPDIR/sidemeter.zip")
	run env -i PATH=/usr/bin:/bin make -C "$dir" CC="$cc" WERROR=1
	echo "$output"
	assert_success
	refute_output --partial "warning:"
	[ -x "$dir/sidemeter" ]
	run "$dir/sidemeter" --version
	assert_success
	assert_output "sidemeter $(cat "$ROOT/VERSION")"
}

@test "the zip of HEAD builds with plain make and gcc" {
	build_zip gcc
}

@test "the zip of HEAD builds with plain make and clang" {
	build_zip clang
}

@test "the zip of HEAD builds with plain make and musl-gcc" {
	build_zip musl-gcc
}

@test "a change of flags rebuilds; make clean removes every output" {
	local dir=$BATS_TEST_TMPDIR/src
	mkdir -p "$dir"
	git -C "$ROOT" archive HEAD | tar -x -C "$dir"
	run env -i PATH=/usr/bin:/bin make -C "$dir"
	assert_success
	run env -i PATH=/usr/bin:/bin make -C "$dir" OPT=-O1
	assert_success
	assert_output --partial "CC      server.c"
	run env -i PATH=/usr/bin:/bin make -C "$dir" clean
	assert_success
	[ ! -e "$dir/sidemeter" ] && [ ! -e "$dir/build" ]
	expect_eq "files left after clean" "" "$(cd "$dir" && git -C "$ROOT" ls-files | sort > "$BATS_TEST_TMPDIR/tracked"; find . -type f | sed 's|^\./||' | sort | comm -13 "$BATS_TEST_TMPDIR/tracked" -)"
}

@test "a warning does not stop the default build (a pod's newer compiler); WERROR=1 makes it an error" {
	local dir=$BATS_TEST_TMPDIR/warn
	mkdir -p "$dir"
	git -C "$ROOT" archive HEAD | tar -x -C "$dir"
	# -Wpadded stands for the warning a newer compiler brings: it fires on this code
	run env -i PATH=/usr/bin:/bin make -C "$dir" CFLAGS=-Wpadded
	assert_success
	assert_output --partial "warning:"
	run "$dir/sidemeter" --version
	assert_success
	run env -i PATH=/usr/bin:/bin make -C "$dir" CFLAGS=-Wpadded WERROR=1
	assert_failure
	assert_output --partial "error:"
}
