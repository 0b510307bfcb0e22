#!/usr/bin/env python3
"""What docs/runbooks/ tell on-call to type works on a node as shipped.

Statically, for every page:
- every `sluice ...` command (code blocks and inline code) uses a command
  and options the binary has (`sluice <command> --help`), and no `-c`:
  without -c a command reads what the service reads (decision 0020),
  including an overlay the operator added, such as config/tap.yml; with
  `-c base.yml -c prod.yml` it would miss it;
- every `event=NAME` the pages grep the journal for is one the code logs;
- every `curl 127.0.0.1:PORT/...` uses base.yml's default metrics address;
- every dashboard panel a page names ("Spool size") is one of
  deploy/grafana/sluice-dashboard.json's.

Then on a configuration folder laid out as the package and deploy.sh
leave it (base.yml, prod.yml, site.env naming a Loki on 127.0.0.1 that
answers and a Kafka broker that does not), each command is run as the page
gives it: `sluice check --connect` says `ok` for Loki and `FAILED` with the
reason for Kafka (exit 1); `sluice run --dry-run --stdin --input NAME`
prints records; `sluice tail` without the tap says how to turn it on, and
with config/tap.yml copied in (the pages' recipe, the token handed to the
agent as a systemd credential would be) it follows a running agent's
records. The aggregation tier's page (aggregator.md) runs its `sluice`
commands on the aggregator's layout (base.yml, prod.yml, aggregator.yml,
its certificates) and its `kubectl` commands as far as no cluster is
needed: `create configmap|secret` with `--dry-run=client` in a copy of the
source tree (the objects the manifests mount, with the keys the overlay
reads), `apply -f` of a manifest that exists, every `kind/name`, pod and
`-l` selector one of the manifests defines (decision 0085). 127.0.0.1
only; waits for events, never a fixed time."""
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shipped_harness import Loki  # noqa: E402  the Loki that answers as told

SRC = os.environ.get("SLUICE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SLUICE_BIN") or os.path.join(SRC, "build", "cli", "sluice")
SCALE = 4 if os.environ.get("SLUICE_SANITIZED") else 1
RUNBOOKS = os.path.join(SRC, "docs", "runbooks")
FAILS = []
PR_SET_PDEATHSIG = 1
libc = ctypes.CDLL(None, use_errno=True)


def ok(msg):
    print("ok: " + msg, flush=True)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    FAILS.append(msg)


def pages():
    for name in sorted(os.listdir(RUNBOOKS)):
        if name.endswith(".md"):
            yield name, open(os.path.join(RUNBOOKS, name)).read()


def commands(text):
    """(line number, argv after `sluice`) of every sluice command: lines of
    fenced code blocks (with `\\` continuations) and inline code spans."""
    out = []
    lines = text.splitlines()
    fenced, i = False, 0
    while i < len(lines):
        line = lines[i]
        n = i + 1
        if line.strip().startswith("```"):
            fenced = not fenced
            i += 1
            continue
        if fenced:
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            spans = [line]
        else:
            spans = re.findall(r"`([^`]+)`", line)
        for span in spans:
            try:
                lex = shlex.shlex(span, posix=True, punctuation_chars="|;&<>")
                lex.whitespace_split = True
                words = list(lex)
            except ValueError:
                words = span.split()
            # Each command of a pipeline or list, from its `sluice` on.
            cmd = []
            for w in words + ["|"]:
                if w and set(w) <= set("|;&<>"):
                    if "sluice" in cmd:
                        argv = cmd[cmd.index("sluice") + 1:]
                        if argv and re.match(r"^[a-z]+$", argv[0]):
                            out.append((n, argv))
                    cmd = []
                else:
                    cmd.append(w)
        i += 1
    return out


AGGREGATOR_PAGE = "aggregator.md"


def kubectl_commands(text):
    """(line number, argv after `kubectl`) of every kubectl command of the
    fenced code blocks (with `\\` continuations)."""
    out = []
    lines = text.splitlines()
    fenced, i = False, 0
    while i < len(lines):
        line, n = lines[i], i + 1
        if line.strip().startswith("```"):
            fenced = not fenced
        elif fenced:
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            words = shlex.split(line, comments=True)
            if words and words[0] == "kubectl":
                out.append((n, words[1:]))
        i += 1
    return out


def manifests():
    docs = []
    d = os.path.join(SRC, "deploy", "k8s")
    for f in sorted(os.listdir(d)):
        if f.endswith(".yaml"):
            docs += [(f, x) for x in yaml.safe_load_all(open(os.path.join(d, f))) if x]
    return docs


def check_kubectl(page, n, argv, scratch):
    """One kubectl command of a page, against the manifests; `create` run
    with --dry-run=client in scratch (a copy of the tree the page's
    commands start from)."""
    where = "%s:%d: kubectl %s" % (page, n, " ".join(argv))
    docs = manifests()
    words = [a for a in argv]
    ns = None
    if "-n" in words:
        ns = words[words.index("-n") + 1]
        del words[words.index("-n"):words.index("-n") + 2]
    spaces = {d["metadata"].get("namespace") for _, d in docs if d["metadata"].get("namespace")}
    if ns and ns not in spaces:
        fail("%s: namespace %s, the manifests use %s" % (where, ns, " ".join(sorted(spaces))))
    verb = words[0] if words else ""
    sets = [d for _, d in docs if d.get("kind") in ("StatefulSet", "DaemonSet", "Deployment")]
    mounted = {}
    for d in sets:
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in v:
                mounted[("configmap", v["configMap"]["name"])] = d
            if "secret" in v:
                mounted[("secret", v["secret"]["secretName"])] = d
    if verb == "create":
        kind = words[1] if words[1] != "secret" else "secret"
        name = words[2] if words[1] != "secret" else words[3]
        if (kind, name) not in mounted:
            fail("%s: creates %s %s, which no manifest mounts" % (where, kind, name))
            return
        r = subprocess.run(["kubectl"] + argv + ["--dry-run=client", "-o", "yaml"], cwd=scratch,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail("%s: exit %d: %s" % (where, r.returncode, r.stderr[-500:]))
            return
        keys = set((yaml.safe_load(r.stdout) or {}).get("data", {}))
        if kind == "configmap":
            want = {"base.yml", "site.env"}
            if "aggregator" in mounted[(kind, name)]["metadata"]["name"]:
                want.add("aggregator.yml")
        else:
            # The files the overlay reads under SLUICE_TLS_DIR.
            want = set(re.findall(r"\$\{SLUICE_TLS_DIR[^}]*\}/([\w.-]+)",
                                  open(os.path.join(SRC, "config", "aggregator.yml")).read()))
        if want - keys:
            fail("%s: the %s lacks %s" % (where, kind, " ".join(sorted(want - keys))))
        else:
            ok("%s: a %s of %s, mounted by %s" % (where, kind, " ".join(sorted(keys)),
                                                    mounted[(kind, name)]["metadata"]["name"]))
    elif verb == "apply":
        f = words[words.index("-f") + 1]
        if not os.path.isfile(os.path.join(SRC, f)) or not f.startswith("deploy/k8s/"):
            fail("%s: %s is not a manifest of deploy/k8s (test_k8s_schema checks those)" % (where, f))
        else:
            ok("%s: %s is shipped (its schema: test_k8s_schema)" % (where, f))
    else:
        bad = []
        for w in words[1:]:
            if w == "--":
                break
            m = re.fullmatch(r"(statefulset|daemonset|deployment|service|pod)/([\w.-]+)", w)
            if m and not any(d["kind"].lower() == m.group(1) and d["metadata"]["name"] == m.group(2)
                             for _, d in docs):
                bad.append(w)
        if verb in ("exec", "logs", "describe") and len(words) > 1:
            pod = words[2] if verb == "describe" and words[1] == "pod" else words[1]
            if not pod.startswith("<") and not any(
                    re.fullmatch(re.escape(d["metadata"]["name"]) + r"-\d+" +
                                 ("" if d["kind"] == "StatefulSet" else r"[\w-]*"), pod) for d in sets):
                bad.append(pod)
        if "-l" in words:
            sel = dict(x.split("=", 1) for x in words[words.index("-l") + 1].split(","))
            if not any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
                       for d in sets):
                bad.append("-l " + words[words.index("-l") + 1])
        if bad:
            fail("%s: names what no manifest defines: %s" % (where, " ".join(bad)))
        else:
            ok("%s: names only what the manifests define" % where)


def run(argv, env, stdin=None, timeout=60):
    return subprocess.run([BIN] + argv, env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout * SCALE)


def help_text(sub):
    r = subprocess.run([BIN, sub, "--help"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


# ---- static ------------------------------------------------------------------


def check_static(found):
    top = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    known = set(re.findall(r"^  ([a-z]+) ", top.stdout + top.stderr, re.M))
    helps = {}
    for page, n, argv in found:
        where = "%s:%d: sluice %s" % (page, n, " ".join(argv))
        sub = argv[0]
        if sub not in known:
            fail("%s: no command '%s' (sluice --help: %s)" % (where, sub, " ".join(sorted(known))))
            continue
        key = sub if sub != "spool" or len(argv) < 2 else "spool " + argv[1]
        if key not in helps:
            r = subprocess.run([BIN] + key.split() + ["--help"], capture_output=True, text=True)
            helps[key] = r.stdout
        opts = [a.split("=")[0] for a in argv[1:] if a.startswith("-")]
        bad = [o for o in opts if not re.search(r"(^|[\s,\[])%s\b" % re.escape(o), helps[key])]
        if bad:
            fail("%s: options %s are not in `sluice %s --help`" % (where, " ".join(bad), key))
        elif "-c" in opts or "--config" in opts:
            fail("%s: gives -c: without it the command reads what the service reads (local overlays "
                 "such as tap.yml included)" % where)
        else:
            ok("%s: command and options exist" % where)

    logged = set()
    for d in ("core", "cli", "collector", "pipeline", "shipper", "parsers", "net"):
        for dirpath, _, files in os.walk(os.path.join(SRC, d)):
            for f in files:
                if f.endswith(".c"):
                    logged |= set(re.findall(r'"([a-z][a-z0-9_]+)"', open(os.path.join(dirpath, f)).read()))
    base = yaml.safe_load(open(os.path.join(SRC, "config", "base.yml")))
    default_listen = re.search(r":-([^}]*)\}", base["metrics"]["listen"]).group(1)
    dash = json.load(open(os.path.join(SRC, "deploy", "grafana", "sluice-dashboard.json")))
    titles = [p["title"] for p in dash["panels"]]
    for page, text in pages():
        events = set()
        for m in re.finditer(r"event=\(?([a-z_|]+)\)?", text):
            events |= set(e for e in m.group(1).split("|") if e)
        # `event=(sink|loki)` in a grep -E: a prefix of events.
        unknown = sorted(e for e in events if not any(x == e or x.startswith(e + "_") for x in logged))
        if unknown:
            fail("%s: greps for events the code never logs: %s" % (page, " ".join(unknown)))
        elif events:
            ok("%s: events %s are logged by the code" % (page, " ".join(sorted(events))))
        for m in re.finditer(r"curl[^\n`]*?\b(\d+\.\d+\.\d+\.\d+:\d+)/", text):
            if m.group(1) != default_listen:
                fail("%s: curl %s, base.yml's metrics.listen is %s" % (page, m.group(1), default_listen))
        for line in text.splitlines():
            if not re.search(r"[Dd]ashboard|\brow\b", line):
                continue
            for name in re.findall(r'"([^"]+)"', line):
                if name == "sluice agent":
                    continue
                if not any(t == name or t.startswith(name + " ") for t in titles):
                    fail("%s: names a dashboard panel \"%s\" the dashboard does not have" % (page, name))


# ---- on a shipped layout -------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_for(pred, limit):
    end = time.monotonic() + limit * SCALE
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def check_live(found):
    root = tempfile.mkdtemp(prefix="sluice-runbooks.")
    procs = []
    loki = Loki()
    try:
        etc, data, logs, secrets = (os.path.join(root, d) for d in ("etc", "data", "logs", "secrets"))
        for d in (etc, logs, secrets):
            os.makedirs(d)
        os.makedirs(data, mode=0o700)
        for f in ("base.yml", "prod.yml"):
            shutil.copy(os.path.join(SRC, "config", f), etc)
        mport = free_port()
        with open(os.path.join(etc, "site.env"), "w") as f:
            f.write("SLUICE_LOKI_URL=%s\nSLUICE_KAFKA_BROKERS=127.0.0.1:%d\nSLUICE_DATA_DIR=%s\n"
                    "SLUICE_METRICS_LISTEN=127.0.0.1:%d\nSLUICE_HOST=node-1\n" % (loki.url, free_port(), data, mport))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLUICE_CONFIG_DIR": etc}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        # An aggregator's /etc/sluice: the node's files, aggregator.yml and
        # the certificates it names (SLUICE_TLS_DIR, as the pod sets it).
        agg_etc, tls = os.path.join(root, "etc-aggregator"), os.path.join(root, "tls")
        os.makedirs(agg_etc)
        os.makedirs(tls)
        for f in ("base.yml", "prod.yml", "site.env"):
            shutil.copy(os.path.join(etc, f), agg_etc)
        shutil.copy(os.path.join(SRC, "config", "aggregator.yml"), agg_etc)
        for name in ("syslog", "push"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-subj", "/CN=127.0.0.1", "-days", "2", "-keyout", "%s/%s.key" % (tls, name),
                            "-out", "%s/%s.crt" % (tls, name)], check=True, capture_output=True)
        agg_env = dict(env, SLUICE_CONFIG_DIR=agg_etc, SLUICE_TLS_DIR=tls)
        inputs = set()
        for f in ("base.yml", "prod.yml", "k8s.yml"):
            inputs |= {i["name"] for i in yaml.safe_load(open(os.path.join(SRC, "config", f))).get("inputs", [])}

        tails = []
        for page, n, argv in found:
            # A page's /etc/sluice is this folder.
            argv = [etc + a[len("/etc/sluice"):] if a.startswith("/etc/sluice/") else a for a in argv]
            where = "%s:%d" % (page, n)
            if argv[0] == "check":
                layout = "aggregator" if page == AGGREGATOR_PAGE else "node"
                r = run(argv, agg_env if page == AGGREGATOR_PAGE else env)
                if "--connect" in argv:
                    said = r.stdout + r.stderr
                    # What failed, which broker, as librdkafka says it.
                    # The aggregator's Kafka input dials the same absent brokers.
                    input_ok = page != AGGREGATOR_PAGE or re.search(
                        r"^connect input kafka \(kafka\): FAILED: refused: no metadata from brokers", said, re.M)
                    if r.returncode == 1 and input_ok and re.search(r"^connect loki \(loki\): ok", said, re.M) and \
                            re.search(r"^connect events \(kafka\): FAILED: refused: no metadata from brokers "
                                      r"127\.0\.0\.1:(\d+) in \d+ ms: 127\.0\.0\.1:\1/bootstrap: Connect to .* "
                                      r"Connection refused", said, re.M):
                        ok("%s: sluice %s (%s): loki ok, the absent Kafka FAILED: refused, naming the broker, exit 1" %
                           (where, " ".join(argv), layout))
                    else:
                        fail("%s: sluice %s: exit %d: %s" % (where, " ".join(argv), r.returncode, said[-1500:]))
                elif r.returncode == 0:
                    ok("%s: sluice %s on the shipped files (%s)" % (where, " ".join(argv), layout))
                else:
                    fail("%s: sluice %s: exit %d: %s" % (where, " ".join(argv), r.returncode, r.stderr[-800:]))
            elif page == AGGREGATOR_PAGE:
                fail("%s: sluice %s: only `check` is run on the aggregator's layout here" % (where, " ".join(argv)))
            elif argv[0] == "run" and "--stdin" in argv:
                name = argv[argv.index("--input") + 1]
                if name not in inputs:
                    fail("%s: --input %s: the shipped configurations have no such input (%s)" %
                         (where, name, " ".join(sorted(inputs))))
                    continue
                sample = "".join("Dec  7 10:00:0%d node-1 app[42]: line %d\n" % (i, i) for i in range(3))
                r = run(argv, env, stdin=sample)
                recs = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
                if r.returncode == 0 and len(recs) == 3 and all("line" in x for x in recs):
                    ok("%s: sluice %s: 3 sample lines in, 3 records out" % (where, " ".join(argv)))
                else:
                    fail("%s: sluice %s: exit %d, %d records: %s" %
                         (where, " ".join(argv), r.returncode, len(recs), (r.stdout + r.stderr)[-800:]))
            elif argv[0] == "tail":
                tails.append((where, argv))
            elif argv[0] == "version":
                r = run(argv, env)
                (ok if r.returncode == 0 else fail)("%s: sluice version: exit %d" % (where, r.returncode))

        if not tails:
            return
        # As shipped the tap is off: tail says so, and how to turn it on.
        where, argv = tails[0]
        r = run(argv, env)
        if r.returncode == 2 and "tail needs the tap" in r.stderr:
            ok("%s: as shipped, sluice tail says the tap is off: %s" % (where, r.stderr.strip()))
        else:
            fail("%s: sluice tail with the tap off: exit %d: %s" % (where, r.returncode, r.stderr[-500:]))
        # The runbooks' recipe: config/tap.yml into the folder, the token in
        # secrets/ (0600), given to the agent as LoadCredential would.
        shutil.copy(os.path.join(SRC, "config", "tap.yml"), etc)
        tok = os.path.join(secrets, "tap-token")
        with open(tok, "w") as f:
            f.write("runbook-test-token-0123456789\n")
        os.chmod(tok, 0o600)
        with open(os.path.join(etc, "zz-local.yml"), "w") as f:
            # tap.yml's port moved to a free one: runs side by side must not meet.
            f.write("shutdown_timeout: 3s\ntap:\n  listen: 127.0.0.1:%d\ninputs:\n  - name: system\n"
                    "    paths: [%s/*.log]\n    start_at: beginning\n    poll_interval: 100ms\n" % (free_port(), logs))
        aenv = dict(env, CREDENTIALS_DIRECTORY=secrets)
        alog = open(os.path.join(root, "agent.log"), "w")
        agent = subprocess.Popen([BIN, "run"], env=aenv, stdout=subprocess.DEVNULL, stderr=alog, preexec_fn=child)
        procs.append(agent)
        if not wait_for(lambda: "event=agent_started" in open(alog.name).read() or agent.poll() is not None, 30) \
                or agent.poll() is not None:
            fail("the agent with config/tap.yml did not start: %s" % open(alog.name).read()[-1500:])
            return
        for where, argv in tails:
            out = open(os.path.join(root, "tail.out"), "w+")
            t = subprocess.Popen([BIN] + argv, env=aenv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=child)
            procs.append(t)

            def following():
                out.seek(0)
                return "sluice tail: following " in out.read() or t.poll() is not None
            if wait_for(following, 30) and t.poll() is None:
                ok("%s: sluice %s follows the agent" % (where, " ".join(argv)))
            else:
                out.seek(0)
                fail("%s: sluice %s: exit %s: %s" % (where, " ".join(argv), t.poll(), out.read()[-800:]))
            labels = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--label"]
            if "--match" in argv and not labels and t.poll() is None and \
                    re.search(argv[argv.index("--match") + 1], "an error happened"):
                with open(os.path.join(logs, "app.log"), "a") as f:
                    f.write("an error happened\nall is well\n")

                def shown():
                    out.seek(0)
                    return "an error happened" in out.read()
                if wait_for(shown, 30):
                    out.seek(0)
                    ok("%s: a matching line shows up: %s" % (where, out.read().strip().splitlines()[-1][:120]))
                else:
                    fail("%s: no matching record from the tail" % where)
            t.send_signal(signal.SIGINT)
            t.wait(timeout=10 * SCALE)
            out.close()
        agent.send_signal(signal.SIGTERM)
        rc = agent.wait(timeout=30 * SCALE)
        (ok if rc == 0 else fail)("agent with the tap stopped: exit %d" % rc)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        loki.close()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)


def check_kubectl_pages():
    """The pages' kubectl commands, from a copy of the tree with the files
    they name (site.env from debian/site.env, the TLS files)."""
    found = [(page, n, argv) for page, text in pages() for n, argv in kubectl_commands(text)]
    if not any(page == AGGREGATOR_PAGE for page, _, _ in found):
        fail("%s: no kubectl command: the tier on Kubernetes is not in its runbook" % AGGREGATOR_PAGE)
        return
    if not shutil.which("kubectl"):
        print("note: kubectl is not installed: the pages' kubectl commands are checked against the "
              "manifests, not run")
    scratch = tempfile.mkdtemp(prefix="sluice-runbooks-kubectl.")
    try:
        shutil.copytree(os.path.join(SRC, "config"), os.path.join(scratch, "config"))
        shutil.copytree(os.path.join(SRC, "deploy"), os.path.join(scratch, "deploy"))
        shutil.copy(os.path.join(SRC, "debian", "site.env"), os.path.join(scratch, "site.env"))
        for f in ("syslog.crt", "syslog.key", "push.crt", "push.key"):
            open(os.path.join(scratch, f), "w").write("test\n")
        for page, n, argv in found:
            if argv[:3] == ["-n", "logging", "create"] and not shutil.which("kubectl"):
                continue
            check_kubectl(page, n, argv, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    if not os.access(BIN, os.X_OK):
        print("no sluice binary at " + BIN)
        return 1
    found, seen = [], set()
    for page, text in pages():
        for n, argv in commands(text):
            # The aggregator's page runs on its own layout: not a repeat.
            key = (page == AGGREGATOR_PAGE, tuple(argv))
            if key not in seen:
                seen.add(key)
                found.append((page, n, argv))
    if not found:
        fail("no sluice command found in docs/runbooks")
    check_static(found)
    check_live(found)
    check_kubectl_pages()
    print()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
