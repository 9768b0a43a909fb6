#!/usr/bin/env node
// Derive a copy of a manifest that podman 4.3 can play on this machine, so that the manifests
// users apply stay as they are.  What changes, and why:
//   - hostNetwork: true, and no `ports:` (podman refuses ports with host networking); the
//     pod's ports (8080, 9145, 8087) become the free ones given, in sidemeter's settings,
//     the probes (which podman wants as numbers) and the application's serve.py, all on
//     127.0.0.1 (host networking: nothing else of the host is touched);
//   - SIDEMETER_ZIP_URL: the zip served on loopback;
//   - SIDEMETER_DUMP_INTERVAL 1, so that summary lines show in `podman logs` within seconds;
//   - a Deployment runs one replica (two would bind the same host ports);
//   - the Downward API fields podman does not give (metadata.namespace, spec.nodeName)
//     become the values a cluster would have given: "podman" and the host's name.  The
//     pod's name and labels stay fieldRefs.
// The images keep their names: the test tags its local image under them.
//
//   node pod-derive.mjs NODE_MODULES IN.yaml OUT.yaml ZIP_URL LISTEN METRICS APP
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const [nm, input, output, zipUrl, listen, metrics, app] = process.argv.slice(2);
if (!app) {
	console.error("usage: pod-derive.mjs NODE_MODULES IN.yaml OUT.yaml ZIP_URL LISTEN METRICS APP");
	process.exit(2);
}
const yaml = createRequire(path.resolve(nm, "x.js"))("js-yaml");
const ports = { 8080: Number(listen), 9145: Number(metrics), 8087: Number(app) };
const named = { http: Number(listen), metrics: Number(metrics) };

function container(c) {
	delete c.ports;
	for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
		if (probe && probe.httpGet) probe.httpGet.port = named[probe.httpGet.port] ?? ports[probe.httpGet.port] ?? probe.httpGet.port;
	}
	for (const e of c.env || []) {
		const field = e.valueFrom?.fieldRef?.fieldPath;
		if (field === "metadata.namespace" || field === "spec.nodeName") {
			delete e.valueFrom;
			e.value = field === "metadata.namespace" ? "podman" : os.hostname();
		}
		if (e.name === "SIDEMETER_ZIP_URL") e.value = zipUrl;
		else if (typeof e.value === "string")
			e.value = e.value.replace(/:(8080|9145|8087)$/, (_, p) => ":" + ports[p]).replace(/^0\.0\.0\.0:/, "127.0.0.1:");
	}
	if (c.name === "sidemeter") {
		c.env = (c.env || []).filter((e) => e.name !== "SIDEMETER_DUMP_INTERVAL");
		c.env.push({ name: "SIDEMETER_DUMP_INTERVAL", value: "1" });
		// the Deployment leaves the UID to the platform: here it is the image's root unless
		// set, so set it as a restricted platform would (any non-root UID)
		c.securityContext = { ...(c.securityContext || {}), runAsUser: c.securityContext?.runAsUser ?? 10001 };
	}
}

const docs = yaml.loadAll(fs.readFileSync(input, "utf8")).filter(Boolean);
for (const d of docs) {
	if (d.kind === "ConfigMap" && d.data && d.data["serve.py"])
		d.data["serve.py"] = d.data["serve.py"].replace(/\b(8087|9145)\b/g, (p) => String(ports[p]));
	const spec = d.kind === "Pod" ? d.spec : d.kind === "Deployment" ? d.spec.template.spec : null;
	if (!spec) continue;
	if (d.kind === "Deployment") d.spec.replicas = 1;
	spec.hostNetwork = true;
	for (const c of [...(spec.initContainers || []), ...spec.containers]) container(c);
}
fs.writeFileSync(output, docs.map((d) => "---\n" + yaml.dump(d, { lineWidth: 200 })).join(""));
