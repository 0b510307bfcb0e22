#!/usr/bin/env bash
# The Debian package on this machine: `make deb` (lintian clean), dpkg -i,
# what it installed (binary, unit, conffiles, user and groups, data_dir
# 0700), `sluice check` and `sluice spool ls` on the installed files with no
# -c (an unset destination named with site.env first), deploy.sh from the
# package (says what to set, then deploys, then changes nothing), an
# upgrade over itself that keeps a local site.env, remove, and purge
# leaving nothing behind. Skips (exit 77) where dpkg-buildpackage is missing
# or not root; refuses to touch a sluice package it did not install.
# SLUICE_DEB=path uses a package already built.
set -u
SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
FAILS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-deb-test.XXXXXX")
INSTALLED=0
cleanup() {
    # A failed run still leaves the machine as it found it.
    if [ "$INSTALLED" = 1 ]; then dpkg_wait dpkg --purge sluice >/dev/null 2>&1; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}
skip_all() {
    echo "skip: $*"
    exit 77
}
# The package is built from the sources by make deb, whatever the test build:
# the sanitizer pass would only build and install the same package again.
[ -n "${SLUICE_SANITIZED:-}" ] && skip_all "sanitizer pass: the package is tested in the plain pass"
command -v dpkg-buildpackage >/dev/null || skip_all "dpkg-buildpackage missing (Debian package dpkg-dev): package not tested"
[ "$(id -u)" = 0 ] || skip_all "not root: dpkg -i needs it"
# One package test per machine at a time: two checkouts running make test
# side by side would install and purge the same system package.
exec 9>/run/lock/sluice-deb-test.lock
flock -w 600 9 || { fail "another checkout's package test held the lock for 10 min"; exit 1; }
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q 'installed\|config-files'; then
    skip_all "a sluice package is already on this machine: not replacing it"
fi
getent passwd sluice >/dev/null && skip_all "a user sluice exists already: not touching it"
[ -e /etc/sluice ] && skip_all "/etc/sluice exists already: not touching it"

# dpkg refuses at once while another dpkg or apt runs (say, another
# checkout's bootstrap): wait for that to end instead of failing.
dpkg_wait() {
    local out i
    for i in $(seq 600); do
        if out=$("$@" 2>&1); then
            printf '%s\n' "$out"
            return 0
        fi
        case "$out" in
        *"lock was locked by another process"* | *"is locked by another process"*) sleep 0.5 ;;
        *)
            printf '%s\n' "$out"
            return 1
            ;;
        esac
    done
    printf '%s\n' "$out"
    return 1
}
dpkg_i() { DEBIAN_FRONTEND=noninteractive dpkg_wait dpkg -i --force-confdef --force-confold "$1"; }

# ---- build --------------------------------------------------------------------
VERSION=$(sed -n "s/^  version: '\(.*\)',$/\1/p" "$SRC/meson.build")
DEB=${SLUICE_DEB:-}
if [ -z "$DEB" ]; then
    if out=$(make -C "$SRC" deb DEB_BUILD="$TMP/deb" 2>&1); then
        ok "make deb (lintian --fail-on error,warning passed)"
    else
        echo "$out" | tail -n 30
        fail "make deb"
        exit 1
    fi
    DEB="$TMP/deb/sluice_${VERSION}_$(dpkg --print-architecture).deb"
fi
[ -f "$DEB" ] && ok "built $(basename "$DEB")" || { fail "no $DEB"; exit 1; }
case "$(basename "$DEB")" in "sluice_${VERSION}_"*.deb) ok "named sluice_<version>_<arch>.deb" ;; *) fail "name $DEB" ;; esac

# ---- install --------------------------------------------------------------------
INSTALLED=1
if out=$(dpkg_i "$DEB" 2>&1); then ok "dpkg -i"; else fail "dpkg -i: $out"; exit 1; fi
echo "$out" | grep -q 'Set the destinations in /etc/sluice/site.env' && ok "install tells what to set" ||
    fail "no instructions after install: $out"
[ -x /usr/bin/sluice ] && ok "/usr/bin/sluice" || fail "no /usr/bin/sluice"
/usr/bin/sluice version | grep -q '^libraries:.*librdkafka' && ok "installed binary runs" || fail "sluice version"
[ -f /lib/systemd/system/sluice.service ] && grep -qx 'ExecStart=/usr/bin/sluice run' /lib/systemd/system/sluice.service &&
    ok "unit runs /usr/bin/sluice with no -c" || fail "unit"
conffiles=$(dpkg-query -W -f='${Conffiles}' sluice)
for f in /etc/sluice/base.yml /etc/sluice/site.env; do
    echo "$conffiles" | grep -q " $f " && ok "$f is a conffile" || fail "$f not a conffile: $conffiles"
done
[ -f /usr/share/sluice/config/prod.yml ] && [ -f /usr/share/sluice/config/staging.yml ] &&
    ok "overlays in /usr/share/sluice/config" || fail "overlays"
getent passwd sluice >/dev/null && ok "user sluice" || fail "no user sluice"
groups=" $(id -nG sluice 2>/dev/null) "
for g in sluice adm systemd-journal; do
    case "$groups" in *" $g "*) ok "sluice in group $g" ;; *) fail "sluice not in $g:$groups" ;; esac
done
[ "$(stat -c '%a %U %G' /var/lib/sluice 2>/dev/null)" = "700 sluice sluice" ] && ok "/var/lib/sluice 0700 sluice" ||
    fail "/var/lib/sluice: $(stat -c '%a %U %G' /var/lib/sluice 2>&1)"
[ "$(stat -c '%a %U %G' /etc/sluice/site.env)" = "640 root sluice" ] && ok "site.env 0640 root:sluice" ||
    fail "site.env: $(stat -c '%a %U %G' /etc/sluice/site.env)"
if [ -d /run/systemd/system ]; then
    systemctl is-active --quiet sluice && fail "started unconfigured" || ok "not started unconfigured"
fi

# ---- the installed files, no -c -------------------------------------------------
unset SLUICE_CONFIG_DIR SLUICE_LOKI_URL SLUICE_KAFKA_BROKERS
out=$(/usr/bin/sluice check 2>&1)
rc=$?
[ "$rc" = 2 ] && echo "$out" | grep -q "environment variable 'SLUICE_LOKI_URL' is not set (set it in /etc/sluice/site.env" &&
    ok "sluice check: unset destination named, with site.env" || fail "check unconfigured ($rc): $out"
echo 'SLUICE_LOKI_URL=http://127.0.0.1:3100/loki/api/v1/push' >>/etc/sluice/site.env
out=$(/usr/bin/sluice check --service 2>&1)
rc=$?
[ "$rc" = 0 ] && echo "$out" | grep -q '# files: /etc/sluice/base.yml$' &&
    echo "$out" | grep -q 'url: "http://127.0.0.1:3100/loki/api/v1/push"' &&
    ok "sluice check --service with the installed files" || fail "check configured ($rc): $out"
out=$(/usr/bin/sluice spool ls 2>&1) && ok "sluice spool ls (no -c): $(echo "$out" | head -n1)" ||
    fail "spool ls: $out"

# ---- deploy.sh from the package ----------------------------------------------------
DEPLOY="$SRC/deploy/deploy.sh"
out=$("$DEPLOY" --env dev --deb "$DEB" 2>&1) && fail "deploy.sh --env dev accepted" ||
    { echo "$out" | grep -q 'development configuration' && ok "deploy.sh --env dev refused" || fail "dev: $out"; }
out=$("$DEPLOY" --env prod --deb "$DEB" 2>&1)
rc=$?
[ "$rc" = 3 ] && echo "$out" | grep -q "set these in /etc/sluice/site.env" && echo "$out" | grep -qx '  SLUICE_KAFKA_BROKERS' &&
    ok "deploy.sh names the missing SLUICE_KAFKA_BROKERS (exit 3)" || fail "deploy without brokers ($rc): $out"
[ -f /etc/sluice/prod.yml ] && ok "deploy.sh installed the prod overlay" || fail "no /etc/sluice/prod.yml"
out=$("$DEPLOY" --env prod --deb "$DEB" --set SLUICE_KAFKA_BROKERS=127.0.0.1:9092 2>&1)
rc=$?
[ "$rc" = 0 ] && echo "$out" | grep -q 'changed: set SLUICE_KAFKA_BROKERS in /etc/sluice/site.env' &&
    ok "deploy.sh --set: deployed" || fail "deploy with brokers ($rc): $out"
grep -qx 'SLUICE_KAFKA_BROKERS=127.0.0.1:9092' /etc/sluice/site.env && ok "site.env has the broker" || fail "site.env"
out=$("$DEPLOY" --env prod --deb "$DEB" --set SLUICE_KAFKA_BROKERS=127.0.0.1:9092 2>&1)
echo "$out" | grep -q 'deploy: no changes' && ok "second deploy: no changes" || fail "second deploy: $out"
out=$(/usr/bin/sluice check --service 2>&1) && echo "$out" | grep -q 'brokers: "127.0.0.1:9092"' &&
    ok "check reads base.yml + prod.yml + site.env" || fail "check after deploy: $out"
out=$("$DEPLOY" --env staging --deb "$DEB" --dry-run 2>&1)
echo "$out" | grep -q 'would: install /etc/sluice/staging.yml' && echo "$out" | grep -q 'would: remove /etc/sluice/prod.yml' &&
    [ -f /etc/sluice/prod.yml ] && [ ! -e /etc/sluice/staging.yml ] && ok "dry run to staging: listed, nothing changed" ||
    fail "dry run: $out"

# ---- upgrade over itself ---------------------------------------------------------
if out=$(dpkg_i "$DEB" 2>&1); then ok "dpkg -i over itself"; else fail "upgrade: $out"; fi
grep -qx 'SLUICE_KAFKA_BROKERS=127.0.0.1:9092' /etc/sluice/site.env && ok "upgrade kept the local site.env" ||
    fail "upgrade lost site.env edits"
[ "$(stat -c '%a %U %G' /etc/sluice/site.env)" = "640 root sluice" ] && ok "site.env mode kept" || fail "site.env mode after upgrade"
/usr/bin/sluice check >/dev/null 2>&1 && ok "check after upgrade" || fail "check after upgrade"

# ---- remove, purge -----------------------------------------------------------------
if out=$(dpkg_wait dpkg -r sluice); then ok "dpkg -r"; else fail "dpkg -r: $out"; fi
[ ! -e /usr/bin/sluice ] && [ ! -e /lib/systemd/system/sluice.service ] && ok "remove: binary and unit gone" ||
    fail "remove left the binary or unit"
[ -f /etc/sluice/site.env ] && ok "remove keeps configuration" || fail "remove dropped site.env"
if out=$(dpkg_wait dpkg --purge sluice); then ok "dpkg --purge"; else fail "dpkg --purge: $out"; fi
INSTALLED=0
for p in /etc/sluice /var/lib/sluice /usr/share/sluice /usr/share/doc/sluice /usr/bin/sluice \
    /lib/systemd/system/sluice.service /usr/share/man/man1/sluice.1.gz; do
    [ -e "$p" ] && fail "purge left $p"
done
getent passwd sluice >/dev/null && fail "purge left user sluice"
getent group sluice >/dev/null && fail "purge left group sluice"
for g in adm systemd-journal; do
    getent group "$g" | cut -d: -f4 | tr ',' '\n' | grep -qx sluice && fail "purge left sluice in $g"
done
dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q 'installed\|config-files' && fail "dpkg still knows sluice"
[ "$FAILS" = 0 ] && ok "purge left the system clean"

echo
[ "$FAILS" = 0 ] && echo "all checks passed" && exit 0
echo "$FAILS check(s) failed"
exit 1
