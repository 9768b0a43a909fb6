#!/usr/bin/env node
// Validate Kubernetes manifests offline.
//
//   node k8s-validate.mjs NODE_MODULES FILE...
//
// Each document is checked twice:
//  - against the JSON schemas of the npm package kubernetes-models (and its
//    @kubernetes-models/prometheus-operator companion): types, enums, required fields;
//  - strictly, like `kubectl apply --validate=strict`: every field must exist in the
//    model.  The schemas allow unknown fields, so a misspelt `readinessprobe` would pass
//    them; the field names are read from the packages' TypeScript declarations.
// OpenShift's Route has no package there: it is checked against a JSON schema written from
// the route.openshift.io/v1 API (spec.to, port, tls, wildcardPolicy), with ajv.
// Prints one line per document; exits 1 if any is invalid.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nm, ...files] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(path.join(nm, p)).href);
const yaml = (await load("js-yaml/index.js")).default;
const Ajv = (await load("ajv/dist/ajv.js")).default;

const packages = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

// ---- the strict pass: field names from the .d.ts files ----

const interfaces = new Map();

// The fields of the interface declared in a .d.ts, and where the types it imports live.
function iface(dts) {
  if (interfaces.has(dts)) return interfaces.get(dts);
  const text = fs.existsSync(dts) ? fs.readFileSync(dts, "utf8") : "";
  const imports = {};
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
    const from = m[2].startsWith(".") ? path.join(path.dirname(dts), m[2]) : path.join(nm, m[2]);
    imports[m[1]] = from.replace(/\.js$/, "") + ".d.ts";
  }
  const fields = {};
  const body = text.match(/^export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)^\}$/m);
  if (body) {
    for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: (.+)$/gm)) fields[m[1]] = m[2].replace(/;$/, "");
  }
  const found = { fields, imports, known: body !== null };
  interfaces.set(dts, found);
  return found;
}

function strict(obj, dts, where, errors) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return;
  const { fields, imports, known } = iface(dts);
  if (!known) return; // a scalar type (IntOrString, Quantity) or a free-form object
  for (const [k, v] of Object.entries(obj)) {
    if (!(k in fields)) {
      errors.push(`${where}.${k}: no such field`);
      continue;
    }
    let m;
    if ((m = /^(I\w+)$/.exec(fields[k])) && imports[m[1]]) {
      strict(v, imports[m[1]], `${where}.${k}`, errors);
    } else if ((m = /^Array<(I\w+)>$/.exec(fields[k])) && imports[m[1]] && Array.isArray(v)) {
      v.forEach((e, i) => strict(e, imports[m[1]], `${where}.${k}[${i}]`, errors));
    }
  }
}

// ---- OpenShift's Route ----

const target = {
  type: "object", required: ["kind", "name"], additionalProperties: false,
  properties: {
    kind: { enum: ["Service", ""] },
    name: { type: "string", minLength: 1 },
    weight: { type: "integer", minimum: 0, maximum: 256 },
  },
};
const routeSchema = {
  type: "object", required: ["apiVersion", "kind", "metadata", "spec"], additionalProperties: false,
  properties: {
    apiVersion: { const: "route.openshift.io/v1" },
    kind: { const: "Route" },
    metadata: { type: "object" },
    spec: {
      type: "object", required: ["to"], additionalProperties: false,
      properties: {
        host: { type: "string" },
        subdomain: { type: "string" },
        path: { type: "string", pattern: "^/" },
        to: target,
        alternateBackends: { type: "array", items: target, maxItems: 3 },
        port: {
          type: "object", required: ["targetPort"], additionalProperties: false,
          properties: { targetPort: { type: ["string", "integer"] } },
        },
        tls: {
          type: "object", required: ["termination"], additionalProperties: false,
          properties: {
            termination: { enum: ["edge", "passthrough", "reencrypt"] },
            insecureEdgeTerminationPolicy: { enum: ["Allow", "None", "Redirect", ""] },
            certificate: { type: "string" },
            key: { type: "string" },
            caCertificate: { type: "string" },
            destinationCACertificate: { type: "string" },
            externalCertificate: { type: "object" },
          },
        },
        wildcardPolicy: { enum: ["None", "Subdomain"] },
        httpHeaders: { type: "object" },
      },
    },
    status: { type: "object" },
  },
};
const checkRoute = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(routeSchema);
const objectMeta = path.join(nm, "@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta.d.ts");

// ---- the documents ----

let bad = 0;
for (const file of files) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d !== null);
  for (const doc of docs) {
    const name = `${file}: ${doc.kind}/${doc.metadata && doc.metadata.name}`;
    const errors = [];
    try {
      if (doc.apiVersion === "route.openshift.io/v1" && doc.kind === "Route") {
        if (!checkRoute(doc)) for (const e of checkRoute.errors) errors.push(`${e.instancePath} ${e.message}`);
        strict(doc.metadata, objectMeta, ".metadata", errors);
      } else if (packages[doc.apiVersion]) {
        strict(doc, path.join(nm, packages[doc.apiVersion], `${doc.kind}.d.ts`), "", errors);
        const mod = await load(`${packages[doc.apiVersion]}/${doc.kind}.js`);
        new mod[doc.kind](doc).validate();
      } else {
        errors.push(`no schema for ${doc.apiVersion} ${doc.kind}`);
      }
    } catch (e) {
      errors.push(e.message.split("\n")[0]);
    }
    if (errors.length) {
      bad++;
      console.log(`INVALID ${name}`);
      for (const e of errors) console.log(`  ${e}`);
    } else {
      console.log(`valid   ${name}`);
    }
  }
}
process.exit(bad ? 1 : 0);
