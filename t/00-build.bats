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

@test "make test: the quick tier stops a run it fails; one file needs only what it uses" {
	# a quick-tier file that fails, and one of the rest that must then not run
	printf '@test "fails" { false; }\n' >"$BATS_TEST_TMPDIR/00-fails.bats"
	printf '@test "runs" { touch "%s/ran"; }\n' "$BATS_TEST_TMPDIR" >"$BATS_TEST_TMPDIR/02-later.bats"
	run "$ROOT/t/run-tests" --bin "$SM_BIN" --units "$SM_UNITS" \
		"$BATS_TEST_TMPDIR/00-fails.bats" "$BATS_TEST_TMPDIR/02-later.bats"
	assert_failure
	assert_line "# the quick tier (build, command line, unit tests) failed: the rest is not run"
	assert_line "0 passed, 1 failed"
	run test -e "$BATS_TEST_TMPDIR/ran"
	assert_failure	# the later file never ran
	# without the browser, Prometheus, podman or tmux on PATH, t/01-cli.bats still runs: a
	# PATH of everything on this one but them
	local bin=$BATS_TEST_TMPDIR/bin d f
	mkdir -p "$bin"
	for d in ${PATH//:/ }; do
		for f in "$d"/*; do
			case ${f##*/} in chromium | prometheus | promtool | podman | tmux) continue ;; esac
			if [[ -x $f && ! -e $bin/${f##*/} ]]; then ln -s "$f" "$bin/${f##*/}"; fi
		done
	done
	run env PATH="$bin" "$ROOT/t/run-tests" --bin "$SM_BIN" --units "$SM_UNITS" t/01-cli.bats
	assert_success
	assert_line --regexp '^[0-9]+ passed, 0 failed$'
	# and a file that needs one says which
	run env PATH="$bin" "$ROOT/t/run-tests" --bin "$SM_BIN" --units "$SM_UNITS" t/16-tap.bats
	assert_failure 2
	assert_output --partial "make test: these are missing: "
	assert_output --partial "tmux"
}
