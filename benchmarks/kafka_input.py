#!/usr/bin/env python3
"""The Kafka input against its references, in the same invocation, on the
same lines (issue 18): one aggregator process consuming a topic that
already holds the corpus.

  (a) kafka -> Loki   sluice `type: kafka` input -> Loki sink -> receiver
  (b) file -> Loki    sluice `type: file` input of the same lines -> the same
                      Loki sink and receiver (goal: (a) >= 0.7x (b))
  (c) rsyslog imkafka rsyslog `imkafka` (Debian rsyslog-kafka) -> `omfile`
                      of the raw message, on the same topic
  (d) kafka -> file   sluice `type: kafka` -> file sink (`format: raw`), like
                      for like with (c) (goal: >= 10x rsyslog)
  (e) librdkafka      `kafka_mock --drain`: a bare librdkafka consumer that
                      only counts the messages (rd_kafka_consumer_poll, as
                      the kafka input and imkafka call it): the floor under
                      (a), (c) and (d)

The corpus (`gen --kind json --lines N`) is produced once, before any run,
into librdkafka's mock cluster (`kafka_mock --produce`: 3 brokers on
127.0.0.1, zstd like the Kafka sink's default; it fails unless the mock kept
every message). Every Kafka run is a new consumer group reading the topic
from the beginning. Rounds are interleaved (a b c d, a b c d, ...) and each
figure is the median of the rounds: on a shared machine the load moves
between runs, so ratios within this invocation are what count.

Every run counts every record at its destination (lines of the output file,
or of the receiver's one-JSON-line-per-entry file) and fails unless exactly
N arrived (an extra half second catches duplicates). Clock: from the agent's
start until the last record is there; "steady" rates leave out the time
until the first record arrived (the consumer group's join); "bulk" rates
count only the records that arrived between the 10 % and the 90 % marks
(leaving out the join and the end, where the last partial request of a
Loki sink waits its `max_batch_wait`, 1 s, in every path alike); "last
10 %" is how long the end took. CPU: utime+stime
of the agent process (all threads, /proc/PID/stat) at that moment, per GB of
message bytes ("bulk CPU": only what it used between the 10 % and 90 %
marks, per GB of the records that arrived between them: the steady state's
cost, without the start-up and the end); page faults: the agent's minor
faults per MB of messages (pages touched fresh: memory the allocator took
from the kernel again); peak RSS: VmHWM. The receiver's and the mock cluster's CPU
are reported too (either may be the bottleneck).

Usage: benchmarks/kafka_input.py [BUILD_DIR]
Environment: SLUICE_KIN_LINES (default 600000), SLUICE_KIN_RUNS (3),
SLUICE_KIN_PARTITIONS (64; the mock keeps 5 MB of batches per partition),
SLUICE_KIN_COMPRESSION (zstd), SLUICE_KIN_INPUT_EXTRA (YAML lines added to
the kafka input, e.g. `librdkafka: { queued.max.messages.kbytes: 16384 }`),
SLUICE_KIN_RECEIVER (the Loki receiver; called as `RECEIVER --port P --out
FILE`, writing one line per entry; default BUILD/benchmarks/loki-rx, or
BUILD/tests/loki-receiver where that is not built),
SLUICE_KIN_SKIP (comma list of kafka_loki,file_loki,rsyslog,kafka_file,drain),
SLUICE_KIN_BASE (another sluice binary, e.g. a build of the commit before a
change: adds (a0), kafka -> Loki with it, interleaved with the others),
SLUICE_KIN_BASE_EXTRA (YAML lines for (a0)'s kafka input instead of
SLUICE_KIN_INPUT_EXTRA: with it, (a0) runs this build unless
SLUICE_KIN_BASE names another, so two settings are compared in one
invocation),
SLUICE_KIN_THREADS=1 (every thread's CPU between the 10 % and 90 % marks,
per process: the agent's, the mock cluster's and the receiver's, in cores
(CPU s per wall s) and CPU s/GB, with the bound two cores put on the rate:
the wall is at least the sum of every thread's CPU / 2 and at least the
busiest thread's; and the same bound with the mock cluster and the receiver
on other machines: the agent's own threads only),
SLUICE_KIN_PERF (a folder: after the rounds, one more kafka -> Loki and
one more file -> Loki run under `perf record -g -p PID`, and their reports
in PERF/kafka_loki and PERF/file_loki: report.txt by symbol, threads.txt by
thread and library).
Exit status 1 when a run failed (never because a figure is slow)."""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import TICK, LineCounter, cpu_s, filled_mock_cluster, free_port, hwm_mib, stop

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
LINES = int(os.environ.get("SLUICE_KIN_LINES", "600000"))
RUNS = int(os.environ.get("SLUICE_KIN_RUNS", "3"))
PARTITIONS = int(os.environ.get("SLUICE_KIN_PARTITIONS", "64"))
# YAML lines added to the kafka input (e.g. "librdkafka: { queued.max.messages.kbytes: 16384 }").
INPUT_EXTRA = os.environ.get("SLUICE_KIN_INPUT_EXTRA", "")
CODEC = os.environ.get("SLUICE_KIN_COMPRESSION", "zstd")
# The fast receiver by default, as e2e.py's Loki rows: the test receiver
# (tests/loki-receiver) decodes every entry into JSON and caps both Loki
# paths near 55,000 records/s, which hides the difference this measures.
_FAST_RX = os.path.join(BUILD, "benchmarks", "loki-rx")
RECEIVER = os.environ.get("SLUICE_KIN_RECEIVER") or (
    _FAST_RX if os.access(_FAST_RX, os.X_OK) else os.path.join(BUILD, "tests", "loki-receiver"))
SKIP = set(filter(None, os.environ.get("SLUICE_KIN_SKIP", "").split(",")))
PERF = os.environ.get("SLUICE_KIN_PERF", "")
SLUICE = os.path.join(BUILD, "cli", "sluice")
BASE_EXTRA = os.environ.get("SLUICE_KIN_BASE_EXTRA")
BASE = os.environ.get("SLUICE_KIN_BASE", "") or (SLUICE if BASE_EXTRA is not None else "")
THREADS = os.environ.get("SLUICE_KIN_THREADS", "") not in ("", "0")
TIMEOUT = 600
FAILED = []


def minor_faults(pid):
    """Minor page faults of a live process so far (pages it touched for the
    first time: fresh heap or mmap memory); nan once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")


def wait_listening(port, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("receiver did not listen")


def broker_cpu_s(pid):
    """User + system CPU seconds of a live process's librdkafka broker
    threads (`rdk:broker...`: fetch, and decompression of what they
    fetched); nan once it is gone or when it has none."""
    total, seen = 0.0, False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    st = f.read()
            except (FileNotFoundError, ProcessLookupError):
                continue
            name = st[st.index("(") + 1:st.rindex(")")]
            if name.startswith("rdk:broker"):
                fields = st.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / TICK
                seen = True
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")
    return total if seen else float("nan")


def tasks_cpu(pid):
    """{tid: (name, user + system CPU seconds)} of a live process's threads
    ({} once it is gone)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = st.rsplit(")", 1)[1].split()
        out[tid] = (st[st.index("(") + 1:st.rindex(")")],
                    (int(fields[11]) + int(fields[12])) / TICK)
    return out


def thread_split(procs0, procs1):
    """CPU seconds per thread between two tasks_cpu snapshots of each
    process ({process: snapshot}): {(process, thread): seconds}, a thread
    named by its name; unnamed threads of the agent (named like the
    process) and same-named ones are numbered by CPU, busiest first, since
    their ids change from run to run."""
    out = {}
    for proc, s1 in procs1.items():
        s0 = procs0.get(proc, {})
        by_name = {}
        for tid, (name, c1) in s1.items():
            by_name.setdefault(name, []).append(c1 - s0.get(tid, (name, 0.0))[1])
        for name, cs in by_name.items():
            cs.sort(reverse=True)
            for i, c in enumerate(cs):
                out[(proc, name if len(cs) == 1 else f"{name}#{i + 1}")] = c
    return out


class Bench:
    def __init__(self, tmp, corpus, nbytes, boot):
        self.tmp, self.corpus, self.nbytes, self.boot = tmp, corpus, nbytes, boot
        self.seq = 0

    def fresh(self, name):
        self.seq += 1
        d = os.path.join(self.tmp, f"{self.seq:02d}-{name}")
        os.makedirs(d)
        return d

    def kafka_input(self, group, extra=INPUT_EXTRA):
        brokers = ", ".join(f'"{b}"' for b in self.boot.split(","))
        return f"""  - name: app
    type: kafka
    brokers: [{brokers}]
    topics: [logs]
    group_id: {group}
    labels: {{job: bench}}
""" + "".join(f"    {x}\n" for x in extra.split("\n") if x)

    def file_input(self):
        return f"""  - name: app
    type: file
    paths: ["{self.corpus}"]
    start_at: beginning
    labels: {{job: bench}}
"""

    @staticmethod
    def loki_sink(port):
        return f"""  - name: out
    type: loki
    url: "http://127.0.0.1:{port}/loki/api/v1/push"
"""

    @staticmethod
    def file_sink(out):
        return f"""  - name: out
    type: file
    path: {out}
    format: raw
"""

    def sluice_cmd(self, d, inputs, sinks, binary=SLUICE):
        cfg = os.path.join(d, "sluice.yml")
        with open(cfg, "w") as f:
            f.write(f"data_dir: {d}/data\nlog: {{ level: warn }}\ninputs:\n{inputs}sinks:\n{sinks}")
        return [binary, "run", "-c", cfg]

    def rsyslog_cmd(self, d, out, group):
        os.makedirs(os.path.join(d, "work"))
        brokers = ", ".join(f'"{b}"' for b in self.boot.split(","))
        conf = os.path.join(d, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(f"""global(workDirectory="{d}/work" maxMessageSize="64k")
module(load="imkafka")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imkafka" topic="logs" broker=[{brokers}] consumergroup="{group}"
      confParam=["auto.offset.reset=earliest"] ruleset="r")
ruleset(name="r") {{
  action(type="omfile" file="{out}" template="raw")
}}
""")
        return ["rsyslogd", "-n", "-f", conf, "-i", os.path.join(d, "rs.pid")]

    def run_drain(self, rnd, mock):
        """(e): kafka_mock --drain, figures from its own clock and wait4's
        rusage (it counts in memory: there is no destination file)."""
        km = os.path.join(BUILD, "benchmarks", "kafka_mock")
        mock_cpu0 = cpu_s(mock.pid)
        p = subprocess.Popen([km, "--drain", self.boot, "--expect", str(LINES), "--timeout",
                              str(TIMEOUT)], stdout=subprocess.PIPE)
        out = p.stdout.read().decode()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        vals = dict(re.findall(r"(consumed|first|last) ([\d.]+)", out))
        if p.returncode != 0 or int(vals.get("consumed", -1)) != LINES:
            FAILED.append(f"drain round {rnd}: {out.strip()!r}")
            print(f"FAILED drain round {rnd}: {out.strip()!r}", file=sys.stderr, flush=True)
            return None
        return dict(secs=float(vals["last"]), first=float(vals["first"]),
                    cpu=ru.ru_utime + ru.ru_stime, rss=ru.ru_maxrss / 1024,
                    rx_cpu=float("nan"), mock_cpu=cpu_s(mock.pid) - mock_cpu0,
                    bulk=float("nan"), bulk_cpu=float("nan"), tail=float("nan"),
                    faults=ru.ru_minflt, broker_cpu=float("nan"))

    def run(self, scenario, rnd, mock, perf_dir=None):
        """One run of scenario; a dict of figures, or None when it failed."""
        if scenario == "drain":
            return self.run_drain(rnd, mock)
        d = self.fresh(scenario)
        group = f"bench-{scenario}-{rnd}"
        out = os.path.join(d, "out.log")
        rx = None
        try:
            if scenario in ("kafka_loki", "file_loki", "kafka_loki_base"):
                port = free_port()
                out = os.path.join(d, "received.jsonl")
                rx = subprocess.Popen([RECEIVER, "--port", str(port), "--out", out],
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(d, "receiver.err"), "wb"))
                wait_listening(port, rx)
                if scenario == "file_loki":
                    inp = self.file_input()
                elif scenario == "kafka_loki_base" and BASE_EXTRA is not None:
                    inp = self.kafka_input(group, BASE_EXTRA)
                else:
                    inp = self.kafka_input(group)
                cmd = self.sluice_cmd(d, inp, self.loki_sink(port),
                                      BASE if scenario == "kafka_loki_base" else SLUICE)
            elif scenario == "kafka_file":
                cmd = self.sluice_cmd(d, self.kafka_input(group), self.file_sink(out))
            else:
                cmd = self.rsyslog_cmd(d, out, group)
            if perf_dir:
                # perf runs the agent (attached with -p once it ran, it
                # missed the whole of a short file -> Loki run on a loaded
                # machine); stop() ends perf, which ends the agent.
                cmd = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o",
                       os.path.join(perf_dir, "perf.data"), "--"] + cmd
            os.sync()  # an earlier run's output is not written back while this one is timed
            rx_cpu0 = cpu_s(rx.pid) if rx else 0.0
            mock_cpu0 = cpu_s(mock.pid)
            t0 = time.monotonic()
            agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(d, "agent.err"), "wb"))
            counter = LineCounter(out)
            t_first = t10 = t90 = None
            try:
                while counter.count() < LINES:
                    now = time.monotonic()
                    if t_first is None and counter.n:
                        t_first = now
                    if t10 is None and counter.n >= LINES // 10:
                        t10, n10, cpu10 = now, counter.n, cpu_s(agent.pid)
                        if THREADS:
                            thr10 = {"agent": tasks_cpu(agent.pid), "mock": tasks_cpu(mock.pid),
                                     "receiver": tasks_cpu(rx.pid) if rx else {}}
                    if t90 is None and counter.n >= LINES * 9 // 10:
                        t90, n90, cpu90 = now, counter.n, cpu_s(agent.pid)
                        if THREADS:
                            thr90 = {"agent": tasks_cpu(agent.pid), "mock": tasks_cpu(mock.pid),
                                     "receiver": tasks_cpu(rx.pid) if rx else {}}
                    if agent.poll() is not None:
                        raise RuntimeError(f"agent exited with {agent.returncode}")
                    if time.monotonic() - t0 > TIMEOUT:
                        raise RuntimeError(f"{counter.n} of {LINES} records within {TIMEOUT} s")
                    time.sleep(0.02)
                secs = time.monotonic() - t0
                if t_first is None:
                    t_first = t0 + secs
                threads = None
                if t10 is None or t90 is None or t90 - t10 < 0.05:
                    bulk = bulk_cpu = float("nan")  # too fast to see between two looks
                else:
                    bulk = (n90 - n10) / (t90 - t10)
                    # CPU s per GB of the records between the marks (the
                    # corpus' lines are alike: bytes in proportion).
                    bulk_cpu = (cpu90 - cpu10) / ((n90 - n10) / LINES * self.nbytes / 1e9)
                    if THREADS:
                        threads = dict(cpu=thread_split(thr10, thr90), wall=t90 - t10,
                                       gb=(n90 - n10) / LINES * self.nbytes / 1e9)
                cpu, rss, faults = cpu_s(agent.pid), hwm_mib(agent.pid), minor_faults(agent.pid)
                broker_cpu = broker_cpu_s(agent.pid)
                rx_cpu = cpu_s(rx.pid) - rx_cpu0 if rx else float("nan")
                mock_cpu = cpu_s(mock.pid) - mock_cpu0
                time.sleep(0.5)  # duplicates show as extras
                if counter.count() != LINES:
                    raise RuntimeError(f"{counter.n} records at the destination, {LINES} sent")
            finally:
                stop(agent, 60 if perf_dir else 20)
            return dict(secs=secs, first=t_first - t0, cpu=cpu, rss=rss, rx_cpu=rx_cpu,
                        mock_cpu=mock_cpu, bulk=bulk, bulk_cpu=bulk_cpu, faults=faults,
                        tail=secs - (t90 - t0 if t90 else secs), broker_cpu=broker_cpu,
                        threads=threads)
        except (RuntimeError, OSError) as e:
            FAILED.append(f"{scenario} round {rnd}: {e} (logs in {d})")
            print(f"FAILED {scenario} round {rnd}: {e}", file=sys.stderr, flush=True)
            return None
        finally:
            if rx:
                stop(rx)
            if not FAILED:
                shutil.rmtree(d, ignore_errors=True)


def thread_report(scenario, runs):
    """Prints the median CPU of every thread between the 10 % and 90 %
    marks (cores: CPU s per wall s; CPU s/GB of the records between the
    marks) and the two-core bound; returns the bound, in wall seconds per GB:
    here (every process on these two cores: max(sum / 2, busiest thread)),
    apart (the agent alone: max(agent's sum / 2, its busiest thread)) and
    what was measured."""
    if not runs:
        return None
    keys = sorted({k for r in runs for k in r["threads"]["cpu"]})
    rows = []
    for k in keys:
        cores = statistics.median(r["threads"]["cpu"].get(k, 0.0) / r["threads"]["wall"]
                                  for r in runs)
        sgb = statistics.median(r["threads"]["cpu"].get(k, 0.0) / r["threads"]["gb"] for r in runs)
        if sgb >= 0.005:
            rows.append((k, cores, sgb))
    rows.sort(key=lambda x: (["agent", "mock", "receiver"].index(x[0][0]), -x[2]))
    print(f"\n{NAMES[scenario]}: CPU per thread between the 10 % and 90 % marks, medians of "
          f"{len(runs)}\n")
    print("| process | thread | cores (CPU s / wall s) | CPU s/GB |")
    print("|---|---|---:|---:|")
    for (proc, name), cores, sgb in rows:
        print(f"| {proc} | {name} | {cores:.2f} | {sgb:.2f} |")

    def per_run(r, procs):
        c = {k: v for k, v in r["threads"]["cpu"].items() if k[0] in procs}
        total = sum(c.values()) / r["threads"]["gb"]
        top = max(c.values(), default=0.0) / r["threads"]["gb"]
        return total, top, max(total / 2, top)

    here = [per_run(r, ("agent", "mock", "receiver")) for r in runs]
    apart = [per_run(r, ("agent",)) for r in runs]
    measured = statistics.median(r["threads"]["wall"] / r["threads"]["gb"] for r in runs)
    b_here = statistics.median(x[2] for x in here)
    b_apart = statistics.median(x[2] for x in apart)
    for what, xs, b in (("all processes here", here, b_here), ("the agent alone", apart, b_apart)):
        print(f"| {what} | sum {statistics.median(x[0] for x in xs):.2f} CPU s/GB, busiest "
              f"thread {statistics.median(x[1] for x in xs):.2f} | bound {b:.2f} wall s/GB | |")
    print(f"| measured | | {measured:.2f} wall s/GB | |")
    return dict(here=b_here, apart=b_apart, measured=measured)


NAMES = {
    "kafka_loki_base": "(a0) SLUICE_KIN_BASE kafka -> Loki",
    "kafka_loki": "(a) sluice kafka -> Loki",
    "file_loki": "(b) sluice file -> Loki",
    "rsyslog": "(c) rsyslog imkafka -> omfile",
    "kafka_file": "(d) sluice kafka -> file",
    "drain": "(e) librdkafka consumer alone",
}


def main():
    gen = os.path.join(BUILD, "benchmarks", "gen")
    km = os.path.join(BUILD, "benchmarks", "kafka_mock")
    for exe in (SLUICE, gen, km):
        if not os.access(exe, os.X_OK):
            print(f"kafka_input: {exe} missing: build first", file=sys.stderr)
            return 2
    order = [s for s in NAMES if s not in SKIP and (s != "kafka_loki_base" or BASE)]
    if "rsyslog" in order and not shutil.which("rsyslogd"):
        print("kafka_input: rsyslogd not installed (apt-get install -y rsyslog rsyslog-kafka): "
              "peer skipped", file=sys.stderr)
        order.remove("rsyslog")
    if not os.access(RECEIVER, os.X_OK):
        print(f"kafka_input: {RECEIVER} missing: Loki runs skipped", file=sys.stderr)
        order = [s for s in order if "_loki" not in s]
    tmp = tempfile.mkdtemp(prefix="sluice-kafka-input.", dir=os.environ.get("TMPDIR"))
    mock = None
    t_start = time.monotonic()
    try:
        gen_cmd = f"gen --kind json --lines {LINES}"
        mock, boot, corpus, nbytes, err = filled_mock_cluster(BUILD, tmp, LINES, CODEC, PARTITIONS)
        if err:
            print(f"kafka_input: the mock cluster did not take the corpus: {err}", file=sys.stderr)
            FAILED.append("kafka_mock --produce")
            return 1
        print(f"corpus: {gen_cmd}: {LINES:,} lines, {nbytes / 1e6:.1f} MB of messages; "
              f"topic logs, {PARTITIONS} partitions, {CODEC}, 3 mock brokers; "
              f"receiver {os.path.relpath(RECEIVER)}; load {os.getloadavg()[0]:.1f}", flush=True)
        b = Bench(tmp, corpus, nbytes, boot)
        res = {s: [] for s in order}
        for rnd in range(RUNS):
            for s in order:
                r = b.run(s, rnd, mock)
                res[s].append(r)
                if r:
                    print(f"  round {rnd + 1} {NAMES[s]:30s} {LINES / r['secs']:10,.0f} rec/s "
                          f"{nbytes / 1e6 / r['secs']:7.1f} MB/s {r['cpu'] / (nbytes / 1e9):6.2f} "
                          f"CPU s/GB (broker threads {r['broker_cpu'] / (nbytes / 1e9):.2f}), "
                          f"bulk {r['bulk']:,.0f} rec/s {r['bulk_cpu']:.2f} CPU s/GB "
                          f"({r['secs']:.1f} s, first record "
                          f"at {r['first']:.1f} s, last 10 % took {r['tail']:.1f} s; "
                          f"receiver {r['rx_cpu']:.1f} CPU s, mock {r['mock_cpu']:.1f} CPU s; "
                          f"peak RSS {r['rss']:.1f} MiB) "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
        med = {}
        for s in order:
            ok = [r for r in res[s] if r]
            if len(ok) != RUNS:
                continue
            m = {k: statistics.median(r[k] for r in ok) for k in
                 ("secs", "first", "cpu", "rss", "rx_cpu", "mock_cpu", "bulk", "bulk_cpu",
                  "tail", "faults", "broker_cpu")}
            m["steady"] = statistics.median(LINES / max(r["secs"] - r["first"], 1e-3) for r in ok)
            med[s] = m
        print(f"\nmedians of {RUNS} ({LINES:,} records, {nbytes / 1e6:.1f} MB; load now "
              f"{os.getloadavg()[0]:.1f})\n")
        print("| path | records/s (whole run) | MB/s | steady records/s | bulk records/s | CPU s/GB | "
              "bulk CPU s/GB | broker threads CPU s/GB | peak RSS MiB | page faults / MB | first record s | last 10 % s | "
              "receiver CPU s | mock CPU s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s, m in med.items():
            print(f"| {NAMES[s]} | {LINES / m['secs']:,.0f} | {nbytes / 1e6 / m['secs']:.1f} | "
                  f"{m['steady']:,.0f} | {m['bulk']:,.0f} | {m['cpu'] / (nbytes / 1e9):.2f} | "
                  f"{m['bulk_cpu']:.2f} | {m['broker_cpu'] / (nbytes / 1e9):.2f} | {m['rss']:.1f} | {m['faults'] / (nbytes / 1e6):.0f} | "
                  f"{m['first']:.1f} | {m['tail']:.1f} | {m['rx_cpu']:.1f} | {m['mock_cpu']:.1f} |")
        print()

        def ratio(x, y, goal):
            if x in med and y in med:
                a, c = med[x], med[y]
                print(f"{NAMES[x]} / {NAMES[y]}: records/s {c['secs'] / a['secs']:.2f}x, "
                      f"steady {a['steady'] / c['steady']:.2f}x, bulk "
                      f"{a['bulk'] / c['bulk']:.2f}x, CPU s/GB "
                      f"{a['cpu'] / c['cpu']:.2f}x (bulk {a['bulk_cpu'] / c['bulk_cpu']:.2f}x) "
                      f"(goal {goal})")

        ratio("kafka_loki", "file_loki", ">= 0.7x records/s")
        if THREADS:
            bounds = {s: thread_report(s, [r for r in res[s] if r and r.get("threads")])
                      for s in order if s in ("kafka_loki", "file_loki", "kafka_loki_base")}
            k, f = bounds.get("kafka_loki"), bounds.get("file_loki")
            if k and f:
                print("two-core bound, kafka -> Loki against file -> Loki (bulk records/s): "
                      f"measured {med['kafka_loki']['bulk'] / med['file_loki']['bulk']:.2f}x; "
                      f"at best {f['measured'] / k['here']:.2f}x with file -> Loki as measured "
                      f"and kafka -> Loki at its bound here, {f['here'] / k['here']:.2f}x with "
                      f"both at their bounds here; with the mock cluster and the receiver on "
                      f"other machines {f['apart'] / k['apart']:.2f}x (both at their bounds), "
                      f"{f['measured'] / k['apart']:.2f}x (file -> Loki as measured here)")
        ratio("kafka_loki_base", "file_loki", "the same, with SLUICE_KIN_BASE")
        ratio("kafka_loki", "kafka_loki_base", "none; this build against SLUICE_KIN_BASE")
        if all(len([r for r in res.get(k, []) if r]) == RUNS for k in ("kafka_loki", "kafka_loki_base")):
            # Round by round: the two builds ran next to each other.
            for key, what in (("cpu", "CPU s/GB"), ("broker_cpu", "broker threads CPU s/GB"),
                              ("bulk_cpu", "bulk CPU s/GB")):
                pairs = [(r0[key], r[key]) for r0, r in zip(res["kafka_loki_base"], res["kafka_loki"])]
                scale = 1.0 if key == "bulk_cpu" else nbytes / 1e9
                lower = sum(1 for a0, a in pairs if a < a0)
                print(f"paired rounds, {what} (a0) -> (a): "
                      + ", ".join(f"{a0 / scale:.2f} -> {a / scale:.2f}" for a0, a in pairs)
                      + f"; lower in {lower} of {len(pairs)}")
        ratio("kafka_file", "rsyslog", ">= 10x records/s")
        ratio("kafka_loki", "rsyslog", "none; Loki sink against omfile")
        ratio("drain", "rsyslog", "none; the most any librdkafka consumer gets against imkafka")
        ratio("kafka_file", "drain", "none; what the kafka input and file sink keep of the floor")
        for s in ("kafka_loki", "file_loki") if PERF else ():
            if s not in order:
                continue
            pdir = os.path.join(PERF, s)
            os.makedirs(pdir, exist_ok=True)
            if b.run(s, "perf", mock, perf_dir=pdir):
                with open(os.path.join(pdir, "report.txt"), "w") as f:
                    subprocess.run(["perf", "report", "-i", os.path.join(pdir, "perf.data"),
                                    "--stdio", "--no-children", "--percent-limit", "0.5"],
                                   stdout=f, stderr=subprocess.DEVNULL)
                with open(os.path.join(pdir, "threads.txt"), "w") as f:
                    subprocess.run(["perf", "report", "-i", os.path.join(pdir, "perf.data"),
                                    "--stdio", "--no-children", "-g", "none", "--sort",
                                    "pid,dso", "--percent-limit", "0.3"],
                                   stdout=f, stderr=subprocess.DEVNULL)
                print(f"perf: {pdir}/report.txt, {pdir}/threads.txt (per thread and library)")
    finally:
        if mock:
            stop(mock)
        if not FAILED:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - t_start:.0f} s; failures: {len(FAILED)}")
    for f in FAILED:
        print(f"FAILED: {f}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
