"""``twistd -n callgw`` as a real process for tests: start it with a configuration (and
arguments such as ``--role``), wait for a line in its output, stop it (SIGTERM, then SIGKILL
after 30 s). Every process a test starts this way must be stopped by the test (``stop``).

Used by tests/callpath/test_crash_recovery.py and tests/cluster/test_roles.py.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def twistd(tmp_path, config, *args, name: str = "twistd"):
    """Start ``twistd -n callgw --config CONFIG ARGS``; returns (process, log file)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = open(Path(tmp_path) / f"{name}-{time.monotonic_ns()}.log", "w+b")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
         "--pidfile=", "callgw", "--config", str(config), *args],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def output(log) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")


def wait_for(log, pattern, proc, limit=60.0):
    """The first match of ``pattern`` in the process's output and the output, once it is
    there; AssertionError (with the output's end) when the process ends or ``limit`` passes."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = output(log)
        found = re.search(pattern, text)
        if found:
            return found, text
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in callgw's output:\n" + output(log)[-4000:])


def stop(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
