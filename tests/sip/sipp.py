"""A small fixture helper to run sipp (Debian ``sip-tester``) as a PSTN gateway on 127.0.0.1.

``Sipp(scenario, tmp_path, transport="u1").start()`` spawns sipp with bounded counts and time
(``-m``, ``-timeout``, ``-recv_timeout``), its control socket on loopback (``-ci``/``-cp``),
``-nostdin`` and message/error logs in ``tmp_path``; ``wait(reactor)`` returns a Deferred firing
with sipp's exit code; ``stop()`` ends only the process this helper started, by its pid.
Ports come from ``tests.ports`` (free on 127.0.0.1 in 25000-26999); ``start()`` waits until
sipp itself holds its SIP, media and control ports and, when sipp says one was taken in the
meantime, picks others and starts it again (``tests.ports.retry_ports``).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from twisted.internet import defer, task

from tests.peers import require_peer
from tests.ports import PortTaken, bound_by, free_port, port_taken, retry_ports

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp")


def _bound(port, kind):
    """Whether someone holds ``port`` on 127.0.0.1 (kept for callers that probe a port)."""
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
        self.process = None
        self._pick_ports()
        self.stdout = self.tmp_path / "sipp.out"

    def _pick_ports(self):
        self.port = free_port(both=True)
        self.control_port = free_port(socket.SOCK_DGRAM)
        self.media_port = free_port(socket.SOCK_DGRAM, even=True, count=4)

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
        """Spawn sipp and return once it holds its SIP, media and control ports (at most 5 s
        a try); a port taken meanwhile means new ports and another try (5 at most)."""
        require_peer("sipp")
        first = [True]

        def once():
            if not first[0]:
                self._pick_ports()
            first[0] = False
            return self._start_once()
        return retry_ports(once)

    def _start_once(self):
        with open(self.stdout, "wb") as out:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=self.tmp_path)
        kind = socket.SOCK_STREAM if self.transport.startswith("t") else socket.SOCK_DGRAM
        wanted = [(self.port, kind), (self.control_port, socket.SOCK_DGRAM)]
        if "-rtp_echo" in self.extra or self._uses_media():
            wanted.append((self.media_port, socket.SOCK_DGRAM))
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log()
                if port_taken(text):
                    raise PortTaken(text)
                raise RuntimeError(f"sipp exited at start: {text}")
            if all(bound_by(self.process.pid, p, k) for p, k in wanted):
                return self
            time.sleep(0.02)
        self.stop()
        if port_taken(self.log()):
            raise PortTaken(self.log())
        raise RuntimeError(f"sipp did not bind its ports in 5 s: {self.log()}")

    def _uses_media(self):
        try:
            return "[media_port]" in Path(self.scenario).read_text(errors="replace")
        except OSError:
            return False

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
