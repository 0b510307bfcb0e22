#!/usr/bin/env python3
"""One pass of the e2e Kafka row's setup (benchmarks/e2e.py run_kafka_once),
for A/B series of sink settings or builds: file -> json -> Kafka into
benchmarks/kafka_mock (3 brokers, 32 partitions, its consumer in its own
process). Prints the wall from the agent's start until the consumer counted
every line, the agent's CPU s/GB (utime + stime), the mock cluster's and its
consumer's CPU s/GB, the agent's peak RSS (VmHWM) and the load average; with
KAFKA_PASS_THREADS=1 also the CPU of each kind of thread in both processes.

  benchmarks/kafka_pass.py SLUICE KAFKA_MOCK CORPUS NLINES 'EXTRA' [WRAPPER...]

EXTRA: sink YAML lines ('\\n' for a newline), e.g.
'    librdkafka: { queue.buffering.max.kbytes: 2048 }'. WRAPPER: a command the
agent runs under (e.g. a script that execs `perf sched record -g -o F --`);
the CPU and RSS printed are then the wrapper's. Interleave variants and
`zstd -1 -T1 -q -c CORPUS` in a shell loop, round after round.
benchmarks/RESULTS.md ("Kafka sink: runs of 250") shows the series."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import file_json_config  # noqa: E402

sl, km, src, nlines, extra = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
wrap = sys.argv[6:]  # e.g. perf record ... --
d = tempfile.mkdtemp(prefix="kp", dir=os.environ.get("TMPDIR", "/tmp"))
tally = d + "/tally"
mock = subprocess.Popen([km, "--brokers", "3", "--partitions", "32", "--expect", str(nlines),
                         "--tally", tally, "--timeout", "300"], stdout=subprocess.PIPE,
                        stderr=open(d + "/mock.err", "wb"))
boot = mock.stdout.readline().decode().strip()
extra = extra.replace("\\n", "\n")
cfg = file_json_config(d, src, f"""  - name: kafka
    type: kafka
    brokers: "{boot}"
    topic: logs
{extra}""")
la = os.getloadavg()[0]
t0 = time.time()
p = subprocess.Popen(wrap + [sl, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=open(d + "/sl.err", "wb"))
hwm = 0
pid = p.pid
while True:
    try:
        if os.path.getsize(tally) >= nlines:  # one byte per message
            break
    except OSError: pass
    if p.poll() is not None: print("agent died", open(d+"/sl.err").read()[-2000:]); sys.exit(1)
    if time.time() - t0 > 300: print("timeout"); break
    try:
        for ln in open(f"/proc/{pid}/status"):
            if ln.startswith("VmHWM"): hwm = max(hwm, int(ln.split()[1]))
    except OSError: pass
    time.sleep(0.01)
wall = time.time() - t0
# final hwm
try:
    for ln in open(f"/proc/{pid}/status"):
        if ln.startswith("VmHWM"): hwm = max(hwm, int(ln.split()[1]))
except OSError: pass
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def threads(pid):
    """CPU s/GB per kind of thread: librdkafka names its threads (rdk:broker1
    ... on the agent compress message sets; on the mock they are its
    consumer's, which fetch and decompress; rdk:mock serves the brokers);
    the agent's own threads are unnamed and listed by CPU, largest first."""
    kinds, own = {}, []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
                c = cpu(f"{pid}/task/{tid}")
            except OSError: continue
            if name.startswith("rdk:"):
                k = "rdk:broker" if name.startswith("rdk:broker") else name
                kinds[k] = kinds.get(k, 0) + c
            else: own.append(c)
    except OSError: pass
    gb = os.path.getsize(src) / 1e9
    parts = [f"{k} {v/gb:.2f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])]
    parts += [f"{v/gb:.2f}" for v in sorted(own, reverse=True) if v / gb >= 0.01]
    return ", ".join(parts)
try: acpu = cpu(pid); athr = threads(pid)
except OSError: acpu, athr = -1, ""
try: mcpu = cpu(mock.pid); mthr = threads(mock.pid)
except OSError: mcpu, mthr = -1, ""
p.terminate(); p.wait(timeout=30)
mock.terminate(); out = mock.communicate(timeout=30)[0].decode()
nb = os.path.getsize(src)
print(f"wall {wall:.2f} s {nb/wall/1e6:.1f} MB/s cpu {acpu/(nb/1e9):.2f} s/GB mock {mcpu/(nb/1e9):.2f} s/GB hwm {hwm/1024:.1f} MiB load {la:.2f} {out.split(chr(10))[0]}")
if os.environ.get("KAFKA_PASS_THREADS"):
    print(f"  agent threads s/GB: {athr}\n  mock threads s/GB: {mthr}")
shutil.rmtree(d, ignore_errors=True)
