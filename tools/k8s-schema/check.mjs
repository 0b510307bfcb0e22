// Validates Kubernetes manifests (YAML, several documents per file) against
// the OpenAPI schema of kubernetes-models; exits 1 when one does not pass or
// has a kind this script does not know. Run by tests/ops/test_k8s_schema.sh.
import fs from "node:fs";
import yaml from "js-yaml";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";

const models = {
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "apps/v1/DaemonSet": DaemonSet,
};
let bad = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc) continue;
    const key = doc.apiVersion + "/" + doc.kind;
    const Model = models[key];
    if (!Model) {
      console.log(`FAIL: ${file}: no schema here for ${key}`);
      bad++;
      continue;
    }
    try {
      new Model(doc).validate();
      console.log(`ok: ${file}: ${key} ${doc.metadata.name}`);
    } catch (e) {
      console.log(`FAIL: ${file}: ${key}: ${e.message}`);
      bad++;
    }
  }
}
process.exit(bad ? 1 : 0);
