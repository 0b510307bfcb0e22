#!/usr/bin/env bash
# Operations artefacts: configs pass `sluice check`; deploy.sh --dry-run,
# a real run into --root and an idempotent second run; the systemd unit
# passes systemd-analyze verify; the DaemonSet and the Grafana dashboard
# parse and have what they must; alert rules pass promtool; and a running
# agent's /metrics matches what went through it and passes
# `promtool check metrics`. Tools that are absent are skipped with a message.
set -u

SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${SLUICE_BIN:-$SRC/build/cli/sluice}
FAILS=0
AGENT_PID=""
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-ops-test.XXXXXX")
cleanup() {
    if [ -n "$AGENT_PID" ]; then kill -KILL "$AGENT_PID" 2>/dev/null; fi
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}
skip() { echo "skip: $*"; }
has() { command -v "$1" >/dev/null 2>&1; }

[ -x "$BIN" ] || {
    echo "no sluice binary at $BIN"
    exit 1
}

# ---- configs ----------------------------------------------------------------
# Destinations have no default: with them unset, check names them; set, it passes.
export SLUICE_CONFIG_DIR="$TMP/no-etc" SLUICE_DATA_DIR="$TMP/data"
for env in staging prod; do
    if out=$(env -u SLUICE_LOKI_URL -u SLUICE_KAFKA_BROKERS "$BIN" check -c "$SRC/config/base.yml" \
        -c "$SRC/config/$env.yml" 2>&1); then
        fail "base.yml + $env.yml pass without destinations"
    else
        case "$out" in *"'SLUICE_LOKI_URL' is not set"*"'SLUICE_KAFKA_BROKERS' is not set"*) ok "$env: unset destinations named" ;;
        *) fail "$env without destinations: $out" ;; esac
    fi
done
export SLUICE_LOKI_URL=http://127.0.0.1:3100/loki/api/v1/push SLUICE_KAFKA_BROKERS=127.0.0.1:9092
for env in staging prod; do
    if out=$("$BIN" check --service -c "$SRC/config/base.yml" -c "$SRC/config/$env.yml" 2>&1); then
        ok "sluice check --service base.yml + $env.yml"
    else
        fail "sluice check base.yml + $env.yml: $out"
    fi
done
# The Kubernetes overlay on top (what the DaemonSet's ConfigMap holds).
if out=$(SLUICE_NODE_IP=10.0.0.5 "$BIN" check --service -c "$SRC/config/base.yml" -c "$SRC/config/prod.yml" \
    -c "$SRC/config/k8s.yml" 2>&1); then
    ok "sluice check --service base.yml + prod.yml + k8s.yml"
else
    fail "sluice check base.yml + prod.yml + k8s.yml: $out"
fi
# The overlays really overlay: the environment label lands on the input.
if "$BIN" check -c "$SRC/config/base.yml" -c "$SRC/config/prod.yml" 2>/dev/null | grep -q 'env: "prod"'; then
    ok "prod overlay merged into base"
else
    fail "prod overlay did not set the env label"
fi
# dev.yml is for `make run` only: relative paths, refused for the service.
if out=$(cd "$SRC" && "$BIN" check --service -c config/dev.yml 2>&1); then
    fail "dev.yml passes check --service"
else
    case "$out" in *"development configuration"*) ok "dev.yml refused for the service" ;; *) fail "dev.yml: $out" ;; esac
fi

# ---- deploy.sh ----------------------------------------------------------------
# What it refuses, before touching anything (tests/ops/test_deb.sh deploys
# for real, from the package).
DEPLOY="$SRC/deploy/deploy.sh"
refused() { # WHAT EXPECTED-TEXT ARGS...
    local what=$1 want=$2 out
    shift 2
    if out=$("$DEPLOY" "$@" 2>&1); then fail "deploy.sh accepted $what"
    else case "$out" in *"$want"*) ok "deploy.sh refuses $what" ;; *) fail "deploy.sh $what: $out" ;; esac; fi
}
refused "--env dev" "development configuration" --env dev --deb /nonexistent.deb
refused "an unknown environment" "unknown environment" --env nowhere
refused "a missing package" "make deb" --env prod --deb "$TMP/missing.deb"
refused "a bad --set" "--set wants NAME=VALUE" --env prod --set 'not-a-pair'
"$DEPLOY" --help | grep -q -- '--set NAME=VALUE' && ok "deploy.sh --help" || fail "deploy.sh --help"

# An operator's own environment (decision 0085): --overlay FILE, no edit of
# deploy.sh. A dry run against a package made here (the binary, base.yml,
# site.env) and a configuration folder of this test's where another own
# environment was installed before and a local overlay sits beside it.
if has dpkg-deb; then
    P="$TMP/fakepkg"
    mkdir -p "$P/DEBIAN" "$P/usr/bin" "$P/etc/sluice"
    printf 'Package: sluice\nVersion: 0.1.0\nArchitecture: %s\nMaintainer: test <t@example.org>\nDescription: test\n' \
        "$(dpkg --print-architecture)" >"$P/DEBIAN/control"
    cp "$BIN" "$P/usr/bin/sluice"
    cp "$SRC/config/base.yml" "$SRC/debian/site.env" "$P/etc/sluice/"
    FAKEDEB="$TMP/sluice-test.deb"
    dpkg-deb --root-owner-group -Zgzip -b "$P" "$FAKEDEB" >/dev/null 2>&1 || fail "dpkg-deb -b of the test package"
    CONFD="$TMP/conf"
    mkdir -p "$CONFD"
    cp "$SRC/config/prod.yml" "$CONFD/us-east.yml"
    echo us-east >"$CONFD/.environment"
    printf 'log:\n  level: info\n' >"$CONFD/zz-local.yml"
    OWNF="$TMP/eu-west.yml"
    { cat "$SRC/config/prod.yml"; printf '\n# eu-west\n'; } >"$OWNF"
    sed -i 's/^      env: prod$/      env: eu-west/' "$OWNF"
    SETS=(--set SLUICE_LOKI_URL=http://127.0.0.1:3100/loki/api/v1/push --set SLUICE_KAFKA_BROKERS=127.0.0.1:9092)
    before=$(cd "$CONFD" && ls -A | sort | tr '\n' ' ')
    out=$(SLUICE_DEPLOY_CONF="$CONFD" "$DEPLOY" --overlay "$OWNF" --deb "$FAKEDEB" --dry-run "${SETS[@]}" 2>&1)
    rc=$?
    if [ "$rc" = 0 ] && grep -q "would: install $CONFD/eu-west.yml" <<<"$out" &&
        grep -q "would: remove $CONFD/us-east.yml (the us-east overlay" <<<"$out" &&
        ! grep -q "zz-local" <<<"$out" && [ "$(cd "$CONFD" && ls -A | sort | tr '\n' ' ')" = "$before" ]; then
        ok "deploy.sh --overlay eu-west.yml: installs it as eu-west.yml, removes the previous own environment (dry run: nothing changed)"
    else
        fail "deploy.sh --overlay ($rc): $out"
    fi
    # The own overlay is checked like a shipped one, local overlays included.
    printf 'inputs:\n  - name: system\n    start_at: sometimes\n' >"$TMP/broken.yml"
    out=$(SLUICE_DEPLOY_CONF="$CONFD" "$DEPLOY" --overlay "$TMP/broken.yml" --deb "$FAKEDEB" --dry-run "${SETS[@]}" 2>&1)
    rc=$?
    if [ "$rc" = 1 ] && grep -q "start_at" <<<"$out" && grep -q "do not pass 'sluice check --service'" <<<"$out"; then
        ok "deploy.sh --overlay with an error: refused by the check, naming it"
    else
        fail "deploy.sh --overlay broken.yml ($rc): $out"
    fi
    refused "--overlay named like a non-environment file" "not an environment name" --overlay "$OWNF" --env base \
        --deb "$FAKEDEB" --dry-run
    cp "$OWNF" "$TMP/EU West.yml"
    refused "--overlay whose name is no file name" "lower-case letters" --overlay "$TMP/EU West.yml" --deb "$FAKEDEB" \
        --dry-run
    refused "--overlay of a missing file" "no such file" --overlay "$TMP/none.yml" --deb "$FAKEDEB"
    out=$(SLUICE_DEPLOY_CONF="$CONFD" "$DEPLOY" --env prod --deb "$FAKEDEB" "${SETS[@]}" 2>&1) &&
        fail "SLUICE_DEPLOY_CONF outside a dry run accepted: $out" ||
        { grep -q "for --dry-run only" <<<"$out" && ok "deploy.sh refuses SLUICE_DEPLOY_CONF outside a dry run" ||
            fail "SLUICE_DEPLOY_CONF: $out"; }
else
    skip "dpkg-deb is not installed: deploy.sh --overlay not run"
fi

# ---- systemd unit -------------------------------------------------------------------
UNIT="$SRC/deploy/sluice.service"
for d in 'User=sluice' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/sluice' 'NoNewPrivileges=yes' \
    'Restart=on-failure' 'SupplementaryGroups=systemd-journal adm' 'Type=notify'; do
    grep -qx "$d" "$UNIT" && ok "unit has $d" || fail "unit lacks $d"
done
grep -q '^LimitNOFILE=[0-9]' "$UNIT" && ok "unit has LimitNOFILE" || fail "unit lacks LimitNOFILE"
# One place: the unit reads what `sluice check` reads (no -c, no EnvironmentFile).
grep -qx 'ExecStart=/usr/bin/sluice run' "$UNIT" && ok "unit runs sluice with the default files" ||
    fail "unit ExecStart: $(grep ExecStart= "$UNIT")"
grep -q '^EnvironmentFile=' "$UNIT" && fail "unit has an EnvironmentFile (sluice reads site.env itself)"
if has systemd-analyze; then
    # verify wants the binary to exist: point ExecStart at the installed one.
    mkdir -p "$TMP/unit"
    sed "s#/usr/bin/sluice#$BIN#" "$UNIT" >"$TMP/unit/sluice.service"
    if out=$(systemd-analyze verify "$TMP/unit/sluice.service" 2>&1); then
        ok "systemd-analyze verify"
    else
        fail "systemd-analyze verify: $out"
    fi
    if [ -n "$out" ]; then echo "$out" | sed 's/^/  verify: /'; fi
    # The aggregator's drop-in, loaded beside the unit: verify only warns
    # about a key it does not know, so any line naming the file fails.
    mkdir -p "$TMP/unit/sluice.service.d"
    cp "$SRC/deploy/sluice-aggregator.conf" "$TMP/unit/sluice.service.d/aggregator.conf"
    if out=$(systemd-analyze verify "$TMP/unit/sluice.service" 2>&1) && ! grep -q 'aggregator.conf' <<<"$out"; then
        ok "systemd-analyze verify with the aggregator drop-in"
    else
        fail "systemd-analyze verify with deploy/sluice-aggregator.conf: $out"
    fi
else
    skip "systemd-analyze not installed: unit not verified"
fi

# ---- Kubernetes DaemonSet -----------------------------------------------------------
DS="$SRC/deploy/k8s/daemonset.yaml"
if python3 -c 'import yaml' 2>/dev/null; then
    if out=$(python3 - "$DS" <<'EOF' 2>&1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = [d for d in docs if d.get("kind") == "DaemonSet"]
assert len(ds) == 1, "exactly one DaemonSet"
ds = ds[0]
assert ds["apiVersion"] == "apps/v1"
spec = ds["spec"]
tmpl = spec["template"]
assert spec["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items(), "selector matches pod labels"
pod = tmpl["spec"]
c = pod["containers"][0]
assert c["image"], "image"
assert "run" in c["args"], "runs the agent"
lim = c["resources"]["limits"]
assert "cpu" in lim and "memory" in lim, "resource limits"
assert "memory" in c["resources"]["requests"], "memory request"
probe = c["livenessProbe"]["httpGet"]
assert probe["path"] == "/healthz", "liveness on /healthz"
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz"
assert not any(p["containerPort"] == 9881 for p in c["ports"]), "the tap is not exposed"
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert probe["port"] in ports or probe["port"] in ports.values(), "probe port declared"
assert c["securityContext"]["readOnlyRootFilesystem"] is True, "readOnlyRootFilesystem"
assert c["securityContext"]["allowPrivilegeEscalation"] is False, "no privilege escalation"
env = {e["name"]: e for e in c.get("env", [])}
assert not env["SLUICE_METRICS_LISTEN"]["value"].startswith("127."), "probe-reachable listen"
vols = {v["name"]: v for v in pod["volumes"]}
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
def host(path):
    for name, v in vols.items():
        if v.get("hostPath", {}).get("path") == path:
            return name
    raise AssertionError("no hostPath volume for " + path)
for p in ["/var/log", "/var/log/journal", "/run/log/journal", "/var/lib/sluice"]:
    name = host(p)
    m = [m for m in c["volumeMounts"] if m["name"] == name]
    assert m, "volume %s mounted" % name
    if p != "/var/lib/sluice":
        assert m[0].get("readOnly") is True, p + " read-only"
    else:
        assert not m[0].get("readOnly"), "data dir writable"
assert "/etc/sluice" in mounts, "config mounted"
# Kubernetes metadata (config/k8s.yml): the pods' logs, the kubelet's
# address, exactly nodes/proxy get, a grace above prod's shutdown_timeout.
for p in ["/var/log/pods", "/var/log/containers"]:
    assert [m for m in c["volumeMounts"] if m["name"] == host(p) and m.get("readOnly")], p
assert env["SLUICE_NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
roles = [d for d in docs if d.get("kind") == "ClusterRole"]
assert [r["rules"] for r in roles] == [[{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]], "RBAC"
assert pod["terminationGracePeriodSeconds"] > 20, "grace above shutdown_timeout"
print("daemonset ok")
EOF
    ); then
        ok "DaemonSet parses and has the required fields"
    else
        fail "DaemonSet: $out"
    fi
else
    skip "python3 yaml module absent: DaemonSet checked by grep only"
    for s in 'kind: DaemonSet' 'path: /healthz' 'readOnlyRootFilesystem: true' 'path: /var/log$' \
        'path: /var/log/journal' 'path: /run/log/journal' 'path: /var/lib/sluice' 'limits:'; do
        grep -q "$s" "$DS" && ok "DaemonSet has '$s'" || fail "DaemonSet lacks '$s'"
    done
fi

# ---- metric names used by the dashboard and the alerts --------------------------------
# Every sluice_* name must be one the code registers, or one a sink that is
# not merged yet registers (listed here until it lands).
PENDING="sluice_sink_failing sluice_sink_last_success_timestamp_seconds sluice_sink_requests_total
sluice_sink_retries_total sluice_sink_dropped_records_total sluice_spool_bytes
sluice_spool_records_pending sluice_spool_written_records_total sluice_spool_replayed_records_total
sluice_spool_corrupt_entries_total sluice_spool_dropped_records_total sluice_spool_write_errors_total
sluice_sink_adjusted_total sluice_input_files_refused_total"
KNOWN="$TMP/known-metrics"
{
    grep -rhoE 'sl_(counter|gauge)\(\s*"sluice_[a-z0-9_]+"' "$SRC"/core "$SRC"/collector "$SRC"/parsers "$SRC"/pipeline "$SRC"/net \
        "$SRC"/shipper "$SRC"/cli 2>/dev/null | grep -oE 'sluice_[a-z0-9_]+'
    grep -ohE '# TYPE sluice_[a-z0-9_]+' "$SRC"/cli/http_*.c | grep -oE 'sluice_[a-z0-9_]+'
} | sort -u >"$KNOWN"

# ---- Grafana dashboard --------------------------------------------------------------
DASH="$SRC/deploy/grafana/sluice-dashboard.json"
if out=$(python3 - "$DASH" "$KNOWN" "$PENDING" <<'EOF' 2>&1
import json, re, sys
d = json.load(open(sys.argv[1]))
known = set(open(sys.argv[2]).read().split())
pending = set(sys.argv[3].split())
for k in ["uid", "title", "panels", "templating", "schemaVersion"]:
    assert k in d, "dashboard lacks " + k
rows = [p["title"].lower() for p in d["panels"] if p["type"] == "row"]
for want in ["throughput", "lag", "errors", "spool", "backpressure"]:
    assert want in rows, "no %s row" % want
ids = [p["id"] for p in d["panels"]]
assert len(ids) == len(set(ids)), "panel ids unique"
names = set()
for p in d["panels"]:
    if p["type"] == "row":
        continue
    g = p["gridPos"]
    assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, "gridPos of " + p["title"]
    assert p["targets"], "panel %s has no query" % p["title"]
    for t in p["targets"]:
        assert t["expr"].count("(") == t["expr"].count(")"), "parentheses in " + t["expr"]
        names |= set(re.findall(r"sluice_[a-z0-9_]+", t["expr"]))
vars = [v["name"] for v in d["templating"]["list"]]
assert "instance" in vars and "datasource" in vars, "template variables"
unknown = names - known - pending
assert not unknown, "metrics no code registers: %s" % sorted(unknown)
waiting = sorted(names & pending - known)
if waiting:
    print("note: dashboard uses metrics of unmerged sinks: " + " ".join(waiting))
print("%d panels, %d metric names" % (len(d["panels"]), len(names)))
EOF
); then
    ok "dashboard JSON: $(echo "$out" | tail -n1)"
    echo "$out" | grep '^note:' || true
else
    fail "dashboard: $out"
fi

ALERTS="$SRC/deploy/prometheus/sluice-alerts.yml"
unknown=""
for n in $(grep -oE 'sluice_[a-z0-9_]+' "$ALERTS" | sort -u); do
    grep -qx "$n" "$KNOWN" && continue
    case " $(echo $PENDING) " in *" $n "*) continue ;; esac
    unknown="$unknown $n"
done
[ -z "$unknown" ] && ok "alert rules use known metric names" || fail "alert rules use unknown metrics:$unknown"

# ---- alert rules ----------------------------------------------------------------------
if has promtool; then
    out=$(promtool check rules "$ALERTS" 2>&1) && ok "promtool check rules" || fail "promtool check rules: $out"
    out=$(cd "$SRC/deploy/prometheus" && promtool test rules sluice-alerts.test.yml 2>&1) &&
        ok "promtool test rules" || fail "promtool test rules: $out"
else
    skip "promtool not installed (Debian package prometheus): alert rules not checked"
fi

# ---- a running agent's /metrics and /healthz -----------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$TMP/run/logs"
N=250
cat >"$TMP/run/c.yml" <<EOF
data_dir: $TMP/run/data
metrics: { listen: "127.0.0.1:$PORT", unhealthy_after: 5s }
inputs:
  - name: app
    type: file
    paths: ["$TMP/run/logs/*.log"]
    start_at: beginning
    poll_interval: 100ms
sinks:
  - name: out
    type: file
    path: $TMP/run/out.jsonl
    format: json
EOF
for i in $(seq 1 $N); do echo "line $i"; done >"$TMP/run/logs/a.log"
"$BIN" run -c "$TMP/run/c.yml" 2>"$TMP/run/agent.log" &
AGENT_PID=$!
fetch() { # PATH -> "status\nbody"
    python3 - "$PORT" "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=5)
    print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())
except Exception as e:
    print(0); print(e)
EOF
}
got=0
for _ in $(seq 1 100); do
    got=$(wc -l <"$TMP/run/out.jsonl" 2>/dev/null || echo 0)
    [ "$got" -ge "$N" ] && break
    sleep 0.1
done
[ "$got" = "$N" ] && ok "agent delivered $N records" || fail "agent delivered $got of $N records"
metrics=$(fetch /metrics)
status=$(echo "$metrics" | head -n1)
[ "$status" = 200 ] && ok "GET /metrics 200" || fail "GET /metrics: $metrics"
echo "$metrics" | tail -n +2 >"$TMP/run/metrics.txt"
val() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/run/metrics.txt"; }
[ "$(val 'sluice_input_records_total{input="app"}')" = "$N" ] && ok "input counter = $N" ||
    fail "sluice_input_records_total = '$(val 'sluice_input_records_total{input="app"}')', want $N"
[ "$(val 'sluice_sink_records_total{sink="out"}')" = "$N" ] && ok "sink counter = $N" ||
    fail "sluice_sink_records_total = '$(val 'sluice_sink_records_total{sink="out"}')', want $N"
bytes=$(wc -c <"$TMP/run/logs/a.log")
[ "$(val 'sluice_input_bytes_total{input="app"}')" = "$bytes" ] && ok "input bytes = $bytes" ||
    fail "sluice_input_bytes_total = '$(val 'sluice_input_bytes_total{input="app"}')', want $bytes"
for m in sluice_process_resident_memory_bytes sluice_process_open_fds sluice_process_cpu_seconds_total \
    sluice_process_start_time_seconds; do
    [ -n "$(val $m)" ] && ok "$m present" || fail "$m missing"
done
grep -q '^sluice_build_info{version="[^"]*"} 1$' "$TMP/run/metrics.txt" && ok "build info" || fail "build info"
health=$(fetch /healthz)
[ "$(echo "$health" | head -n1)" = 200 ] && echo "$health" | grep -q '"status":"ok"' &&
    ok "GET /healthz 200 ok" || fail "/healthz: $health"
if has promtool; then
    out=$(promtool check metrics <"$TMP/run/metrics.txt" 2>&1) && ok "promtool check metrics" ||
        fail "promtool check metrics: $out"
else
    skip "promtool not installed: scraped metrics not linted"
fi
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
rc=$?
AGENT_PID=""
[ "$rc" = 0 ] && ok "agent stopped cleanly" || fail "agent exit $rc: $(cat "$TMP/run/agent.log")"
grep -q 'event=metrics_listening' "$TMP/run/agent.log" && ok "agent logged the metrics address" ||
    fail "no metrics_listening log line"

echo
if [ "$FAILS" -gt 0 ]; then
    echo "$FAILS check(s) failed"
    exit 1
fi
echo "all checks passed"
