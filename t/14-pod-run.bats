#!/usr/bin/env bats
# The pod, for real (make pod-test): yaml/pod.yaml and yaml/deployment.yaml played by podman
# (runc, host networking, an image made here with no registry), the sidecar built from the
# project's zip inside its container, traffic counted, and a stop that takes seconds.
# Everything on 127.0.0.1; nothing is pulled; the pods are removed afterwards.

load helpers

NPM_DIR=$ROOT/build/npm
POD_DIR=$ROOT/build/pod
export CONTAINERS_CONF=$POD_DIR/containers.conf

# podman ARGS...: bounded, with this suite's containers.conf.
podman() { timeout 120 /usr/bin/podman "$@"; }

setup_file() {
	mkdir -p "$POD_DIR"
	# crun refuses this kind of VM's cgroups (hybrid mode): runc does not.  The limits stay
	# within the machine's hard ones (podman as root asks for more by default).
	cat >"$POD_DIR/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
	if [[ ! -d $NPM_DIR/node_modules/js-yaml ]]; then
		mkdir -p "$NPM_DIR"
		timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund --silent \
			kubernetes-models@5 @kubernetes-models/prometheus-operator@6 js-yaml@4 ajv@8 >&2
	fi
	# One Debian image stands for both images the manifests name (python:3.12-slim and
	# gcc:14): made from Debian's packages, kept in build/pod between runs.
	if [[ ! -s $POD_DIR/rootfs.tar ]]; then
		timeout 600 mmdebstrap --quiet --variant=minbase \
			--include=python3,gcc,make,libc6-dev,curl,unzip,ca-certificates \
			--customize-hook='chroot "$1" ln -sf python3 /usr/bin/python' \
			bookworm "$POD_DIR/rootfs.new.tar" >&2
		mv "$POD_DIR/rootfs.new.tar" "$POD_DIR/rootfs.tar"
	fi
	# a tarball brings no image config: PATH is set as the real images set it
	podman import -q --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"$POD_DIR/rootfs.tar" localhost/sidemeter-pod-test:latest >/dev/null
	podman tag localhost/sidemeter-pod-test:latest docker.io/library/python:3.12-slim \
		docker.io/library/gcc:14
	# the zip a pod downloads, served on loopback
	make -s -C "$ROOT" dist DIST="$POD_DIR/www/sidemeter.zip" >&2
}

teardown_file() {
	podman rmi -f docker.io/library/python:3.12-slim docker.io/library/gcc:14 \
		localhost/sidemeter-pod-test:latest >/dev/null 2>&1 || true
	# the pause image podman built itself for the pods' infra containers
	podman rmi -f "localhost/podman-pause:$(/usr/bin/podman --version | awk '{ print $3 }')-0" \
		>/dev/null 2>&1 || true
}

# play MANIFEST: derive a runnable copy of it and play it; sets POD, SM_CTR, APP_CTR (the
# names podman gave them) and PLAY_MS.
play() {
	local manifest=$1 zport id
	read -r SM_PORT MET_PORT UP_PORT zport <<<"$(free_ports 4)"
	export SM_PORT MET_PORT UP_PORT
	spawn zip "$PY" -m http.server "$zport" --bind 127.0.0.1 --directory "$POD_DIR/www"
	wait_port "$zport" "$zip_pid"
	node "$ROOT/t/lib/pod-derive.mjs" "$NPM_DIR/node_modules" "$ROOT/yaml/$manifest" \
		"$BATS_TEST_TMPDIR/play.yaml" "http://127.0.0.1:$zport/sidemeter.zip" \
		"$SM_PORT" "$MET_PORT" "$UP_PORT"
	# a file large enough to be in flight while the pod stops (a ConfigMap holds 1 MB)
	"$PY" - "$BATS_TEST_TMPDIR/play.yaml" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("  index.html: |", "  big.txt: |\n    " + "x" * 600000 + "\n  index.html: |", 1)
open(p, "w").write(s)
EOF
	echo "$BATS_TEST_TMPDIR/play.yaml" >"$BATS_TEST_TMPDIR/played"
	local t0=$EPOCHREALTIME
	podman kube play "$BATS_TEST_TMPDIR/play.yaml" >"$BATS_TEST_TMPDIR/play.out"
	id=$(awk 'p { print; exit } /^Pod:/ { p = 1 }' "$BATS_TEST_TMPDIR/play.out")
	POD=$(podman pod inspect --format '{{.Name}}' "$id")
	SM_CTR=$(podman ps -a --filter "pod=$id" --format '{{.Names}}' | grep -- '-sidemeter$')
	APP_CTR=$(podman ps -a --filter "pod=$id" --format '{{.Names}}' | grep -- '-app$')
	wait_until 120 curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$MET_PORT/readyz"
	PLAY_MS=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
}

teardown() {
	local f
	if [[ -f $BATS_TEST_TMPDIR/played ]]; then
		f=$(cat "$BATS_TEST_TMPDIR/played")
		podman pod stop -t 5 "$POD" >/dev/null 2>&1
		podman kube down "$f" >/dev/null 2>&1
		# kube down leaves the volumes it made of the ConfigMaps
		podman volume rm -f demo-site demo-app >/dev/null 2>&1
	fi
	common_teardown
}

# check_pod: what every played pod must show; then a stop with traffic in flight.
check_pod() {
	local uid n=50 i
	# the sidecar was built from the zip inside its container, and runs as a non-root user
	uid=$(podman exec "$SM_CTR" id -u)
	expect_ne "the sidecar's user" 0 "$uid"
	podman exec "$SM_CTR" test -x /tmp/sidemeter/sidemeter
	# the liveness check, by hand (podman runs health checks from systemd timers)
	podman healthcheck run "$SM_CTR"
	# traffic through the pod's port, counted exactly
	for ((i = 0; i < n; i++)); do
		curl -sf -o /dev/null "http://127.0.0.1:$SM_PORT/index.html"
	done
	curl -sS -o "$BATS_TEST_TMPDIR/metrics.txt" "http://127.0.0.1:$MET_PORT/metrics"
	expect_eq "requests counted" "$n" "$(metric 'sidemeter_http_requests_total{method="GET",code="200",route="/index.html"}')"
	# the live view from inside the sidecar's container, as over kubectl exec: it finds the
	# port from the container's SIDEMETER_METRICS
	run podman exec "$SM_CTR" /tmp/sidemeter/sidemeter top --once
	echo "$output"
	assert_success
	assert_line --regexp "^/index.html +$n "
	# who this is, from the Downward API: the pod's name and version label (podman gives
	# no namespace or node: the derived copy sets them)
	grep -E "^target_info\{k8s_namespace_name=\"podman\",k8s_node_name=\"$(hostname)\",k8s_pod_name=\"$POD[^\"]*\",service_version=\"1\.0\.0\"\} 1$" \
		"$BATS_TEST_TMPDIR/metrics.txt" ||
		{ echo "target_info: not from the Downward API: $(grep '^target_info' "$BATS_TEST_TMPDIR/metrics.txt"); the sidecar's labels: $(podman exec "$SM_CTR" env | grep '^SIDEMETER_LABEL' | tr '\n' ' ')" >&2; return 1; }
	sleep 1.5
	podman logs "$SM_CTR" >"$BATS_TEST_TMPDIR/logs.txt" 2>&1
	expect_ge "summary lines in the container log" 1 "$(grep -c ' requests=' "$BATS_TEST_TMPDIR/logs.txt")"
	expect_eq "requests in the summary lines" "$n" \
		"$(grep -o ' requests=[0-9]*' "$BATS_TEST_TMPDIR/logs.txt" | awk -F= '{ s += $2 } END { print s }')"

	# the stop: a download in flight (600 KB at 150 KB/s), readiness 503 at once, the port
	# serving through --drain-delay, everything exits 0, and the pod is down in seconds
	spawn big curl -sS --limit-rate 150k -o "$BATS_TEST_TMPDIR/big.txt" -w '%{http_code}' \
		"http://127.0.0.1:$SM_PORT/big.txt"
	sleep 0.5
	local t0=$EPOCHREALTIME
	spawn stop podman pod stop -t 35 "$POD"
	wait_until 3 eval "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MET_PORT/readyz)\" = 503 ]"
	local ready_ms
	ready_ms=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	sleep 1.5
	run curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SM_PORT/index.html"
	assert_output 200	# still serving during --drain-delay (5 s)
	wait_gone "$stop_pid" 40
	STOP_MS=$(awk "BEGIN { printf \"%d\", ($EPOCHREALTIME - $t0) * 1000 }")
	wait_gone "$big_pid" 10
	expect_eq "the download in flight" 200 "$(cat "$BATS_TEST_TMPDIR/big.out")"
	expect_eq "its bytes" 600001 "$(wc -c <"$BATS_TEST_TMPDIR/big.txt")"
	expect_eq "sidemeter's exit code" 0 "$(podman inspect "$SM_CTR" --format '{{.State.ExitCode}}')"
	expect_eq "the application's exit code" 0 "$(podman inspect "$APP_CTR" --format '{{.State.ExitCode}}')"
	expect_le "ms until /readyz said 503" 1500 "$ready_ms"
	expect_le "ms for the whole pod to stop" 10000 "$STOP_MS"
	podman logs "$SM_CTR" 2>&1 | grep -q "stopped"
}

@test "pod.yaml, played by podman: built from the zip, counted exactly, and stopped in seconds" {
	play pod.yaml
	check_pod
	echo "# pod.yaml: ready ${PLAY_MS} ms after play (the build included); stopped in ${STOP_MS} ms with a download in flight, which completed; exit codes 0" >&3
}

@test "deployment.yaml, played by podman: a read-only root, built in /tmp, counted exactly, stopped in seconds" {
	play deployment.yaml
	run podman exec "$SM_CTR" touch /probe
	assert_failure	# the root filesystem is read-only
	check_pod
	echo "# deployment.yaml: ready ${PLAY_MS} ms after play; stopped in ${STOP_MS} ms with a download in flight, which completed; exit codes 0" >&3
}
