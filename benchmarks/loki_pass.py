#!/usr/bin/env python3
"""One pass of file -> parse JSON -> Loki sink -> the in-tree receiver,
ending when every line of CORPUS has arrived: one whole process to time,
so two builds (or two sink settings) can be timed in turn (A B A B), e.g.

  /usr/bin/time -v benchmarks/loki_pass.py REF_SLUICE RX CORPUS
  /usr/bin/time -v benchmarks/loki_pass.py build/cli/sluice RX CORPUS [EXTRA_SINK_YAML]

RX is build/benchmarks/loki-rx (counts every entry: snappy + the protobuf
walked, nothing kept; not the bottleneck) or build/tests/loki-receiver
(decodes everything and writes each entry as JSON: it takes most of the
run's CPU). Either runs on the same cores and is part of the time.
EXTRA_SINK_YAML is added to the sink's map (e.g. 'concurrency: 2', several
separated by ';'); EXTRA_SINK_YAML `file` measures the file sink (raw lines)
instead, with no receiver (`file;KEY: VALUE;...` adds keys to it, e.g.
'file;buffer: {memory_max: 16MiB}'). SLUICE_RX_ARGS adds arguments to the receiver's
(e.g. '--delay-ms 50'). At the end one line goes to stderr: wall seconds,
the agent's and the receiver's CPU seconds, the agent's peak RSS, and the
receiver's own totals when it prints them, and the CPU seconds of the
agent's busiest threads (each thread's user + system from /proc, most first:
which stage is the slowest, without a profiler)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import file_json_config

sluice, rx, corpus = sys.argv[1:4]
extra = sys.argv[4] if len(sys.argv) > 4 else ""
with open(corpus, "rb") as f:
    want = sum(c.count(b"\n") for c in iter(lambda: f.read(8 << 20), b""))
d = tempfile.mkdtemp(prefix="sluice-lokipass.")
procs = []
try:
    out = os.path.join(d, "rx.jsonl")
    if extra.split(";")[0].strip() == "file":
        sink = f"""  - name: out
    type: file
    path: {out}
"""
        extra = extra.partition(";")[2]
    else:
        r = subprocess.Popen([rx, "--port", "0", "--out", out]
                             + os.environ.get("SLUICE_RX_ARGS", "").split(),
                             stdout=subprocess.PIPE, stderr=open(os.path.join(d, "rx.err"), "wb"),
                             text=True)
        procs.append(r)
        port = r.stdout.readline().split(":")[-1].strip()  # "listening 127.0.0.1:PORT"
        sink = f"""  - name: loki
    type: loki
    url: "http://127.0.0.1:{port}/loki/api/v1/push"
"""
    cfg = file_json_config(
        d, corpus, sink + "".join(f"    {x.strip()}\n" for x in extra.split(";") if x.strip()))
    a = subprocess.Popen([sluice, "run", "-c", cfg], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(d, "sluice.err"), "wb"))
    procs.append(a)
    n, pos, t0 = 0, 0, time.monotonic()
    while n < want:
        if a.poll() is not None or time.monotonic() - t0 > 600:
            sys.exit(f"agent ended or timed out with {n} of {want} lines")
        try:
            with open(out, "rb") as f:
                f.seek(pos)
                data = f.read()
        except FileNotFoundError:
            data = b""
        pos += len(data)
        n += data.count(b"\n")
        if not data:
            time.sleep(0.02)
    wall = time.monotonic() - t0
    with open(f"/proc/{a.pid}/status") as f:
        hwm = next((ln.split()[1] for ln in f if ln.startswith("VmHWM:")), "0")
    tick = os.sysconf("SC_CLK_TCK")
    threads = []
    for tid in os.listdir(f"/proc/{a.pid}/task"):
        try:
            with open(f"/proc/{a.pid}/task/{tid}/stat") as f:
                name, _, rest = f.read().rpartition(")")
            st = rest.split()  # fields after the name
            # utime + stime, and the thread's name (sl:loki, sl:loki-z, ...)
            threads.append(((int(st[11]) + int(st[12])) / tick, name.partition("(")[2]))
        except (FileNotFoundError, ProcessLookupError):
            pass
    threads.sort(reverse=True)
    a.send_signal(signal.SIGTERM)
    _, _, ru = os.wait4(a.pid, 0)
    a.returncode = 0
    what = f"wall {wall:.2f} s agent cpu {ru.ru_utime + ru.ru_stime:.2f} s peak rss {int(hwm) / 1024:.1f} MiB"
    what += " threads " + " ".join(f"{n}={t:.2f}" for t, n in threads[:5])
    if procs[0] is not a:
        r = procs[0]
        r.send_signal(signal.SIGTERM)
        _, _, rru = os.wait4(r.pid, 0)
        r.returncode = 0
        with open(os.path.join(d, "rx.err"), errors="replace") as f:
            said = f.read().strip().splitlines()
        what += f" receiver cpu {rru.ru_utime + rru.ru_stime:.2f} s {said[-1] if said else ''}"
    print(f"loki_pass: {what}", file=sys.stderr)
finally:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(d, ignore_errors=True)
