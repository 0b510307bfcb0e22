#!/usr/bin/env python3
"""loki_push relay against the direct path, in the same run, on the same
corpus: (a) a sluice agent reads a file and ships it with its Loki sink to
the Loki test receiver (tests/loki_receiver.c); (b) the same agent ships to a
second sluice's `loki_push` input, which relays to the receiver with its own
Loki sink (ack: delivered, the default). The clock runs from the first
agent's start until the receiver has written every entry. Prints MB/s,
lines/s and each sluice's CPU seconds, the relay's pushes answered 204 and
their mean wait for its sinks (from its /metrics), and the relay's ratio to
the direct path (issue 18 goal: >= 0.8x).

Usage: benchmarks/loki_push_relay.py [BUILD_DIR] (SLUICE_RELAY_LINES,
default 500,000; SLUICE_RELAY_KIND, default json; SLUICE_RELAY_CONCURRENCY,
the Loki sinks' `concurrency`, default 4; SLUICE_RELAY_ACK, the relay's
`ack`, default delivered; SLUICE_RELAY_MIDDLE_WAIT, the relay sink's
`max_batch_wait`, default 10ms; the edge's is 100ms)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import cpu_s, free_port

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
LINES = int(os.environ.get("SLUICE_RELAY_LINES", "500000"))
KIND = os.environ.get("SLUICE_RELAY_KIND", "json")
SLUICE = os.path.join(BUILD, "cli", "sluice")
RECEIVER = os.path.join(BUILD, "tests", "loki-receiver")


def count_lines(path, state):
    try:
        with open(path, "rb") as f:
            f.seek(state[0])
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                state[1] += b.count(b"\n")
                state[0] += len(b)
    except FileNotFoundError:
        pass
    return state[1]


def wait_log(path, needle, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path) as f:
                if needle in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{path}: no '{needle}' within {timeout}s")


def agent(d, name, yaml):
    cfg = os.path.join(d, name + ".yml")
    with open(cfg, "w") as f:
        f.write(f"data_dir: {d}/{name}-data\n" + yaml)
    log = open(os.path.join(d, name + ".log"), "w")
    p = subprocess.Popen([SLUICE, "run", "-c", cfg], stdout=log, stderr=subprocess.STDOUT)
    wait_log(log.name, "agent_started")
    return p


SINK = """sinks:
  - name: lk
    type: loki
    url: "http://127.0.0.1:{port}/loki/api/v1/push"
    max_batch_wait: {wait}
    concurrency: {conc}
"""
# Requests in flight per Loki sink (both paths alike): with `ack: delivered`
# a push is answered after the relay's own delivery, so a sender with one
# request in flight waits a hop's batch time per push.
CONC = int(os.environ.get("SLUICE_RELAY_CONCURRENCY", "4"))
ACK = os.environ.get("SLUICE_RELAY_ACK", "delivered")
# The relay's Loki sink `max_batch_wait`: with `ack: delivered` each push
# waits for it when its entries do not fill a request.
MIDDLE_WAIT = os.environ.get("SLUICE_RELAY_MIDDLE_WAIT", "10ms")


def relay_metrics(port):
    """The relay's pushes answered 204 and their mean wait for the sinks'
    acknowledgement (sluice_loki_push_ack_wait_seconds_total), in ms."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    pushes = wait = 0.0
    for line in text.splitlines():
        if line.startswith("sluice_loki_push_requests_total{") and 'code="204"' in line:
            pushes += float(line.rsplit(" ", 1)[1])
        elif line.startswith("sluice_loki_push_ack_wait_seconds_total{"):
            wait += float(line.rsplit(" ", 1)[1])
    return pushes, (wait / pushes * 1000 if pushes else float("nan"))


def run(d, corpus, relay):
    out = os.path.join(d, "recv.jsonl")
    rport = free_port()
    recv = subprocess.Popen([RECEIVER, "--port", str(rport), "--out", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    procs = []
    target = rport
    mport = None
    if relay:
        pport = free_port()
        mport = free_port()
        procs.append(agent(d, "middle", f"""metrics:
  listen: "127.0.0.1:{mport}"
inputs:
  - name: push
    type: loki_push
    listen: "127.0.0.1:{pport}"
    ack: {ACK}
""" + SINK.format(port=rport, conc=CONC, wait=MIDDLE_WAIT)))
        target = pport
    t0 = time.time()
    procs.append(agent(d, "edge", f"""inputs:
  - name: app
    type: file
    paths: ["{corpus}"]
    start_at: beginning
    labels: {{job: bench}}
""" + SINK.format(port=target, conc=CONC, wait="100ms")))
    state = [0, 0]
    while count_lines(out, state) < LINES:
        if time.time() - t0 > 600:
            raise SystemExit(f"only {state[1]} of {LINES} entries within 600s")
        time.sleep(0.05)
    dt = time.time() - t0
    cpu = [cpu_s(p.pid) for p in procs]
    acks = relay_metrics(mport) if mport else None
    for p in procs + [recv]:
        p.terminate()
    for p in procs + [recv]:
        p.wait()
    os.unlink(out)
    return dt, cpu, acks


def main():
    d = tempfile.mkdtemp(prefix="sluice-relay-")
    try:
        corpus = os.path.join(d, "corpus.log")
        with open(corpus, "wb") as f:
            subprocess.run([os.path.join(BUILD, "benchmarks", "gen"), "--kind", KIND, "--lines",
                            str(LINES)], check=True, stdout=f)
        mb = os.path.getsize(corpus) / 1e6
        rows = []
        for relay in (False, True):
            sub = os.path.join(d, "relay" if relay else "direct")
            os.mkdir(sub)
            dt, cpu, acks = run(sub, corpus, relay)
            name = "file -> loki_push -> Loki" if relay else "file -> Loki"
            rows.append((name, dt, cpu))
            print(f"{name:28s} {LINES / dt:12,.0f} lines/s {mb / dt:8.1f} MB/s  "
                  f"{dt:6.2f} s  sluice CPU s: {' + '.join(f'{c:.2f}' for c in cpu)}"
                  + (f"  relay: {acks[0]:.0f} pushes, {acks[1]:.1f} ms ack wait each" if acks else ""))
        print(f"relay / direct: {rows[0][1] / rows[1][1]:.2f}x (goal >= 0.8x), "
              f"{LINES:,} lines, {mb:.1f} MB, concurrency {CONC}, ack {ACK}, relay max_batch_wait {MIDDLE_WAIT}, load {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
