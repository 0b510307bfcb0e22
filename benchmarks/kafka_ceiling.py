#!/usr/bin/env python3
"""How fast can a consumer on librdkafka read a topic, against rsyslog
imkafka on the same topic, in the same invocation (issue 18's Kafka -> file
goal, decision 0047). Every consumer reads the same corpus from the start of
the topic in librdkafka's mock cluster, rounds interleaved (every consumer
once per round), medians of the rounds.

Consumers (SLUICE_KC_CONSUMERS, comma list, in this order by default):
  rsyslog      rsyslog `imkafka` (Debian rsyslog-kafka) -> `omfile` of the raw
               message (as in benchmarks/kafka_input.py)
  rsyslog_t    the same with SLUICE_KC_TUNED passed in `confParam` (the
               settings that help the bare consumer help imkafka too)
  sluice       sluice `type: kafka` -> file sink (`format: raw`)
  sluice_t     the same with SLUICE_KC_TUNED in the input's `librdkafka:` map
  poll         `kafka_mock --drain --api poll`: a bare consumer calling
               rd_kafka_consumer_poll per message (what imkafka and the kafka
               input call), counting only
  batch        the same with rd_kafka_consume_batch_queue, 1024 a call
  parts        each partition's queue forwarded to one of 2 queues, each
               drained by its own thread (rd_kafka_queue_get_partition)
  tuned        `--api batch` with SLUICE_KC_TUNED's librdkafka properties
  assign       `--api batch` without a group (rd_kafka_assign of every
               partition): what the group's join costs everyone else
  unzstd       `zstd -d` of the corpus compressed whole at level 1 (zstd
               topics only): decompression alone, the least any consumer
               of a zstd topic spends, librdkafka or not

For each run: wall seconds from the consumer's start to its last record
(at the destination for rsyslog and sluice, counted by a line counter every
20 ms; by the consumer's own clock for the bare ones), the time to the first
record (the group's join: the mock coordinator waits 3 s for more members
on a new group, like a broker's group.initial.rebalance.delay.ms), the
steady rate (records after the first / the time after it), the consumer
process's CPU seconds (utime+stime of every thread) per GB of message bytes,
its CPU per thread kind (librdkafka's broker threads "rdk:broker", imkafka's
input thread, rsyslog's action workers, ...), and the mock cluster process's
CPU in the same interval (the brokers' side: if it took a core, the mock
would be the bottleneck for everyone).

The corpus: `gen --kind json --lines N` produced once by `kafka_mock
--produce` (3 brokers, SLUICE_KC_PARTITIONS partitions, round-robin) with
SLUICE_KC_COMPRESSION and producer batches of at most SLUICE_KC_BATCH
messages (batch.num.messages; batch.size 1 MB). The mock answers a fetch
with one stored batch per partition, so the producer's batch is what one
fetch brings: a fleet of node agents, each lingering 20 ms (the Kafka sink's
default) at a few hundred lines/s, produces batches of a few to a few dozen
messages, far smaller than the default 100,000-message cap here makes.

Usage: benchmarks/kafka_ceiling.py [BUILD_DIR]
Environment: SLUICE_KC_LINES (300000), SLUICE_KC_RUNS (3),
SLUICE_KC_PARTITIONS (64), SLUICE_KC_COMPRESSION (zstd), SLUICE_KC_BATCH
(100000), SLUICE_KC_CONSUMERS, SLUICE_KC_TUNED (comma list of librdkafka
KEY=VALUE; default below), SLUICE_KC_PERF (a folder: after the rounds, one
more run of each consumer under `perf record -g`, a report per consumer).
Exit status 1 when a run failed (never because a figure is slow)."""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import LineCounter, cpu_s, filled_mock_cluster, hwm_mib, stop

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
LINES = int(os.environ.get("SLUICE_KC_LINES", "300000"))
RUNS = int(os.environ.get("SLUICE_KC_RUNS", "3"))
PARTITIONS = int(os.environ.get("SLUICE_KC_PARTITIONS", "64"))
CODEC = os.environ.get("SLUICE_KC_COMPRESSION", "zstd")
BATCH = os.environ.get("SLUICE_KC_BATCH", "100000")
TUNED = [x for x in os.environ.get(
    "SLUICE_KC_TUNED", "fetch.wait.max.ms=10,fetch.min.bytes=1,check.crcs=false,"
    "max.partition.fetch.bytes=8388608,fetch.max.bytes=104857600,"
    "receive.message.max.bytes=105000000").split(",") if x]
ORDER = ["rsyslog", "rsyslog_t", "sluice", "sluice_t", "poll", "batch", "parts", "tuned",
         "assign", "unzstd"]
CONSUMERS = [c for c in os.environ.get("SLUICE_KC_CONSUMERS", ",".join(ORDER)).split(",") if c]
PERF = os.environ.get("SLUICE_KC_PERF", "")
SLUICE = os.path.join(BUILD, "cli", "sluice")
KM = os.path.join(BUILD, "benchmarks", "kafka_mock")
TIMEOUT = 300
FAILED = []
TICK = os.sysconf("SC_CLK_TCK")


def threads_cpu(pid):
    """CPU seconds per thread kind (the thread name without its digits)."""
    out = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                s = f.read()
        except FileNotFoundError:
            continue
        name = re.sub(r"\d+", "", s[s.index("(") + 1:s.rindex(")")])
        fields = s.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def diff(after, before):
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


class Bench:
    def __init__(self, tmp, boot, mock):
        self.tmp, self.boot, self.mock = tmp, boot, mock
        self.seq = 0

    def fresh(self, name):
        self.seq += 1
        d = os.path.join(self.tmp, f"{self.seq:02d}-{name}")
        os.makedirs(d)
        return d

    def rsyslog_cmd(self, d, out, group, tuned):
        os.makedirs(os.path.join(d, "work"))
        brokers = ", ".join(f'"{b}"' for b in self.boot.split(","))
        params = ", ".join(f'"{p}"' for p in ["auto.offset.reset=earliest"] + (TUNED if tuned
                                                                                else []))
        conf = os.path.join(d, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(f"""global(workDirectory="{d}/work" maxMessageSize="64k")
module(load="imkafka")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imkafka" topic="logs" broker=[{brokers}] consumergroup="{group}"
      confParam=[{params}] ruleset="r")
ruleset(name="r") {{
  action(type="omfile" file="{out}" template="raw")
}}
""")
        return ["rsyslogd", "-n", "-f", conf, "-i", os.path.join(d, "rs.pid")]

    def sluice_cmd(self, d, out, group, tuned):
        brokers = ", ".join(f'"{b}"' for b in self.boot.split(","))
        cfg = os.path.join(d, "sluice.yml")
        with open(cfg, "w") as f:
            f.write(f"""data_dir: {d}/data
log: {{ level: warn }}
inputs:
  - name: app
    type: kafka
    brokers: [{brokers}]
    topics: [logs]
    group_id: {group}
""" + ("    librdkafka: {" + ", ".join(f'"{p.split("=")[0]}": "{p.split("=")[1]}"'
                                         for p in TUNED) + "}\n" if tuned else "") + f"""sinks:
  - name: out
    type: file
    path: {out}
    format: raw
""")
        return [SLUICE, "run", "-c", cfg]

    def drain_cmd(self, kind):
        cmd = [KM, "--drain", self.boot, "--expect", str(LINES), "--timeout", str(TIMEOUT)]
        if kind == "poll":
            return cmd + ["--api", "poll"]
        if kind == "batch":
            return cmd + ["--api", "batch"]
        if kind == "parts":
            return cmd + ["--api", "partitions", "--threads", "2"]
        if kind == "assign":
            return cmd + ["--api", "batch", "--assign", "1"]
        for p in TUNED:
            cmd += ["--set", p]
        return cmd + ["--api", "batch"]

    def perf_start(self, pid, perf_dir, name):
        return subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-o", os.path.join(perf_dir, f"{name}.data"),
                                 "-p", str(pid)], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(perf_dir, f"{name}.err"), "wb"))

    def run_drain(self, kind, rnd, perf_dir):
        mock0, mockt0 = cpu_s(self.mock.pid), threads_cpu(self.mock.pid)
        p = subprocess.Popen(self.drain_cmd(kind), stdout=subprocess.PIPE)
        perf = self.perf_start(p.pid, perf_dir, kind) if perf_dir else None
        out = p.stdout.read().decode()
        _, status, ru = os.wait4(p.pid, 0)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        vals = dict(re.findall(r"^(consumed|first|last|bytes) ([\d.]+)$", out, re.M))
        if os.waitstatus_to_exitcode(status) != 0 or int(vals.get("consumed", -1)) != LINES:
            raise RuntimeError(f"{out.strip()!r}")
        thr = {m[0]: float(m[1]) for m in re.findall(r"^thread (\S+) ([\d.]+)$", out, re.M)}
        return dict(secs=float(vals["last"]), first=float(vals["first"]),
                    cpu=ru.ru_utime + ru.ru_stime, rss=ru.ru_maxrss / 1024, threads=thr,
                    mock=cpu_s(self.mock.pid) - mock0,
                    mock_threads=diff(threads_cpu(self.mock.pid), mockt0))

    def run_unzstd(self):
        t0 = time.monotonic()
        with open(os.devnull, "wb") as null:
            p = subprocess.Popen(["zstd", "-q", "-d", "-c", self.zst], stdout=null)
            _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("zstd -d failed")
        secs = time.monotonic() - t0
        return dict(secs=secs, first=0.0, cpu=ru.ru_utime + ru.ru_stime, rss=ru.ru_maxrss / 1024,
                    threads={"zstd": ru.ru_utime + ru.ru_stime}, mock=0.0)

    def run(self, kind, rnd, perf_dir=None):
        if kind == "unzstd":
            return self.run_unzstd()
        if kind in ("poll", "batch", "parts", "tuned", "assign"):
            return self.run_drain(kind, rnd, perf_dir)
        d = self.fresh(kind)
        out = os.path.join(d, "out.log")
        group = f"kc-{kind}-{rnd}"
        if kind.startswith("sluice"):
            cmd = self.sluice_cmd(d, out, group, kind == "sluice_t")
        else:
            cmd = self.rsyslog_cmd(d, out, group, kind == "rsyslog_t")
        os.sync()
        mock0, mockt0 = cpu_s(self.mock.pid), threads_cpu(self.mock.pid)
        t0 = time.monotonic()
        agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(d, "agent.err"), "wb"))
        perf = None
        try:
            if perf_dir:
                while agent.poll() is None and os.path.realpath(f"/proc/{agent.pid}/exe") != \
                        os.path.realpath(shutil.which(cmd[0]) or cmd[0]):
                    time.sleep(0.005)
                time.sleep(0.1)  # attached to a pid still forking, perf recorded nothing
                perf = self.perf_start(agent.pid, perf_dir, kind)
            counter = LineCounter(out)
            t_first = None
            while counter.count() < LINES:
                if t_first is None and counter.n:
                    t_first = time.monotonic()
                if agent.poll() is not None:
                    raise RuntimeError(f"exited with {agent.returncode} (logs in {d})")
                if time.monotonic() - t0 > TIMEOUT:
                    raise RuntimeError(f"{counter.n} of {LINES} records within {TIMEOUT} s")
                time.sleep(0.02)
            secs = time.monotonic() - t0
            if t_first is None:
                t_first = t0 + secs
            cpu, rss, thr = cpu_s(agent.pid), hwm_mib(agent.pid), threads_cpu(agent.pid)
            mock = cpu_s(self.mock.pid) - mock0
            mock_thr = diff(threads_cpu(self.mock.pid), mockt0)
            time.sleep(0.5)
            if counter.count() != LINES:
                raise RuntimeError(f"{counter.n} records at the destination, {LINES} sent")
        finally:
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(60)
            stop(agent)
        shutil.rmtree(d, ignore_errors=True)
        return dict(secs=secs, first=t_first - t0, cpu=cpu, rss=rss, threads=thr, mock=mock,
                    mock_threads=mock_thr)


def short_threads(thr, nbytes):
    """The thread kinds above 2 % of the process, CPU s/GB each."""
    tot = sum(thr.values()) or 1
    parts = sorted(thr.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v / (nbytes / 1e9):.2f}" for k, v in parts if v / tot > 0.02)


def main():
    gen = os.path.join(BUILD, "benchmarks", "gen")
    for exe in (SLUICE, gen, KM):
        if not os.access(exe, os.X_OK):
            print(f"kafka_ceiling: {exe} missing: build first", file=sys.stderr)
            return 2
    order = [c for c in ORDER if c in CONSUMERS]
    if not shutil.which("rsyslogd"):
        print("kafka_ceiling: rsyslogd not installed: imkafka skipped", file=sys.stderr)
        order = [c for c in order if not c.startswith("rsyslog")]
    tmp = tempfile.mkdtemp(prefix="sluice-kafka-ceiling.", dir=os.environ.get("TMPDIR"))
    mock = None
    t_start = time.monotonic()
    try:
        mock, boot, corpus, nbytes, err = filled_mock_cluster(
            BUILD, tmp, LINES, CODEC, PARTITIONS, ("--batch-messages", BATCH))
        if err:
            print(f"kafka_ceiling: the mock did not take the corpus: {err}", file=sys.stderr)
            FAILED.append("kafka_mock --produce")
            return 1
        if "unzstd" in order and CODEC == "zstd" and shutil.which("zstd"):
            subprocess.run(["zstd", "-q", "-1", "--rm", corpus, "-o", corpus + ".zst"],
                           check=True)
        else:
            order = [c for c in order if c != "unzstd"]
            os.unlink(corpus)
        print(f"corpus: gen --kind json --lines {LINES}: {nbytes / 1e6:.1f} MB of messages; "
              f"{PARTITIONS} partitions, {CODEC}, producer batches <= {BATCH} messages / 1 MB; "
              f"tuned: {','.join(TUNED)}; load {os.getloadavg()[0]:.1f}", flush=True)
        b = Bench(tmp, boot, mock)
        b.zst = corpus + ".zst"
        res = {c: [] for c in order}
        for rnd in range(RUNS):
            for c in order:
                try:
                    r = b.run(c, rnd)
                except (RuntimeError, OSError) as e:
                    FAILED.append(f"{c} round {rnd + 1}: {e}")
                    print(f"FAILED {c} round {rnd + 1}: {e}", file=sys.stderr, flush=True)
                    r = None
                res[c].append(r)
                if r:
                    steady = (LINES - 1) / max(r["secs"] - r["first"], 1e-3)
                    print(f"  round {rnd + 1} {c:9s} {r['secs']:6.2f} s, first {r['first']:5.2f} "
                          f"s, steady {steady:10,.0f} rec/s, {r['cpu'] / (nbytes / 1e9):5.2f} CPU "
                          f"s/GB [{short_threads(r['threads'], nbytes)}], mock "
                          f"{r['mock']:.2f} CPU s; load {os.getloadavg()[0]:.1f}", flush=True)
        med = {}
        for c in order:
            ok = [r for r in res[c] if r]
            if len(ok) != RUNS:
                continue
            m = {k: statistics.median(r[k] for r in ok) for k in ("secs", "first", "cpu", "rss",
                                                                   "mock")}
            m["steady"] = statistics.median((LINES - 1) / max(r["secs"] - r["first"], 1e-3)
                                            for r in ok)
            kinds = set().union(*(r["threads"] for r in ok))
            m["threads"] = {k: statistics.median(r["threads"].get(k, 0.0) for r in ok)
                            for k in kinds}
            med[c] = m
        gb = nbytes / 1e9
        print(f"\nmedians of {RUNS} ({LINES:,} records, {nbytes / 1e6:.1f} MB; load now "
              f"{os.getloadavg()[0]:.1f})\n")
        print("| consumer | records/s | first record s | steady records/s | CPU s/GB | "
              "CPU s/GB by thread | peak RSS MiB | mock CPU s |")
        print("|---|---:|---:|---:|---:|---|---:|---:|")
        for c, m in med.items():
            print(f"| {c} | {LINES / m['secs']:,.0f} | {m['first']:.2f} | {m['steady']:,.0f} | "
                  f"{m['cpu'] / gb:.2f} | {short_threads(m['threads'], nbytes)} | "
                  f"{m['rss']:.0f} | {m['mock']:.2f} |")
        if "rsyslog" in med:
            print()
            r = med["rsyslog"]
            for c, m in med.items():
                if c == "rsyslog":
                    continue
                print(f"{c} / rsyslog: records/s {r['secs'] / m['secs']:.2f}x, steady "
                      f"{m['steady'] / r['steady']:.2f}x, CPU per GB {r['cpu'] / m['cpu']:.2f}x "
                      f"less")
        if PERF:
            os.makedirs(PERF, exist_ok=True)
            for c in order:
                if c == "unzstd":
                    continue
                try:
                    b.run(c, "perf", perf_dir=PERF)
                except (RuntimeError, OSError) as e:
                    print(f"perf run {c}: {e}", file=sys.stderr)
                    continue
                with open(os.path.join(PERF, f"{c}.txt"), "w") as f:
                    subprocess.run(["perf", "report", "-i", os.path.join(PERF, f"{c}.data"),
                                    "--stdio", "--no-children", "--sort", "comm,dso",
                                    "--percent-limit", "1"], stdout=f, stderr=subprocess.DEVNULL)
            print(f"perf: {PERF}/CONSUMER.txt")
    finally:
        if mock:
            stop(mock)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - t_start:.0f} s; failures: {len(FAILED)}")
    for f in FAILED:
        print(f"FAILED: {f}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
