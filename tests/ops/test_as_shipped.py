#!/usr/bin/env python3
"""The shipped configurations run under the shipped restrictions.

tests/ops/test_deploy.sh checks that config/*.yml pass `sluice check` and
that deploy/sluice.service and deploy/k8s/daemonset.yaml have the lines
they must. This test runs the real binary, with the shipped files, under
what the unit and the DaemonSet actually allow, read from those files:

- the unit (base.yml + prod.yml): as the unit's user (here `nobody`, the
  package's `sluice` user is test_deb's), its groups, no capability (its
  CapabilityBoundingSet=/AmbientCapabilities=), NoNewPrivileges, UMask.
  A Loki outage, a stop that spools, a restart that replays: every record
  delivered. Under strace: every system call is in the unit's
  SystemCallFilter (expanded by `systemd-analyze syscall-filter`), every
  socket family in RestrictAddressFamilies, and every file written,
  created, renamed or removed lies in ReadWritePaths (ProtectSystem=strict)
  — which is base.yml's data_dir — or the unit's private /tmp.
- the aggregator (base.yml + prod.yml + aggregator.yml) under the unit
  plus the drop-in deploy/sluice-aggregator.conf: it binds the overlay's
  ports (514 is below 1024) and a syslog message gets through.
- the DaemonSet (base.yml + prod.yml + k8s.yml in a ConfigMap-shaped
  folder, the kubelet's ..data links): as root with only the container's
  capabilities, no privilege escalation, the manifest's env; its liveness
  and readiness probes' paths answer 200 on the port they name; every
  folder the inputs read (globs, journal, the service account's token) is
  mounted; a pod's
  CRI lines are delivered; nothing is written outside the one writable
  volume (readOnlyRootFilesystem), and SIGTERM ends it within
  terminationGracePeriodSeconds.
- the aggregation tier's StatefulSet (deploy/k8s/aggregator.yaml; base.yml
  + prod.yml + aggregator.yml in a ConfigMap-shaped folder, the TLS Secret
  at the manifest's path): its Services, disruption budget and claim
  template fit the pod (selectors, target ports, the data volume), the
  overlay's listeners expanded with the pod's env are the container's
  ports; run as the pod's non-root user and fsGroup with no capability, no
  privilege escalation, it binds them, answers its probes (HTTP and TCP),
  takes syslog over UDP and a push over TLS and delivers them, writes only
  on its claim, and SIGTERM ends it within the grace period.
- the labels deploy/grafana/sluice-dashboard.json and
  deploy/prometheus/sluice-alerts.yml group (`by (...)`) and match
  (`{label=...}`) on are on the series those agents exported
  (itest_dashboard checks the metric names; this, their labels).

Under SLUICE_SANITIZED the same runs go untraced (LeakSanitizer refuses
ptrace): leaks are checked there, the trace in the plain pass.

Servers and listeners are on 127.0.0.1 only (the manifest's 0.0.0.0 is
replaced, the rest of its env is kept). Skipped (77) without strace,
setpriv or systemd-analyze, or not as root. Waits for events (a log line,
a metric, a probe), never a fixed time."""
import grp
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shipped_harness import *  # noqa: E402,F401,F403  the harness: agents, traces, checks

UNIT = os.path.join(SRC, "deploy", "sluice.service")
AGG_DROPIN = os.path.join(SRC, "deploy", "sluice-aggregator.conf")
DAEMONSET = os.path.join(SRC, "deploy", "k8s", "daemonset.yaml")
AGG_K8S = os.path.join(SRC, "deploy", "k8s", "aggregator.yaml")


# ---- the scenarios -------------------------------------------------------------------


def setup_root():
    root = tempfile.mkdtemp(prefix="sluice-as-shipped.")
    os.chmod(root, 0o711)  # the unit's user passes through, lists nothing
    return root


def write_lines(path, lines, group="adm"):
    with open(path, "a") as f:
        for line in lines:
            f.write(line + "\n")
    # As /var/log/*.log: root:adm 0640, read through the unit's groups.
    os.chown(path, 0, grp.getgrnam(group).gr_gid)
    os.chmod(path, 0o640)


def unit_setpriv(settings, extra_caps=()):
    user = pwd.getpwnam("nobody")
    caps = settings.get("CapabilityBoundingSet", [])
    ambient = settings.get("AmbientCapabilities", []) + list(extra_caps)
    capset = lambda cs: ",".join(["-all"] + ["+" + c.lower().replace("cap_", "") for c in cs])
    groups = [g for g in settings.get("SupplementaryGroups", [])]
    args = ["--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--groups", ",".join(groups),
            "--bounding-set", capset(caps), "--inh-caps", capset(ambient), "--ambient-caps", capset(ambient)]
    if settings.get("NoNewPrivileges", ["no"])[-1] == "yes":
        args.append("--no-new-privs")
    return args


def etc_dir(root, files, env, name="etc"):
    """A configuration folder as the package installs it: the shipped files,
    site.env (0640 root:<the user's group>) and the test's local overlay."""
    etc = os.path.join(root, name)
    os.makedirs(etc)
    os.chmod(etc, 0o755)
    for src, text in files:
        dst = os.path.join(etc, os.path.basename(src))
        if text is None:
            shutil.copy(os.path.join(SRC, src), dst)
        else:
            open(dst, "w").write(text)
        os.chmod(dst, 0o644)
    site = os.path.join(etc, "site.env")
    open(site, "w").write("".join("%s=%s\n" % kv for kv in env.items()))
    os.chown(site, 0, grp.getgrnam("nogroup").gr_gid)
    os.chmod(site, 0o640)
    return etc


def data_dir_for(root, uid):
    d = os.path.join(root, "data")
    os.makedirs(d)
    os.chown(d, uid, -1)
    os.chmod(d, 0o700)  # StateDirectoryMode=0700
    return d


def clean_env(**extra):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


def base_data_dir():
    text = open(os.path.join(SRC, "config", "base.yml")).read()
    m = re.search(r"^data_dir:\s*\$\{SLUICE_DATA_DIR:-([^}]*)\}", text, re.M)
    return m.group(1) if m else None


def scenario_unit(settings, loki):
    """base.yml + prod.yml under the unit: outage, spool on stop, replay."""
    root = setup_root()
    agents = []
    try:
        nobody = pwd.getpwnam("nobody")
        data = data_dir_for(root, nobody.pw_uid)
        logs = os.path.join(root, "logs")
        os.makedirs(logs)
        os.chmod(logs, 0o755)
        mport = free_port()
        env = {"SLUICE_LOKI_URL": loki.url, "SLUICE_KAFKA_BROKERS": "127.0.0.1:%d" % free_port(),
               "SLUICE_METRICS_LISTEN": "127.0.0.1:%d" % mport, "SLUICE_DATA_DIR": data,
               "SLUICE_HOST": "node-1"}
        # An operator's local overlay beside the shipped files: one more file
        # input (the shipped ones read this host's /var/log and journal from
        # their end), a short stop.
        local = ("shutdown_timeout: 3s\n"
                 "inputs:\n"
                 "  - name: app\n"
                 "    type: file\n"
                 "    paths: [%s/*.log]\n"
                 "    start_at: beginning\n"
                 "    poll_interval: 100ms\n") % logs
        etc = etc_dir(root, [("config/base.yml", None), ("config/prod.yml", None), ("zz-local.yml", local)], env)
        umask = int(settings.get("UMask", ["0022"])[-1], 8)
        setpriv = unit_setpriv(settings)
        writable = settings.get("ReadWritePaths", [])
        # The unit's /var/lib/sluice is this test's data folder.
        writable = [data if w == base_data_dir() else w for w in writable]
        if settings.get("PrivateTmp", ["no"])[-1] == "yes":
            writable.append("/tmp")
        syscalls = allowed_syscalls(settings.get("SystemCallFilter", [])) if settings.get("SystemCallFilter") \
            else None
        families = set(settings.get("RestrictAddressFamilies", [])) or None
        n = 300
        # 1: Loki answers 503; the records wait in memory; SIGTERM spools them.
        loki.status = 503
        a = Agent(root, "unit-1", setpriv, clean_env(SLUICE_CONFIG_DIR=etc), umask)
        agents.append(a)
        if not wait_for("start", lambda: a.started() or a.exited(), 30) or not a.started():
            fail("unit: the agent did not start as the unit's user: %s" % a.text()[-2000:])
            return
        ok("unit: base.yml + prod.yml start as nobody with the unit's groups, capabilities and umask")
        write_lines(os.path.join(logs, "app.log"), ["app line %d" % i for i in range(n)])
        if wait_for("read", metric_at_least(mport, "sluice_input_records_total", {"input": "app"}, n), 30):
            ok("unit: %d records read from a root:adm 0640 file" % n)
        else:
            fail("unit: records read: %s; %s" % (metric(mport, "sluice_input_records_total", {"input": "app"}),
                                                 a.text()[-1500:]))
        wait_for("loki asked", lambda: loki.requests > 0, 30)
        rc = a.stop(3 + 10)
        if rc == 0 and "event=buffer_spooled_on_close sink=loki" in a.text():
            ok("unit: SIGTERM during the outage spooled the loki sink's queue and exited 0")
        else:
            fail("unit: stop during the outage: exit %s: %s" % (rc, a.text()[-1500:]))
        spool = os.path.join(data, "spool", "loki")
        segs = [f for f in os.listdir(spool)] if os.path.isdir(spool) else []
        if segs:
            ok("unit: spool/loki holds %s" % " ".join(sorted(segs)[:4]))
        else:
            fail("unit: no spool under %s" % data)
        # 2: Loki is back; the restart replays the spool.
        loki.status = 204
        b = Agent(root, "unit-2", setpriv, clean_env(SLUICE_CONFIG_DIR=etc), umask)
        agents.append(b)
        if wait_for("replay", metric_at_least(mport, "sluice_spool_replayed_records_total", {"sink": "loki"}, n),
                    60) and wait_for("delivered",
                                     metric_at_least(mport, "sluice_sink_records_total", {"sink": "loki"}, n), 60):
            ok("unit: restarted, replayed the spool and delivered the %d records" % n)
        else:
            fail("unit: replay: replayed %s delivered %s; %s" %
                 (metric(mport, "sluice_spool_replayed_records_total", {"sink": "loki"}),
                  metric(mport, "sluice_sink_records_total", {"sink": "loki"}), b.text()[-1500:]))
        scrape(mport)
        rc = b.stop(3 + 10)
        if rc == 0:
            ok("unit: second stop exited 0")
        else:
            fail("unit: second stop: exit %s: %s" % (rc, b.text()[-1500:]))
        for x in agents:
            check_trace("unit (%s)" % os.path.basename(x.trace), x.trace, writable, syscalls, families, root)
    finally:
        for x in agents:
            x.kill()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)


def expand(text, env):
    """${VAR} and ${VAR:-default} as the configuration loader expands them."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}",
                  lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


def listen_ports(path, env=None):
    """Every port the overlay's inputs listen on (the listen* keys), with
    ${VAR:-default} expanded from env (the defaults when None)."""
    ports = []
    for i in yaml.safe_load(open(path)).get("inputs", []):
        for k, v in i.items():
            if k.startswith("listen") and isinstance(v, str):
                kind = socket.SOCK_DGRAM if k == "listen_udp" else socket.SOCK_STREAM
                ports.append((i["name"], k, int(expand(v, env or {}).rsplit(":", 1)[1]), kind))
    return ports


def make_cert(d, group):
    os.makedirs(d)
    os.chmod(d, 0o750)
    os.chown(d, 0, grp.getgrnam(group).gr_gid)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=127.0.0.1", "-days", "2", "-keyout", d + "/key.pem", "-out", d + "/crt.pem"],
                   check=True, capture_output=True)
    for f in ("key.pem", "crt.pem"):
        os.chown(os.path.join(d, f), 0, grp.getgrnam(group).gr_gid)
        os.chmod(os.path.join(d, f), 0o640)


def scenario_aggregator(settings, loki):
    """base.yml + prod.yml + aggregator.yml under the unit and its
    aggregator drop-in: the listeners bind, a syslog message gets through."""
    agg = os.path.join(SRC, "config", "aggregator.yml")
    ports = listen_ports(agg)
    busy = [p for p in ports if not port_free(p[2], p[3])]
    if busy:
        print("skip: aggregator: 127.0.0.1:%s in use on this machine" % ",".join(str(p[2]) for p in busy))
        return
    privileged = [p for p in ports if p[2] < 1024]
    caps = set(c.upper() for c in settings.get("AmbientCapabilities", []))
    if privileged and "CAP_NET_BIND_SERVICE" not in caps:
        fail("aggregator: %s listen on ports below 1024 (%s), and the unit%s grants no CAP_NET_BIND_SERVICE" %
             (agg, ", ".join("%s.%s %d" % p[:3] for p in privileged),
              " with " + os.path.basename(AGG_DROPIN) if os.path.exists(AGG_DROPIN) else ""))
    root = setup_root()
    agents = []
    try:
        nobody = pwd.getpwnam("nobody")
        data = data_dir_for(root, nobody.pw_uid)
        tls = os.path.join(root, "tls")
        make_cert(tls, "nogroup")
        mport = free_port()
        env = {"SLUICE_LOKI_URL": loki.url, "SLUICE_KAFKA_BROKERS": "127.0.0.1:%d" % free_port(),
               "SLUICE_METRICS_LISTEN": "127.0.0.1:%d" % mport, "SLUICE_DATA_DIR": data,
               "SLUICE_HOST": "agg-1"}
        # The certificates the overlay names under /etc/sluice/tls, here.
        local = ("shutdown_timeout: 3s\n"
                 "inputs:\n"
                 "  - name: devices\n"
                 "    tls: {cert_file: %s/crt.pem, key_file: %s/key.pem}\n"
                 "  - name: push\n"
                 "    tls: {cert_file: %s/crt.pem, key_file: %s/key.pem}\n") % (tls, tls, tls, tls)
        etc = etc_dir(root, [("config/base.yml", None), ("config/prod.yml", None), ("config/aggregator.yml", None),
                             ("zz-local.yml", local)], env)
        loki.status = 204
        a = Agent(root, "aggregator", unit_setpriv(settings), clean_env(SLUICE_CONFIG_DIR=etc),
                  int(settings.get("UMask", ["0022"])[-1], 8))
        agents.append(a)
        if not wait_for("start", lambda: a.started() or a.exited(), 30) or not a.started():
            fail("aggregator: the agent did not start under the unit: %s" %
                 "\n".join(l for l in a.text().splitlines() if "level=error" in l)[-1500:])
            return
        ok("aggregator: listeners on %s bound as the unit's user" % " ".join(str(p[2]) for p in ports))
        # The overlay's UDP receive buffer, capped by the kernel at
        # net.core.rmem_max without CAP_NET_ADMIN: said in the log, not silent.
        m = re.search(r"udp_receive_buffer:\s*(\d+)MiB", open(agg).read())
        rmem = int(open("/proc/sys/net/core/rmem_max").read())
        if m:
            capped = rmem < int(m.group(1)) << 20
            said = "event=receive_buffer_capped" in a.text()
            if capped != said:
                fail("aggregator: net.core.rmem_max %d against udp_receive_buffer %s MiB: the cap was %s" %
                     (rmem, m.group(1), "not logged" if capped else "logged though the buffer was granted"))
            else:
                ok("aggregator: the UDP receive buffer %s (rmem_max %d)" %
                   ("capped, and logged" if capped else "granted whole", rmem))
        udp = [p for p in ports if p[1] == "listen_udp"][0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            def sent_and_read():
                s.sendto(b"<13>1 2026-12-07T00:00:00Z dev-1 app - - - hello aggregator", ("127.0.0.1", udp[2]))
                return (metric(mport, "sluice_input_records_total", {"input": udp[0]}) or 0) >= 1
            if wait_for("syslog", sent_and_read, 30) and \
                    wait_for("delivered", metric_at_least(mport, "sluice_sink_records_total", {"sink": "loki"}, 1), 30):
                ok("aggregator: a syslog datagram to 127.0.0.1:%d reached Loki" % udp[2])
            else:
                fail("aggregator: syslog over UDP not delivered: %s" % a.text()[-1500:])
        scrape(mport)
        rc = a.stop(3 + 15)
        if rc == 0:
            ok("aggregator: SIGTERM, exit 0")
        else:
            fail("aggregator: stop: exit %s: %s" % (rc, a.text()[-1500:]))
        check_trace("aggregator", a.trace, [data, "/tmp"], None, set(settings.get("RestrictAddressFamilies", [])) or
                    None, root)
    finally:
        for x in agents:
            x.kill()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)


def configmap_dir(root, files):
    """/etc/sluice as the kubelet mounts a ConfigMap: each name a link to
    ..data/NAME, ..data a link to a timestamped folder."""
    etc = os.path.join(root, "etc")
    stamp = "..2026_12_07_00_00_00.000000001"
    os.makedirs(os.path.join(etc, stamp))
    for name, text in files:
        open(os.path.join(etc, stamp, name), "w").write(text)
        os.chmod(os.path.join(etc, stamp, name), 0o644)
        os.symlink(os.path.join("..data", name), os.path.join(etc, name))
    os.symlink(stamp, os.path.join(etc, "..data"))
    return etc


def merged_inputs(*files):
    """The inputs of overlays applied in order (merged by name, key by key)."""
    inputs = {}
    for f in files:
        for i in yaml.safe_load(open(os.path.join(SRC, "config", f))).get("inputs", []):
            inputs.setdefault(i["name"], {}).update(i)
    return inputs


def check_pod_reads(c, pod):
    """Every folder the ConfigMap's inputs read is mounted in the container."""
    mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
    if pod.get("automountServiceAccountToken"):
        mounts.append("/var/run/secrets/kubernetes.io/serviceaccount")
    default = lambda p: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", p)
    missing = []
    for name, i in sorted(merged_inputs("base.yml", "prod.yml", "k8s.yml").items()):
        if i.get("type") == "file":
            need = [re.split(r"[*?\[]", default(p))[0].rsplit("/", 1)[0] or "/" for p in i.get("paths", [])]
            for step in i.get("parse", []):
                for f in ("token_file", "ca_file"):
                    if isinstance(step, dict) and f in (step.get("kubernetes") or {}):
                        need.append(os.path.dirname(default(step["kubernetes"][f])))
        elif i.get("type") == "journald":
            need = ["/etc/machine-id"] + [d for d in ("/var/log/journal", "/run/log/journal")]
        else:
            continue
        missing += ["%s: %s" % (name, d) for d in need if not under(d, mounts)]
    if missing:
        fail("daemonset: the configuration reads where nothing is mounted: " + ", ".join(missing))
    else:
        ok("daemonset: every folder the inputs of base + prod + k8s read is mounted")


def scenario_daemonset(loki):
    docs = [d for d in yaml.safe_load_all(open(DAEMONSET)) if d]
    ds = [d for d in docs if d.get("kind") == "DaemonSet"][0]
    tmpl = ds["spec"]["template"]
    pod = tmpl["spec"]
    c = pod["containers"][0]
    sc = c.get("securityContext", {})
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    env = {}
    fields = {"spec.nodeName": "node-1", "status.hostIP": "127.0.0.1"}
    for e in c.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    listen = env.get("SLUICE_METRICS_LISTEN", "")
    lport = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
    probes = {}
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind in c:
            h = c[kind]["httpGet"]
            port = ports.get(h["port"]) if isinstance(h["port"], str) else h["port"]
            probes[kind] = (h["path"], port)
            if port != lport:
                fail("daemonset: %s on port %s, the agent listens on %s (SLUICE_METRICS_LISTEN)" % (kind, port, listen))
    ann = tmpl["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") == "true" and int(ann.get("prometheus.io/port", 0)) != lport:
        fail("daemonset: prometheus.io/port %s, the agent listens on %s" % (ann.get("prometheus.io/port"), listen))
    check_pod_reads(c, pod)
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    data_mount = env.get("SLUICE_DATA_DIR", base_data_dir())
    writable = [p for p, m in mounts.items() if not m.get("readOnly")]
    if not sc.get("readOnlyRootFilesystem"):
        writable.append("/")
    if not under(data_mount, writable):
        fail("daemonset: data_dir %s is not on a writable volume (%s)" % (data_mount, " ".join(writable)))
    root = setup_root()
    agents = []
    try:
        data = os.path.join(root, "data")
        os.makedirs(data)  # hostPath DirectoryOrCreate: root 0755
        os.chmod(data, 0o755)
        pods = os.path.join(root, "pods")
        podlog = os.path.join(pods, "shop_web-7d9f_0f1e2d3c-aaaa-bbbb-cccc-0123456789ab", "nginx")
        os.makedirs(podlog)
        sa = os.path.join(root, "sa")
        make_cert(sa, "root")
        shutil.copy(sa + "/crt.pem", sa + "/ca.crt")
        open(sa + "/token", "w").write("test-token\n")
        secrets = os.path.join(root, "secrets")
        os.makedirs(secrets)
        mport = free_port()
        # The manifest's env, with the listener on 127.0.0.1 and the
        # container's paths mapped to this test's folders.
        paths = {data_mount: data, env.get("CREDENTIALS_DIRECTORY", "/run/secrets/sluice"): secrets}
        run_env = {k: paths.get(v, v) for k, v in env.items()}
        run_env["SLUICE_METRICS_LISTEN"] = "127.0.0.1:%d" % mport
        site = "SLUICE_LOKI_URL=%s\nSLUICE_KAFKA_BROKERS=127.0.0.1:%d\n" % (loki.url, free_port())
        # Nobody else's: the pods' logs here, the kubelet absent (lines ship
        # with what the path gives), the service account's files here.
        local = ("inputs:\n"
                 "  - name: pods\n"
                 "    paths: [%s/*/*/*.log]\n"
                 "    exclude: [%s/*/*/*.gz]\n") % (pods, pods)
        etc = configmap_dir(root, [("base.yml", open(os.path.join(SRC, "config/base.yml")).read()),
                                   ("prod.yml", open(os.path.join(SRC, "config/prod.yml")).read()),
                                   ("k8s.yml", open(os.path.join(SRC, "config/k8s.yml")).read()),
                                   ("zz-local.yml", local), ("site.env", site)])
        run_env.update(SLUICE_CONFIG_DIR=etc, SLUICE_SA_DIR=sa, SLUICE_KUBELET_PORT=str(free_port()))
        uid = sc.get("runAsUser", 0)
        caps = sc.get("capabilities", {})
        keep = [] if "ALL" in caps.get("drop", []) else ["all"]
        keep += [x.lower() for x in caps.get("add", [])]
        setpriv = ["--reuid", str(uid), "--regid", str(sc.get("runAsGroup", 0)), "--clear-groups",
                   "--bounding-set", ",".join(["-all"] + ["+" + k for k in keep]), "--inh-caps", "-all"]
        if sc.get("allowPrivilegeEscalation") is False:
            setpriv.append("--no-new-privs")
        loki.status = 204
        a = Agent(root, "daemonset", setpriv, clean_env(**run_env))
        agents.append(a)
        if not wait_for("start", lambda: a.started() or a.exited(), 30) or not a.started():
            fail("daemonset: the agent did not start: %s" % a.text()[-2000:])
            return
        for kind, (path, port) in sorted(probes.items()):
            if wait_for(kind, lambda: get(mport, path)[0] == 200, 30):
                ok("daemonset: %s GET %s answers 200 on the port it names (%d)" % (kind, path, port))
            else:
                fail("daemonset: %s GET %s: %s" % (kind, path, get(mport, path)))
        n = 200
        log = os.path.join(podlog, "0.log")
        with open(log, "w") as f:
            for i in range(n):
                f.write("2026-12-07T00:00:00.%09dZ stdout F pod line %d\n" % (i, i))
        # Owned by another user, 0640: root reads it through DAC_READ_SEARCH alone.
        os.chown(log, 65534, 65534)
        os.chmod(log, 0o640)
        if wait_for("read", metric_at_least(mport, "sluice_input_records_total", {"input": "pods"}, n), 30) and \
                wait_for("sent", metric_at_least(mport, "sluice_sink_records_total", {"sink": "loki"}, n), 30):
            ok("daemonset: %d CRI lines of a pod read with the container's capabilities and delivered" % n)
        else:
            fail("daemonset: pods read %s, loki %s: %s" %
                 (metric(mport, "sluice_input_records_total", {"input": "pods"}),
                  metric(mport, "sluice_sink_records_total", {"sink": "loki"}), a.text()[-1500:]))
        scrape(mport)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        t0 = time.monotonic()
        rc = a.stop(grace)
        if rc == 0:
            ok("daemonset: SIGTERM, exit 0 in %.1f s (grace %d s)" % (time.monotonic() - t0, grace))
        else:
            fail("daemonset: stop: exit %s after %.1f s (grace %d s): %s" %
                 (rc, time.monotonic() - t0, grace, a.text()[-1500:]))
        check_trace("daemonset", a.trace, [data], None, None, root)
    finally:
        for x in agents:
            x.kill()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)


def pod_env(c, fields):
    env = {}
    for e in c.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def check_aggregator_manifest(docs, sts, c, env):
    """The objects around the StatefulSet fit its pod: selectors, ports,
    the budget, the claim, the listeners of the overlay."""
    tmpl = sts["spec"]["template"]
    labels = tmpl["metadata"]["labels"]
    matches = lambda sel: sel and all(labels.get(k) == v for k, v in sel.items())
    if not matches(sts["spec"]["selector"]["matchLabels"]):
        fail("aggregator pod: the StatefulSet's selector does not match its pod's labels")
    cports = {(p["name"], p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports", [])}
    by_name = {p[0]: p for p in cports}
    services = [d for d in docs if d.get("kind") == "Service"]
    for svc in services:
        name = svc["metadata"]["name"]
        if not matches(svc["spec"].get("selector")):
            fail("aggregator pod: Service %s selects no pod of the StatefulSet" % name)
            continue
        for sp in svc["spec"].get("ports", []):
            tp = sp.get("targetPort", sp["port"])
            cp = by_name.get(tp) if isinstance(tp, str) else \
                next((p for p in cports if p[1] == tp and p[2] == sp.get("protocol", "TCP")), None)
            if not cp or cp[2] != sp.get("protocol", "TCP"):
                fail("aggregator pod: Service %s port %s/%s goes to %s, which the container does not declare "
                     "with that protocol" % (name, sp["port"], sp.get("protocol", "TCP"), tp))
            else:
                ok("aggregator pod: Service %s %s/%s -> container port %s %d" %
                   (name, sp["port"], sp.get("protocol", "TCP"), cp[0], cp[1]))
    gov = [s for s in services if s["metadata"]["name"] == sts["spec"].get("serviceName")]
    if not gov or gov[0]["spec"].get("clusterIP") != "None":
        fail("aggregator pod: serviceName %s is not a headless Service of the file" % sts["spec"].get("serviceName"))
    replicas = sts["spec"].get("replicas", 1)
    for pdb in (d for d in docs if d.get("kind") == "PodDisruptionBudget"):
        spec = pdb["spec"]
        if not matches(spec["selector"].get("matchLabels")):
            fail("aggregator pod: the PodDisruptionBudget selects no pod of the StatefulSet")
        elif "maxUnavailable" in spec and not 0 < int(spec["maxUnavailable"]) < replicas or \
                "minAvailable" in spec and not 0 < int(spec["minAvailable"]) < replicas:
            fail("aggregator pod: the budget %s with %d replicas blocks every drain or allows none up" %
                 (spec, replicas))
        else:
            ok("aggregator pod: disruption budget %s of %d replicas" %
               (", ".join("%s %s" % kv for kv in spec.items() if kv[0] != "selector"), replicas))
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    data_dir = env.get("SLUICE_DATA_DIR", base_data_dir())
    data_mounts = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in claims and not m.get("readOnly")]
    if under(data_dir, data_mounts):
        ok("aggregator pod: data_dir %s is on its own claim (%s)" % (data_dir, " ".join(sorted(claims))))
    else:
        fail("aggregator pod: data_dir %s is not on a claim of the StatefulSet (%s)" % (data_dir, data_mounts))
    # What the overlay binds with the pod's env is what the container declares.
    want = {(p[2], "UDP" if p[3] == socket.SOCK_DGRAM else "TCP") for p in
            listen_ports(os.path.join(SRC, "config", "aggregator.yml"), env)}
    mport = int(env.get("SLUICE_METRICS_LISTEN", "x:9880").rsplit(":", 1)[1])
    want.add((mport, "TCP"))
    have = {(p[1], p[2]) for p in cports}
    if want == have:
        ok("aggregator pod: the overlay's listeners with the pod's env are the container's ports %s" %
           " ".join("%d/%s" % x for x in sorted(want)))
    else:
        fail("aggregator pod: the overlay listens on %s, the container declares %s" % (sorted(want), sorted(have)))
    return mport


def push_tls(port, line):
    """A Loki push over TLS (the test certificate, not verified): the status."""
    import http.client
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    body = json.dumps({"streams": [{"stream": {"job": "pushed"},
                                    "values": [[str(time.time_ns()), line]]}]})
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30 * SCALE)
    try:
        conn.request("POST", "/loki/api/v1/push", body, {"Content-Type": "application/json"})
        return conn.getresponse().status
    except OSError as e:
        return str(e)
    finally:
        conn.close()


def scenario_aggregator_pod(loki):
    """config/aggregator.yml as deploy/k8s/aggregator.yaml runs it."""
    if not os.path.exists(AGG_K8S):
        fail("aggregator pod: no %s: the aggregation tier has no Kubernetes manifest" % AGG_K8S)
        return
    docs = [d for d in yaml.safe_load_all(open(AGG_K8S)) if d]
    sts = [d for d in docs if d.get("kind") == "StatefulSet"][0]
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    env = pod_env(c, {"metadata.name": sts["metadata"]["name"] + "-0"})
    mport = check_aggregator_manifest(docs, sts, c, env)
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    gid = sc.get("runAsGroup", psc.get("runAsGroup", uid))
    fsgroup = psc.get("fsGroup")
    caps = sc.get("capabilities", {})
    if uid in (None, 0) or not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        fail("aggregator pod: runs as root (runAsUser %s, runAsNonRoot unset)" % uid)
        return
    if "ALL" not in caps.get("drop", []) or caps.get("add"):
        fail("aggregator pod: capabilities %s: expected every one dropped, none added" % caps)
    ok("aggregator pod: uid %d gid %d fsGroup %s, capabilities %s" % (uid, gid, fsgroup, caps))
    ports = listen_ports(os.path.join(SRC, "config", "aggregator.yml"), env)
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    # What the configuration reads is mounted: /etc/sluice (the ConfigMap),
    # the certificates aggregator.yml names with the pod's env (a Secret).
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    agg_text = expand(open(os.path.join(SRC, "config", "aggregator.yml")).read(), env)
    reads = {"/etc/sluice": "configMap"}
    reads.update({f: "secret" for f in re.findall(r"(?:cert|key)_file:\s*(\S+)", agg_text)})
    missing = []
    for path, source in sorted(reads.items()):
        m = [m for mp, m in mounts.items() if under(path, [mp])]
        if not m or source not in vols.get(m[0]["name"], {}):
            missing.append("%s (from a %s)" % (path, source))
    if missing:
        fail("aggregator pod: read but not mounted: " + ", ".join(missing))
    else:
        ok("aggregator pod: /etc/sluice and the %d certificate files the overlay reads are mounted" % (len(reads) - 1))
    busy = [p for p in ports if not port_free(p[2], p[3])]
    if busy:
        print("skip: aggregator pod: 127.0.0.1:%s in use on this machine" % ",".join(str(p[2]) for p in busy))
        return
    # The metrics port (every agent's default) on a free one, as for the
    # DaemonSet; the probes that name it go there (the manifest's own
    # number was checked against SLUICE_METRICS_LISTEN above).
    run_mport = free_port()
    root = setup_root()
    agents = []
    try:
        # The claim as the kubelet hands it with fsGroup: root's, group-owned
        # and group-writable, setgid.
        claim_mount = [m["mountPath"] for m in c.get("volumeMounts", [])
                       if m["name"] in {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}][0]
        claim = os.path.join(root, "claim")
        os.makedirs(claim)
        os.chown(claim, 0, fsgroup if fsgroup is not None else gid)
        os.chmod(claim, 0o2775)
        data_dir = env.get("SLUICE_DATA_DIR", base_data_dir())
        data = claim + data_dir[len(claim_mount):] if under(data_dir, [claim_mount]) else data_dir
        # The TLS Secret: root:fsGroup, its defaultMode.
        tls = os.path.join(root, "tls")
        make_cert(tls, "root")
        tls_mount = [m for m in mounts.values() if m["mountPath"] == env.get("SLUICE_TLS_DIR")]
        mode = vols[tls_mount[0]["name"]]["secret"].get("defaultMode", 0o644) if tls_mount else 0o644
        for name in ("syslog", "push"):
            for ext, src in (("crt", "crt.pem"), ("key", "key.pem")):
                dst = os.path.join(tls, "%s.%s" % (name, ext))
                shutil.copy(os.path.join(tls, src), dst)
                os.chown(dst, 0, fsgroup if fsgroup is not None else 0)
                os.chmod(dst, mode)
        os.chmod(tls, 0o755)
        secrets = os.path.join(root, "secrets")
        os.makedirs(secrets)
        site = "SLUICE_LOKI_URL=%s\nSLUICE_KAFKA_BROKERS=127.0.0.1:%d\n" % (loki.url, free_port())
        etc = configmap_dir(root, [(f, open(os.path.join(SRC, "config", f)).read())
                                   for f in ("base.yml", "prod.yml", "aggregator.yml")] + [("site.env", site)])
        # The manifest's env; its 0.0.0.0 on 127.0.0.1, its paths here.
        paths = {data_dir: data, env.get("SLUICE_TLS_DIR"): tls,
                 env.get("CREDENTIALS_DIRECTORY"): secrets}
        run_env = {k: paths.get(v, v).replace("0.0.0.0", "127.0.0.1") for k, v in env.items()}
        run_env["SLUICE_CONFIG_DIR"] = etc
        run_env["SLUICE_METRICS_LISTEN"] = "127.0.0.1:%d" % run_mport
        groups = [str(fsgroup)] if fsgroup is not None else []
        setpriv = ["--reuid", str(uid), "--regid", str(gid)] + \
            (["--groups", ",".join(groups)] if groups else ["--clear-groups"]) + \
            ["--bounding-set", "-all", "--inh-caps", "-all"]
        if sc.get("allowPrivilegeEscalation") is False:
            setpriv.append("--no-new-privs")
        loki.status = 204
        a = Agent(root, "aggregator-pod", setpriv, clean_env(**run_env))
        agents.append(a)
        if not wait_for("start", lambda: a.started() or a.exited(), 30) or not a.started():
            fail("aggregator pod: the agent did not start as uid %d with no capability: %s" %
                 (uid, "\n".join(l for l in a.text().splitlines() if "level=error" in l)[-1500:]))
            return
        ok("aggregator pod: base + prod + aggregator.yml start as uid %d, listening on %s" %
           (uid, " ".join("%d/%s" % (p[2], "udp" if p[3] == socket.SOCK_DGRAM else "tcp") for p in ports)))
        named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        at = lambda port: run_mport if port == mport else port
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind not in c:
                continue
            pr = c[kind]
            if "httpGet" in pr:
                h = pr["httpGet"]
                port = named.get(h["port"]) if isinstance(h["port"], str) else h["port"]
                if wait_for(kind, lambda: get(at(port), h["path"])[0] == 200, 30):
                    ok("aggregator pod: %s GET %s answers 200 on %d" % (kind, h["path"], port))
                else:
                    fail("aggregator pod: %s GET %s on %d: %s" % (kind, h["path"], port, get(at(port), h["path"])))
            elif "tcpSocket" in pr:
                t = pr["tcpSocket"]
                port = named.get(t["port"]) if isinstance(t["port"], str) else t["port"]

                def accepts():
                    try:
                        socket.create_connection(("127.0.0.1", at(port)), timeout=2).close()
                        return True
                    except OSError:
                        return False
                if wait_for(kind, accepts, 30):
                    ok("aggregator pod: %s TCP %d accepts" % (kind, port))
                else:
                    fail("aggregator pod: %s TCP %d does not accept" % (kind, port))
            else:
                fail("aggregator pod: %s is neither httpGet nor tcpSocket: not checked" % kind)
        udp = [p for p in ports if p[1] == "listen_udp"][0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            def sent_and_read():
                s.sendto(b"<13>1 2026-12-07T00:00:00Z dev-1 app - - - hello pod", ("127.0.0.1", udp[2]))
                return (metric(run_mport, "sluice_input_records_total", {"input": udp[0]}) or 0) >= 1
            if wait_for("syslog", sent_and_read, 30):
                ok("aggregator pod: a syslog datagram to %d was read" % udp[2])
            else:
                fail("aggregator pod: syslog over UDP not read: %s" % a.text()[-1500:])
        push = [p for p in ports if p[0] == "push"]
        if push:
            st = push_tls(push[0][2], "hello push")
            if st == 204:
                ok("aggregator pod: a push over TLS to %d with the Secret's certificate: 204" % push[0][2])
            else:
                fail("aggregator pod: push over TLS to %d: %s: %s" % (push[0][2], st, a.text()[-1500:]))
        if wait_for("delivered", metric_at_least(run_mport, "sluice_sink_records_total", {"sink": "loki"}, 2), 30):
            ok("aggregator pod: both reached Loki")
        else:
            fail("aggregator pod: delivered %s" % metric(run_mport, "sluice_sink_records_total", {"sink": "loki"}))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        t0 = time.monotonic()
        rc = a.stop(grace)
        if rc == 0:
            ok("aggregator pod: SIGTERM, exit 0 in %.1f s (grace %d s)" % (time.monotonic() - t0, grace))
        else:
            fail("aggregator pod: stop: exit %s after %.1f s (grace %d s): %s" %
                 (rc, time.monotonic() - t0, grace, a.text()[-1500:]))
        writable = [claim] if sc.get("readOnlyRootFilesystem") else [claim, "/"]
        check_trace("aggregator pod", a.trace, writable, None, None, root)
    finally:
        for x in agents:
            x.kill()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)


def aggregations(expr):
    """(label names, the expression they group) of every `by (...) (...)`."""
    for m in re.finditer(r"\bby\s*\(([^)]*)\)\s*\(", expr):
        depth, i = 1, m.end()
        while i < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        yield {x.strip() for x in m.group(1).split(",") if x.strip()}, expr[m.end():i]


def check_labels():
    """The labels the dashboard and the alerts group and match on are on
    the series the agents above exported."""
    dash = json.load(open(os.path.join(SRC, "deploy", "grafana", "sluice-dashboard.json")))
    exprs = [("dashboard: " + p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    for g in yaml.safe_load(open(os.path.join(SRC, "deploy", "prometheus", "sluice-alerts.yml")))["groups"]:
        exprs += [("alert " + r["alert"], r["expr"]) for r in g["rules"]]
    scrape_labels = {"job", "instance"}
    bad, used, unseen = [], 0, set()
    for where, e in exprs:
        uses = [(labels, body) for labels, body in aggregations(e)]
        uses += [({k for k in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", sel)}, name)
                 for name, sel in re.findall(r"(sluice_\w+)\{([^}]*)\}", e)]
        for labels, body in uses:
            for name in set(re.findall(r"sluice_\w+", body)):
                if name not in SCRAPED:
                    unseen.add(name)
                    continue
                used += 1
                missing = labels - scrape_labels - SCRAPED[name]
                if missing:
                    bad.append("%s: %s has no label %s (it has: %s)" %
                               (where, name, ",".join(sorted(missing)), ",".join(sorted(SCRAPED[name])) or "none"))
    if bad:
        for b in bad:
            fail(b)
    else:
        ok("dashboard and alerts: %d uses of labels on %d metrics, all on the series the agents exported" %
           (used, len(SCRAPED)))
    if unseen:
        print("note: not exported by these agents, labels not checked: " + " ".join(sorted(unseen)))


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|min|h)?", str(text).strip())
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}[unit]


def check_stop_budgets(settings):
    """Each environment's shutdown_timeout (the sinks' drain) fits in what
    the unit and the DaemonSet wait before SIGKILL, with room for saving
    checkpoints."""
    stop = seconds(settings.get("TimeoutStopSec", ["90s"])[-1])
    ds = [d for d in yaml.safe_load_all(open(DAEMONSET)) if d and d.get("kind") == "DaemonSet"][0]
    grace = ds["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    limits = [("TimeoutStopSec", stop), ("the DaemonSet's terminationGracePeriodSeconds", grace)]
    if os.path.exists(AGG_K8S):
        sts = [d for d in yaml.safe_load_all(open(AGG_K8S)) if d and d.get("kind") == "StatefulSet"][0]
        limits.append(("the aggregator's terminationGracePeriodSeconds",
                       sts["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)))
    base = yaml.safe_load(open(os.path.join(SRC, "config", "base.yml"))).get("shutdown_timeout", "10s")
    for env in ("staging", "prod"):
        t = seconds(yaml.safe_load(open(os.path.join(SRC, "config", env + ".yml"))).get("shutdown_timeout", base))
        for who, limit in limits:
            if t + 5 > limit:
                fail("%s.yml: shutdown_timeout %gs leaves under 5 s of %s %gs" % (env, t, who, limit))
            else:
                ok("%s.yml: shutdown_timeout %gs fits in %s %gs" % (env, t, who, limit))


def lo_up():
    """Sets the loopback interface of this network namespace up (a new
    namespace has it down), with the ioctl `ip link set lo up` makes."""
    import fcntl
    import struct
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = fcntl.ioctl(s, siocgifflags, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", got)[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def run_in_own_network():
    """The shipped configs name fixed ports (syslog 514 and 6514, the push
    API's): in a network namespace of its own they are this run's alone, so
    a second suite running beside this one, or a syslog daemon on the
    machine, can neither take them between the check and the bind nor turn
    the aggregator scenarios into skips. None when namespaces are refused
    (a container without CAP_SYS_ADMIN): the run stays where it is."""
    if os.environ.get("SLUICE_AS_SHIPPED_NETNS") == "1" or not shutil.which("unshare"):
        return None
    if subprocess.run(["unshare", "--net", "--", "true"], stderr=subprocess.DEVNULL).returncode != 0:
        return None
    env = dict(os.environ, SLUICE_AS_SHIPPED_NETNS="1")
    return subprocess.run(["unshare", "--net", "--", sys.executable, os.path.abspath(__file__)] + sys.argv[1:],
                          env=env).returncode


def main():
    if os.geteuid() != 0:
        skip("not root: the test runs the agent as the unit's user and with the container's capabilities")
    rc = run_in_own_network()
    if rc is not None:
        return rc
    if os.environ.get("SLUICE_AS_SHIPPED_NETNS") == "1":
        lo_up()
        ok("network: a namespace of this run's own (its fixed ports cannot be taken by another run)")
    for tool in ("strace", "setpriv", "systemd-analyze"):
        if not shutil.which(tool):
            skip("%s is not installed" % tool)
    if not os.access(BIN, os.X_OK):
        print("no sluice binary at " + BIN)
        return 1
    loki = Loki()
    try:
        settings = unit_settings(UNIT)
        dd = base_data_dir()
        if dd in settings.get("ReadWritePaths", []) and "/var/lib/" + " ".join(settings.get("StateDirectory", [])) == dd:
            ok("unit: ReadWritePaths and StateDirectory are base.yml's data_dir %s" % dd)
        else:
            fail("unit: base.yml's data_dir %s is not the unit's ReadWritePaths %s / StateDirectory %s" %
                 (dd, settings.get("ReadWritePaths"), settings.get("StateDirectory")))
        check_stop_budgets(settings)
        scenario_unit(settings, loki)
        dropins = [AGG_DROPIN] if os.path.exists(AGG_DROPIN) else []
        scenario_aggregator(unit_settings(UNIT, *dropins), loki)
        scenario_daemonset(loki)
        scenario_aggregator_pod(loki)
        check_labels()
    finally:
        loki.close()
    print()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
