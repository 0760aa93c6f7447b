"""callgw/connlimits.py with a fake clock and fake transports: the per-source cap, the TLS
handshake deadline, and the rate-limited report."""
from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from callgw.connlimits import ConnectionLimits, SourceCap, SourceLog, guarded_factory
from callgw.config import defaults


class _Echo(Protocol):
    pass


def _addr(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


def _connect(factory, host: str):
    proto = factory.buildProtocol(_addr(host))
    if proto is None:
        return None, None
    transport = StringTransport(peerAddress=_addr(host))
    proto.makeConnection(transport)
    return proto, transport


def _captured():
    events = []
    globalLogPublisher.addObserver(events.append)
    return events


def test_cap_counts_per_source_and_frees_slots():
    clock = Clock()
    cap = SourceCap(Factory.forProtocol(_Echo), 2, SourceLog(clock, "test"))
    a1, _ = _connect(cap, "192.0.2.1")
    a2, _ = _connect(cap, "192.0.2.1")
    assert _connect(cap, "192.0.2.1") == (None, None)       # third from the same source
    b1, _ = _connect(cap, "192.0.2.2")                        # another source is fine
    assert b1 is not None
    a1.connectionLost(None)
    assert _connect(cap, "192.0.2.1")[0] is not None          # a slot came free
    assert cap.open == {"192.0.2.1": 2, "192.0.2.2": 1}


def test_cap_zero_is_off():
    cap = SourceCap(Factory.forProtocol(_Echo), 0, SourceLog(Clock(), "test"))
    assert all(_connect(cap, "192.0.2.1")[0] is not None for _ in range(1000))


class _FakeHandle:
    def __init__(self):
        self.finished = None

    def get_peer_finished(self):
        return self.finished


class _FakeTls(Protocol):
    """Stands in for TLSMemoryBIOProtocol: only ``getHandle()`` is asked."""

    def __init__(self):
        self.handle = _FakeHandle()

    def getHandle(self):
        return self.handle


def test_handshake_deadline_drops_only_unfinished_handshakes():
    clock = Clock()
    cap = SourceCap(Factory.forProtocol(_FakeTls), 10, SourceLog(clock, "test"), clock, 5.0)
    idle, idle_t = _connect(cap, "192.0.2.1")
    done, done_t = _connect(cap, "192.0.2.1")
    done.wrappedProtocol.handle.finished = b"client finished"
    clock.advance(4.9)
    assert not idle_t.disconnecting and not done_t.disconnecting
    clock.advance(0.2)
    assert idle_t.disconnecting                 # aborted: never finished its handshake
    assert not done_t.disconnecting
    assert not clock.getDelayedCalls()


def test_closed_connection_cancels_its_deadline():
    clock = Clock()
    cap = SourceCap(Factory.forProtocol(_FakeTls), 10, SourceLog(clock, "test"), clock, 5.0)
    proto, _ = _connect(cap, "192.0.2.1")
    proto.connectionLost(None)
    assert not clock.getDelayedCalls() and cap.open == {}


def test_report_is_one_line_per_source_and_minute():
    clock = Clock()
    events = _captured()
    try:
        report = SourceLog(clock, "web-https")
        for _ in range(50):
            report.note("192.0.2.9", "over 2 connections: refused")
        clock.advance(61)
        report.note("192.0.2.9", "over 2 connections: refused")
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [e for e in events if e.get("listener") == "web-https"]
    assert len(lines) == 2
    assert lines[0]["source"] == "192.0.2.9" and lines[1]["more"].startswith(" (and 49 more")


def test_limits_from_config_and_plain_tcp_factory():
    cfg = defaults().with_overrides({"limits": {"tls_handshake_timeout": 3.0,
                                                "connections_per_source": 7}})
    limits = ConnectionLimits.from_config(cfg)
    assert limits == ConnectionLimits(3.0, 7)
    factory = guarded_factory(Factory.forProtocol(_Echo), limits, Clock(), "x")
    assert isinstance(factory, SourceCap) and factory.handshake_timeout == 0.0
