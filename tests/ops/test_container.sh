#!/usr/bin/env bash
# The container recipe (deploy/container/Containerfile).
#
# Always (make test, a second or two): the recipe, the manifest and the
# package agree — the Containerfile's default package is the one `make deb`
# names for this version, its base is Debian 12 slim and can be replaced
# (ARG BASE), and the DaemonSet runs the image of this version.
#
# With SLUICE_CONTAINER_BUILD=1 (make test-long; minutes: a package build,
# a Debian base, apt in the image): podman builds the image from the Debian
# package (`make deb`, or SLUICE_DEB=path) and starts it with no network:
# `sluice --version`, `sluice check` of the Kubernetes configuration, and an
# agent in the container that reads a pod-shaped CRI fixture mounted from
# here and writes a file sink: every record comes out once, partial lines
# joined, with the pod's namespace, pod and container from the file name;
# a SIGTERM (podman stop) ends it with status 0.
# Where docker.io cannot be reached (this project's machines reach only
# Debian's mirror), the base is deploy/container/debian-base.sh's local
# Debian 12 slim, kept in the test's own image store
# (SLUICE_CONTAINER_CACHE, default /var/cache/sluice-test/containers) so
# later runs skip the debootstrap; a clean machine builds it.
# Skipped with a message (exit 77) without podman (`apt-get install podman
# debootstrap`, which make test-long's bootstrap does), not as root, or
# under the sanitizers (the image holds the package, not the test build).
set -u
SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
FAILS=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}

# ---- the recipe, the manifest and the package agree -----------------------------
VERSION=$(sed -n "s/^  version: '\(.*\)',$/\1/p" "$SRC/meson.build")
CF="$SRC/deploy/container/Containerfile"
grep -qx "ARG DEB=build-deb/sluice_${VERSION}_amd64.deb" "$CF" &&
    ok "Containerfile's package is make deb's sluice_${VERSION}_amd64.deb" ||
    fail "Containerfile's ARG DEB is not build-deb/sluice_${VERSION}_amd64.deb"
grep -qx 'ARG BASE=docker.io/library/debian:12-slim' "$CF" && grep -qx 'FROM ${BASE}' "$CF" &&
    ok "base: Debian 12 slim, replaceable (ARG BASE)" || fail "Containerfile's base is not ARG BASE=debian:12-slim"
grep -q "image: registry.local/sluice:${VERSION}\$" "$SRC/deploy/k8s/daemonset.yaml" &&
    ok "the DaemonSet runs registry.local/sluice:${VERSION}" || fail "the DaemonSet's image is not version ${VERSION}"
grep -q "registry.local/sluice:${VERSION} " "$CF" || fail "the Containerfile's build command tags another version"
sh -n "$SRC/deploy/container/debian-base.sh" && ok "debian-base.sh parses" || fail "debian-base.sh"

skip() {
    echo "skip: $*"
    [ "$FAILS" -eq 0 ] && exit 77
    exit 1
}
if [ "${SLUICE_CONTAINER_BUILD:-0}" != 1 ]; then
    echo "note: image not built: make test-long builds and starts it (SLUICE_CONTAINER_BUILD=1)"
    [ "$FAILS" -eq 0 ]
    exit
fi
[ -n "${SLUICE_SANITIZED:-}" ] && skip "sanitizer pass: the image holds the package, tested in the plain pass"
command -v podman >/dev/null 2>&1 || skip "podman is not installed (apt-get install podman debootstrap)"
[ "$(id -u)" = 0 ] || skip "not root: the image store and debootstrap need it"

# ---- the image store: the test's own, kept as the cache of the base ----------------
CACHE=${SLUICE_CONTAINER_CACHE:-/var/cache/sluice-test/containers}
mkdir -p "$CACHE"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-container-test.XXXXXX")
TAG="localhost/sluice-test:$$"
RMI_TAG=1
CID=""
cleanup() {
    [ -n "$CID" ] && podman rm -f "$CID" >/dev/null 2>&1
    [ "$RMI_TAG" = 1 ] && podman rmi -f "$TAG" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
# vfs: works on any file system and kernel (no overlay mounts inside a
# sandbox); chroot isolation for RUN steps for the same reason.
# The run root is fixed too: podman refuses a store whose run root moved.
cat >"$CACHE/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
EOF
export CONTAINERS_STORAGE_CONF="$CACHE/storage.conf" BUILDAH_ISOLATION=chroot
# The OCI runtime: runc where installed. crun refuses a cgroup v1 host whose
# cgroup v2 hierarchy holds a controller (hybrid mode, as on this project's
# machines), runc runs there. Limits are set, not inherited from podman's
# defaults (nofile 1048576 is refused where the host's hard limit is lower).
RUN_OPTS=(--network none --ulimit nofile=16384:16384 --ulimit nproc=16384:16384)
command -v runc >/dev/null 2>&1 && RUN_OPTS+=(--runtime runc)
# One build at a time per machine: two checkouts would debootstrap the same
# base into the same store.
exec 9>"$CACHE/lock"
flock -w 1200 9 || { fail "another container test held $CACHE/lock for 20 min"; exit 1; }

# ---- the package ------------------------------------------------------------------
DEB=${SLUICE_DEB:-}
if [ -z "$DEB" ]; then
    if out=$(make -C "$SRC" deb DEB_BUILD="$TMP/deb" 2>&1); then
        ok "make deb"
    else
        echo "$out" | tail -n 30
        fail "make deb"
        exit 1
    fi
    DEB="$TMP/deb/sluice_${VERSION}_amd64.deb"
fi
[ -f "$DEB" ] || { fail "no package $DEB"; exit 1; }
mkdir -p "$TMP/ctx"
cp "$DEB" "$TMP/ctx/sluice.deb"

# ---- the base: docker.io's where it answers, else the local one ----------------------
BASE=docker.io/library/debian:12-slim
if podman image exists "$BASE" || timeout 60 podman pull -q "$BASE" >"$TMP/pull.log" 2>&1; then
    ok "base $BASE"
else
    echo "note: $BASE cannot be pulled ($(tail -n1 "$TMP/pull.log")): a local Debian 12 slim"
    BASE=localhost/debian:12-slim
    t0=$(date +%s)
    if ! out=$("$SRC/deploy/container/debian-base.sh" "$BASE" 2>&1); then
        echo "$out"
        fail "debian-base.sh"
        exit 1
    fi
    ok "$out ($(($(date +%s) - t0)) s)"
fi

# ---- build ------------------------------------------------------------------------
t0=$(date +%s)
if [ -n "${SLUICE_CONTAINER_IMAGE:-}" ]; then
    # An image built before (debugging the checks below): not built, not removed.
    TAG=$SLUICE_CONTAINER_IMAGE
    RMI_TAG=0
    ok "image $TAG given"
elif ! podman build --network host --isolation chroot -f "$CF" --build-arg "BASE=$BASE" \
    --build-arg DEB=sluice.deb -t "$TAG" "$TMP/ctx" >"$TMP/build.log" 2>&1; then
    tail -n 30 "$TMP/build.log"
    fail "the image did not build"
    exit 1
else
    ok "image built from $(basename "$DEB") on $BASE in $(($(date +%s) - t0)) s ($(podman image inspect -f '{{.Size}}' "$TAG") bytes)"
fi

# ---- start ------------------------------------------------------------------------
if out=$(podman run --rm "${RUN_OPTS[@]}" "$TAG" --version 2>&1) && grep -q "^sluice $VERSION" <<<"$out"; then
    ok "in the image: $(head -n1 <<<"$out")"
else
    fail "sluice --version in the image: $out"
fi
if out=$(podman run --rm "${RUN_OPTS[@]}" -v "$SRC/config:/cfg:ro" -e SLUICE_CONFIG_DIR=/nonexistent \
    -e SLUICE_LOKI_URL=http://127.0.0.1:3100/loki/api/v1/push -e SLUICE_KAFKA_BROKERS=127.0.0.1:9092 \
    -e SLUICE_NODE_IP=127.0.0.1 -e SLUICE_HOST=node-1 "$TAG" \
    check -c /cfg/base.yml -c /cfg/prod.yml -c /cfg/k8s.yml 2>&1); then
    ok "the Kubernetes configuration checks in the image"
else
    fail "sluice check in the image: $out"
fi

# An agent in the container: a pod-shaped CRI fixture in, a file sink out.
POD="$TMP/pods/shop_web-7d9f_0f1e2d3c-aaaa-bbbb-cccc-0123456789ab/nginx"
mkdir -p "$POD" "$TMP/out" "$TMP/data"
chmod 0700 "$TMP/data"
N=200
for i in $(seq 1 $N); do
    if [ $((i % 10)) = 0 ]; then
        printf '2026-12-07T00:00:%02d.%09dZ stdout P line %d first half\n' $((i % 60)) "$i" "$i"
        printf '2026-12-07T00:00:%02d.%09dZ stdout F +second half\n' $((i % 60)) "$i"
    else
        printf '2026-12-07T00:00:%02d.%09dZ stderr F line %d\n' $((i % 60)) "$i" "$i"
    fi
done >"$POD/0.log"
cat >"$TMP/agent.yml" <<'EOF'
data_dir: /var/lib/sluice
shutdown_timeout: 5s
inputs:
  - name: pods
    type: file
    paths: [/var/log/pods/*/*/*.log]
    start_at: beginning
    parse:
      - cri: {}
      - kubernetes: {}
sinks:
  - name: out
    type: file
    path: /out/records.jsonl
    format: json
EOF
if ! CID=$(podman run -d "${RUN_OPTS[@]}" -v "$TMP/pods:/var/log/pods:ro" -v "$TMP/out:/out" \
    -v "$TMP/data:/var/lib/sluice" -v "$TMP/agent.yml:/etc/sluice/agent.yml:ro" "$TAG" \
    run -c /etc/sluice/agent.yml 2>&1); then
    fail "the agent did not start in the image: $CID"
    CID=""
    exit 1
fi
# Waits for the records (the sink's file), not a fixed time.
count() { [ -f "$TMP/out/records.jsonl" ] && grep -c . "$TMP/out/records.jsonl" || echo 0; }
for _ in $(seq 1 1200); do
    [ "$(count)" -ge "$N" ] && break
    [ "$(podman inspect -f '{{.State.Running}}' "$CID" 2>/dev/null)" = true ] || break
    sleep 0.1
done
got=$(count)
if [ "$got" = "$N" ]; then
    ok "the agent in the container shipped $got records to its file sink"
else
    podman logs "$CID" 2>&1 | tail -n 20
    fail "$got records of $N in the file sink"
fi
python3 - "$TMP/out/records.jsonl" "$N" <<'EOF' && ok "each line once, partials joined, pod metadata from the path" || fail "records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
def text(r):
    return r.get("line") or r.get("message") or r.get("msg") or ""
def field(r, k):
    if k in r: return r[k]
    for sub in ("labels", "fields", "metadata", "structured_metadata"):
        if isinstance(r.get(sub), dict) and k in r[sub]: return r[sub][k]
    return None
want = {f"line {i} first half+second half" if i % 10 == 0 else f"line {i}" for i in range(1, n + 1)}
got = [text(r) for r in recs]
assert sorted(got) == sorted(want), (len(got), sorted(set(want) - set(got))[:3], got[:3])
for r in recs:
    assert field(r, "namespace") == "shop" and field(r, "pod") == "web-7d9f", r
    assert field(r, "container") == "nginx", r
EOF
podman stop -t 20 "$CID" >/dev/null 2>&1
rc=$(podman inspect -f '{{.State.ExitCode}}' "$CID" 2>/dev/null)
[ "$rc" = 0 ] && ok "podman stop: the agent ended with status 0" || fail "exit status after SIGTERM: $rc"

echo
[ "$FAILS" = 0 ] && echo "all checks passed" && exit 0
echo "$FAILS check(s) failed"
exit 1
