#!/usr/bin/env python3
"""A failing C test still stops what it started and removes its folders.

Runs tests/selftest/selftest_fail_cleanup.c, which starts an agent in a
temporary folder and then fails an assertion before its own cleanup.
A second test in the same program must find the agent dead and the folder
gone when it begins (sl_t_run_group in tests/helpers.c stops and removes
what each test left), and both must stay gone after the program exits."""
import os
import subprocess
import sys
import tempfile
import time


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def main():
    build = os.environ["SLUICE_BUILD"]
    prog = os.path.join(build, "tests", "selftest_fail_cleanup")
    with tempfile.TemporaryDirectory(prefix="sluice-cleanup-") as tmp:
        out = os.path.join(tmp, "said.txt")
        env = dict(os.environ, SLUICE_SELFTEST_OUT=out, TMPDIR=tmp)
        env.pop("SLUICE_KEEP_TMP", None)
        r = subprocess.run([prog], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0, f"the self-test was meant to fail: {r.stdout}{r.stderr}"
        said = dict(l.split("=", 1) for l in open(out).read().split())
        folder, pid = said["dir"], int(said["pid"])
        assert folder.startswith(tmp), folder
        assert said.get("next_saw_agent") == "0", \
            f"agent {pid} still ran when the next test began: {said}"
        assert said.get("next_saw_dir") == "0", \
            f"{folder} was still there when the next test began: {said}"
        assert not os.path.exists(folder), f"{folder} is left after the failed test"
        # The agent gets SIGKILL when its test process ends; it is reaped by
        # whoever adopted it. Wait for that event, bounded.
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), f"agent {pid} outlived its failed test"
        left = os.listdir(tmp)
        assert left == ["said.txt"], f"left behind: {left}"
    print(f"failed test: folder removed and agent {pid} gone before the next test began")


if __name__ == "__main__":
    sys.exit(main())
