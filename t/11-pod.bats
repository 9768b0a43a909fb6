#!/usr/bin/env bats
# The pod and the fleet: manifests valid against the Kubernetes (and Prometheus Operator)
# schemas, rules checked and unit-tested, the in-pod build as a non-root user, and a fleet
# watched by a real Prometheus.

load helpers

NPM_DIR=$ROOT/build/npm

# The validators come from npm (kubernetes-models and its companions), installed once per
# checkout into build/npm; nothing is vendored.
setup_file() {
	if [[ ! -d $NPM_DIR/node_modules/kubernetes-models ]]; then
		mkdir -p "$NPM_DIR"
		timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund --silent \
			kubernetes-models@5 @kubernetes-models/prometheus-operator@6 js-yaml@4 ajv@8 >&2
	fi
}

manifests() {
	ls "$ROOT"/yaml/*.yaml
}

@test "every manifest is valid against the API schemas, strictly (no unknown field)" {
	run node "$ROOT/t/lib/k8s-validate.mjs" "$NPM_DIR/node_modules" $(manifests)
	echo "$output"
	assert_success
	refute_output --partial INVALID
	expect_ge "manifests found valid" 8 "$(grep -c '^valid' <<<"$output")"
}

@test "the validator rejects what it should: a misspelt field, a wrong type, a bad Route" {
	sed 's/readinessProbe:/readinessprobe:/' "$ROOT/yaml/pod.yaml" >"$BATS_TEST_TMPDIR/a.yaml"
	sed 's/containerPort: 9145/containerPort: "9145"/' "$ROOT/yaml/deployment.yaml" >"$BATS_TEST_TMPDIR/b.yaml"
	sed 's/termination: edge/termination: edgy/' "$ROOT/yaml/route.yaml" >"$BATS_TEST_TMPDIR/c.yaml"
	sed 's/- port: metrics/- prot: metrics/' "$ROOT/yaml/podmonitor.yaml" >"$BATS_TEST_TMPDIR/d.yaml"
	for f in a b c d; do
		run node "$ROOT/t/lib/k8s-validate.mjs" "$NPM_DIR/node_modules" "$BATS_TEST_TMPDIR/$f.yaml"
		echo "$output"
		assert_failure
	done
	run node "$ROOT/t/lib/k8s-validate.mjs" "$NPM_DIR/node_modules" "$BATS_TEST_TMPDIR/a.yaml"
	assert_output --partial ".spec.containers[1].readinessprobe: no such field"
}

@test "the sidecar's settings in the manifests are ones sidemeter accepts, and fit the pod" {
	local f
	for f in "$ROOT/yaml/pod.yaml" "$ROOT/yaml/pod-native.yaml" "$ROOT/yaml/deployment.yaml"; do
		run node - "$NPM_DIR/node_modules" "$f" <<'EOF'
const [nm, file] = process.argv.slice(2);
const yaml = require(nm + "/js-yaml");
const fs = require("fs");
for (const d of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
  if (!d || !["Pod", "Deployment"].includes(d.kind)) continue;
  const spec = d.kind === "Pod" ? d.spec : d.spec.template.spec;
  // the classic form: a second container; the native one: an init container that restarts
  const sm = [...(spec.initContainers || []), ...spec.containers].find((c) => c.name === "sidemeter");
  if (spec.initContainers && sm.restartPolicy !== "Always") throw new Error("a native sidecar needs restartPolicy: Always");
  // the environment as the kubelet makes it: the Downward API's fields (with a node and a
  // name of the kind a cluster gives), and $(VAR) references to what came before
  const meta = d.kind === "Pod" ? d.metadata : d.spec.template.metadata;
  const label = (f) => (f.match(/^metadata\.labels\['(.+)'\]$/) || [])[1];
  const field = (f) => ({ "metadata.name": meta.name || "demo-7d4b9c-x2x9q", "metadata.namespace": "shop",
    "spec.nodeName": "node-1" })[f] ?? (label(f) ? meta.labels[label(f)] ?? "" : undefined);
  const env = {};
  for (const e of sm.env) {
    if (e.valueFrom) {
      const v = field(e.valueFrom.fieldRef.fieldPath);
      if (v === undefined) throw new Error("a field the test does not know: " + e.valueFrom.fieldRef.fieldPath);
      env[e.name] = v;
    } else {
      env[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, k) => k in env ? env[k] : m);
    }
  }
  const metrics = sm.ports.find((p) => p.name === "metrics").containerPort;
  const grace = spec.terminationGracePeriodSeconds;
  const ann = (d.kind === "Pod" ? d.metadata : d.spec.template.metadata).annotations;
  const probes = [sm.livenessProbe, sm.readinessProbe, sm.startupProbe].map((p) => p.httpGet.path + "@" + p.httpGet.port);
  console.log(Object.entries(env).filter(([k]) => k.startsWith("SIDEMETER_") && k !== "SIDEMETER_ZIP_URL")
    .map(([k, v]) => k + "=" + v).join(" "));
  console.log(`metrics=${metrics} grace=${grace} annotation_port=${ann["prometheus.io/port"]} probes=${probes.join(",")}`);
}
EOF
		echo "$output"
		assert_success
		local envs=${lines[0]} facts=${lines[1]}
		# the settings pass sidemeter's own --check
		run env -i PATH=/usr/bin:/bin $envs "$SM_BIN" --check
		echo "$output"
		assert_success
		assert_line --regexp '^metrics += 0\.0\.0\.0:9145  \(env\)$'
		# target_info's labels, from the Downward API
		assert_line --regexp '^label += k8s_namespace_name=shop,k8s_node_name=node-1,k8s_pod_name=demo[-a-z0-9]*,service_version=1\.0\.0  \(env\)$'
		# the drain fits the grace period; probes and annotations name the metrics port
		local delay timeout
		delay=$(awk '/^drain-delay/ { print $3 }' <<<"$output")
		timeout=$(awk '/^drain-timeout/ { print $3 }' <<<"$output")
		[[ $facts =~ grace=([0-9]+) ]]
		expect_le "drain delay + timeout within the grace period" "${BASH_REMATCH[1]}" \
			"$(( ${delay%s} + ${timeout%s} ))"
		[[ $facts == *"metrics=9145"* && $facts == *"annotation_port=9145"* ]]
		[[ $facts == *"probes=/healthz@metrics,/readyz@metrics,/healthz@metrics"* ]]
	done
}

@test "rules: promtool checks them, their unit tests pass, the PrometheusRule holds the same groups" {
	run promtool check rules "$ROOT/yaml/rules/sidemeter.rules.yml"
	echo "$output"
	assert_success
	run promtool test rules "$ROOT/yaml/rules/sidemeter.rules.test.yml"
	echo "$output"
	assert_success
	assert_output --partial SUCCESS
	run node - "$NPM_DIR/node_modules" "$ROOT/yaml" <<'EOF'
const [nm, dir] = process.argv.slice(2);
const yaml = require(nm + "/js-yaml");
const fs = require("fs");
const plain = yaml.load(fs.readFileSync(dir + "/rules/sidemeter.rules.yml", "utf8")).groups;
const op = yaml.loadAll(fs.readFileSync(dir + "/prometheusrule.yaml", "utf8")).find((d) => d).spec.groups;
const same = JSON.stringify(plain) === JSON.stringify(op);
console.log(same ? "same groups" : "the groups differ");
process.exit(same ? 0 : 1);
EOF
	assert_success
}

@test "the scrape configuration: promtool accepts it, with discovery swapped for file_sd" {
	# Debian's Prometheus is built without kubernetes_sd_configs: the rest is checked here,
	# and make fleet runs its relabeling in a real Prometheus.
	python3 - "$ROOT/yaml/prometheus.yml" "$BATS_TEST_TMPDIR/prometheus.yml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text = text.replace("rules/sidemeter.rules.yml", sys.argv[1].rsplit("/", 1)[0] + "/rules/sidemeter.rules.yml")
out = re.sub(r"kubernetes_sd_configs:\n\s+- role: pod", "file_sd_configs:\n      - files: ['targets.json']", text)
assert out != text, "no kubernetes_sd_configs block found"
open(sys.argv[2], "w").write(out)
EOF
	run promtool check config "$BATS_TEST_TMPDIR/prometheus.yml"
	echo "$output"
	assert_success
}

@test "the in-pod build: the zip, an empty environment, a non-root user; it runs as that user" {
	# bats' own folders are private (0700): the user needs a path it can walk
	local d uid=12345
	d=$(mktemp -d /tmp/sidemeter-pod.XXXXXX)
	echo "$d" >>"$BATS_TEST_TMPDIR/.cleanup"
	mkdir -p "$d/src"
	make -s -C "$ROOT" dist DIST="$d/sidemeter.zip"
	(cd "$d/src" && unzip -q ../sidemeter.zip)
	chown -R "$uid:$uid" "$d/src"
	chmod 755 "$d"
	for cc in gcc clang musl-gcc; do
		run setpriv --reuid "$uid" --regid "$uid" --clear-groups \
			env -i PATH=/usr/bin:/bin HOME=/nonexistent make -C "$d/src" -s CC="$cc" clean all
		echo "$output"
		assert_success
		refute_output --partial warning
	done
	printf 'hello from the pod\n' >"$d/index.html"
	chmod 644 "$d/index.html"
	start_app "$d"
	# run from a folder it cannot write to, as the random user OpenShift would pick
	spawn sm setpriv --reuid "$uid" --regid "$uid" --clear-groups \
		env -i PATH=/usr/bin:/bin HOME=/nonexistent sh -c "cd / && exec '$d/src/sidemeter' \
		--listen 127.0.0.1:$SM_PORT --upstream 127.0.0.1:$UP_PORT --metrics 127.0.0.1:$MET_PORT"
	wait_port "$SM_PORT" "$sm_pid"
	wait_until 5 curl -sf "http://127.0.0.1:$MET_PORT/readyz"
	run curl -sS "http://127.0.0.1:$SM_PORT/index.html"
	assert_output "hello from the pod"
	expect_eq "the master's user" "$uid" "$(ps -o uid= -p "$(children "$sm_pid" | head -1)" | tr -d ' ')"
}

@test "the Grafana dashboard: the fields Grafana needs, and the checker rejects what it should" {
	run "$PY" "$ROOT/tools/dashboard.py" check "$ROOT/yaml/grafana-dashboard.json"
	echo "$output"
	assert_success
	assert_output --regexp 'dashboard: [0-9]+ panels, [0-9]+ queries, ok'
	# broken copies: each problem named
	local d=$BATS_TEST_TMPDIR want
	"$PY" - "$ROOT/yaml/grafana-dashboard.json" "$d" <<'EOF'
import copy, json, sys
src, d = sys.argv[1:]
base = json.load(open(src))
def broken(name, change):
    x = copy.deepcopy(base)
    change(x)
    json.dump(x, open("%s/%s.json" % (d, name), "w"))
broken("dup-id", lambda x: x["panels"][1].update(id=x["panels"][0]["id"]))
broken("wide", lambda x: x["panels"][0]["gridPos"].update(x=20, w=12))
broken("no-expr", lambda x: x["panels"][0]["targets"][0].update(expr=""))
broken("undefined-var", lambda x: x["panels"][0]["targets"][0].update(expr='up{pod=~"$podname"}'))
broken("no-uid", lambda x: x.pop("uid"))
EOF
	for want in "dup-id:id must be a unique integer" "wide:within 24 columns" "no-expr:an expr" \
		'undefined-var:$podname is not a variable' "no-uid:uid"; do
		run "$PY" "$ROOT/tools/dashboard.py" check "$d/${want%%:*}.json"
		assert_failure
		assert_output --partial "${want#*:}"
	done
}

@test "make fleet: pods on loopback and a real Prometheus; what it reports matches the load" {
	run env FLEET_PODS=5 FLEET_SECS=25 "$ROOT/tools/fleet.sh" "$SM_BIN"
	echo "$output"
	echo "$output" | sed -n '/from Prometheus/,$p' | sed 's/^/# /' >&3
	assert_success
	refute_output --partial FAIL
	assert_output --partial "ok   alerts: firing as the roles predict"
	assert_output --partial "the Grafana dashboard's queries"
}
