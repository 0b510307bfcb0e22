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
  ports (514 and 6514 are privileged) and a syslog message gets through.
- the DaemonSet (base.yml + prod.yml + k8s.yml in a ConfigMap-shaped
  folder, the kubelet's ..data links): as root with only the container's
  capabilities, no privilege escalation, the manifest's env; its liveness
  and readiness probes' paths answer 200 on the port they name; a pod's
  CRI lines are delivered; nothing is written outside the one writable
  volume (readOnlyRootFilesystem), and SIGTERM ends it within
  terminationGracePeriodSeconds.
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
import ctypes
import json
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

SRC = os.environ.get("SLUICE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SLUICE_BIN") or os.path.join(SRC, "build", "cli", "sluice")
SANITIZED = bool(os.environ.get("SLUICE_SANITIZED"))
SCALE = 4 if SANITIZED else 1
UNIT = os.path.join(SRC, "deploy", "sluice.service")
AGG_DROPIN = os.path.join(SRC, "deploy", "sluice-aggregator.conf")
DAEMONSET = os.path.join(SRC, "deploy", "k8s", "daemonset.yaml")
FAILS = []


def ok(msg):
    print("ok: " + msg, flush=True)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    FAILS.append(msg)


def skip(msg):
    print("skip: " + msg)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port, kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_for(what, pred, limit):
    """Polls pred until it is true; False after limit seconds (scaled)."""
    end = time.monotonic() + limit * SCALE
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


# ---- the unit and the manifest, as files -------------------------------------


def unit_settings(*paths):
    """[Service] settings of the unit and its drop-ins: name -> list of
    values (an empty assignment resets, as systemd does)."""
    out = {}
    for path in paths:
        section = None
        for line in open(path):
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section != "[Service]" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if v == "":
                out[k] = []
            else:
                out.setdefault(k, []).extend(v.split())
    return out


_filters = {}


def syscall_group(name):
    """Every system call of a systemd-analyze filter set, nested sets expanded."""
    if name in _filters:
        return _filters[name]
    _filters[name] = set()
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name], capture_output=True,
                         text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        calls |= syscall_group(w) if w.startswith("@") else {w}
    _filters[name] = calls
    return calls


def allowed_syscalls(values):
    allow, deny = set(), set()
    for v in values:
        target = deny if v.startswith("~") else allow
        v = v.lstrip("~")
        target |= syscall_group(v) if v.startswith("@") else {v}
    # systemd.exec(5): allowed whatever the filter says.
    allow |= {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"}
    allow |= syscall_group("@default")
    return allow - deny


# ---- a Loki that answers as told ------------------------------------------------


class Loki:
    def __init__(self):
        self.status = 204
        self.requests = 0
        loki = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                loki.requests += 1
                self.send_response(loki.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d/loki/api/v1/push" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


# ---- the agent, restricted and traced ----------------------------------------------

PR_SET_PDEATHSIG = 1
libc = ctypes.CDLL(None, use_errno=True)


class Agent:
    """strace -f -o TRACE setpriv <restrictions> sluice run, in cwd /."""

    def __init__(self, root, name, setpriv, env, umask=0o022):
        self.log = os.path.join(root, name + ".log")
        self.trace = os.path.join(root, name + ".trace")
        argv = ["setpriv"] + setpriv + ["--pdeathsig", "KILL", "--", BIN, "run"]
        # LeakSanitizer cannot run under ptrace: the sanitizer pass runs the
        # same scenarios untraced (leaks checked), the plain pass traced.
        self.traced = not SANITIZED
        if self.traced:
            argv = ["strace", "-f", "-qq", "-y", "-s", "512", "-o", self.trace, "--"] + argv

        def child():
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            os.umask(umask)

        self.errf = open(self.log, "w")
        self.proc = subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errf, preexec_fn=child)
        self.pid = None if self.traced else self.proc.pid

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def started(self):
        return "event=agent_started" in self.text()

    def exited(self):
        return self.proc.poll() is not None

    def tracee(self):
        """The traced process: setpriv, then sluice (the same pid)."""
        if self.pid is None:
            try:
                kids = open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)).read().split()
                self.pid = int(kids[0]) if kids else None
            except OSError:
                pass
        return self.pid

    def stop(self, limit):
        """SIGTERM to the agent; its exit status, None past limit seconds."""
        pid = self.tracee()
        if pid is not None and self.proc.poll() is None:
            os.kill(pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=limit * SCALE)
        except subprocess.TimeoutExpired:
            rc = None
        self.kill()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            pid = self.tracee()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait()
        self.errf.close()


def get(port, path):
    try:
        r = urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def metric(port, name, labels):
    st, body = get(port, "/metrics")
    if st != 200:
        return None
    want = name + "{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}"
    for line in body.splitlines():
        k, _, v = line.rpartition(" ")
        if k == want:
            return float(v)
    return None


SCRAPED = {}  # metric name -> label names, from every agent this test ran


def scrape(port):
    st, body = get(port, "/metrics")
    for line in body.splitlines() if st == 200 else []:
        m = re.match(r"(sluice_\w+)(?:\{(.*)\})? ", line)
        if m:
            SCRAPED.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(2) or ""))


def metric_at_least(port, name, labels, n):
    return lambda: (metric(port, name, labels) or 0) >= n


# ---- what the trace shows ---------------------------------------------------------

LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
FD_PATH = re.compile(r"^\s*(?:AT_FDCWD|-?\d+)(?:<([^>]*)>)?\s*,\s*")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
PATH_CALLS = {  # call -> (index of the first path argument, how many path arguments, dirfd-relative)
    "open": (0, 1, False), "creat": (0, 1, False), "truncate": (0, 1, False),
    "openat": (0, 1, True), "openat2": (0, 1, True),
    "mkdir": (0, 1, False), "mkdirat": (0, 1, True), "rmdir": (0, 1, False),
    "unlink": (0, 1, False), "unlinkat": (0, 1, True),
    "rename": (0, 2, False), "renameat": (0, 2, True), "renameat2": (0, 2, True),
    "link": (0, 2, False), "linkat": (0, 2, True), "symlink": (1, 1, False), "symlinkat": (1, 1, True),
    "chmod": (0, 1, False), "fchmodat": (0, 1, True), "chown": (0, 1, False), "fchownat": (0, 1, True),
    "utimensat": (0, 1, True), "mknod": (0, 1, False), "mknodat": (0, 1, True),
}


class Trace:
    """System calls, socket families and written paths of sluice (what
    setpriv did before its execve is left out)."""

    def __init__(self, path):
        self.calls, self.families, self.writes = set(), set(), set()
        main, started, pending = None, False, {}
        for line in open(path, errors="replace"):
            m = LINE.match(line)
            if not m:
                continue
            pid, call, rest = int(m.group(1)), m.group(2) or m.group(3), m.group(4)
            if main is None:
                main = pid
            if pid == main and not started:
                if call == "execve" and rest.startswith('"%s"' % BIN) and rest.rstrip().endswith("= 0"):
                    started = True
                continue
            self.calls.add(call)
            # A call cut by another thread's: its arguments on the first
            # line, its result on the `resumed` one.
            if rest.endswith("<unfinished ...>"):
                pending[pid] = (call, rest[:-len("<unfinished ...>")])
                continue
            if m.group(2):
                if pending.get(pid, ("",))[0] != call:
                    continue
                rest = pending.pop(pid)[1] + rest
            if call in ("socket", "socketpair"):
                fam = rest.split(",")[0].strip()
                proto = re.search(r"NETLINK_\w+", rest) if fam == "AF_NETLINK" else None
                self.families.add(fam + (":" + proto.group(0) if proto else ""))
            if call in ("open", "openat", "openat2") and not WRITE_FLAGS.search(rest):
                continue
            # mkdir -p of a parent that exists: EEXIST comes before EROFS.
            if call in ("mkdir", "mkdirat") and re.search(r"= -1 EEXIST", rest):
                continue
            if call in PATH_CALLS:
                self.writes |= self.paths(call, rest)
            if call == "bind" and "AF_UNIX" in rest:
                p = re.search(r'sun_path="([^"]*)"', rest)
                if p and p.group(1):
                    self.writes.add(p.group(1))

    @staticmethod
    def paths(call, rest):
        first, count, at = PATH_CALLS[call]
        out = set()
        args = rest
        for i in range(first + count):
            base = "/"
            if at and i >= first or (at and call in ("renameat", "renameat2", "linkat") and i > first):
                fd = FD_PATH.match(args)
                if fd:
                    base = fd.group(1) or "/"
                    args = args[fd.end():]
            s = STRING.search(args)
            if not s:
                break
            args = args[s.end():].lstrip(", ")
            if i >= first:
                p = s.group(1)
                out.add(os.path.normpath(p if p.startswith("/") else os.path.join(base, p)))
        return out


def under(path, dirs):
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}


def check_trace(what, trace, writable, syscalls=None, families=None, root=None):
    if SANITIZED:
        print("note: %s: not traced under the sanitizers (LeakSanitizer refuses ptrace)" % what)
        return
    t = Trace(trace)
    if not t.calls:
        fail("%s: the trace %s holds no system call of sluice" % (what, trace))
        return
    if syscalls is not None:
        extra = sorted(t.calls - syscalls)
        if extra:
            fail("%s: system calls outside the unit's SystemCallFilter (EPERM under the unit): %s" %
                 (what, " ".join(extra)))
        else:
            ok("%s: all %d system calls used are in the unit's SystemCallFilter" % (what, len(t.calls)))
    if families is not None:
        # glibc's getaddrinfo (AI_ADDRCONFIG) asks the kernel for the host's
        # addresses over route netlink; refused under the unit, it assumes
        # both IPv4 and IPv6 exist (sysdeps/unix/sysv/linux/check_pf.c), which
        # changes nothing for numeric or resolvable destinations.
        benign = {"AF_NETLINK:NETLINK_ROUTE"}
        extra = sorted(t.families - families - benign)
        if extra:
            fail("%s: socket families outside RestrictAddressFamilies: %s" % (what, " ".join(extra)))
        else:
            ok("%s: socket families %s are allowed" % (what, " ".join(sorted(t.families))))
    bad = sorted(p for p in t.writes if not under(p, writable) and p not in DEVICES
                 and not (root and under(p, ["/tmp"]) and "/tmp" in writable and not under(p, [root])))
    if bad:
        fail("%s: writes outside the writable paths %s: %s" % (what, " ".join(writable), " ".join(bad[:8])))
    else:
        ok("%s: %d paths written, all under %s" % (what, len(t.writes), " ".join(writable)))


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


def listen_ports(path):
    """Every port the overlay's inputs listen on (the listen* keys)."""
    ports = []
    for i in yaml.safe_load(open(path)).get("inputs", []):
        for k, v in i.items():
            if k.startswith("listen") and isinstance(v, str):
                kind = socket.SOCK_DGRAM if k == "listen_udp" else socket.SOCK_STREAM
                ports.append((i["name"], k, int(v.rsplit(":", 1)[1]), kind))
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
    base = yaml.safe_load(open(os.path.join(SRC, "config", "base.yml"))).get("shutdown_timeout", "10s")
    for env in ("staging", "prod"):
        t = seconds(yaml.safe_load(open(os.path.join(SRC, "config", env + ".yml"))).get("shutdown_timeout", base))
        for who, limit in (("TimeoutStopSec", stop), ("terminationGracePeriodSeconds", grace)):
            if t + 5 > limit:
                fail("%s.yml: shutdown_timeout %gs leaves under 5 s of %s %gs" % (env, t, who, limit))
            else:
                ok("%s.yml: shutdown_timeout %gs fits in %s %gs" % (env, t, who, limit))


def main():
    if os.geteuid() != 0:
        skip("not root: the test runs the agent as the unit's user and with the container's capabilities")
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
