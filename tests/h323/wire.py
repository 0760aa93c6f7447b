"""Wire judge for H.323 tests: dumpcap captures loopback, tshark decodes what was sent.

``capture(ports)`` is a context manager that runs dumpcap on ``lo`` (filtered on the test's TCP/UDP
ports, bounded in time) and yields a ``Capture``; after the block, ``capture.packets()`` gives tshark's
dissection per frame and ``capture.problems()`` every "Malformed" or expert error/warning. tshark finds
H.225.0 over TPKT on any port by its heuristics and follows H.245 to the address given in the
call signalling (we never force ``-d tcp.port==P,tpkt``, which picks the wrong dissector in 4.0); RAS
is dissected by decode-as on the gatekeeper's UDP port, which is what the ``ras_ports`` argument says.

With ``CI=true`` a missing dumpcap/tshark is a failure, elsewhere a skip (``require_tshark``, through
``tests.peers.require_peer``).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

from tests.peers import require_peer


def require_tshark():
    require_peer("dumpcap", "tshark")


class Capture:
    def __init__(self, path, ras_ports=(), h245_ports=()):
        self.path = path
        self.ras_ports = tuple(ras_ports)
        self.h245_ports = tuple(h245_ports)

    def _tshark(self, *extra):
        argv = ["tshark", "-r", self.path, "-o", "tcp.desegment_tcp_streams:TRUE"]
        for port in self.ras_ports:
            argv += ["-d", f"udp.port=={port},h225"]
        argv += list(extra)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def verbose(self):
        """tshark -V text of the whole capture."""
        return self._tshark("-V")

    def packets(self):
        """One dict per frame: tshark's JSON ``layers``."""
        return [p["_source"]["layers"] for p in json.loads(self._tshark("-T", "json") or "[]")]

    def problems(self):
        """Lines of tshark's expert info at warning level or above, and any "Malformed"."""
        out = self._tshark("-z", "expert,warn", "-q")
        text = self.verbose()
        lines = [l for l in text.splitlines() if "Malformed" in l]
        in_table = False
        for line in out.splitlines():
            if line.startswith(("Errors (", "Warnings (")):
                in_table = True
            if in_table and line.strip() and not line.startswith("="):
                lines.append(line)
        return lines

    def layers(self):
        """Counts of tshark's top-level layers over the capture: "TPKT", "Q.931", "H.225.0 CS",
        "H.245", "H.225.0 RAS" (one per message, however TCP packed them)."""
        counts = {"TPKT": 0, "Q.931": 0, "H.225.0 CS": 0, "H.245": 0, "H.225.0 RAS": 0}
        for line in self.verbose().splitlines():
            if not line or line[0] == " ":
                continue
            for name in counts:
                if line == name or line.startswith(name + ","):
                    counts[name] += 1
        return counts

    def protocols(self):
        """The frame.protocols string of every frame."""
        return self._tshark("-T", "fields", "-e", "frame.protocols").split()


PROBE_PORT = 9  # discard: dumpcap's filter includes it so a probe shows the capture is live


def _wait_live(path, timeout=15.0):
    """dumpcap says "Capturing on" before its filter sees packets: send UDP probes to the discard
    port until the capture file grows. Used at the end too: once a probe sent after the test's
    traffic is in the file, so is everything before it (a loaded machine otherwise loses the last
    segments when dumpcap is stopped, and tshark then warns about ACKed segments not captured)."""
    start = os.path.getsize(path) if os.path.exists(path) else 0
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        while time.monotonic() < deadline:
            probe.sendto(b"probe", ("127.0.0.1", PROBE_PORT))
            time.sleep(0.05)
            if os.path.exists(path) and os.path.getsize(path) > start:
                return
    raise AssertionError("dumpcap captured no probe in time")


@contextlib.contextmanager
def capture(ports, ras_ports=(), seconds=60):
    """dumpcap on lo for the given ports (TCP or UDP) while the block runs."""
    require_tshark()
    tmp = tempfile.mkdtemp(prefix="h323cap")
    path = os.path.join(tmp, "cap.pcapng")
    flt = " or ".join(f"port {p}" for p in (*ports, PROBE_PORT))
    proc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", flt, "-a", f"duration:{seconds}",
                             "-w", path], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        seen = ""
        while "Capturing on" not in seen:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"dumpcap did not start: {seen}")
            seen += line
            if time.monotonic() > deadline:
                raise AssertionError(f"dumpcap did not start in time: {seen}")
        _wait_live(path)
        cap = Capture(path, ras_ports)
        yield cap
        time.sleep(0.2)
        _wait_live(path)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        proc.stderr.close()
