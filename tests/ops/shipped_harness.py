"""The harness of tests/ops/test_as_shipped.py: the unit's settings and
systemd's system-call sets, a Loki that answers as told, the agent run
under setpriv (and strace), and what the trace shows: system calls, socket
families, paths written. Kept apart so the test reads as its scenarios."""
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


SRC = os.environ.get("SLUICE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SLUICE_BIN") or os.path.join(SRC, "build", "cli", "sluice")
SANITIZED = bool(os.environ.get("SLUICE_SANITIZED"))
SCALE = 4 if SANITIZED else 1
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


