#!/usr/bin/env python3
"""Where each thread of a process spent a run: on a core, runnable but
waiting for one (preempted, or woken and not yet scheduled), or asleep, and
asleep on what (the kernel's wait at the switch: a futex is a condition
variable or a lock, poll a socket). It answers "do the pipeline's stages
wait on each other, or on the cores?" without guessing from CPU samples.

Record the scheduler's events of one whole run, e.g. with a wrapper given to
benchmarks/loki_pass.py as the sluice binary:

  printf '#!/bin/sh\\nexec perf sched record -g -o /tmp/sched.data -- %s "$@"\\n' \\
      "$PWD/build/cli/sluice" > /tmp/wrap.sh && chmod +x /tmp/wrap.sh
  benchmarks/loki_pass.py /tmp/wrap.sh build/benchmarks/loki-rx CORPUS ""
  benchmarks/thread_states.py /tmp/sched.data [COMM]

COMM (default sluice) picks the process (of those so named, the one with
the most time on a core): its threads, busiest first, and those of any
other process named on the command line after it (e.g. loki-rx). The
machine's split counts every process of those names. Time asleep is charged to the wait the thread went to
sleep in; "runnable" adds the time a preempted thread waited for a core to
the delay between a wake-up and the next run.

SLUICE_TS_PID=PID picks the process of the first COMM by its pid (perf
sched records every process: another session's agent of the same name may
be busier); e.g. the pid of the process with rdk:broker threads in
`perf sched timehist -i DATA | grep rdk:broker`.

SLUICE_TS_SLICE=MS adds, per thread (the busiest 8), a line per MS of the
process's life: ms on a core / ms runnable without a core in that slice,
and where it slept most ("wait" column), so a stage that starves the next
shows as one thread asleep while the other runs, slice by slice (the
consumer group's join, the steady part, the tail)."""
import os
import collections
import re
import signal
import subprocess
import sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)
SLICE_MS = float(os.environ.get("SLUICE_TS_SLICE", "0"))
data = sys.argv[1] if len(sys.argv) > 1 else "perf.data"
names = sys.argv[2:] or ["sluice"]
out = subprocess.run(["perf", "sched", "timehist", "-i", data, "--state", "-g"],
                     capture_output=True, text=True, check=True).stdout
line_re = re.compile(r"\s*([\d.]+)\s+\[\d+\]\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S)\s*(.*)")
rows = collections.defaultdict(list)  # task -> (time, wait, delay, run, state, chain)
machine = collections.Counter()  # ms on a core: the named processes, the rest, idle
first = last = None
for ln in out.splitlines():
    m = line_re.match(ln)
    if not m:
        continue
    t, task, wait, delay, run, state, chain = m.groups()
    first, last = first or float(t), float(t)
    comm = task.split("[")[0]
    machine["idle" if "idle" in comm else "perf" if comm == "perf" else "task"] += float(run)
    rows[task].append((float(t), float(wait), float(delay), float(run), state, chain))


def reason(chain):
    """The kernel's wait, named by the first frame that says what it is."""
    for key, what in (("futex", "futex (condition variable / lock)"), ("poll", "poll (socket)"),
                      ("epoll", "epoll"), ("nanosleep", "nanosleep"), ("pipe", "pipe"),
                      ("io_schedule", "disk I/O"), ("page_fault", "page fault")):
        if key in chain:
            return what
    return chain.split(" <- ")[0] or "?"


def pid_of(task):
    """comm[tid/pid] or comm[pid]"""
    return task.split("[")[-1].rstrip("]").split("/")[-1] if "[" in task else ""


# Per name, the busiest process only (other agents may run beside it), with
# every thread of it whatever the thread's own name (librdkafka names its
# threads rdk:broker1, rdk:main, ...): a process is named by any of its
# threads.
busiest = {}
for name in names:
    per_pid = collections.Counter()
    for task, r in rows.items():
        if task.split("[")[0] == name:
            per_pid[pid_of(task)] += sum(x[3] for x in r)
    if per_pid:
        busiest[name] = per_pid.most_common(1)[0][0]
# SLUICE_TS_PID picks the first name's process by pid instead: perf sched
# records the whole machine, and another session's busier agent of the
# same name would be picked otherwise.
if os.environ.get("SLUICE_TS_PID") and names:
    busiest[names[0]] = os.environ["SLUICE_TS_PID"]
rows = {k: v for k, v in rows.items() if pid_of(k) in busiest.values()}
if first is not None:
    named = sum(x[3] for r in rows.values() for x in r)
    print(f"all cores, {last - first:.2f} s: {' + '.join(names)} {named:.0f} ms on a core, "
          f"other processes {machine['task'] - named:.0f} ms, perf {machine['perf']:.0f} ms, "
          f"idle {machine['idle']:.0f} ms")
tasks = sorted(rows, key=lambda k: -sum(r[3] for r in rows[k]))
for task in tasks:
    r = rows[task]
    if sum(x[3] for x in r) < 1.0:  # under 1 ms on a core: not a stage
        continue
    span = r[-1][0] - r[0][0]
    run = sum(x[3] for x in r)
    delay = sum(x[2] for x in r)
    preempted = 0.0
    asleep = collections.Counter()
    for prev, cur in zip(r, r[1:]):
        # cur's wait is the time since prev switched it out: runnable the
        # whole time if prev left it runnable (R), asleep otherwise.
        if prev[4] == "R":
            preempted += cur[1]
        else:
            asleep[reason(prev[5])] += cur[1]
    total = run + delay + preempted + sum(asleep.values())
    print(f"{task}: span {span:.2f} s, switches {len(r)}")
    print(f"  on a core          {run:8.1f} ms  {100 * run / total:5.1f} %")
    print(f"  runnable, no core  {delay + preempted:8.1f} ms  {100 * (delay + preempted) / total:5.1f} %")
    for what, ms in asleep.most_common(4):
        print(f"  asleep: {what:<34.34} {ms:8.1f} ms  {100 * ms / total:5.1f} %")


def slices(task_rows, t0, n):
    """Per slice of SLICE_MS from t0: [on a core, runnable, asleep by reason]."""
    out = [[0.0, 0.0, collections.Counter()] for _ in range(n)]

    def spread(a, b, k, why=None):  # an interval in s, charged to slices
        while a < b:
            i = int((a - t0) * 1000 / SLICE_MS)
            if i < 0 or i >= n:
                break
            end = min(b, t0 + (i + 1) * SLICE_MS / 1000)
            if end <= a:  # a on a slice's edge, rounded: charge the next slice
                end = min(b, a + 1e-9)
            if k == 2:
                out[i][2][why] += (end - a) * 1000
            else:
                out[i][k] += (end - a) * 1000
            a = end

    for prev, cur in zip(task_rows, task_rows[1:]):
        t, wait, delay, run = cur[0], cur[1] / 1000, cur[2] / 1000, cur[3] / 1000
        spread(t - run, t, 0)
        if prev[4] == "R":
            spread(t - run - delay - wait, t - run, 1)
        else:
            spread(t - run - delay, t - run, 1)
            spread(t - run - delay - wait, t - run - delay, 2, reason(prev[5]))
    return out


if SLICE_MS > 0 and tasks:
    t0 = min(rows[k][0][0] for k in tasks)
    t1 = max(rows[k][-1][0] for k in tasks)
    n = int((t1 - t0) * 1000 / SLICE_MS) + 1
    busy = [k for k in tasks if sum(x[3] for x in rows[k]) >= 1.0][:8]
    per = {k: slices(rows[k], t0, n) for k in busy}
    short = {"futex (condition variable / lock)": "futex", "poll (socket)": "poll"}
    print(f"\nper {SLICE_MS:.0f} ms slice: ms on a core/ms runnable, and the main wait")
    print("     t s | " + " | ".join(f"{k.split('/')[0][:22]:>22}" for k in busy))
    for i in range(n):
        cells = []
        for k in busy:
            on, rn, sl = per[k][i]
            w = sl.most_common(1)[0][0] if sl else ""
            cells.append(f"{on:4.0f}/{rn:4.0f} {short.get(w, w)[:12]:>12}")
        print(f"{i * SLICE_MS / 1000:8.2f} | " + " | ".join(cells))
