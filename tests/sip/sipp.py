"""A small fixture helper to run sipp (Debian ``sip-tester``) as a PSTN gateway on 127.0.0.1.

``Sipp(scenario, tmp_path, transport="u1").start()`` spawns sipp with bounded counts and time
(``-m``, ``-timeout``, ``-recv_timeout``), its control socket on loopback (``-ci``/``-cp``),
``-nostdin`` and message/error logs in ``tmp_path``; ``wait(reactor)`` returns a Deferred firing
with sipp's exit code; ``stop()`` ends only the process this helper started, by its pid.
Free ports come from the OS (bound once to check) within 25000-26999 when possible.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from twisted.internet import defer, task

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp")


def free_port(kind=socket.SOCK_DGRAM, both=False, even=False):
    """A port free on 127.0.0.1 (UDP, or UDP and TCP with ``both``) in 25000-26999."""
    for _ in range(200):
        port = random.randrange(25000, 27000)
        if even:
            port &= ~1
        kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if both else (kind,)
        if even:
            ports = (port, port + 1, port + 2, port + 3)
        else:
            ports = (port,)
        try:
            for k in kinds:
                for p in ports:
                    with socket.socket(socket.AF_INET, k) as s:
                        s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port in 25000-26999")


def _bound(port, kind):
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Sipp:
    """One sipp process playing a scenario from tests/sip/scenarios/ (a gateway by default)."""

    def __init__(self, scenario, tmp_path, transport="u1", calls=1, timeout=20, extra=(),
                 remote=None):
        """``remote`` (a port on 127.0.0.1) makes sipp a UAC sending to it."""
        self.scenario = str(SCENARIOS / scenario)
        self.tmp_path = Path(tmp_path)
        self.transport = transport
        self.calls = calls
        self.timeout = timeout
        self.extra = list(extra)
        self.remote = remote
        self.port = free_port(both=True)
        self.control_port = free_port(socket.SOCK_DGRAM)
        self.media_port = free_port(socket.SOCK_DGRAM, even=True)
        self.process = None
        self.stdout = self.tmp_path / "sipp.out"

    @property
    def argv(self):
        return [SIPP, "-sf", self.scenario, "-i", "127.0.0.1", "-p", str(self.port),
                "-t", self.transport, "-m", str(self.calls),
                "-mi", "127.0.0.1", "-mp", str(self.media_port),
                "-ci", "127.0.0.1", "-cp", str(self.control_port), "-nostdin",
                "-timeout", f"{self.timeout}s", "-timeout_error",
                "-recv_timeout", f"{self.timeout * 1000}",
                "-trace_msg", "-message_file", str(self.tmp_path / "sipp_messages.log"),
                "-trace_err", "-error_file", str(self.tmp_path / "sipp_errors.log"),
                ] + self.extra + ([f"127.0.0.1:{self.remote}"] if self.remote else [])

    def start(self):
        """Spawn sipp and return once its SIP port is bound (at most 5 s)."""
        with open(self.stdout, "wb") as out:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=self.tmp_path)
        kind = socket.SOCK_STREAM if self.transport.startswith("t") else socket.SOCK_DGRAM
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sipp exited at start: {self.log()}")
            if _bound(self.port, kind):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("sipp did not bind its port in 5 s")

    def wait(self, reactor, limit=None):
        """A Deferred firing with sipp's exit code; it is killed after ``limit`` seconds."""
        limit = self.timeout + 5 if limit is None else limit
        start = reactor.seconds()

        def poll():
            code = self.process.poll()
            if code is not None:
                return code
            if reactor.seconds() - start > limit:
                self.stop()
                return -999
            return task.deferLater(reactor, 0.05, poll)

        return defer.maybeDeferred(poll)

    def stop(self):
        """End the sipp this helper started (by pid), if it still runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(3)

    def log(self):
        """sipp's screen output, error log and message log, for a failing assertion."""
        parts = []
        for name in ("sipp.out", "sipp_errors.log", "sipp_messages.log"):
            path = self.tmp_path / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-6000:])
        return "\n".join(parts)
