#!/usr/bin/env bash
# The container recipe (deploy/container/Containerfile) builds from the
# Debian package and the image starts: `sluice --version`, and `sluice
# check` of the Kubernetes configuration (base + prod + k8s overlay).
# Needs buildah or podman (never installed by this test) and the package
# (`make deb`); skipped with a message otherwise (exit 77).
set -u
SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
if command -v podman >/dev/null 2>&1; then
    BUILD=(podman build) RUN=(podman run) RMI=(podman rmi -f)
elif command -v buildah >/dev/null 2>&1; then
    BUILD=(buildah bud) RUN=() RMI=(buildah rmi -f)
else
    echo "skip: neither podman nor buildah is installed (apt-get install podman to run this test)"
    exit 77
fi
DEB=$(cd "$SRC" && ls build-deb/sluice_*_*.deb 2>/dev/null | sort | tail -1)
if [ -z "$DEB" ]; then
    echo "skip: no Debian package in $SRC/build-deb (run make deb first)"
    exit 77
fi
TAG="localhost/sluice-test:$$"
cleanup() { "${RMI[@]}" "$TAG" >/dev/null 2>&1; }
trap cleanup EXIT
cd "$SRC" || exit 1
if ! "${BUILD[@]}" -f deploy/container/Containerfile --build-arg "DEB=$DEB" -t "$TAG" .; then
    echo "FAIL: the image did not build"
    exit 1
fi
echo "ok: image built from $DEB"
if [ ${#RUN[@]} -eq 0 ]; then
    echo "skip: buildah only: the image is not started"
    exit 0
fi
if ! out=$("${RUN[@]}" --rm --network none "$TAG" --version 2>&1); then
    echo "FAIL: sluice --version in the image: $out"
    exit 1
fi
echo "ok: $out"
if ! out=$("${RUN[@]}" --rm --network none -v "$SRC/config:/cfg:ro" -e SLUICE_CONFIG_DIR=/nonexistent \
    -e SLUICE_LOKI_URL=http://127.0.0.1:3100/loki/api/v1/push -e SLUICE_KAFKA_BROKERS=127.0.0.1:9092 \
    -e SLUICE_NODE_IP=10.0.0.5 -e SLUICE_HOST=node-1 "$TAG" \
    check -c /cfg/base.yml -c /cfg/prod.yml -c /cfg/k8s.yml 2>&1); then
    echo "FAIL: sluice check in the image: $out"
    exit 1
fi
echo "ok: the Kubernetes configuration checks in the image"
