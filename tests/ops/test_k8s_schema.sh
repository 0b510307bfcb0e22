#!/usr/bin/env bash
# deploy/k8s/*.yaml against the Kubernetes OpenAPI schema, as shipped in the
# npm package kubernetes-models (pinned in tools/k8s-schema/package-lock.json;
# its JSON schemas are generated from the Kubernetes OpenAPI spec). Checks
# types, required fields and enums of every document, and refuses fields the
# schema does not know (strict, as `kubectl apply --validate=strict`: the API
# server would drop a misspelled field without a word). Also checks that
# broken manifests are refused — a wrong type, a misspelled field deep in
# the pod spec, a misspelled volume source — so the check cannot pass
# vacuously. Skipped with a
# message (exit 77) without node/npm or when the package cannot be
# installed (no registry).
set -u
SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SLUICE_BUILD:-$SRC/build}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "skip: node and npm are not installed"
    exit 77
fi
DIR="$BUILD/k8s-schema"
mkdir -p "$DIR"
cp "$SRC/tools/k8s-schema/package.json" "$SRC/tools/k8s-schema/package-lock.json" \
    "$SRC/tools/k8s-schema/check.mjs" "$DIR/"
if [ ! -d "$DIR/node_modules/kubernetes-models" ]; then
    if ! (cd "$DIR" && timeout 600 npm ci --no-audit --no-fund --silent >npm.log 2>&1); then
        echo "skip: npm ci of tools/k8s-schema failed (no registry?): $(tail -3 "$DIR/npm.log")"
        exit 77
    fi
fi
FAILS=0
if out=$(node "$DIR/check.mjs" "$SRC"/deploy/k8s/*.yaml 2>&1); then
    echo "$out"
    echo "ok: deploy/k8s passes the Kubernetes schema"
else
    echo "$out"
    echo "FAIL: deploy/k8s does not pass the Kubernetes schema"
    FAILS=$((FAILS + 1))
fi
BROKEN=$(mktemp "${TMPDIR:-/tmp}/sluice-k8s-broken.XXXXXX.yaml")
trap 'rm -f "$BROKEN"' EXIT
# refused NAME SED-EXPRESSION EXPECTED-OUTPUT [MANIFEST]: the manifest (the
# DaemonSet by default) changed by the expression must fail the check,
# naming what is wrong.
refused() {
    local name=$1 expr=$2 expect=$3 file=${4:-$SRC/deploy/k8s/daemonset.yaml} out
    sed "$expr" "$file" >"$BROKEN"
    if cmp -s "$BROKEN" "$file"; then
        echo "FAIL: $name: the edit changed nothing (the manifest moved on?)"
        FAILS=$((FAILS + 1))
    elif out=$(node "$DIR/check.mjs" "$BROKEN" 2>&1); then
        echo "FAIL: $name passes the check"
        FAILS=$((FAILS + 1))
    elif ! grep -qF -- "$expect" <<<"$out"; then
        echo "$out"
        echo "FAIL: $name: refused without naming '$expect'"
        FAILS=$((FAILS + 1))
    else
        echo "ok: $name is refused: $(grep -F -- "$expect" <<<"$out" | head -n1)"
    fi
}
refused "a string grace period" 's/terminationGracePeriodSeconds: [0-9]*/terminationGracePeriodSeconds: soon/' \
    "terminationGracePeriodSeconds must be integer"
refused "a misspelled securityContext field" 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' \
    "unknown field spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"
refused "a misspelled volume source" '0,/hostPath:/s//hostpath:/' "unknown field spec.template.spec.volumes["
refused "a misspelled top-level field" '0,/^spec:/s//sepc:/' "unknown field sepc"
# The aggregation tier's kinds are checked as strictly (decision 0085).
AGG="$SRC/deploy/k8s/aggregator.yaml"
refused "aggregator: a misspelled claim template field" 's/accessModes:/accessMode:/' \
    "unknown field spec.volumeClaimTemplates[0].spec.accessMode" "$AGG"
refused "aggregator: a misspelled Service field" 's/^  externalTrafficPolicy:/  externalTrafficPolicyy:/' \
    "unknown field spec.externalTrafficPolicyy" "$AGG"
refused "aggregator: a misspelled disruption budget field" 's/maxUnavailable: 1/maxUnavailible: 1/' \
    "unknown field spec.maxUnavailible" "$AGG"
refused "aggregator: a string replica count" 's/replicas: 2/replicas: two/' \
    "replicas must be integer" "$AGG"
[ "$FAILS" -eq 0 ]
