#!/usr/bin/env python3
"""Syslog over TCP: sluice's `syslog` input against rsyslog `imtcp`, in the
same run, on the same corpus, with the same sender (one connection, newline
framing, as fast as the receiver takes it). Both receivers parse the header
and write the message part of every line to a file; the clock stops when
the file holds every line. Prints lines/s, MB/s and receiver CPU seconds,
and sluice's ratio to rsyslog (issue 18 goal: >= 3x).

Usage: benchmarks/syslog_tcp.py [BUILD_DIR] (SLUICE_SYSLOG_LINES, default
1,000,000; SLUICE_SYSLOG_KIND syslog3164 or syslog5424)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import LineCounter, cpu_s, free_port

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
LINES = int(os.environ.get("SLUICE_SYSLOG_LINES", "1000000"))
KIND = os.environ.get("SLUICE_SYSLOG_KIND", "syslog3164")


def connect(port, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"receiver exited with {proc.returncode}")
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            time.sleep(0.05)
    raise SystemExit("receiver did not listen")


def measure(name, argv, port, out, data, workdir):
    err = open(os.path.join(workdir, name + ".err"), "wb")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    try:
        s = connect(port, proc)
        cpu0 = cpu_s(proc.pid)
        t0 = time.monotonic()
        s.sendall(data)
        s.close()
        counter = LineCounter(out)
        while counter.count() < LINES:
            if proc.poll() is not None or time.monotonic() - t0 > 600:
                raise SystemExit(f"{name}: {counter.n} of {LINES} lines")
            time.sleep(0.02)
        secs = time.monotonic() - t0
        cpu = cpu_s(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(30)
    return secs, cpu


def main():
    gen = os.path.join(BUILD, "benchmarks", "gen")
    sluice = os.path.join(BUILD, "cli", "sluice")
    d = tempfile.mkdtemp(prefix="sluice-syslog-bench-")
    try:
        data = subprocess.run([gen, "--kind", KIND, "--lines", str(LINES)], check=True,
                              stdout=subprocess.PIPE).stdout
        mb = len(data) / 1e6
        rows = []
        port, out = free_port(), os.path.join(d, "sluice.out")
        cfg = os.path.join(d, "sluice.yml")
        with open(cfg, "w") as f:
            f.write(f"""dev: true
data_dir: {d}/data
inputs:
  - name: net
    type: syslog
    listen_tcp: "127.0.0.1:{port}"
    framing: newline
sinks:
  - name: out
    type: file
    format: raw
    path: {out}
""")
        rows.append(("sluice syslog", *measure("sluice", [sluice, "run", "-c", cfg], port, out,
                                               data, d)))
        if shutil.which("rsyslogd"):
            port, out = free_port(), os.path.join(d, "rsyslog.out")
            os.makedirs(os.path.join(d, "work"))
            conf = os.path.join(d, "rsyslog.conf")
            with open(conf, "w") as f:
                f.write(f"""global(workDirectory="{d}/work" maxMessageSize="64k")
module(load="imtcp")
template(name="msg" type="string" string="%msg%\\n")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="r")
ruleset(name="r") {{
  action(type="omfile" file="{out}" template="msg")
}}
""")
            rows.append(("rsyslog imtcp", *measure(
                "rsyslog", ["rsyslogd", "-n", "-f", conf, "-i", os.path.join(d, "rs.pid")],
                port, out, data, d)))
        else:
            print("rsyslogd not installed (apt-get install -y rsyslog): peer skipped")
        print(f"syslog over TCP, {KIND}, {LINES} lines, {mb:.1f} MB, one connection")
        print(f"{'receiver':<16} {'lines/s':>12} {'MB/s':>8} {'CPU s':>7}")
        for name, secs, cpu in rows:
            print(f"{name:<16} {LINES / secs:>12,.0f} {mb / secs:>8.1f} {cpu:>7.2f}")
        if len(rows) == 2:
            print(f"ratio sluice/rsyslog lines/s: {rows[1][1] / rows[0][1]:.2f}x")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
