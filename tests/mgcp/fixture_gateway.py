"""A FIXTURE, not a real gateway: a scripted MGCP residential/trunking gateway for what osmo-mgw
does not do (it never notifies, has no line package, never sends RSIP, and answers every
command it knows).

Its messages are RFC 3435's and RFC 3660's examples (tests/mgcp/builders.py): it answers CRCX
with ``I:``, ``Z:`` for a ``$`` name and an SDP, RQNT with 200, MDCX with 200, DLCX with 250 and
the example statistics, AUEP and AUCX with 200; it sends NTFY, RSIP and its own DLCX when the
test says so. It reads what the call agent sends with a regex of its own (not with
protocols.mgcp), keeps every datagram in ``received``, and can be told to stay silent for a verb
(``silent``), to answer a verb with a provisional 100 first and the final (carrying ``K:``) later
(``slow``), to answer AUCX for given connection ids with 515 (``lost``), to answer a verb
with an error code (``codes``), and to put another session description in its CRCX answers
(``sdp``). Real UDP on 127.0.0.1, port 0.

Used by tests/mgcp/test_fixture_gateway.py and tests/mgcp/test_leg.py.
"""
from __future__ import annotations

import re

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from tests.mgcp import builders as b

_FIRST = re.compile(r"([A-Za-z]{4}) (\d+) (\S+) MGCP 1\.0|(\d{3}) (\d+)")


def param(text: str, name: str):
    """The value of parameter line ``name`` in message ``text`` (None when absent)."""
    m = re.search(rf"^{name}:[ \t]*(.*?)\r?$", text, re.M | re.I)
    return m.group(1) if m else None


class FixtureGateway(DatagramProtocol):
    """See the module docstring. ``call_agent`` is where NTFY/RSIP/DLCX go."""

    def __init__(self, call_agent=None):
        self.call_agent = call_agent
        self.received: list[str] = []
        self.silent: set[str] = set()
        self.slow: dict[str, float] = {}
        self.lost: set[str] = set()
        self.next_line = 1
        self.sdp = b.SDP_GATEWAY        # what CRCX answers carry (tests with media: loopback)
        self.codes: dict[str, int] = {}  # verb -> an error code to answer it with
        self.port = None
        self._waiting: dict[int, defer.Deferred] = {}
        self._answers: dict[int, list[str]] = {}
        self._late = []

    # ---- life cycle ----
    def listen(self):
        self.port = reactor.listenUDP(0, self, interface="127.0.0.1")
        return self.port.getHost().port

    def close(self):
        for call in self._late:
            if call.active():
                call.cancel()
        return defer.maybeDeferred(self.port.stopListening)

    # ---- what the call agent sent ----
    def commands(self, verb=None):
        out = []
        for text in self.received:
            m = _FIRST.match(text)
            if m and m.group(1) and (verb is None or m.group(1).upper() == verb):
                out.append(text)
        return out

    def answers(self, tid):
        """The responses the call agent sent to our command ``tid`` (text)."""
        return self._answers.get(tid, [])

    def datagramReceived(self, data, addr):
        text = data.decode("utf-8", "replace")
        self.received.append(text)
        m = _FIRST.match(text)
        if not m:
            return
        if m.group(4):                              # a response to one of our commands
            tid = int(m.group(5))
            self._answers.setdefault(tid, []).append(text)
            d = self._waiting.pop(tid, None)
            if d is not None:
                d.callback(text)
            return
        verb, tid, endpoint = m.group(1).upper(), int(m.group(2)), m.group(3)
        if verb in self.silent:
            return
        reply = self._reply(verb, tid, endpoint, text)
        if verb in self.slow:
            self.transport.write(b.ok(tid, 100, "Trying"), addr)
            final = reply.replace(b"\n", b"\nK:\n", 1)
            self._late.append(reactor.callLater(self.slow[verb], self.transport.write, final,
                                                addr))
            return
        self.transport.write(reply, addr)

    def _reply(self, verb, tid, endpoint, text) -> bytes:
        if verb in self.codes:
            return b.ok(tid, self.codes[verb], "refused by the test")
        if verb == "CRCX":
            z = None
            if "$" in endpoint:
                z = endpoint.replace("$", str(self.next_line))
                self.next_line += 1
            return b.crcx_ok(tid, connection_id=f"FDE234C{tid % 10}", z=z, sdp=self.sdp)
        if verb == "DLCX":
            return b.dlcx_ok(tid)
        if verb == "AUCX" and param(text, "I") in self.lost:
            return b.ok(tid, 515, "Incorrect connection-id")
        if verb in ("RQNT", "MDCX", "AUEP", "AUCX", "EPCF"):
            return b.ok(tid)
        return b.ok(tid, 504, "Unknown or unsupported command")

    # ---- our commands to the call agent ----
    def send(self, data: bytes, tid: int) -> defer.Deferred:
        """Send ``data`` (a command with transaction ``tid``) to the call agent; fires with
        the text of its answer."""
        d = self._waiting[tid] = defer.Deferred()
        self.transport.write(data, self.call_agent)
        return d
