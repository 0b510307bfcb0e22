#!/usr/bin/env python3
"""file -> json -> file with the file sink's formats, raw line out, record
as JSON out (`format: json`, the goal's figure) and the record without its
line where the fields are it (`format: json` + `json_line: dedup`,
decision 0045), with the real binary on the same corpus, interleaved (raw,
json, json-dedup, raw, ...) so load on a shared machine hits all alike.
Prints each run, the medians and each JSON form's rate as a ratio of
raw's (issue 19's goal: json/raw >= 0.8x). Reuses benchmarks/e2e.py's
harness.

  python3 benchmarks/e2e_recjson.py BUILD_DIR [MB (default 200)] [pairs (default 3)]"""
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    b = e2e.Bench(sys.argv[1])
    mb = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    src, nbytes, nlines = b.corpus(mb)
    e2e.log(f"corpus: {b.corpus_cmd}: {nbytes / 1e6:.1f} MB, {nlines} lines")
    with open(src, "rb") as f:
        while f.read(8 << 20):
            pass
    res = {"raw": [], "json": [], "json-dedup": []}
    try:
        for _ in range(pairs):
            for fmt in ("raw", "json", "json-dedup"):
                d = b.fresh(fmt)
                indir = os.path.join(d, "in")
                os.makedirs(indir)
                os.link(src, os.path.join(indir, "app.log"))
                out = os.path.join(d, "out.log")
                sink = f"""  - name: out
    type: file
    path: {out}
    format: {fmt.split("-")[0]}
""" + ("    json_line: dedup\n" if fmt == "json-dedup" else "")
                cfg = b.sluice_cfg(d, f"{indir}/*.log", sink)
                cmd = f"sluice run -c {os.path.relpath(cfg, b.tmp)} (format: {fmt})"
                r = b.throughput(f"file -> json -> file, {fmt} out", "sluice",
                                 lambda: b.start_sluice(d, cfg), d, out, nbytes, nlines, cmd)
                if r:
                    r["outmb"] = os.path.getsize(out) / 1e6
                    res[fmt].append(r)
                shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    if not all(res.values()):
        return 1
    med = {k: statistics.median(r["mbs"] for r in v) for k, v in res.items()}
    cpu = {k: statistics.median(r["cpugb"] for r in v) for k, v in res.items()}
    for k in ("raw", "json", "json-dedup"):
        each = ", ".join("%.0f" % r["mbs"] for r in res[k])
        e2e.log(f"{k:10s} out: {med[k]:7.1f} MB/s median of {len(res[k])} "
                f"({each}), {cpu[k]:.2f} CPU s/GB, "
                f"output {res[k][0]['outmb']:.0f} MB")
    e2e.log(f"json/raw: {med['json'] / med['raw']:.2f}x (goal >= 0.8x)")
    e2e.log(f"json-dedup/raw: {med['json-dedup'] / med['raw']:.2f}x")
    return 1 if e2e.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
