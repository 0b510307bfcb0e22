#!/usr/bin/env python3
"""Syscall and context-switch counts of whole runs, two builds alternated
(issue 19, many files; decision 0066).

  python3 benchmarks/files_syscalls.py BUILD REF_BUILD RUNS [NFILES (10000)]

The corpus and config of e2e_files.py (`gen --kind json --bytes 100M
--seed 3` dealt into NFILES files, file -> json -> file raw): `perf stat`
around `sluice run` of each build in turn, the agent stopped (SIGTERM) once
every line is in the output. Prints each run and the medians (REF, BUILD,
BUILD / REF). Needs perf with the syscalls tracepoints readable."""
import os, shutil, signal, subprocess, sys, time, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import Bench, LineCounter, wait_for
EV = "syscalls:sys_enter_futex,syscalls:sys_enter_write,syscalls:sys_enter_read,raw_syscalls:sys_enter,context-switches,task-clock"
new, base, runs = Bench(sys.argv[1]), Bench(sys.argv[2]), int(sys.argv[3])
nfiles = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
tmp = new.tmp
src = os.path.join(tmp, "corpus.json")
with open(src, "wb") as f:
    subprocess.run([new.gen, "--kind", "json", "--bytes", "100M", "--seed", "3"], stdout=f, check=True)
nlines = open(src, "rb").read().count(b"\n")
many = os.path.join(tmp, "split")
new.split(src, nfiles, many)
res = {"new": [], "base": []}
for r in range(runs):
    for kind, b in (("new", new), ("base", base)):
        d = new.fresh(kind)
        indir = os.path.join(d, "in")
        shutil.copytree(many, indir, copy_function=os.link)
        out = os.path.join(d, "out.log")
        cfg = new.sluice_cfg(d, f"{indir}/*.log", new.file_sink(out))
        po = os.path.join(d, "perf.txt")
        os.sync()
        p = subprocess.Popen(["perf", "stat", "-x,", "-o", po, "-e", EV, "--", b.sluice, "run", "-c", cfg],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "err"), "wb"))
        c = LineCounter(out)
        wait_for(p, c, nlines, 600)
        kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        for k in kids:
            os.kill(int(k), signal.SIGTERM)
        p.wait(60)
        vals = {}
        for line in open(po):
            parts = line.strip().split(",")
            if len(parts) > 3 and parts[0] and parts[0][0].isdigit():
                vals[parts[2]] = float(parts[0])
        res[kind].append(vals)
        print(kind, {k: int(v) for k, v in vals.items()}, flush=True)
        shutil.rmtree(d, ignore_errors=True)
shutil.rmtree(tmp, ignore_errors=True)
shutil.rmtree(base.tmp, ignore_errors=True)
print("\nmedians of", runs)
for k in res["new"][0]:
    m = {kind: statistics.median(v[k] for v in res[kind]) for kind in res}
    print(f"| {k} | {m['base']:.0f} | {m['new']:.0f} | {m['new']/m['base']:.2f}x |")
