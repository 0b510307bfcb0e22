#!/usr/bin/env bash
# Installs or updates sluice on this host from its Debian package (make deb):
# the package (binary, unit, user, /var/lib/sluice, /etc/sluice/base.yml and
# site.env), one environment overlay as /etc/sluice/NAME.yml, and settings
# given with --set into /etc/sluice/site.env. Before changing anything it
# runs the package's binary on the files as the service will read them
# (`sluice check --service`, clean environment); it starts or restarts the
# service only when they pass. When destinations are missing it installs
# what it can, starts nothing, says which variables to set and where, and
# exits 3. Idempotent: a second run changes nothing and says so; --dry-run
# prints what would change and touches nothing. An operator's own
# environment (a region, a customer) is a file of theirs, --overlay FILE,
# installed as /etc/sluice/NAME.yml like the shipped ones: no edit here.
# The environment installed last is remembered in /etc/sluice/.environment,
# so switching environments removes the previous overlay, whichever it was.
#
#   deploy/deploy.sh --env prod [--deb PATH] [--set NAME=VALUE ...] [--dry-run]
#   deploy/deploy.sh --overlay /srv/ops/sluice/eu-west.yml [--env eu-west] ...
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy.sh --env staging|prod [--deb PATH] [--set NAME=VALUE ...] [--dry-run]
       deploy.sh --overlay FILE [--env NAME] [--deb PATH] [--set NAME=VALUE ...] [--dry-run]

  --env NAME        overlay to install as /etc/sluice/NAME.yml (config/NAME.yml);
                    default prod. dev is refused: config/dev.yml is for `make run`.
  --overlay FILE    your own environment overlay instead of config/NAME.yml,
                    installed as /etc/sluice/NAME.yml; NAME defaults to FILE's
                    name without .yml (lower-case letters, digits, - and _).
  --deb PATH        the package; default build-deb/sluice_<version>_<arch>.deb
                    (make deb)
  --set NAME=VALUE  write NAME=VALUE into /etc/sluice/site.env (repeatable), e.g.
                    --set SLUICE_LOKI_URL=https://loki.example.net/loki/api/v1/push
  --dry-run         print what would change, change nothing

Exit: 0 deployed, 1 error, 2 usage, 3 installed but not started: settings missing.
EOF
}

SRC=$(cd "$(dirname "$0")/.." && pwd)
ENV_NAME=""
OWN=""
DEB=""
DRY=0
SETS=()

while [ $# -gt 0 ]; do
    case "$1" in
    --env) ENV_NAME=${2:?--env needs a name}; shift 2 ;;
    --overlay) OWN=${2:?--overlay needs a file}; shift 2 ;;
    --deb) DEB=${2:?--deb needs a path}; shift 2 ;;
    --set) SETS+=("${2:?--set needs NAME=VALUE}"); shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

die() {
    echo "deploy.sh: $*" >&2
    exit 1
}

if [ -n "$OWN" ]; then
    [ -f "$OWN" ] || die "--overlay $OWN: no such file"
    [ -n "$ENV_NAME" ] || ENV_NAME=$(basename "$OWN" .yml)
    # The name becomes /etc/sluice/NAME.yml, read beside base.yml: not one of
    # the files that are no environment.
    case "$ENV_NAME" in
    base | site | dev | k8s | tap | aggregator)
        die "--overlay: '$ENV_NAME' is not an environment name (base, site, dev, k8s, tap and" \
            "aggregator are other files of /etc/sluice); name it with --env NAME" ;;
    *[!a-z0-9_-]* | [!a-z0-9]*)
        die "--overlay: environment name '$ENV_NAME': lower-case letters, digits, - and _" \
            "(it names /etc/sluice/NAME.yml); give one with --env NAME" ;;
    esac
else
    [ -n "$ENV_NAME" ] || ENV_NAME=prod
    case "$ENV_NAME" in
    staging | prod) ;;
    dev) die "config/dev.yml is a development configuration (dev: true: paths relative to the" \
        "repository, console output); it cannot run under the unit. Use 'make run' for it," \
        "or --env staging|prod." ;;
    *) die "unknown environment '$ENV_NAME' (staging or prod; your own: --overlay FILE)" ;;
    esac
fi
for kv in ${SETS[@]+"${SETS[@]}"}; do
    case "$kv" in
    [A-Za-z_]*=*) ;;
    *) echo "deploy.sh: --set wants NAME=VALUE, not '$kv'" >&2; exit 2 ;;
    esac
    name=${kv%%=*}
    case "$name" in *[!A-Za-z0-9_]*) echo "deploy.sh: bad variable name '$name'" >&2; exit 2 ;; esac
    case "$kv" in *$'\n'*) echo "deploy.sh: --set $name: a value is one line" >&2; exit 2 ;; esac
done
VERSION=$(sed -n "s/^  version: '\(.*\)',$/\1/p" "$SRC/meson.build")
[ -n "$DEB" ] || DEB="$SRC/build-deb/sluice_${VERSION}_$(dpkg --print-architecture).deb"
[ -f "$DEB" ] || die "no package at $DEB: build it with 'make deb', or pass --deb PATH"
OVERLAY=${OWN:-$SRC/config/$ENV_NAME.yml}
[ -f "$OVERLAY" ] || die "missing $OVERLAY"
[ "$(id -u)" = 0 ] || [ "$DRY" = 1 ] || die "run as root: it installs a package"

CONF=/etc/sluice
# Tests point a dry run at a folder of theirs; a real run is /etc/sluice only.
if [ -n "${SLUICE_DEPLOY_CONF:-}" ]; then
    [ "$DRY" = 1 ] || die "SLUICE_DEPLOY_CONF is for --dry-run only (the service reads /etc/sluice)"
    CONF=$SLUICE_DEPLOY_CONF
fi
SITE="$CONF/site.env"
# The environment deploy.sh installed last (prod and staging are known by
# name; an operator's own only by this).
MARK="$CONF/.environment"
PREV=""
[ -f "$MARK" ] && PREV=$(head -n1 "$MARK" | tr -cd 'a-z0-9_-')
ENVS=$(printf '%s\n' prod staging $PREV | sort -u)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-deploy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
CHANGES=0
change() {
    CHANGES=$((CHANGES + 1))
    if [ "$DRY" = 1 ]; then echo "would: $*"; else echo "changed: $*"; fi
}

# site.env as it will be: the installed one (or the package's template),
# with the --set values. A value with characters the parser treats
# specially is double-quoted.
dpkg-deb -x "$DEB" "$TMP/pkg"
if [ -f "$SITE" ]; then cp "$SITE" "$TMP/site.env"; else cp "$TMP/pkg/etc/sluice/site.env" "$TMP/site.env"; fi
quote() {
    case "$1" in
    *[\ \#\"\'\\\$]* | "") printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"$]/\\&/g')" ;;
    *) printf '%s' "$1" ;;
    esac
}
SITE_CHANGED=0
for kv in ${SETS[@]+"${SETS[@]}"}; do
    name=${kv%%=*}
    line="$name=$(quote "${kv#*=}")"
    grep -qxF "$line" "$TMP/site.env" && continue
    # Drop earlier lines for the name (commented examples stay), append.
    grep -v "^[[:space:]]*${name}[[:space:]]*=" "$TMP/site.env" >"$TMP/site.new" || true
    echo "$line" >>"$TMP/site.new"
    mv "$TMP/site.new" "$TMP/site.env"
    change "set $name in $SITE"
    SITE_CHANGED=1
done

# The check, on exactly what the service will read, by the package's binary,
# in an environment as empty as the unit's.
mkdir -p "$TMP/etc"
cp "$TMP/pkg/etc/sluice/base.yml" "$OVERLAY" "$TMP/site.env" "$TMP/etc/"
# Local files an operator added beside ours are part of what the service reads.
if [ -d "$CONF" ]; then
    for f in "$CONF"/*.yml; do
        [ -f "$f" ] || continue
        n=$(basename "$f" .yml)
        case " $(echo $ENVS) $ENV_NAME base " in *" $n "*) ;; *) cp "$f" "$TMP/etc/" ;; esac
    done
fi
NEEDS=""
if ! out=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SLUICE_CONFIG_DIR="$TMP/etc" \
    "$TMP/pkg/usr/bin/sluice" check --service 2>&1 >/dev/null); then
    errors=$(echo "$out" | grep -v ': warning: ' | grep -v '^sluice: [0-9]* configuration error' || true)
    NEEDS=$(echo "$errors" | sed -n "s/.*environment variable '\([A-Za-z0-9_]*\)' is not set.*/\1/p" |
        sort -u | tr '\n' ' ')
    others=$(echo "$errors" | grep -v "environment variable '[A-Za-z0-9_]*' is not set" || true)
    if [ -n "$others" ]; then
        echo "$out" | sed "s#$TMP/etc#$CONF#g" >&2
        die "base.yml + $ENV_NAME.yml do not pass 'sluice check --service': nothing changed"
    fi
fi

# ---- package --------------------------------------------------------------
PKG_CHANGED=0
want=$(dpkg-deb -f "$DEB" Version)
have=$(dpkg-query -W -f='${Status} ${Version}' sluice 2>/dev/null || true)
if [ "$have" != "install ok installed $want" ]; then
    change "install package sluice $want ($DEB)"
    PKG_CHANGED=1
elif ! cmp -s "$TMP/pkg/usr/bin/sluice" /usr/bin/sluice; then
    change "reinstall package sluice $want (the binary differs)"
    PKG_CHANGED=1
fi
if [ "$PKG_CHANGED" = 1 ] && [ "$DRY" = 0 ]; then
    # A locally edited conffile (site.env) is kept.
    out=$(DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold "$DEB" 2>&1) ||
        { echo "$out" >&2; die "dpkg -i $DEB failed"; }
fi

# ---- overlay and settings ---------------------------------------------------
put_file() { # SRC DEST
    if [ "$DRY" = 0 ]; then
        cp "$1" "$2.deploy-tmp"
        chown root:sluice "$2.deploy-tmp"
        chmod 0640 "$2.deploy-tmp"
        mv -f "$2.deploy-tmp" "$2"
    fi
}
CFG_CHANGED=0
if ! cmp -s "$OVERLAY" "$CONF/$ENV_NAME.yml"; then
    if [ -e "$CONF/$ENV_NAME.yml" ]; then change "update $CONF/$ENV_NAME.yml"; else change "install $CONF/$ENV_NAME.yml"; fi
    put_file "$OVERLAY" "$CONF/$ENV_NAME.yml"
    CFG_CHANGED=1
fi
for other in $ENVS; do
    [ "$other" != "$ENV_NAME" ] && [ -e "$CONF/$other.yml" ] || continue
    change "remove $CONF/$other.yml (the $other overlay: one environment at a time)"
    [ "$DRY" = 1 ] || rm -f "$CONF/$other.yml"
    CFG_CHANGED=1
done
if [ "$PREV" != "$ENV_NAME" ] && [ "$DRY" = 0 ]; then
    printf '%s\n' "$ENV_NAME" >"$MARK.deploy-tmp" && mv -f "$MARK.deploy-tmp" "$MARK"
fi
if [ "$SITE_CHANGED" = 1 ]; then put_file "$TMP/site.env" "$SITE"; fi

# ---- settings missing: say what to set, start nothing ----------------------
if [ -n "$NEEDS" ]; then
    echo "deploy.sh: not started: set these in $SITE (NAME=value lines), then run deploy.sh again:"
    for n in $NEEDS; do echo "  $n"; done
    echo "  (or: deploy.sh --env $ENV_NAME$(for n in $NEEDS; do printf ' --set %s=...' "$n"; done))"
    if [ "$DRY" = 1 ]; then echo "deploy (dry run): $CHANGES change(s) would be made"; else echo "deploy: $CHANGES change(s) made"; fi
    exit 3
fi

# ---- service ----------------------------------------------------------------
if [ ! -d /run/systemd/system ]; then
    echo "note: systemd is not running here: configured, not started"
else
    if ! systemctl is-enabled --quiet sluice.service 2>/dev/null; then
        change "systemctl enable sluice.service"
        [ "$DRY" = 1 ] || systemctl enable --quiet sluice.service
    fi
    if ! systemctl is-active --quiet sluice.service; then
        change "systemctl start sluice.service"
        [ "$DRY" = 1 ] || systemctl start sluice.service
    elif [ $((PKG_CHANGED + SITE_CHANGED)) -gt 0 ]; then
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
