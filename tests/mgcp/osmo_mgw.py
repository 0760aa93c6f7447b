"""osmo-mgw (Debian ``osmo-mgw`` 1.10) as a real MGCP media gateway for tests, one at a time.

osmo-mgw's VTY (4243) and CTRL (4267) ports are fixed, so only one osmo-mgw can run on this
machine at once: ``OsmoMgw.start()`` first takes an exclusive lock on ``LOCK`` (waiting, bounded,
for another test run to finish with it), checks the fixed ports are free, then starts osmo-mgw on
loopback with its MGCP port and RTP port range picked by ``tests.ports`` (started again on other
ports when its bind fails). ``stop()`` ends it by its pid and releases the lock.

Config (PLATFORM-NOTES.md): ``mgcp`` with ``domain mgw``, ``bind ip 127.0.0.1``, ``bind port
PORT``, ``rtp port-range A B``, ``rtp bind-ip 127.0.0.1``, ``number endpoints 32``; endpoints
are ``rtpbridge/<hex>@mgw``.

Used by tests/mgcp/test_osmo_mgw.py.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol

from tests.ports import PortTaken, bound_by, free_port, port_taken, retry_ports_deferred

OSMO_MGW = shutil.which("osmo-mgw")
LOCK = "/tmp/callgw-osmo-mgw.lock"
FIXED_PORTS = (4243, 4267)          # VTY and CTRL, both TCP on 127.0.0.1
DOMAIN = "mgw"

CONFIG = """\
log stderr
 logging filter all 1
 logging color 0
 logging print category 1
 logging level set-all notice
line vty
 bind 127.0.0.1
mgcp
 domain {domain}
 bind ip 127.0.0.1
 bind port {port}
 rtp port-range {rtp_low} {rtp_high}
 rtp bind-ip 127.0.0.1
 number endpoints 32
"""


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Process(ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


class OsmoMgw:
    """One osmo-mgw process: ``port`` (MGCP, UDP), ``rtp_range``, ``domain``, ``log()``."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.port = None
        self.rtp_range = None
        self.domain = DOMAIN
        self.proc = None
        self._lock = None

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def log(self) -> str:
        return self.proc.output.decode(errors="replace") if self.proc else ""

    @defer.inlineCallbacks
    def _take_lock(self, limit: float):
        fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o666)
        waited = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited >= limit:
                    os.close(fd)
                    raise RuntimeError(f"{LOCK} held by another osmo-mgw user for {limit} s")
                yield task.deferLater(reactor, 0.5, lambda: None)
                waited += 0.5
        self._lock = fd
        waited = 0.0
        while not all(_tcp_free(p) for p in FIXED_PORTS):
            if waited >= 30:
                raise RuntimeError(f"osmo-mgw's fixed ports {FIXED_PORTS} are taken by "
                                   "someone else on this machine")
            yield task.deferLater(reactor, 0.5, lambda: None)
            waited += 0.5

    @defer.inlineCallbacks
    def start(self, lock_wait: float = 300.0):
        """Fires when osmo-mgw listens; fails (lock released) if it does not start."""
        yield self._take_lock(lock_wait)
        try:
            yield retry_ports_deferred(self._start_once)
        except BaseException:
            self._unlock()
            raise
        return self

    @defer.inlineCallbacks
    def _start_once(self):
        self.port = free_port(socket.SOCK_DGRAM)
        low = free_port(socket.SOCK_DGRAM, even=True, count=64)
        self.rtp_range = (low, low + 63)
        path = self.tmp_path / f"osmo-mgw-{self.port}.cfg"
        path.write_text(CONFIG.format(domain=self.domain, port=self.port, rtp_low=low,
                                      rtp_high=low + 63))
        self.proc = _Process()
        reactor.spawnProcess(self.proc, OSMO_MGW, [OSMO_MGW, "-c", str(path)], env=None,
                             path=str(self.tmp_path))
        for _ in range(100):
            yield task.deferLater(reactor, 0.05, lambda: None)
            if self.proc.ended.called:
                if port_taken(self.proc.output):
                    raise PortTaken(self.log())
                raise RuntimeError(f"osmo-mgw ended at start:\n{self.log()}")
            if bound_by(self.proc.transport.pid, self.port):
                return self
        yield self._kill()
        raise RuntimeError(f"osmo-mgw did not bind UDP {self.port}:\n{self.log()}")

    @defer.inlineCallbacks
    def _kill(self):
        if self.proc is None or self.proc.ended.called:
            return
        try:
            self.proc.transport.signalProcess("TERM")
        except Exception:  # noqa: BLE001 - it is already gone
            pass
        self.proc.ended.addTimeout(10, reactor)
        try:
            yield self.proc.ended
        except defer.TimeoutError:
            self.proc.transport.signalProcess("KILL")

    def _unlock(self):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    @defer.inlineCallbacks
    def stop(self):
        """End osmo-mgw (by its pid) and release the lock."""
        try:
            yield self._kill()
        finally:
            self._unlock()
