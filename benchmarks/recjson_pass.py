#!/usr/bin/env python3
"""One pass of file -> parse JSON -> file sink, ending when every line of
CORPUS is in the output: a command for a whole-process timer, so the two
formats (or two builds) are timed in turn, A B A B ..., e.g. with

  P="env TMPDIR=/dev/shm /usr/bin/python3 benchmarks/recjson_pass.py"
  A: $P build/cli/sluice CORPUS json     B: $P build/cli/sluice CORPUS raw

(`/usr/bin/time -v` does for one run.) With OUT_BYTES (the output's size,
printed by a run without it) the pass ends when the output reaches that
size, watched with stat(2), so the harness reads nothing and its CPU stays
out of the figures. FORMAT is the file sink's `format`
(raw: the line; json: the record as JSON, shipper/recjson.c), or
json-dedup: `format: json` with `json_line: dedup` (decision 0045). The output
goes to TMPDIR (use a tmpfs: on a disk the JSON run, 2.2x the bytes, waits
on writeback and the ratio measures the disk). The lines are counted as
they arrive, reading each output byte once, as benchmarks/e2e.py does.

  recjson_pass.py --rounds N CORPUS LABEL=SLUICE:FORMAT ...

runs the passes interleaved itself (each LABEL once per round, in the
order given), each pass as a child it waits for with wait4, and prints
per LABEL the medians of CPU (user + system of the pass and its agent)
and wall, and each LABEL's rate against the first one's. The output size
for OUT_BYTES is taken from a first, untimed pass of each format."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import file_json_config

FORMATS = ("raw", "json", "json-dedup")


def interleaved(argv):
    """--rounds N CORPUS LABEL=SLUICE:FORMAT ...: see the docstring."""
    import statistics
    if len(argv) < 4 or not argv[1].isdigit():
        sys.exit(__doc__)
    rounds, corpus = int(argv[1]), argv[2]
    specs = []
    for a in argv[3:]:
        label, _, rest = a.partition("=")
        sl, _, fmt = rest.rpartition(":")
        if not label or not sl or fmt not in FORMATS:
            sys.exit(__doc__)
        specs.append((label, sl, fmt))
    me = [sys.executable, os.path.abspath(__file__)]
    size = {}
    for _, sl, fmt in specs:
        if fmt not in size:
            r = subprocess.run(me + [sl, corpus, fmt], stderr=subprocess.PIPE, text=True, check=True)
            size[fmt] = r.stderr.split()[-2]
    res = {label: [] for label, _, _ in specs}
    for _ in range(rounds):
        for label, sl, fmt in specs:
            t0 = time.monotonic()
            p = subprocess.Popen(me + [sl, corpus, fmt, size[fmt]])
            _, status, ru = os.wait4(p.pid, 0)
            if status != 0:
                sys.exit(f"{label}: pass failed")
            res[label].append((ru.ru_utime + ru.ru_stime, time.monotonic() - t0))
    med = {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
           for k, v in res.items()}
    first = specs[0][0]
    for label, v in res.items():
        print(f"{label:12s} CPU {med[label][0]:.3f} s, wall {med[label][1]:.3f} s (medians of "
              f"{len(v)}); rate vs {first}: CPU {med[first][0] / med[label][0]:.3f}x, "
              f"wall {med[first][1] / med[label][1]:.3f}x; CPU each "
              + " ".join(f"{c:.3f}" for c, _ in v))


if len(sys.argv) > 1 and sys.argv[1] == "--rounds":
    interleaved(sys.argv[1:])
    sys.exit(0)
if len(sys.argv) not in (4, 5) or sys.argv[3] not in FORMATS:
    sys.exit(__doc__)
sluice, corpus, fmt = sys.argv[1:4]
want_bytes = int(sys.argv[4]) if len(sys.argv) == 5 else None
want = 0
if want_bytes is None:
    with open(corpus, "rb") as f:
        want = sum(c.count(b"\n") for c in iter(lambda: f.read(8 << 20), b""))
d = tempfile.mkdtemp(prefix="sluice-recjsonpass.")
agent = None
try:
    out = os.path.join(d, "out.log")
    cfg = file_json_config(d, corpus, f"""  - name: out
    type: file
    path: {out}
    format: {fmt.split("-")[0]}
""" + ("    json_line: dedup\n" if fmt == "json-dedup" else ""))
    agent = subprocess.Popen([sluice, "run", "-c", cfg], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(d, "sluice.err"), "wb"))
    n, pos, t0 = 0, 0, time.monotonic()
    while want_bytes is not None:
        if agent.poll() is not None or time.monotonic() - t0 > 600:
            sys.exit(f"agent ended or timed out before {want_bytes} bytes")
        try:
            if os.stat(out).st_size >= want_bytes:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    while n < want:
        if agent.poll() is not None or time.monotonic() - t0 > 600:
            sys.exit(f"agent ended or timed out with {n} of {want} lines")
        try:
            with open(out, "rb") as f:
                f.seek(pos)
                data = f.read(64 << 20)
        except FileNotFoundError:
            data = b""
        pos += len(data)
        n += data.count(b"\n")
        if not data:
            time.sleep(0.02)
    if want_bytes is None:
        print(f"{n} lines, {os.path.getsize(out)} bytes", file=sys.stderr)
finally:
    if agent and agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    shutil.rmtree(d, ignore_errors=True)
