#!/bin/sh
# Builds a local stand-in for docker.io/library/debian:12-slim, for machines
# that reach Debian's mirror but not a container registry:
#
#   deploy/container/debian-base.sh [TAG]      (default localhost/debian:12-slim)
#   podman build -f deploy/container/Containerfile --build-arg BASE=localhost/debian:12-slim ...
#
# The same recipe as the official image: debootstrap --variant=minbase
# bookworm, then what debuerreotype's slimify does (no documentation, man
# pages or translations, kept out of later installs too by a dpkg
# path-exclude), apt's lists and caches dropped, the bookworm,
# bookworm-updates and bookworm-security sources. Imported into podman's
# image store, which is the cache: an existing TAG is kept (exit 0 at once)
# unless --rebuild is given. Needs root, debootstrap and podman;
# DEBIAN_MIRROR overrides http://deb.debian.org/debian.
set -eu
REBUILD=0
if [ "${1:-}" = "--rebuild" ]; then
    REBUILD=1
    shift
fi
TAG=${1:-localhost/debian:12-slim}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ "$REBUILD" = 0 ] && podman image exists "$TAG"; then
    echo "debian-base: $TAG is in the image store already"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debian-base: debootstrap is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debian-base: debootstrap needs root" >&2; exit 1; }
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/sluice-debian-base.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT INT TERM
R="$ROOT/rootfs"
echo "debian-base: debootstrap --variant=minbase bookworm from $MIRROR"
if ! debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$ROOT/debootstrap.log" 2>&1; then
    tail -n 20 "$ROOT/debootstrap.log" >&2
    echo "debian-base: debootstrap failed" >&2
    exit 1
fi

# Slim: what the official -slim variant leaves out, now and in later installs.
mkdir -p "$R/etc/dpkg/dpkg.cfg.d"
cat >"$R/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
find "$R/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$R/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$R/usr/share/groff"/* "$R/usr/share/info"/* "$R/usr/share/linda"/* \
    "$R/usr/share/lintian/overrides"/* "$R/usr/share/locale"/* "$R/usr/share/man"/*
# apt in an image: no translations, no cache kept, services never started.
cat >"$R/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$R/etc/apt/apt.conf.d/docker-no-languages"
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
rm -f "$R/etc/apt/sources.list"
cat >"$R/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -rf "$R/var/lib/apt/lists"/* "$R/var/cache/apt"/* "$R/var/cache/ldconfig/aux-cache" \
    "$R/var/log"/*.log "$R/var/log/apt"/* "$R/root/.bash_history" "$R/etc/machine-id"
: >"$R/etc/hostname"
: >"$R/etc/resolv.conf"

tar -C "$R" --numeric-owner -cf "$ROOT/rootfs.tar" .
podman import -q --change 'CMD ["bash"]' "$ROOT/rootfs.tar" "$TAG" >/dev/null
echo "debian-base: $TAG ($(du -sh "$R" | cut -f1)) imported"
