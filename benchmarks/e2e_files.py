#!/usr/bin/env python3
"""Many files against one file, same bytes, same invocation (issue 19).

  python3 benchmarks/e2e_files.py BUILD_DIR [NFILES (10000)] [MB (100)]

The corpus (`gen --kind json --bytes MBM --seed 3`) is read by the real
binary (file input, `parse: [json: {}]`, file sink `format: raw`, default
buffers) once as one file and once dealt round-robin into NFILES files,
alternating one / many three times (A B A B A B), each run from a fresh
data_dir. Prints each run, the medians of 3 for both, and the ratio of the
medians (goal: many / one >= 0.5). Timing and CPU as in benchmarks/e2e.py:
start of the process until the last line is in the output; utime+stime of
the agent; VmHWM. SLUICE_FILES_RUNS changes the number of pairs.
SLUICE_FILES_REF=OTHER_BUILD_DIR adds a run of the many files by that
build's binary to each round (one, many, reference many), so a change is
measured against the code before it in the same invocation.
SLUICE_FILES_PARSE=none drops the `parse` step from every run (raw lines in,
raw lines out): what the many files cost without the JSON step, i.e. the
most that moving parsing off the input's thread could give (decision 0079).
Exit status 1 when a run failed or lost lines."""
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import FAILED, Bench, log  # noqa: E402


def run(b, src_dir, nbytes, nlines, label):
    d = b.fresh(label)
    indir = os.path.join(d, "in")
    shutil.copytree(src_dir, indir, copy_function=os.link)
    out = os.path.join(d, "out.log")
    cfg = b.sluice_cfg(d, f"{indir}/*.log", b.file_sink(out))
    if os.environ.get("SLUICE_FILES_PARSE") == "none":
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("    parse:\n      - json: {}\n", ""))
    cmd = f"sluice run -c {os.path.relpath(cfg, b.tmp)}"
    r = b.throughput(label, "sluice", lambda: b.start_sluice(d, cfg), d, out, nbytes, nlines, cmd)
    if r and os.path.getsize(out) != nbytes:
        FAILED.append(f"{label}: output {os.path.getsize(out)} bytes, input {nbytes}")
    shutil.rmtree(d, ignore_errors=True)
    return r


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    b = Bench(sys.argv[1])
    nfiles = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    mb = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    pairs = int(os.environ.get("SLUICE_FILES_RUNS", "3"))
    ref_dir = os.environ.get("SLUICE_FILES_REF")
    ref = Bench(ref_dir) if ref_dir else None
    try:
        src = os.path.join(b.tmp, "corpus.json")
        with open(src, "wb") as f:
            subprocess.run([b.gen, "--kind", "json", "--bytes", f"{mb}M", "--seed", "3"],
                           stdout=f, check=True)
        nbytes = os.path.getsize(src)
        with open(src, "rb") as f:
            nlines = f.read().count(b"\n")
        one = os.path.join(b.tmp, "one")
        os.makedirs(one)
        os.link(src, os.path.join(one, "app.log"))
        many = os.path.join(b.tmp, f"split-{nfiles}")
        b.split(src, nfiles, many)
        for p in (one, many):  # page cache, so every run starts alike
            for name in os.listdir(p):
                with open(os.path.join(p, name), "rb") as f:
                    while f.read(8 << 20):
                        pass
        log(f"corpus: gen --kind json --bytes {mb}M --seed 3: {nbytes / 1e6:.1f} MB, "
            f"{nlines} lines; {nfiles} files")
        res = {"one": [], "many": [], "ref": []}
        rounds = [("one", b, one, "1 file"), ("many", b, many, f"{nfiles} files")]
        if ref:
            os.rmdir(ref.tmp)
            ref.tmp = b.tmp  # one corpus, one folder to remove
            rounds.append(("ref", ref, many, f"{nfiles} files, reference build"))
        for _ in range(pairs):
            for kind, bench, path, label in rounds:
                r = run(bench, path, nbytes, nlines, f"{mb} MB in {label}")
                if r:
                    res[kind].append(r)
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    print(f"\n## {mb} MB in 1 file vs {nfiles} files ({time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"runs alternated, {pairs} each"
          f"{'; no parse step' if os.environ.get('SLUICE_FILES_PARSE') == 'none' else ''})\n")
    print("| input | MB/s runs | MB/s median | CPU s/GB median | peak RSS MiB max |")
    print("|---|---|---:|---:|---:|")
    med = {}
    for kind, label in (("one", "1 file"), ("many", f"{nfiles:,} files"),
                        ("ref", f"{nfiles:,} files, {ref_dir}")):
        rs = res[kind]
        if not rs:
            continue
        med[kind] = statistics.median(r["mbs"] for r in rs)
        print(f"| {mb} MB in {label} | {', '.join('%.1f' % r['mbs'] for r in rs)} | "
              f"{med[kind]:.1f} | {statistics.median(r['cpugb'] for r in rs):.2f} | "
              f"{max(r['rss'] for r in rs):.1f} |")
    if "one" in med and "many" in med:
        print(f"\nmany / one (ratio of medians): **{med['many'] / med['one']:.2f}x** (goal >= 0.5x)")
    if "ref" in med and "many" in med:
        cpu = {k: statistics.median(r["cpugb"] for r in res[k]) for k in ("many", "ref")}
        print(f"many files, this build / reference: MB/s {med['many'] / med['ref']:.2f}x, "
              f"CPU s/GB {cpu['many'] / cpu['ref']:.2f}x")
    for f in FAILED:
        print(f"FAILED: {f}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
