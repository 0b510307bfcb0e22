#!/usr/bin/env python3
"""journald -> Loki end to end against the journald input stage
(bench_journald), interleaved in one invocation (stage, agent, stage,
agent, ...) so load on a shared machine hits both alike. Issue 19's goal:
the agent's whole-run entries/s >= 0.8x the stage's entries/s.

  python3 benchmarks/journald_loki.py BUILD_DIR [--entries N (500000)]
      [--runs R (3)] [--receiver PATH] [--wait DURATION (1s)]
      [--journal DIR] [--perf PREFIX] [--compare OTHER_BUILD]
      [--sink-opt 'KEY: VALUE' ...] [--input-opt 'KEY: VALUE' ...]
      [--compare-input-opt 'KEY: VALUE' ...]

The journal: N journald-like entries (about 20 fields, kubelet-style
MESSAGE) in 4 real journal files, written by systemd-journal-remote (the
generator of benchmarks/e2e.py), or --journal DIR reused.
Stage: `bench_journald N 1 DIR stage` (the input alone, batches
acknowledged at once; wall from create to the last entry; CPU of its one
thread). Agent: `sluice run` with `type: journald, directory: DIR,
labels_from: {unit: _SYSTEMD_UNIT}` into a `type: loki` sink with
`max_batch_wait: --wait`, and the receiver (--receiver; default
build/benchmarks/loki-rx when built, else build/tests/loki-receiver; both
take `--port P --out F` and write a line per entry). Wall is from the
agent's start until the receiver has all N entries; the agent's
/metrics (polled every 50 ms) tell when the input read its first entry
(start-up) and its last, and at the end how long the input waited for
room in the sink's buffer (sluice_sink_backpressure_seconds_total), and
the agent's RssAnon and RssFile (its own memory against the journal files
libsystemd maps) are sampled with each poll. Per run and as medians: entries/s, CPU s per
entry (agent: all its threads; receiver separately), cores used.
Ratios (agent / stage): whole-run entries/s (the issue's), as the ratio
of the medians and as the median of each round's ratio (stage and agent
of one round ran back to back, so they saw much the same load); entries/s
until the input had read the last entry (the whole run less the delivery
tail: the last requests, and before decision 0042 the last batch's
max_batch_wait); and CPU s per entry (stage / agent: load moves it
least). The load average is printed before and after. --perf PREFIX records `perf record -g` of
every agent run into PREFIX.N.data. --compare runs another build's stage
and agent in each round too (before/after a change, same invocation)."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402


def metric(port, name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            body = r.read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Child:
    """The agent started by perf: its pid, poll and signals (e2e.stop)."""

    def __init__(self, parent):
        self.parent = parent
        deadline = time.monotonic() + 10
        while True:
            try:
                with open(f"/proc/{parent.pid}/task/{parent.pid}/children") as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            if kids:
                self.pid = int(kids[0])
                break
            if time.monotonic() > deadline or parent.poll() is not None:
                raise RuntimeError("perf did not start the agent")
            time.sleep(0.005)
        self.returncode = None

    def poll(self):
        if os.path.exists(f"/proc/{self.pid}/stat"):
            with open(f"/proc/{self.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return None
        self.returncode = self.parent.poll()
        return self.returncode if self.returncode is not None else -1

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout=None):
        return self.parent.wait(timeout)

    def kill(self):
        os.kill(self.pid, 9)


def rss_split(pid):
    """(RssAnon, RssFile) of pid in MiB: the agent's own memory against the
    journal files libsystemd has mapped (decision 0048)."""
    got = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    got[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return got.get("RssAnon", 0.0), got.get("RssFile", 0.0)


def stage(b, jdir, n):
    p = subprocess.run([os.path.join(b.build, "benchmarks/bench_journald"), str(n), "1", jdir,
                        "stage"], capture_output=True, text=True)

    m = re.search(r"input:\s+(\d+) entries/s\s+median ([\d.]+) s, input thread ([\d.]+) CPU s",
                  p.stdout)
    if not m:
        raise RuntimeError(f"bench_journald: {p.stdout}{p.stderr}"[-300:])
    secs, cpu = float(m.group(2)), float(m.group(3))
    return dict(eps=n / secs, secs=secs, cpu=cpu, us=cpu / n * 1e6, cores=cpu / secs)


def agent(b, jdir, n, receiver, wait, perf, sink_opts=(), input_opts=()):
    d = b.fresh("agent")
    rx_port, m_port = e2e.free_port(), e2e.free_port()
    out = os.path.join(d, "received.jsonl")
    rx = subprocess.Popen([receiver, "--port", str(rx_port), "--out", out],
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "rx.err"), "wb"))
    time.sleep(0.3)
    cfg = b.write_cfg(d, f"""metrics: {{ listen: "127.0.0.1:{m_port}" }}
inputs:
  - name: journal
    type: journald
    directory: {jdir}
    labels_from: {{ unit: _SYSTEMD_UNIT }}
""" + "".join(f"    {o}\n" for o in input_opts) + f"""sinks:
{b.loki_sink(rx_port, wait)}""" + "".join(f"    {o}\n" for o in sink_opts))
    pr = None
    try:
        os.sync()
        t0 = time.monotonic()
        if perf:
            # perf starts the agent, so every thread it makes is recorded.
            pr = subprocess.Popen(["perf", "record", "-g", "-q", "-o", perf, "--", b.sluice,
                                   "run", "-c", cfg], stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(d, "sluice.err"), "wb"))
            proc = Child(pr)
        else:
            proc = b.start_sluice(d, cfg)
        counter = e2e.LineCounter(out)
        t_first = t_read = None
        next_poll = 0.0
        anon_max = file_max = 0.0
        while counter.n < n:
            now = time.monotonic()
            if now >= next_poll:
                ra, rf = rss_split(proc.pid)
                anon_max, file_max = max(anon_max, ra), max(file_max, rf)
            if (t_first is None or t_read is None) and now >= next_poll:
                got = metric(m_port, 'sluice_input_records_total')
                if got and t_first is None:
                    t_first = now - t0
                if got is not None and got >= n and t_read is None:
                    t_read = now - t0
                next_poll = now + 0.05
            if counter.poll() == 0:
                if proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {proc.returncode}")
                if rx.poll() is not None:
                    raise RuntimeError(f"receiver exited with {rx.returncode}")
                if now - t0 > 600:
                    raise RuntimeError(f"timeout: {counter.n} of {n} entries delivered")
                time.sleep(0.02)
        secs = time.monotonic() - t0
        if t_read is None:
            # Delivered before a poll saw the input done: it was done by now.
            t_read = secs
        cpu, rx_cpu = e2e.cpu_s(proc.pid), e2e.cpu_s(rx.pid)
        # How long the input waited for room in the sink's buffer.
        blocked = metric(m_port, "sluice_sink_backpressure_seconds_total")
        reopens = metric(m_port, "sluice_journald_reopens_total")
        rss = e2e.hwm_mib(proc.pid)
        ra, rf = rss_split(proc.pid)
        anon_max, file_max = max(anon_max, ra), max(file_max, rf)
    finally:
        if "proc" in locals():
            e2e.stop(proc)
        if pr:
            pr.wait(60)
        e2e.stop(rx)
        shutil.rmtree(d, ignore_errors=True)
    return dict(eps=n / secs, secs=secs, cpu=cpu, us=cpu / n * 1e6, cores=cpu / secs,
                rx_cpu=rx_cpu, rx_us=rx_cpu / n * 1e6, rss=rss, anon=anon_max, file=file_max, reopens=reopens,
                blocked_s=blocked, start_s=t_first, read_s=t_read,
                eps_read=n / max(t_read, 1e-6))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--entries", type=int, default=500000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--receiver")
    ap.add_argument("--wait", default="1s")
    ap.add_argument("--journal")
    ap.add_argument("--perf")
    ap.add_argument("--sink-opt", action="append", default=[], metavar="'KEY: VALUE'",
                    help="a line added to the Loki sink's YAML (e.g. 'concurrency: 2')")
    ap.add_argument("--input-opt", action="append", default=[], metavar="'KEY: VALUE'",
                    help="a line added to the journald input's YAML of BUILD's agent")
    ap.add_argument("--compare-input-opt", action="append", default=[], metavar="'KEY: VALUE'",
                    help="the same for --compare's agent (--compare BUILD itself: an A/B of a key)")
    ap.add_argument("--compare", metavar="BUILD",
                    help="another build (e.g. the parent commit's) run in turn with BUILD")
    a = ap.parse_args()
    b = e2e.Bench(a.build)
    rx = a.receiver or next(p for p in (os.path.join(b.build, "benchmarks/loki-rx"), b.receiver)
                            if os.access(p, os.X_OK))
    n = a.entries
    try:
        jdir = a.journal
        if not jdir or not os.path.exists(os.path.join(jdir, "system-0.journal")):
            jdir = jdir or os.path.join(b.tmp, "journal")
            t0 = time.monotonic()
            if os.path.isdir(jdir):
                os.rmdir(jdir)
            mb = b.journal(jdir, n)
            e2e.log(f"journal: {n} entries, {mb / 1e6:.1f} MB of MESSAGE in "
                    f"{time.monotonic() - t0:.1f} s")
        for name in os.listdir(jdir):  # page cache
            with open(os.path.join(jdir, name), "rb") as f:
                while f.read(8 << 20):
                    pass
        e2e.log(f"load average before: {os.getloadavg()[0]:.1f}")
        benches = ([e2e.Bench(a.compare)] if a.compare else []) + [b]
        res = {id(x): ([], []) for x in benches}
        for i in range(a.runs):
            for x in benches:
                st, ag = res[id(x)]
                tag = f"run {i + 1}" + (f" {x.build}" if a.compare else "")
                s = stage(x, jdir, n)
                st.append(s)
                e2e.log(f"{tag} stage: {s['eps']:9.0f} entries/s  {s['us']:5.2f} CPU us/entry "
                        f"{s['cores']:.2f} cores")
                g = agent(x, jdir, n, rx, a.wait,
                          f"{a.perf}.{len(st)}{'.' + str(benches.index(x)) if a.compare else ''}"
                          ".data" if a.perf else None, a.sink_opt,
                          a.compare_input_opt if a.compare and x is benches[0] else a.input_opt)
                ag.append(g)
                e2e.log(f"{tag} agent: {g['eps']:9.0f} entries/s  {g['us']:5.2f} CPU us/entry "
                        f"{g['cores']:.2f} cores; start-up {g['start_s'] or -1:.2f} s, input "
                        f"done {g['read_s'] or -1:.2f} s, all delivered {g['secs']:.2f} s; "
                        f"receiver {g['rx_us']:.2f} CPU us/entry; input blocked by the sink "
                        f"{g['blocked_s'] if g['blocked_s'] is not None else -1:.2f} s; "
                        f"peak RSS {g['rss']:.1f} MiB (sampled max RssAnon {g['anon']:.1f}, "
                        f"RssFile {g['file']:.1f}); journal reopened {g['reopens'] or 0:.0f} times")
    finally:
        for x in [b] + (benches[:-1] if "benches" in locals() else []):
            shutil.rmtree(x.tmp, ignore_errors=True)

    def med(rows, k):
        v = [r[k] for r in rows if r[k] is not None]
        return statistics.median(v) if v else float("nan")
    print(f"load average after: {os.getloadavg()[0]:.1f} (1 min)")
    print(f"journald -> loki, {n} entries, medians of {a.runs} interleaved runs "
          f"(receiver {os.path.basename(rx)}, max_batch_wait {a.wait}"
          + "".join(f", {o}" for o in a.sink_opt) + ")")
    for x in benches:
        st, ag = res[id(x)]
        se, ae = med(st, "eps"), med(ag, "eps")
        if a.compare:
            opts = a.compare_input_opt if x is benches[0] else a.input_opt
            print(f"== {x.build}" + "".join(f", {o}" for o in opts))
        print(f"stage (bench_journald {n} 1 DIR stage): {se:.0f} entries/s, "
              f"{med(st, 'us'):.2f} CPU us/entry, {med(st, 'cores'):.2f} cores")
        print(f"agent (sluice run):  {ae:.0f} entries/s whole run ({med(ag, 'secs'):.2f} s), "
              f"{med(ag, 'us'):.2f} CPU us/entry, {med(ag, 'cores'):.2f} cores, start-up "
              f"{med(ag, 'start_s'):.2f} s, input done at {med(ag, 'read_s'):.2f} s, peak RSS "
              f"{med(ag, 'rss'):.1f} MiB (sampled max RssAnon {med(ag, 'anon'):.1f}, RssFile "
              f"{med(ag, 'file'):.1f}); receiver {med(ag, 'rx_us'):.2f} CPU us/entry; input "
              f"blocked by the sink's backpressure {med(ag, 'blocked_s'):.2f} s")
        rounds = [g["eps"] / t["eps"] for t, g in zip(st, ag)]
        print(f"ratio agent/stage entries/s (issue 19, >= 0.8x): {ae / se:.2f}x whole run "
              f"(median of the rounds' ratios {statistics.median(rounds):.2f}x: "
              + " ".join(f"{x:.2f}" for x in rounds) + "); "
              f"until the input had read the last entry {med(ag, 'eps_read') / se:.2f}x; "
              f"CPU per entry stage/agent {med(st, 'us') / med(ag, 'us'):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
