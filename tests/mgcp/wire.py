"""MGCP on the wire, judged by Wireshark: dumpcap captures loopback (bounded, filtered on the
test's ports) and tshark decodes every datagram as MGCP (``-d udp.port==P,mgcp``) and reports
any malformed packet or expert error. Used by tests/mgcp/test_osmo_mgw.py and
tests/mgcp/test_fixture_gateway.py."""
from __future__ import annotations

import secrets
import socket

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue

from tests.peers import require_peer
from tests.ports import free_port


def _within(d, seconds):
    d.addTimeout(seconds, reactor)
    return d


class Capture(ProcessProtocol):
    """dumpcap on ``lo`` for at most ``seconds``. ``start()`` fires once a canary datagram sent
    after dumpcap said "Capturing on" is in the file (it says so some tens of milliseconds
    before it really captures); ``stop()`` waits for another canary to reach the file (dumpcap
    writes in batches and drops the last one when interrupted), then ends it by its pid and
    fires when it has exited."""

    def __init__(self, path, ports, seconds=60):
        self.path = str(path)
        self.capturing = defer.Deferred()
        self.ended = defer.Deferred()
        self.err = b""
        self.canary_port = free_port(socket.SOCK_DGRAM)
        flt = "udp and (" + " or ".join(f"port {p}" for p in (*ports, self.canary_port)) + ")"
        self.argv = ["dumpcap", "-i", "lo", "-f", flt, "-a", f"duration:{seconds}", "-w",
                     self.path]

    @defer.inlineCallbacks
    def start(self):
        reactor.spawnProcess(self, require_peer("dumpcap"), self.argv, env=None)
        yield _within(self.capturing, 15)
        yield self._canary()

    @defer.inlineCallbacks
    def _canary(self):
        """Send a canary until the file holds it: everything before it is in the file too."""
        token = f"callgw-capture-canary-{secrets.token_hex(8)}".encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(300):
                s.sendto(token, ("127.0.0.1", self.canary_port))
                yield task.deferLater(reactor, 0.05, lambda: None)
                try:
                    with open(self.path, "rb") as f:
                        if token in f.read():
                            return
                except OSError:
                    pass
                if self.ended.called:
                    break
        raise RuntimeError(f"dumpcap never captured its canary: {self.err!r}")

    def errReceived(self, data):
        self.err += data
        if b"Capturing on" in self.err and not self.capturing.called:
            self.capturing.callback(None)

    def processEnded(self, reason):
        if not self.capturing.called:
            self.capturing.errback(RuntimeError(self.err.decode(errors="replace")))
        self.ended.callback(None)

    @defer.inlineCallbacks
    def stop(self):
        if not self.ended.called:
            try:
                yield self._canary()
            except RuntimeError:
                pass
            try:
                self.transport.signalProcess("INT")
            except Exception:  # noqa: BLE001 - already gone
                pass
        yield _within(self.ended, 15)


@defer.inlineCallbacks
def mgcp_verdict(path, ports):
    """(rows, problems): one row per UDP datagram captured, as (udp.srcport, udp.dstport,
    verb or return code, transaction id), the verb/code empty when tshark did not read the
    datagram as MGCP; and the lines of tshark's verbose output that speak of a malformed packet
    or an expert error (empty when all is well)."""
    tshark = require_peer("tshark")
    decode = []
    for p in ports:
        decode += ["-d", f"udp.port=={p},mgcp"]
    out, err, code = yield getProcessOutputAndValue(
        tshark, ["-r", str(path), *decode, "-Y", "udp", "-T", "fields", "-e", "udp.srcport",
                 "-e", "udp.dstport", "-e", "mgcp.req.verb", "-e", "mgcp.rsp.rspcode",
                 "-e", "mgcp.transid"], reactor=reactor)
    assert code == 0, err
    rows = []
    for line in out.decode().splitlines():
        src, dst, verb, rsp, tid = (line.split("\t") + [""] * 5)[:5]
        rows.append((int(src), int(dst), verb or rsp, tid))
    out, err, code = yield getProcessOutputAndValue(
        tshark, ["-r", str(path), *decode, "-V"], reactor=reactor)
    assert code == 0, err
    problems = [line.strip() for line in out.decode(errors="replace").splitlines()
                if "Malformed" in line or "Expert Info (Error" in line]
    return rows, problems
