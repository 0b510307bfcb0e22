#!/usr/bin/env bash
# Installs or updates sluice on this host: binary, user, directories,
# configuration for one environment, systemd unit. Idempotent: a second run
# changes nothing and says so. --dry-run prints what would change and
# touches nothing. --root DIR installs into DIR (a staging tree or an image)
# and never calls systemctl.
#
#   deploy/deploy.sh --env prod [--binary build/cli/sluice] [--dry-run] [--root DIR]
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy.sh [--env dev|staging|prod] [--binary PATH] [--root DIR] [--host NAME] [--dry-run]

  --env NAME     configuration overlay to install (config/NAME.yml); default prod
  --binary PATH  the sluice binary; default build/cli/sluice in the repository
  --root DIR     install into DIR instead of /; systemctl is never called
  --host NAME    value of the host label (SLUICE_HOST); default: the host name
  --dry-run      print what would change, change nothing
EOF
}

SRC=$(cd "$(dirname "$0")/.." && pwd)
ENV_NAME=prod
BIN=""
ROOT=""
HOST=""
DRY=0

while [ $# -gt 0 ]; do
    case "$1" in
    --env) ENV_NAME=${2:?--env needs a name}; shift 2 ;;
    --binary) BIN=${2:?--binary needs a path}; shift 2 ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --host) HOST=${2:?--host needs a name}; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

die() {
    echo "deploy.sh: $*" >&2
    exit 1
}

case "$ENV_NAME" in
dev | staging | prod) ;;
*) die "unknown environment '$ENV_NAME' (dev, staging or prod)" ;;
esac
[ -n "$BIN" ] || BIN="$SRC/build/cli/sluice"
[ -x "$BIN" ] || die "no sluice binary at $BIN (build it, or pass --binary)"
BASE_CFG="$SRC/config/base.yml"
ENV_CFG="$SRC/config/$ENV_NAME.yml"
UNIT_SRC="$SRC/deploy/sluice.service"
for f in "$BASE_CFG" "$ENV_CFG" "$UNIT_SRC"; do [ -f "$f" ] || die "missing $f"; done
if [ -n "$ROOT" ]; then
    ROOT=${ROOT%/}
    [ -n "$ROOT" ] || die "--root / is the real system: leave --root out instead"
    case "$ROOT" in /*) ;; *) ROOT="$PWD/$ROOT" ;; esac
fi
if [ -z "$HOST" ]; then
    if [ -n "$ROOT" ] && [ -s "$ROOT/etc/hostname" ]; then HOST=$(head -n1 "$ROOT/etc/hostname")
    else HOST=$(uname -n); fi
fi
case "$HOST" in *[!A-Za-z0-9._-]*) die "host name '$HOST' has characters a label should not" ;; esac

USER_NAME=sluice
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# Refuse to install a configuration the binary rejects: check first, with
# the files as they will be installed.
if ! out=$("$BIN" check -c "$BASE_CFG" -c "$ENV_CFG" 2>&1 >/dev/null); then
    echo "$out" >&2
    die "configuration base.yml + $ENV_NAME.yml does not pass 'sluice check'"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-deploy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

CHANGES=0
BIN_CHANGED=0
UNIT_CHANGED=0
ENV_CHANGED=0
CFG_CHANGED=0

t() { printf '%s%s' "$ROOT" "$1"; } # a path inside the target root

change() {
    CHANGES=$((CHANGES + 1))
    if [ "$DRY" = 1 ]; then echo "would: $*"; else echo "changed: $*"; fi
}

# Numeric id of a user or group in the target root; empty when unknown.
lookup_id() { # passwd|group NAME
    local db=$1 name=$2
    if [ "$name" = root ]; then
        echo 0
    elif [ -n "$ROOT" ]; then
        [ -f "$ROOT/etc/$db" ] || return 0
        awk -F: -v n="$name" '$1 == n { print $3; exit }' "$ROOT/etc/$db"
    else
        getent "$db" "$name" | cut -d: -f3 || true
    fi
}

# Mode and ownership of an existing path. Ownership is only managed as root;
# an unprivileged run into --root leaves it to whoever packs the tree.
ensure_attrs() { # PATH MODE OWNER GROUP
    local path=$1 mode=$2 owner=$3 group=$4 real
    real=$(t "$path")
    if [ -e "$real" ] && [ "$(stat -c %a "$real")" != "$mode" ]; then
        change "chmod $mode $path"
        [ "$DRY" = 1 ] || chmod "$mode" "$real"
    fi
    [ "$IS_ROOT" = 1 ] || return 0
    local uid gid
    uid=$(lookup_id passwd "$owner")
    gid=$(lookup_id group "$group")
    if [ -z "$uid" ] || [ -z "$gid" ]; then
        # Only possible in a dry run, before the user exists.
        [ -e "$real" ] && change "chown $owner:$group $path"
        return 0
    fi
    if [ ! -e "$real" ] || [ "$(stat -c %u:%g "$real")" != "$uid:$gid" ]; then
        [ -e "$real" ] && change "chown $owner:$group $path"
        [ "$DRY" = 1 ] || chown "$uid:$gid" "$real"
    fi
}

# Sets owner and group quietly on something just created (its creation was
# the change reported).
set_owner() { # REAL_PATH OWNER GROUP
    [ "$IS_ROOT" = 1 ] || return 0
    local uid gid
    uid=$(lookup_id passwd "$2")
    gid=$(lookup_id group "$3")
    if [ -n "$uid" ] && [ -n "$gid" ]; then chown "$uid:$gid" "$1"; fi
}

ensure_dir() { # PATH MODE OWNER GROUP
    local real
    real=$(t "$1")
    if [ ! -d "$real" ]; then
        change "create directory $1 (mode $2, $3:$4)"
        [ "$DRY" = 1 ] && return 0
        mkdir -p "$real"
        chmod "$2" "$real"
        set_owner "$real" "$3" "$4"
    fi
    ensure_attrs "$@"
}

# A system directory we need but do not own: created when missing, its
# attributes left alone.
ensure_parent() {
    local real
    real=$(t "$1")
    [ -d "$real" ] && return 0
    change "create directory $1"
    [ "$DRY" = 1 ] || mkdir -p "$real"
}

# Installs SRC at DEST when absent or different (atomically: copy, rename).
# Sets FILE_CHANGED to 1 when it did (or would) change the content. (No
# return status: set -e does not apply inside functions called from a
# condition, so failures here must abort rather than be tested.)
FILE_CHANGED=0
ensure_file() { # SRC DEST MODE OWNER GROUP
    local src=$1 dest=$2 real
    real=$(t "$dest")
    FILE_CHANGED=0
    if [ ! -e "$real" ]; then
        change "install $dest"
        FILE_CHANGED=1
    elif ! cmp -s "$src" "$real"; then
        change "update $dest"
        FILE_CHANGED=1
    fi
    if [ "$FILE_CHANGED" = 1 ] && [ "$DRY" = 0 ]; then
        cp "$src" "$real.deploy-tmp"
        chmod "$3" "$real.deploy-tmp"
        set_owner "$real.deploy-tmp" "$4" "$5"
        mv -f "$real.deploy-tmp" "$real"
    fi
    ensure_attrs "$dest" "$3" "$4" "$5"
}

# ---- user -----------------------------------------------------------------
cat >"$TMP/sysusers.conf" <<EOF
# Managed by sluice deploy/deploy.sh.
u $USER_NAME - "sluice log agent" /var/lib/sluice /usr/sbin/nologin
EOF
ensure_parent /etc/sysusers.d
ensure_file "$TMP/sysusers.conf" /etc/sysusers.d/sluice.conf 644 root root
if [ -z "$(lookup_id passwd "$USER_NAME")" ]; then
    change "create system user $USER_NAME"
    if [ "$DRY" = 0 ]; then
        if command -v systemd-sysusers >/dev/null; then
            if [ -n "$ROOT" ]; then out=$(systemd-sysusers --root="$ROOT" 2>&1) || true
            else out=$(systemd-sysusers /etc/sysusers.d/sluice.conf 2>&1) || true; fi
        else
            out=$(useradd ${ROOT:+--root "$ROOT"} --system --user-group \
                --home-dir /var/lib/sluice --no-create-home --shell /usr/sbin/nologin \
                "$USER_NAME" 2>&1) || true
        fi
        [ -n "$(lookup_id passwd "$USER_NAME")" ] || die "could not create user $USER_NAME: $out"
    fi
fi

# ---- directories ----------------------------------------------------------
ensure_parent /usr/local/bin
ensure_parent /etc/systemd/system
ensure_dir /etc/sluice 750 root "$USER_NAME"
ensure_dir /etc/sluice/secrets 700 root root
ensure_dir /var/lib/sluice 700 "$USER_NAME" "$USER_NAME"

# ---- files ----------------------------------------------------------------
ensure_file "$BIN" /usr/local/bin/sluice 755 root root
if [ "$FILE_CHANGED" = 1 ]; then BIN_CHANGED=1; fi
ensure_file "$BASE_CFG" /etc/sluice/base.yml 640 root "$USER_NAME"
if [ "$FILE_CHANGED" = 1 ]; then CFG_CHANGED=1; fi
ensure_file "$ENV_CFG" "/etc/sluice/$ENV_NAME.yml" 640 root "$USER_NAME"
if [ "$FILE_CHANGED" = 1 ]; then CFG_CHANGED=1; fi
cat >"$TMP/sluice.env" <<EOF
# Managed by sluice deploy/deploy.sh: local settings go in /etc/sluice/site.env.
SLUICE_ENV=$ENV_NAME
SLUICE_HOST=$HOST
EOF
ensure_file "$TMP/sluice.env" /etc/sluice/sluice.env 640 root "$USER_NAME"
if [ "$FILE_CHANGED" = 1 ]; then ENV_CHANGED=1; fi
ensure_file "$UNIT_SRC" /etc/systemd/system/sluice.service 644 root root
if [ "$FILE_CHANGED" = 1 ]; then UNIT_CHANGED=1; fi

# ---- service --------------------------------------------------------------
if [ -n "$ROOT" ]; then
    echo "note: --root given: systemctl not called"
elif ! command -v systemctl >/dev/null || [ ! -d /run/systemd/system ]; then
    echo "note: systemd is not running here: unit installed, not started"
else
    if [ "$UNIT_CHANGED" = 1 ]; then
        change "systemctl daemon-reload"
        [ "$DRY" = 1 ] || systemctl daemon-reload
    fi
    if ! systemctl is-enabled --quiet sluice.service 2>/dev/null; then
        change "systemctl enable sluice.service"
        [ "$DRY" = 1 ] || systemctl enable --quiet sluice.service
    fi
    if ! systemctl is-active --quiet sluice.service; then
        change "systemctl start sluice.service"
        [ "$DRY" = 1 ] || systemctl start sluice.service
    elif [ $((BIN_CHANGED + UNIT_CHANGED + ENV_CHANGED)) -gt 0 ]; then
        # A restart drains sinks and saves checkpoints: nothing is lost.
        change "systemctl restart sluice.service"
        [ "$DRY" = 1 ] || systemctl restart sluice.service
    elif [ "$CFG_CHANGED" = 1 ]; then
        change "systemctl reload sluice.service"
        [ "$DRY" = 1 ] || systemctl reload sluice.service
    fi
fi

if [ "$DRY" = 1 ]; then
    if [ "$CHANGES" = 0 ]; then echo "deploy (dry run): no changes"
    else echo "deploy (dry run): $CHANGES change(s) would be made"; fi
else
    if [ "$CHANGES" = 0 ]; then echo "deploy: no changes"
    else echo "deploy: $CHANGES change(s) made"; fi
fi
