// Validates Kubernetes manifests (YAML, several documents per file) against
// the OpenAPI schema of kubernetes-models, strictly: exits 1 when a document
// does not pass, has a field the schema does not know (a misspelled
// `readOnlyRootFileSystem` or `hostpath` would otherwise be dropped by the
// API server without a word, as `kubectl apply` does without
// --validate=strict), or has a kind this script does not know.
// Run by tests/ops/test_k8s_schema.sh.
//
// Unknown fields: the Kubernetes OpenAPI schema leaves additionalProperties
// open, and kubernetes-models ships its schemas compiled (ajv standalone
// code), not as JSON to tighten. So the document is handed to the compiled
// validator wrapped in proxies that record every field the validator reads:
// the validator reads each property its schema declares, and every key of a
// map (labels, ConfigMap data), so an own field it never read is one the
// schema does not have. Same schema as the type check, no second copy.
import fs from "node:fs";
import yaml from "js-yaml";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { Service } from "kubernetes-models/v1/Service";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { validate as vServiceAccount } from "kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount";
import { validate as vConfigMap } from "kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap";
import { validate as vClusterRole } from "kubernetes-models/_schemas/IoK8sApiRbacV1ClusterRole";
import { validate as vClusterRoleBinding } from "kubernetes-models/_schemas/IoK8sApiRbacV1ClusterRoleBinding";
import { validate as vDaemonSet } from "kubernetes-models/_schemas/IoK8sApiAppsV1DaemonSet";
import { validate as vStatefulSet } from "kubernetes-models/_schemas/IoK8sApiAppsV1StatefulSet";
import { validate as vService } from "kubernetes-models/_schemas/IoK8sApiCoreV1Service";
import { validate as vPodDisruptionBudget } from "kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget";

const models = {
  "v1/ServiceAccount": [ServiceAccount, vServiceAccount],
  "v1/ConfigMap": [ConfigMap, vConfigMap],
  "rbac.authorization.k8s.io/v1/ClusterRole": [ClusterRole, vClusterRole],
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": [ClusterRoleBinding, vClusterRoleBinding],
  "apps/v1/DaemonSet": [DaemonSet, vDaemonSet],
  // The aggregation tier (deploy/k8s/aggregator.yaml, decision 0085).
  "apps/v1/StatefulSet": [StatefulSet, vStatefulSet],
  "v1/Service": [Service, vService],
  "policy/v1/PodDisruptionBudget": [PodDisruptionBudget, vPodDisruptionBudget],
};

// A copy of `value` in which every object and array is a proxy adding the
// paths read to `reads`; `fields` gets the path of every own field.
function tracked(value, path, reads, fields) {
  if (value === null || typeof value !== "object") return value;
  let copy;
  if (Array.isArray(value)) {
    copy = value.map((v, i) => tracked(v, `${path}[${i}]`, reads, fields));
  } else {
    copy = {};
    for (const [k, v] of Object.entries(value)) {
      fields.push(`${path}.${k}`);
      copy[k] = tracked(v, `${path}.${k}`, reads, fields);
    }
  }
  const note = (k) => {
    if (typeof k === "string") reads.add(`${path}.${k}`);
  };
  return new Proxy(copy, {
    get(t, k, r) {
      note(k);
      return Reflect.get(t, k, r);
    },
    has(t, k) {
      note(k);
      return Reflect.has(t, k);
    },
    getOwnPropertyDescriptor(t, k) {
      note(k);
      return Reflect.getOwnPropertyDescriptor(t, k);
    },
  });
}

// The fields of `doc` the schema does not know, outermost only (a misspelled
// `hostpath:` is one finding, not one per field below it).
function unknownFields(doc, validate) {
  const reads = new Set();
  const fields = [];
  if (!validate(tracked(doc, "", reads, fields))) return null;
  const unknown = fields.filter((f) => !reads.has(f));
  return unknown.filter((f) => !unknown.some((u) => f !== u && (f.startsWith(u + ".") || f.startsWith(u + "["))));
}

let bad = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc) continue;
    const key = doc.apiVersion + "/" + doc.kind;
    const entry = models[key];
    if (!entry) {
      console.log(`FAIL: ${file}: no schema here for ${key}`);
      bad++;
      continue;
    }
    const [Model, validate] = entry;
    try {
      new Model(doc).validate();
    } catch (e) {
      console.log(`FAIL: ${file}: ${key}: ${e.message}`);
      bad++;
      continue;
    }
    const unknown = unknownFields(doc, validate);
    if (unknown === null) {
      console.log(`FAIL: ${file}: ${key}: the compiled schema refuses what the model accepted`);
      bad++;
    } else if (unknown.length) {
      for (const f of unknown) console.log(`FAIL: ${file}: ${key} ${doc.metadata?.name}: unknown field ${f.slice(1)}`);
      bad++;
    } else {
      console.log(`ok: ${file}: ${key} ${doc.metadata.name}`);
    }
  }
}
process.exit(bad ? 1 : 0);
