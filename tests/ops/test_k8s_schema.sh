#!/usr/bin/env bash
# deploy/k8s/*.yaml against the Kubernetes OpenAPI schema, as shipped in the
# npm package kubernetes-models (pinned in tools/k8s-schema/package-lock.json;
# its JSON schemas are generated from the Kubernetes OpenAPI spec). Checks
# types, required fields and enums of every document; unknown fields are
# not refused (the OpenAPI schema allows them). Also checks that a broken
# manifest is refused, so the check cannot pass vacuously. Skipped with a
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
sed 's/terminationGracePeriodSeconds: [0-9]*/terminationGracePeriodSeconds: soon/' \
    "$SRC/deploy/k8s/daemonset.yaml" >"$BROKEN"
if node "$DIR/check.mjs" "$BROKEN" >/dev/null 2>&1; then
    echo "FAIL: a DaemonSet with a string grace period passes the check"
    FAILS=$((FAILS + 1))
else
    echo "ok: a broken DaemonSet is refused"
fi
[ "$FAILS" -eq 0 ]
