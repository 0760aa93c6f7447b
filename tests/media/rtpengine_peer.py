"""A real rtpengine (Debian ``rtpengine-daemon``, userspace forwarding) started by a test.

``RtpengineDaemon(tmp_path).start()`` runs ``rtpengine`` in the foreground on 127.0.0.1 with
no configuration file (``--config-file=none``: the packaged one would bind 2223-2225), its ng
control port, CLI port and RTP port range picked in 25000-26999 (tests/ports.py; a clash picks
others), and waits until it answers an ng ``ping``. ``stop()`` ends it by its pid.

Tests: tests/media/test_media_rtpengine.py.
"""
from __future__ import annotations

import socket
import subprocess
import time

from tests.peers import require_peer
from tests.ports import PortTaken, free_port, port_taken, retry_ports

PORTS = 40                      # rtpengine's RTP/RTCP range: 20 calls' pairs per side


class RtpengineDaemon:
    """One rtpengine process for one test (see the module docstring)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.proc = None
        self.ng_port = None
        self.ports = None
        self.log_path = tmp_path / "rtpengine.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ng_port}"

    def start(self) -> "RtpengineDaemon":
        binary = require_peer("rtpengine")
        retry_ports(lambda: self._start(binary))
        return self

    def _start(self, binary):
        self.ng_port = free_port(socket.SOCK_DGRAM)
        cli = free_port(socket.SOCK_STREAM)
        low = free_port(even=True, count=PORTS)
        self.ports = (low, low + PORTS - 1)
        argv = [binary, "--config-file=none", "--foreground", "--log-stderr", "--log-level=6",
                "--table=-1", "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{self.ng_port}",
                f"--listen-cli=127.0.0.1:{cli}", f"--port-min={low}",
                f"--port-max={low + PORTS - 1}", "--delete-delay=0", "--timeout=60",
                f"--pidfile={self.tmp_path / 'rtpengine.pid'}"]
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            for _ in range(50):
                if self.proc.poll() is not None:
                    text = self.log()
                    self.proc = None
                    if port_taken(text):
                        raise PortTaken(text)
                    raise RuntimeError(f"rtpengine exited at start:\n{text}")
                s.sendto(b"ping1 d7:command4:pinge", ("127.0.0.1", self.ng_port))
                try:
                    if s.recv(1000).startswith(b"ping1 "):
                        return
                except OSError:
                    time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"rtpengine did not answer ng ping:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
