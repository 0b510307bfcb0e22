#!/usr/bin/env python3
"""End-to-end benchmarks with the real binary (build/cli/sluice) and the
peer (Debian's rsyslog), on the same generated corpus, in the same run.
Peers wherever Debian has one: rsyslog omfile (raw line; the record as
JSON via $!all-json; behind a pure disk queue for the forced spool) and
omkafka (rsyslog-kafka, zstd, into the same mock cluster). Debian has no
Loki output for rsyslog, and imjournal reads only the system journal (no
folder), so the Loki and journald rows compare against the in-tree
receiver's and bench_journald's figures instead.

  python3 benchmarks/e2e.py BUILD_DIR        (run-e2e.sh calls this)

Environment: SLUICE_E2E_MB (JSON corpus size, default 500),
SLUICE_E2E_SKIP (comma list of: file,rsyslog,recjson,spool,loki,kafka,
journald,latency,scale,idle; `file` skips the main file -> json -> file
run, `rsyslog` every rsyslog peer run; run-e2e.sh also takes kafka_input,
which leaves out benchmarks/kafka_input.py),
SLUICE_E2E_IDLE_S (idle window, default 30), SLUICE_E2E_RATE (10000),
SLUICE_E2E_LAT_S (latency run length, default 20),
SLUICE_E2E_JOURNAL_N (journal entries for journald -> loki, default 500000).

Kafka: benchmarks/kafka_mock runs librdkafka's mock cluster (3 brokers on
127.0.0.1) and a consumer that reads every partition while sluice produces
(the mock keeps only a few MiB per partition and drops older messages, so
counting afterwards would come up short); a run passes only when the
consumer counted exactly as many messages as the corpus has lines. The
Kafka row runs the sink's defaults and the setting it needed before issue
22 (key ${labels} + partitioner: random) in turn, three times each.
Journald: real journal files written by systemd-journal-remote from the
export format, read by a `type: journald` input with `directory:`; MB/s
and CPU s/GB are per MESSAGE byte.

Every agent runs as its own process: throughput is input bytes over the
time from its start until the last line is in the output; CPU seconds are
utime+stime of the agent process (all threads) from /proc/PID/stat at that
moment; peak RSS is VmHWM. Exit status 1 when any run failed.

One file over 800 lines: every row shares the corpus, the agent runner and
the table it prints, so the rows stay comparable."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import cpu_s, free_port, stop

FAILED = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rss_parts_mib(pid):
    """Current resident memory split into anonymous and file-backed (mapped
    files such as journal files count in VmHWM but are page cache)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("RssAnon", "RssFile", "RssShmem"):
                out[k] = int(line.split()[1]) / 1024
    return out


def hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class LineCounter:
    """Counts lines appended to a file, reading only what is new."""

    def __init__(self, path, on_line=None):
        self.path, self.on_line = path, on_line
        self.f, self.n, self.rest = None, 0, b""

    def poll(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except FileNotFoundError:
                return 0
        got = 0
        while True:
            data = self.f.read(8 << 20)
            if not data:
                return got
            got += len(data)
            if self.on_line is None:
                self.n += data.count(b"\n")
                continue
            data = self.rest + data
            lines = data.split(b"\n")
            self.rest = lines.pop()
            now = time.time_ns()
            for line in lines:
                self.on_line(line, now)
            self.n += len(lines)


def wait_for(proc, counter, want, timeout):
    t0 = time.monotonic()
    while counter.n < want:
        if counter.poll() == 0:
            if proc.poll() is not None:
                raise RuntimeError(f"agent exited with {proc.returncode}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"timeout: {counter.n} of {want} lines delivered")
            time.sleep(0.02)


class Bench:
    def __init__(self, build):
        self.build = os.path.abspath(build)
        self.sluice = os.path.join(self.build, "cli/sluice")
        self.gen = os.path.join(self.build, "benchmarks/gen")
        self.receiver = os.path.join(self.build, "tests/loki-receiver")
        self.tmp = tempfile.mkdtemp(prefix="sluice-e2e.", dir=os.environ.get("TMPDIR"))
        self.rows = []  # (scenario, agent, MB/s, CPU s/GB, RSS MiB, command)
        self.notes = []
        self.seq = 0

    def fresh(self, name):
        self.seq += 1
        d = os.path.join(self.tmp, f"{self.seq:02d}-{name}")
        os.makedirs(d)
        return d

    # ---- corpora ----
    def corpus(self, mb):
        path = os.path.join(self.tmp, "corpus.json")
        with open(path, "wb") as f:
            subprocess.run([self.gen, "--kind", "json", "--bytes", f"{mb}M", "--seed", "1"],
                           stdout=f, check=True)
        with open(path, "rb") as f:
            n = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(8 << 20), b""))
        self.corpus_cmd = f"gen --kind json --bytes {mb}M --seed 1"
        return path, os.path.getsize(path), n

    def split(self, src, nfiles, dest):
        """The corpus lines dealt round-robin into nfiles files."""
        os.makedirs(dest)
        with open(src, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        for i in range(nfiles):
            with open(os.path.join(dest, f"f{i:05d}.log"), "wb") as out:
                part = lines[i::nfiles]
                if part:
                    out.write(b"\n".join(part) + b"\n")

    # ---- agents ----
    def write_cfg(self, d, body):
        """sluice.yml in d: the data dir and log level every run shares, then body."""
        cfg = os.path.join(d, "sluice.yml")
        with open(cfg, "w") as f:
            f.write(f"data_dir: {d}/data\nlog: {{ level: warn }}\n{body}")
        return cfg

    def sluice_cfg(self, d, paths, sink, extra_input=""):
        return self.write_cfg(d, f"""inputs:
  - name: app
    type: file
    paths: ["{paths}"]
    start_at: beginning
{extra_input}    parse:
      - json: {{}}
sinks:
{sink}""")

    def file_sink(self, out, buffer=""):
        return f"""  - name: out
    type: file
    path: {out}
    format: raw
{buffer}"""

    def loki_sink(self, port, wait="1s"):
        return f"""  - name: loki
    type: loki
    url: "http://127.0.0.1:{port}/loki/api/v1/push"
    max_batch_wait: {wait}
"""

    def kafka_sink(self, bootstraps, extra=""):
        # The sink's defaults: no key, so one file's lines spread over every
        # partition (docs/decisions/0018-kafka-keys-and-log-values.md). `extra`
        # adds YAML lines (the reference run in run_kafka).
        return f"""  - name: kafka
    type: kafka
    brokers: "{bootstraps}"
    topic: logs
{extra}"""

    # The setting the Kafka row needed before issue 22: the stream's labels
    # as key and librdkafka's random partitioner (one partition per message).
    KAFKA_REF = ('    key: "${labels}"\n    librdkafka: { partitioner: random }\n',
                 "key ${labels} + partitioner: random")

    def start_sluice(self, d, cfg):
        err = open(os.path.join(d, "sluice.err"), "wb")
        return subprocess.Popen([self.sluice, "run", "-c", cfg], stdout=subprocess.DEVNULL,
                                stderr=err)

    def rsyslog_conf(self, d, glob, out, action=None, modules=""):
        """imfile -> mmjsonparse -> action (default: omfile of the raw line
        into out). Templates: raw (the line), json (the parsed record,
        rsyslog's $!all-json)."""
        conf = os.path.join(d, "rsyslog.conf")
        os.makedirs(os.path.join(d, "work"))
        action = action or f'action(type="omfile" file="{out}" template="raw")'
        with open(conf, "w") as f:
            f.write(f"""global(workDirectory="{d}/work" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="mmjsonparse")
{modules}
template(name="raw" type="string" string="%rawmsg%\\n")
template(name="json" type="string" string="%$!all-json%\\n")
input(type="imfile" file="{glob}" tag="app" ruleset="r")
ruleset(name="r") {{
  action(type="mmjsonparse" cookie="")
  {action}
}}
""")
        return conf

    def start_rsyslog(self, d, conf):
        err = open(os.path.join(d, "rsyslog.err"), "wb")
        return subprocess.Popen(["rsyslogd", "-n", "-f", conf, "-i", os.path.join(d, "rs.pid")],
                                stdout=subprocess.DEVNULL, stderr=err)

    # ---- measurements ----
    def throughput(self, scenario, agent, start, d, out, nbytes, nlines, cmd, timeout=900,
                   on_done=None):
        # Dirty pages of the corpus or an earlier run's output must not be
        # written back while this run is timed.
        os.sync()
        t0 = time.monotonic()
        proc = start()
        counter = LineCounter(out)
        try:
            wait_for(proc, counter, nlines, timeout)
            secs = time.monotonic() - t0
            cpu, rss = cpu_s(proc.pid), hwm_mib(proc.pid)
            if on_done:
                on_done(proc)
        except (RuntimeError, OSError) as e:
            FAILED.append(f"{scenario}/{agent}: {e}")
            log(f"FAILED {scenario}/{agent}: {e} (logs in {d})")
            stop(proc)
            return None
        stop(proc)
        r = dict(scenario=scenario, agent=agent, mbs=nbytes / 1e6 / secs,
                 cpugb=cpu / (nbytes / 1e9), cores=cpu / secs, rss=rss, secs=secs, cmd=cmd)
        self.rows.append(r)
        log(f"{scenario:34s} {agent:8s} {r['mbs']:8.1f} MB/s {r['cpugb']:7.2f} CPU s/GB "
            f"{r['cores']:4.2f} cores {rss:7.1f} MiB peak RSS ({secs:.1f} s)")
        return r

    def median_of(self, runs, once):
        """Runs once() (a row or None) runs times; keeps the median row (by
        MB/s) in the table and drops the others. None if any run failed."""
        return self.keep_median([once() for _ in range(runs)])

    def keep_median(self, tries):
        """The median row (by MB/s) of tries stays in the table, the others
        go; None if any run failed."""
        runs = len(tries)
        ok = sorted((t for t in tries if t), key=lambda t: t["mbs"])
        for t in ok:
            if t is not ok[len(ok) // 2]:
                self.rows.remove(t)
        if len(ok) != runs:
            for t in ok[len(ok) // 2:len(ok) // 2 + 1]:
                self.rows.remove(t)
            return None
        med = ok[len(ok) // 2]
        med["runs"] = [round(t["mbs"], 1) for t in tries]
        return med

    def run_peer_once(self, scenario, src, nbytes, nlines, action=None, modules="",
                      what="", out_check=None):
        """One rsyslog run: imfile -> mmjsonparse -> action."""
        d = self.fresh("rsyslog")
        indir = os.path.join(d, "in")
        os.makedirs(indir)
        os.link(src, os.path.join(indir, "app.log"))
        out = os.path.join(d, "out.log")
        conf = self.rsyslog_conf(d, f"{indir}/*.log", out, action(d, out) if action else None,
                                 modules)
        cmd = f"rsyslogd -n -f {os.path.relpath(conf, self.tmp)}" + (f" ({what})" if what else "")
        counted = out_check(d) if out_check else out
        res = self.throughput(scenario, "rsyslog", lambda: self.start_rsyslog(d, conf), d,
                              counted, nbytes, nlines, cmd)
        shutil.rmtree(d, ignore_errors=True)
        return res

    def raw_reference_once(self, src, nbytes, nlines, folder, what):
        """One run of the headline path (file -> json -> raw file) as the
        reference a goal's ratio is taken against, in turn with that goal's
        runs."""
        d = self.fresh(folder)
        indir = os.path.join(d, "in")
        os.makedirs(indir)
        os.link(src, os.path.join(indir, "app.log"))
        out = os.path.join(d, "out.log")
        cfg = self.sluice_cfg(d, f"{indir}/*.log", self.file_sink(out))
        r = self.throughput(f"file -> json -> file ({what})", "sluice",
                            lambda: self.start_sluice(d, cfg), d, out, nbytes, nlines,
                            f"sluice run -c {os.path.relpath(cfg, self.tmp)}")
        shutil.rmtree(d, ignore_errors=True)
        return r

    def run_recjson(self, src, nbytes, nlines, peer=True, runs=3):
        """file -> json -> file with the record written as JSON (sluice
        `format: json`; rsyslog's template of $!all-json)."""
        scenario = "file -> json -> file, record as JSON out"

        def once():
            d = self.fresh("recjson")
            indir = os.path.join(d, "in")
            os.makedirs(indir)
            os.link(src, os.path.join(indir, "app.log"))
            out = os.path.join(d, "out.log")
            sink = self.file_sink(out).replace("format: raw", "format: json")
            cfg = self.sluice_cfg(d, f"{indir}/*.log", sink)
            r = self.throughput(scenario, "sluice", lambda: self.start_sluice(d, cfg), d, out,
                                nbytes, nlines,
                                f"sluice run -c {os.path.relpath(cfg, self.tmp)} (format: json)")
            shutil.rmtree(d, ignore_errors=True)
            return r

        # In turn with the raw path, so the ratio the goal names compares runs
        # of the same moments of this shared machine (as the Loki row does).
        tries = {"json": [], "raw": []}
        for _ in range(runs):
            tries["json"].append(once())
            tries["raw"].append(self.raw_reference_once(
                src, nbytes, nlines, "recjson-ref", "record JSON's reference"))
        res = {"sluice": self.keep_median(tries["json"])}
        ref = self.keep_median(tries["raw"])
        if res["sluice"] and ref:
            self.notes.append(f"record as JSON / raw line out, medians of {runs} interleaved: "
                              f"{res['sluice']['mbs'] / ref['mbs']:.2f}x, CPU s/GB "
                              f"{res['sluice']['cpugb'] / ref['cpugb']:.2f}x (issue 19 goal >= 0.8x)")
        if peer:
            res["rsyslog"] = self.median_of(runs, lambda: self.run_peer_once(
                scenario, src, nbytes, nlines,
                lambda d, out: f'action(type="omfile" file="{out}" template="json")',
                what="template $!all-json"))
        return res

    def run_spool(self, src, nbytes, nlines, forced):
        """The same run with the disk spool on (spool_max set, default
        memory queue: the spool takes what memory cannot hold), or forced
        into use (a 1 MiB memory queue, so nearly every batch goes through
        the spool on disk)."""
        d = self.fresh("spool")
        indir = os.path.join(d, "in")
        os.makedirs(indir)
        os.link(src, os.path.join(indir, "app.log"))
        out = os.path.join(d, "out.log")
        mem = "memory_max: 1MiB, " if forced else ""
        buf = f"    buffer: {{ {mem}spool_max: 4GiB, fsync: batch }}\n" if forced is not None else ""
        cfg = self.sluice_cfg(d, f"{indir}/*.log", self.file_sink(out, buf))
        what = {None: "no spool", False: "spool_max 4GiB, spool on",
                True: "memory_max 1MiB, spool forced"}[forced]
        cmd = f"sluice run -c {os.path.relpath(cfg, self.tmp)} ({what})"
        scenario = "file -> json -> file, spool " + {None: "off (paired)", False: "on",
                                                     True: "forced"}[forced]
        res = self.throughput(scenario, "sluice", lambda: self.start_sluice(d, cfg), d, out,
                              nbytes, nlines, cmd)
        shutil.rmtree(d, ignore_errors=True)
        return res

    def run_spool_peer(self, src, nbytes, nlines):
        """rsyslog's nearest: omfile behind a pure disk queue (every message
        written to and read back from disk; queue files synced on
        checkpoints, not per message)."""
        return self.run_peer_once(
            "file -> json -> file, spool forced", src, nbytes, nlines,
            lambda d, out: (f'action(type="omfile" file="{out}" template="raw" '
                            f'queue.type="Disk" queue.filename="q" queue.maxDiskSpace="4g" '
                            f'queue.spoolDirectory="{d}/work")'),
            what='queue.type="Disk"')

    def run_file_sink(self, src, nbytes, nlines, nfiles=1, scenario=None, peer=True):
        scenario = scenario or f"file -> json -> file ({nfiles} file{'s' if nfiles > 1 else ''})"
        res = {}
        if nfiles == 1:
            indir_src = None
        else:
            indir_src = os.path.join(self.tmp, f"split-{nfiles}")
            if not os.path.isdir(indir_src):
                self.split(src, nfiles, indir_src)
        for agent in (["sluice", "rsyslog"] if peer else ["sluice"]):
            d = self.fresh(f"{agent}-{nfiles}")
            indir = os.path.join(d, "in")
            if indir_src is None:
                os.makedirs(indir)
                os.link(src, os.path.join(indir, "app.log"))
            else:
                shutil.copytree(indir_src, indir, copy_function=os.link)
            out = os.path.join(d, "out.log")
            if agent == "sluice":
                cfg = self.sluice_cfg(d, f"{indir}/*.log", self.file_sink(out))
                cmd = f"sluice run -c {os.path.relpath(cfg, self.tmp)}"
                start = lambda: self.start_sluice(d, cfg)  # noqa: E731
            else:
                conf = self.rsyslog_conf(d, f"{indir}/*.log", out)
                cmd = f"rsyslogd -n -f {os.path.relpath(conf, self.tmp)}"
                start = lambda: self.start_rsyslog(d, conf)  # noqa: E731
            # The headline run is short (seconds): sluice's figure is the
            # median of three runs (by MB/s), the other two rows dropped.
            runs = 3 if agent == "sluice" and nfiles == 1 else 1
            tries = []
            for k in range(runs):
                if k:
                    os.unlink(out)
                    shutil.rmtree(os.path.join(d, "data"), ignore_errors=True)
                tries.append(self.throughput(scenario, agent, start, d, out, nbytes, nlines, cmd))
            ok = sorted((t for t in tries if t), key=lambda t: t["mbs"])
            res[agent] = ok[len(ok) // 2] if len(ok) == runs else None
            for t in ok:
                if t is not res[agent]:
                    self.rows.remove(t)
            if res[agent] and os.path.getsize(out) != nbytes:
                self.notes.append(f"{scenario}/{agent}: output {os.path.getsize(out)} bytes, "
                                  f"input {nbytes}")
            shutil.rmtree(d, ignore_errors=True)
        return res

    def run_loki(self, src, nbytes, nlines, runs=3):
        """file -> json -> Loki into benchmarks/loki-rx (counts every entry:
        snappy + the protobuf walked; not the bottleneck, its CPU noted),
        interleaved with file -> json -> raw file, runs times each: the
        medians and their ratio (issue 19: >= 0.8x). Falls back to the
        test receiver (decodes everything, writes JSON: the bottleneck)."""
        rxbin = os.path.join(self.build, "benchmarks/loki-rx")
        fast = os.access(rxbin, os.X_OK)
        rxbin = rxbin if fast else self.receiver
        rxname = "loki-rx" if fast else "loki-receiver"
        rx_cpu = []

        def loki_once():
            d = self.fresh("loki")
            port = free_port()
            out = os.path.join(d, "received.jsonl")
            rx = subprocess.Popen([rxbin, "--port", str(port), "--out", out],
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(d, "rx.err"), "wb"))
            time.sleep(0.3)
            indir = os.path.join(d, "in")
            os.makedirs(indir)
            os.link(src, os.path.join(indir, "app.log"))
            cfg = self.sluice_cfg(d, f"{indir}/*.log", self.loki_sink(port))
            try:
                return self.throughput(f"file -> json -> loki ({rxname})", "sluice",
                                       lambda: self.start_sluice(d, cfg), d, out, nbytes, nlines,
                                       f"{rxname} --port P --out F & sluice run -c "
                                       f"{os.path.relpath(cfg, self.tmp)}")
            finally:
                rx_cpu.append(cpu_s(rx.pid))
                stop(rx)
                shutil.rmtree(d, ignore_errors=True)

        tries = {"loki": [], "file": []}
        for _ in range(runs):
            tries["loki"].append(loki_once())
            tries["file"].append(self.raw_reference_once(
                src, nbytes, nlines, "loki-ref", "loki's reference"))
        loki, ref = self.keep_median(tries["loki"]), self.keep_median(tries["file"])
        cpus = sorted(rx_cpu)
        self.notes.append(f"{rxname} (the Loki receiver) used {cpus[len(cpus) // 2]:.2f} CPU s "
                          f"(median of {len(cpus)}; runs {', '.join(f'{c:.2f}' for c in rx_cpu)}) "
                          f"per loki run")
        if loki and ref:
            self.notes.append(f"file -> json -> loki / file -> json -> raw file, medians of "
                              f"{runs} interleaved: {loki['mbs'] / ref['mbs']:.2f}x "
                              f"(issue 19 goal >= 0.8x)")

    def note_rss(self, what, proc):
        parts = rss_parts_mib(proc.pid)
        self.notes.append(f"{what}: sluice resident at the end of the run: "
                          + ", ".join(f"{k} {v:.1f} MiB" for k, v in parts.items()))

    def run_kafka(self, src, nbytes, nlines, runs=3, peer=False):
        """The Kafka row with the sink's defaults and the reference setting
        (KAFKA_REF), in turn (A B A B ...), runs times each: the median of
        each goes in the table, the ratio of the medians and the paired
        ratios in the notes."""
        km = os.path.join(self.build, "benchmarks/kafka_mock")
        if not os.access(km, os.X_OK):
            log("e2e: benchmarks/kafka_mock not built: kafka scenario skipped")
            return None
        variants = [("", "defaults"), self.KAFKA_REF]
        tries = {label: [] for _, label in variants}
        zstd = []  # issue 19's reference: `zstd -1 -T1` on the same bytes, in turn with the runs
        zstd_cpu = []  # its CPU s/GB: the comparison the machine's load moves least
        for _ in range(runs):
            zstd.append(self.zstd_mbs(src, nbytes, zstd_cpu))
            for extra, label in variants:
                tries[label].append(self.run_kafka_once(src, nbytes, nlines, extra, label))
        med = {}
        for label, ts in tries.items():
            ok = sorted((t for t in ts if t), key=lambda t: t["mbs"])
            med[label] = ok[len(ok) // 2] if len(ok) == runs else None
            for t in ok:
                if t is not med[label]:
                    self.rows.remove(t)
        a, b = med["defaults"], med[self.KAFKA_REF[1]]
        if a and all(zstd):
            zm = sorted(zstd)[len(zstd) // 2]
            pairs = [t["mbs"] / z for t, z in zip(tries["defaults"], zstd)]
            self.notes.append(f"kafka (defaults) / `zstd -1 -T1` on the same file ({zm:.1f} MB/s, "
                              f"median of {runs}): {a['mbs'] / zm:.2f}x (goal >= 0.8x; paired runs "
                              + ", ".join(f"{p:.2f}x" for p in pairs) + ")")
            if len(zstd_cpu) == runs and a.get("mock_cpugb") is not None:
                zc = sorted(zstd_cpu)[len(zstd_cpu) // 2]
                self.notes.append(f"kafka (defaults), CPU s/GB of the median run: sluice "
                                  f"{a['cpugb']:.2f} + mock cluster and its consumer "
                                  f"{a['mock_cpugb']:.2f} (on the same cores) against `zstd -1 "
                                  f"-T1` {zc:.2f} (median of {runs})")
        if peer:
            self.kafka_peer = self.median_of(runs, lambda: self.run_kafka_once(
                src, nbytes, nlines, "", "rsyslog omkafka, zstd", agent="rsyslog"))
        if a and b:
            pairs = [x["mbs"] / y["mbs"] for x, y in zip(tries["defaults"],
                                                         tries[self.KAFKA_REF[1]])]
            self.notes.append(f"kafka: defaults / {self.KAFKA_REF[1]}: throughput "
                              f"{a['mbs'] / b['mbs']:.2f}x (medians of {runs}; paired runs "
                              + ", ".join(f"{p:.2f}x" for p in pairs) + "), CPU s/GB "
                              f"{a['cpugb'] / b['cpugb']:.2f}x")
        return a

    def zstd_mbs(self, src, nbytes, cpu_gb=None):
        """`zstd -1 -T1` over the corpus (page cache) to /dev/null: MB/s of
        wall time, 0 when zstd is missing; its CPU s/GB goes to cpu_gb."""
        t0 = time.monotonic()
        try:
            p = subprocess.Popen(["zstd", "-1", "-T1", "-q", "-c", src],
                                 stdout=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            if p.returncode:
                return 0
        except OSError:
            return 0
        secs = time.monotonic() - t0
        if cpu_gb is not None:
            cpu_gb.append((ru.ru_utime + ru.ru_stime) / (nbytes / 1e9))
        return nbytes / 1e6 / secs

    def run_kafka_once(self, src, nbytes, nlines, extra, label, agent="sluice"):
        """file -> json -> Kafka (librdkafka's mock cluster, 3 brokers on
        127.0.0.1, 32 partitions), on the main corpus. Delivery is counted by
        benchmarks/kafka_mock's consumer, which reads concurrently and appends
        one newline per message to a tally file the usual line counter follows."""
        km = os.path.join(self.build, "benchmarks/kafka_mock")
        scenario = f"file -> json -> kafka (mock, 3 brokers; {label})"
        d = self.fresh("kafka")
        indir = os.path.join(d, "in")
        os.makedirs(indir)
        os.link(src, os.path.join(indir, "app.log"))
        tally = os.path.join(d, "consumed.tally")
        mock = subprocess.Popen([km, "--brokers", "3", "--partitions", "32", "--expect",
                                 str(nlines), "--tally", tally, "--timeout", "600"],
                                stdout=subprocess.PIPE,
                                stderr=open(os.path.join(d, "kafka_mock.err"), "wb"))
        res = None
        try:
            boot = mock.stdout.readline().decode().strip()
            if not boot:
                raise RuntimeError(f"kafka_mock gave no bootstrap servers (logs in {d})")
            if agent == "sluice":
                cfg = self.sluice_cfg(d, f"{indir}/*.log", self.kafka_sink(boot, extra))
                res = self.throughput(scenario, "sluice", lambda: self.start_sluice(d, cfg), d,
                                      tally, nbytes, nlines,
                                      f"kafka_mock --partitions 32 --expect N --tally F & "
                                      f"sluice run -c {os.path.relpath(cfg, self.tmp)}",
                                      timeout=300,
                                      on_done=lambda p: self.note_rss(f"kafka ({label})", p))
            else:
                # rsyslog's omkafka (Debian rsyslog-kafka), zstd like the sink's
                # default, librdkafka's partitioner over the 32 partitions.
                brokers = ", ".join(f'"{b}"' for b in boot.split(","))
                conf = self.rsyslog_conf(
                    d, f"{indir}/*.log", None,
                    f'action(type="omkafka" broker=[{brokers}] topic="logs" template="raw" '
                    f'partitions.auto="on" confParam=["compression.codec=zstd"])',
                    'module(load="omkafka")')
                res = self.throughput(scenario, "rsyslog", lambda: self.start_rsyslog(d, conf), d,
                                      tally, nbytes, nlines,
                                      f"kafka_mock --partitions 32 --expect N --tally F & "
                                      f"rsyslogd -n -f {os.path.relpath(conf, self.tmp)} (omkafka)",
                                      timeout=300)
            try:
                mock_cpu = cpu_s(mock.pid)
            except OSError:
                mock_cpu = None
            try:
                out, _ = mock.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                stop(mock)
                out, _ = mock.communicate()
            m = re.search(rb"consumed (\d+)", out)
            consumed = int(m.group(1)) if m else -1
            if consumed != nlines:
                raise RuntimeError(f"consumer counted {consumed} messages, {nlines} lines written")
            if res and mock_cpu is not None:
                res["mock_cpugb"] = mock_cpu / (nbytes / 1e9)
            self.notes.append(f"kafka ({label}): consumer counted {consumed} messages = {nlines} lines "
                              f"written" + (f"; mock cluster + consumer process used "
                                            f"{mock_cpu:.1f} CPU s" if mock_cpu is not None else ""))
        except (RuntimeError, OSError) as e:
            FAILED.append(f"{scenario}/{agent}: {e}")
            log(f"FAILED {scenario}/{agent}: {e}")
            if res in self.rows:
                self.rows.remove(res)
            res = None
        finally:
            stop(mock)
        shutil.rmtree(d, ignore_errors=True)
        return res

    def journal(self, dest, n, nfiles=4):
        """n journald-like entries (about 20 fields each, kubelet-style
        MESSAGE) in nfiles real journal files, written by
        systemd-journal-remote from the export format. Returns MESSAGE bytes."""
        remote = next((p for p in ("/lib/systemd/systemd-journal-remote",
                                   "/usr/lib/systemd/systemd-journal-remote")
                       if os.access(p, os.X_OK)), None)
        if remote is None:
            raise FileNotFoundError("systemd-journal-remote")
        os.makedirs(dest)
        units = ["kubelet.service", "containerd.service", "sshd.service",
                 "systemd-logind.service", "cron.service"]
        comms = ["kubelet", "containerd", "sshd", "systemd-logind", "cron"]
        per = n // nfiles + 1
        msg_bytes, i = 0, 0
        # Entries 100 us apart, the newest a moment ago, as on a live node:
        # dated years back, each one would be outside Loki's accepted window
        # and shipped clamped with an `original_ts` label (the sink's and the
        # receiver's work per entry nearly doubled, as no live journal has it).
        rt0 = time.time_ns() // 1000 - n * 100
        for k in range(nfiles):
            p = subprocess.Popen([remote, f"--output={dest}/system-{k}.journal", "-"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            end = min(n, i + per)
            while i < end:
                upto = min(end, i + 5000)
                parts = []
                for j in range(i, upto):
                    u = j % 5
                    msg = (f"I1114 22:13:20.{j % 1000000:06d}  {1000 + j % 97} pod_workers.go:965] "
                           f'"Error syncing pod, skipping" err="failed to StartContainer" '
                           f'pod="ns-{j % 13}/app-{j % 211}" seq={j}')
                    msg_bytes += len(msg)
                    parts.append(
                        f"__REALTIME_TIMESTAMP={rt0 + j * 100}\n"
                        f"__MONOTONIC_TIMESTAMP={5000000 + j * 100}\n"
                        f"_BOOT_ID=5e1ce5e1ce5e1ce5e1ce5e1ce5e1ce00\n"
                        f"MESSAGE={msg}\nPRIORITY={3 + j % 4}\n_SYSTEMD_UNIT={units[u]}\n"
                        f"SYSLOG_IDENTIFIER={comms[u]}\n_COMM={comms[u]}\n_EXE=/usr/bin/{comms[u]}\n"
                        f"_CMDLINE=/usr/bin/{comms[u]} --config=/etc/{comms[u]}/config.yaml --v=2\n"
                        f"_PID={1000 + u * 37}\n_UID=0\n_GID=0\n_HOSTNAME=node-017.lab.example\n"
                        f"_TRANSPORT=stdout\nSYSLOG_FACILITY=3\n_CAP_EFFECTIVE=1ffffffffff\n"
                        f"_SYSTEMD_CGROUP=/system.slice/{units[u]}\n_SYSTEMD_SLICE=system.slice\n"
                        f"_SYSTEMD_INVOCATION_ID={u * 7919:032x}\n"
                        f"_MACHINE_ID=0a1b2c3d4e5f60718293a4b5c6d7e8f9\n"
                        f"_STREAM_ID=9f8e7d6c5b4a39281706f5e4d3c2b1a0\n\n")
                i = upto
                p.stdin.write("".join(parts).encode())
            p.stdin.close()
            if p.wait() != 0:
                raise RuntimeError(f"systemd-journal-remote exited with {p.returncode}")
        return msg_bytes

    def run_journald(self, n, runs=3):
        """journald (real journal files) -> loki (loki-rx when built), at
        n entries and at n/5, alternating, runs times each. Each run's wall
        time holds a fixed part (start-up, the last partial batch's
        max_batch_wait, the harness's polling) that a short run cannot
        amortise, so besides each size's median the steady rate is given:
        fitting wall = N / R + C to the two medians. The stage reference
        (bench_journald: the input alone, batches acknowledged at once) runs
        on the same n-entry folder in the same invocation."""
        d = self.fresh("journald")
        sizes = [n // 5, n]
        dirs, msg = {}, {}
        try:
            for k in sizes:
                t0 = time.monotonic()
                dirs[k] = os.path.join(d, f"journal-{k}")
                msg[k] = self.journal(dirs[k], k)
                log(f"journal: {k} entries, {msg[k] / 1e6:.1f} MB of MESSAGE in "
                    f"{time.monotonic() - t0:.1f} s")
        except (RuntimeError, OSError) as e:
            if isinstance(e, FileNotFoundError) and e.args == ("systemd-journal-remote",):
                log("e2e: systemd-journal-remote not installed (apt-get install -y "
                    "systemd-journal-remote): journald scenario skipped")
            else:
                FAILED.append(f"journald: journal generation: {e}")
            shutil.rmtree(d, ignore_errors=True)
            return None
        for k in sizes:  # page cache, like the file corpus
            for name in os.listdir(dirs[k]):
                with open(os.path.join(dirs[k], name), "rb") as f:
                    while f.read(8 << 20):
                        pass
        stage = None
        bj = os.path.join(self.build, "benchmarks/bench_journald")
        if os.access(bj, os.X_OK):
            # `stage`: without journalctl; the input thread's CPU per entry too.
            p = subprocess.run([bj, str(n), str(runs), dirs[n], "stage"], capture_output=True,
                               text=True)
            m = re.search(r"sluice journald input:\s+(\d+) entries/s.*\(([\d.]+) us/entry", p.stdout)
            stage = float(m.group(1)) if m else None
            stage_us = float(m.group(2)) if m else None
            if stage is None:
                FAILED.append(f"journald: bench_journald gave no rate: {p.stderr.strip()[-200:]}")
        tries = {k: [] for k in sizes}
        for _ in range(runs):
            for k in sizes:
                tries[k].append(self.run_journald_once(dirs[k], k, msg[k], d))
        med = {}
        for k in sizes:
            ok = sorted((t for t in tries[k] if t), key=lambda t: t["secs"])
            med[k] = ok[len(ok) // 2] if len(ok) == runs else None
            for t in ok:
                if t is not med[k]:
                    self.rows.remove(t)
        shutil.rmtree(d, ignore_errors=True)
        a, b = med[sizes[0]], med[sizes[1]]
        if not (a and b):
            return None
        steady = (sizes[1] - sizes[0]) / max(b["secs"] - a["secs"], 1e-6)
        agent_us = b["cpugb"] * msg[sizes[1]] / 1e9 / sizes[1] * 1e6
        fixed = a["secs"] - sizes[0] / steady
        b["steady_eps"], b["fixed_s"], b["stage_eps"] = steady, fixed, stage
        self.notes.append(
            f"journald -> loki: {sizes[1]} entries {sizes[1] / b['secs']:.0f} entries/s, "
            f"{sizes[0]} entries {sizes[0] / a['secs']:.0f} entries/s (medians of {runs}); "
            f"steady rate (wall = N/R + C fitted to the two medians) R = {steady:.0f} entries/s, "
            f"fixed C = {fixed:.2f} s" + (f"; stage (bench_journald {n} {runs}, same folder) "
                                           f"{stage:.0f} entries/s: steady / stage "
                                           f"{steady / stage:.2f}x, whole run / stage "
                                           f"{sizes[1] / b['secs'] / stage:.2f}x; CPU per entry "
                                           f"stage {stage_us:.2f} us, agent {agent_us:.2f} us "
                                           f"({stage_us / agent_us:.2f}x), receiver "
                                           f"{b.get('rx_cpu', 0) / sizes[1] * 1e6:.2f} us"
                                           if stage else ""))
        return b

    def run_journald_once(self, jdir, n, msg_bytes, parent):
        # The fast receiver when built (as the file -> Loki row): the test
        # receiver spends more CPU per entry than the agent.
        rxbin = os.path.join(self.build, "benchmarks/loki-rx")
        rxname = "loki-rx" if os.access(rxbin, os.X_OK) else "loki-receiver"
        rxbin = rxbin if rxname == "loki-rx" else self.receiver
        scenario = f"journald -> loki ({rxname}, {n} entries)"
        d = os.path.join(parent, f"run-{self.seq}")
        self.seq += 1
        os.makedirs(d)
        port = free_port()
        out = os.path.join(d, "received.jsonl")
        rx = subprocess.Popen([rxbin, "--port", str(port), "--out", out],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "rx.err"), "wb"))
        time.sleep(0.3)
        cfg = self.write_cfg(d, f"""inputs:
  - name: journal
    type: journald
    directory: {jdir}
    labels_from: {{ unit: _SYSTEMD_UNIT }}
sinks:
{self.loki_sink(port)}""")
        res = None
        try:
            res = self.throughput(scenario, "sluice", lambda: self.start_sluice(d, cfg), d, out,
                                  msg_bytes, n,
                                  f"{rxname} --port P --out F & sluice run -c "
                                  f"{os.path.relpath(cfg, self.tmp)} (MB = MESSAGE bytes)",
                                  timeout=300)
            if res:
                res["eps"] = n / res["secs"]
                res["rx_cpu"] = cpu_s(rx.pid)
        finally:
            stop(rx)
        shutil.rmtree(d, ignore_errors=True)
        return res

    def latency(self, sink_kind, rate, seconds):
        d = self.fresh(f"lat-{sink_kind}")
        indir = os.path.join(d, "in")
        os.makedirs(indir)
        live = os.path.join(indir, "live.log")
        open(live, "wb").close()
        rx = None
        want = rate * seconds
        if sink_kind == "file":
            out = os.path.join(d, "out.log")
            sink = self.file_sink(out)
        elif sink_kind == "kafka":
            out = os.path.join(d, "values.log")
            km = os.path.join(self.build, "benchmarks/kafka_mock")
            rx = subprocess.Popen([km, "--brokers", "3", "--partitions", "32", "--expect",
                                   str(want), "--values", out, "--timeout", str(seconds + 60)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            boot = rx.stdout.readline().decode().strip()
            sink = self.kafka_sink(boot)
        else:
            port = free_port()
            out = os.path.join(d, "received.jsonl")
            rx = subprocess.Popen([self.receiver, "--port", str(port), "--out", out],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sink = self.loki_sink(port, "1s")
            time.sleep(0.3)
        cfg = self.sluice_cfg(d, f"{indir}/*.log", sink)
        proc = self.start_sluice(d, cfg)
        time.sleep(1.0)
        lat = []
        pat = re.compile(rb'wts\\?"?[:=](\d+)')

        def on_line(line, now):
            m = pat.search(line)
            if m:
                lat.append((now - int(m.group(1))) / 1e6)

        counter = LineCounter(out, on_line)
        with open(live, "ab") as lf:
            writer = subprocess.Popen([self.gen, "--kind", "json", "--rate", str(rate), "--seconds",
                                       str(seconds), "--stamp", "--seed", "2"], stdout=lf)
        ok = True
        try:
            t_end = time.monotonic() + seconds + 30
            while counter.n < want and time.monotonic() < t_end:
                if counter.poll() == 0:
                    time.sleep(0.005)
            writer.wait()
            if counter.n < want:
                raise RuntimeError(f"{counter.n} of {want} lines delivered")
        except RuntimeError as e:
            FAILED.append(f"latency/{sink_kind}: {e}")
            ok = False
        stop(writer)
        stop(proc)
        if rx:
            stop(rx)
        shutil.rmtree(d, ignore_errors=True)
        if not ok or not lat:
            return None
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
        r = dict(sink=sink_kind, n=len(lat), p50=p(0.50), p99=p(0.99), max=lat[-1], rate=rate,
                 seconds=seconds)
        log(f"latency {sink_kind}: p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms max {r['max']:.1f} ms")
        return r

    def idle(self, nfiles, seconds, agent="sluice"):
        d = self.fresh(f"idle-{agent}")
        indir = os.path.join(d, "in")
        os.makedirs(indir)
        line = b'{"ts":"2024-01-01T00:00:00Z","level":"info","msg":"quiet"}\n'
        for i in range(nfiles):
            with open(os.path.join(indir, f"q{i:05d}.log"), "wb") as f:
                f.write(line)
        out = os.path.join(d, "out.log")
        if agent == "sluice":
            cfg = self.sluice_cfg(d, f"{indir}/*.log", self.file_sink(out))
            proc = self.start_sluice(d, cfg)
        else:
            conf = self.rsyslog_conf(d, f"{indir}/*.log", out)
            proc = self.start_rsyslog(d, conf)
        counter = LineCounter(out)
        r = None
        try:
            # Every file's line delivered, or (a peer that misses some) no
            # progress for 15 s: then the idle window starts, with a note.
            t_last, last = time.monotonic(), -1
            while counter.n < nfiles:
                counter.poll()
                if counter.n != last:
                    t_last, last = time.monotonic(), counter.n
                if proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {proc.returncode}")
                if time.monotonic() - t_last > 15:
                    if agent == "sluice":
                        raise RuntimeError(f"{counter.n} of {nfiles} files delivered")
                    self.notes.append(f"idle/{agent}: only {counter.n} of {nfiles} files' lines "
                                      f"were delivered")
                    break
                time.sleep(0.1)
            time.sleep(5)  # let start-up work (checkpoints, closing idle files) settle
            c0, t0 = cpu_s(proc.pid), time.monotonic()
            time.sleep(seconds)
            c1, t1 = cpu_s(proc.pid), time.monotonic()
            r = dict(agent=agent, files=nfiles, pct=100 * (c1 - c0) / (t1 - t0), secs=t1 - t0,
                     rss=hwm_mib(proc.pid))
            log(f"idle {agent} {nfiles} files: {r['pct']:.2f}% of a core over {r['secs']:.0f} s")
        except (RuntimeError, OSError) as e:
            FAILED.append(f"idle/{agent}: {e}")
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)
        return r


def fmt_table(rows):
    out = ["| scenario | agent | MB/s | CPU s/GB | cores used | peak RSS MiB |",
           "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['scenario']} | {r['agent']} | {r['mbs']:.1f} | {r['cpugb']:.2f} | "
                   f"{r['cores']:.2f} | {r['rss']:.1f} |")
    return "\n".join(out)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    b = Bench(sys.argv[1])
    for exe in (b.sluice, b.gen):
        if not os.access(exe, os.X_OK):
            log(f"e2e: {exe} missing: build first")
            return 2
    skip = set(filter(None, os.environ.get("SLUICE_E2E_SKIP", "").split(",")))
    have_rsyslog = shutil.which("rsyslogd") is not None
    if not have_rsyslog and "rsyslog" not in skip:
        log("e2e: rsyslogd not installed (apt-get install -y rsyslog): peer comparison skipped")
        skip.add("rsyslog")
    mb = int(os.environ.get("SLUICE_E2E_MB", "500"))
    t_start = time.monotonic()
    try:
        src, nbytes, nlines = b.corpus(mb)
        log(f"corpus: {b.corpus_cmd}: {nbytes / 1e6:.1f} MB, {nlines} lines")
        with open(src, "rb") as f:  # page cache, so every agent starts alike
            while f.read(8 << 20):
                pass
        main_res = (b.run_file_sink(src, nbytes, nlines, 1, peer="rsyslog" not in skip)
                    if "file" not in skip else {})
        peer = "rsyslog" not in skip
        recjson = b.run_recjson(src, nbytes, nlines, peer) if "recjson" not in skip else {}
        spool_off = spool_on = spool_res = spool_peer = None
        if "spool" not in skip:
            # Off, on and forced in turn, three times: on a shared machine
            # the load moves between scenarios run one after the other.
            tries = {None: [], False: [], True: []}
            for _ in range(3):
                for mode in tries:
                    tries[mode].append(b.run_spool(src, nbytes, nlines, mode))
            spool_off, spool_on, spool_res = (b.keep_median(tries[m]) for m in (None, False, True))
            if peer:
                spool_peer = b.median_of(3, lambda: b.run_spool_peer(src, nbytes, nlines))
        if "loki" not in skip and (os.access(b.receiver, os.X_OK) or
                                   os.access(os.path.join(b.build, "benchmarks/loki-rx"), os.X_OK)):
            b.run_loki(src, nbytes, nlines)
        elif "loki" not in skip:
            log("e2e: tests/loki-receiver not built: loki scenario skipped")
        if "kafka" not in skip:
            b.run_kafka(src, nbytes, nlines, peer="rsyslog" not in skip)
        if "journald" not in skip and os.access(b.receiver, os.X_OK):
            b.run_journald(int(os.environ.get("SLUICE_E2E_JOURNAL_N", "500000")))
        elif "journald" not in skip:
            log("e2e: tests/loki-receiver not built: journald scenario skipped")
        lats = []
        if "latency" not in skip:
            rate = int(os.environ.get("SLUICE_E2E_RATE", "10000"))
            secs = int(os.environ.get("SLUICE_E2E_LAT_S", "20"))
            for kind in ("file", "loki", "kafka"):
                if kind == "loki" and not os.access(b.receiver, os.X_OK):
                    continue
                if kind == "kafka" and not os.access(
                        os.path.join(b.build, "benchmarks/kafka_mock"), os.X_OK):
                    continue
                r = b.latency(kind, rate, secs)
                if r:
                    lats.append(r)
        if "scale" not in skip:
            # The same bytes spread over more files (a tenth of the corpus is
            # enough to see the per-file cost at 10,000 files).
            small_mb = max(20, mb // 5)
            s_src = os.path.join(b.tmp, "scale.json")
            with open(s_src, "wb") as f:
                subprocess.run([b.gen, "--kind", "json", "--bytes", f"{small_mb}M", "--seed", "3"],
                               stdout=f, check=True)
            s_bytes = os.path.getsize(s_src)
            with open(s_src, "rb") as f:
                s_lines = f.read().count(b"\n")
            for n in (1, 100, 10000):
                b.run_file_sink(s_src, s_bytes, s_lines, n,
                                scenario=f"scale: {small_mb} MB in {n} files", peer=False)
        idles = []
        if "idle" not in skip:
            secs = int(os.environ.get("SLUICE_E2E_IDLE_S", "30"))
            for agent in ["sluice"] + (["rsyslog"] if "rsyslog" not in skip else []):
                r = b.idle(10000, secs, agent)
                if r:
                    idles.append(r)
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)

    print(f"\n## End-to-end ({time.strftime('%Y-%m-%d %H:%M %Z')}; corpus: `{b.corpus_cmd}`)\n")
    print(fmt_table(b.rows))
    s, r = main_res.get("sluice"), main_res.get("rsyslog")
    if s and r:
        print(f"\nsluice / rsyslog (file -> json -> file, 1 file): throughput {s['mbs'] / r['mbs']:.1f}x, "
              f"CPU s/GB {s['cpugb'] / r['cpugb']:.3f}x, peak RSS {s['rss'] / r['rss']:.2f}x "
              f"(goals: >= 10x throughput, <= 0.1x CPU s/GB)")
    if spool_off and spool_on:
        print(f"\nspool on / off (paired runs, medians of 3): throughput "
              f"{spool_on['mbs'] / spool_off['mbs']:.2f}x "
              f"(goal: spool costs at most 25%, i.e. >= 0.75x)")
    if spool_off and spool_res:
        print(f"spool forced (every batch through the disk) / off (paired runs, medians of 3): "
              f"throughput {spool_res['mbs'] / spool_off['mbs']:.2f}x, CPU s/GB "
              f"{spool_res['cpugb'] / spool_off['cpugb']:.2f}x (goal >= 0.5x throughput)")
    if r and spool_peer:
        print(f"rsyslog disk queue / rsyslog omfile: throughput {spool_peer['mbs'] / r['mbs']:.2f}x; "
              f"sluice spool forced / rsyslog disk queue: {spool_res['mbs'] / spool_peer['mbs']:.1f}x"
              if spool_res else "")
    js, jr = recjson.get("sluice"), recjson.get("rsyslog")
    if js and s:
        print(f"record as JSON / raw line out (sluice, against the headline rows, not "
              f"interleaved): {js['mbs'] / s['mbs']:.2f}x (the interleaved ratio is in the notes)")
    if js and jr:
        print(f"record as JSON out, sluice / rsyslog: {js['mbs'] / jr['mbs']:.1f}x")
    kp = getattr(b, "kafka_peer", None)
    kr = [x for x in b.rows if x["scenario"].startswith("file -> json -> kafka") and
          x["agent"] == "sluice" and "defaults" in x["scenario"]]
    if kp and kr:
        print(f"kafka (zstd), sluice / rsyslog omkafka: {kr[0]['mbs'] / kp['mbs']:.1f}x")
    for x in b.rows:
        if "runs" in x:
            print(f"runs of '{x['scenario']}' / {x['agent']}: MB/s " +
                  ", ".join(str(v) for v in x["runs"]) + " (the median is in the table)")
    if lats:
        print("\n| latency write -> delivery | rate lines/s | lines | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for x in lats:
            sink = {"file": "file sink", "loki": "loki sink (max_batch_wait: 1s)",
                    "kafka": "kafka sink (mock cluster, linger_ms: 20)"}[x["sink"]]
            print(f"| {sink} | {x['rate']} | {x['n']} | {x['p50']:.1f} | {x['p99']:.1f} | {x['max']:.1f} |")
    if idles:
        print("\n| idle, 10,000 quiet files | agent | CPU % of one core | peak RSS MiB |")
        print("|---|---|---:|---:|")
        for x in idles:
            print(f"| {x['secs']:.0f} s window | {x['agent']} | {x['pct']:.2f} | {x['rss']:.1f} |")
    for n in b.notes:
        print(f"note: {n}")
    print(f"\ntotal {time.monotonic() - t_start:.0f} s; failures: {len(FAILED)}")
    for f in FAILED:
        print(f"FAILED: {f}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
