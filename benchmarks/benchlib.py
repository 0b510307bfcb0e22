"""What the benchmark scripts share: a free loopback port, a process's CPU
seconds and peak RSS from /proc, a line counter for a growing file, and a
stop that cannot hang. Scripts import it from their own folder."""
import os
import signal
import socket
import subprocess

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A port on 127.0.0.1 free a moment ago (the agent binds it next)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_s(pid):
    """User + system CPU seconds of a live process; nan once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")


def hwm_mib(pid):
    """Peak RSS (VmHWM) in MiB of a live process; nan once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


class LineCounter:
    """Newlines of a growing file, reading only what is new."""

    def __init__(self, path):
        self.path, self.off, self.n = path, 0, 0

    def count(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    self.n += b.count(b"\n")
                    self.off += len(b)
        except FileNotFoundError:
            pass
        return self.n


def stop(proc, timeout=20):
    """SIGTERM, then SIGKILL after timeout seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def file_json_config(d, corpus, sinks_yaml):
    """An agent config in folder d: CORPUS (hard-linked, so on the same file
    system as d) read from the beginning by a file input with the JSON step,
    into the sinks given as YAML list items. Returns the config's path."""
    os.makedirs(os.path.join(d, "in"))
    os.link(corpus, os.path.join(d, "in", "app.log"))
    cfg = os.path.join(d, "sluice.yml")
    with open(cfg, "w") as f:
        f.write(f"""data_dir: {d}/data
log: {{ level: warn }}
inputs:
  - name: app
    type: file
    paths: ["{d}/in/*.log"]
    start_at: beginning
    parse:
      - json: {{}}
sinks:
""" + sinks_yaml)
    return cfg


def filled_mock_cluster(build, tmp, lines, codec, partitions, extra=()):
    """The corpus (`gen --kind json --lines LINES`, in tmp) produced into
    topic `logs` of a 3-broker librdkafka mock cluster (`kafka_mock
    --produce`, extra: more of its arguments), which keeps serving it.
    Returns (mock process, bootstrap servers, corpus path, message bytes
    without the newlines, error); on an error the process is still
    returned, for the caller to stop."""
    corpus = os.path.join(tmp, "corpus.json")
    with open(corpus, "wb") as f:
        subprocess.run([os.path.join(build, "benchmarks", "gen"), "--kind", "json", "--lines",
                        str(lines)], stdout=f, check=True)
    nbytes = os.path.getsize(corpus) - lines
    err_path = os.path.join(tmp, "kafka_mock.err")
    mock = subprocess.Popen([os.path.join(build, "benchmarks", "kafka_mock"), "--produce", corpus,
                             "--compression", codec, "--partitions", str(partitions),
                             "--brokers", "3", *extra],
                            stdout=subprocess.PIPE, stderr=open(err_path, "wb"))
    boot = mock.stdout.readline().decode().strip()
    produced = mock.stdout.readline().decode().strip()
    err = None
    if not boot or produced != f"produced {lines}":
        with open(err_path) as f:
            err = f.read().strip() or "no answer"
    return mock, boot, corpus, nbytes, err
