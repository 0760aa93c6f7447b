"""Hypothesis: no input to the framing adapters raises; every answer is a valid message."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.internet import task
from twisted.internet.testing import StringTransport

from callgw.frontend.connection import SessionManager
from callgw.frontend.stream import ClientStreamFactory
from callgw.frontend.udp import ClientDatagramProtocol
from protocols.client import framing as fr
from protocols.client import messages as m
from tests.frontend.gateway import FakeFrontEnd
from tests.frontend.test_connection import Store, Writer
from tests.frontend.test_udp import FakePort
from tests.helpers import make_config

_config = None


def _manager():
    global _config
    if _config is None:
        import tempfile
        from pathlib import Path
        _config = make_config(Path(tempfile.mkdtemp()))
    return SessionManager(Store(), FakeFrontEnd(), _config, task.Clock())


payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda b: b"{" + b, st.binary(max_size=200)),
    st.builds(lambda b: b"\x01" + b, st.binary(max_size=200)),
    st.dictionaries(st.sampled_from(["v", "cmd", "id", "ack", "user", "nonce", "proof",
                                     "token", "call", "number", "mode"]),
                    st.one_of(st.integers(), st.text(max_size=20), st.none(),
                              st.lists(st.integers(), max_size=3)), max_size=6)
    .map(lambda d: m._dumps(d)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(payloads, max_size=8), st.booleans())
def test_connection_never_raises(items, logged_in):
    manager = _manager()
    writer = Writer()                       # Writer.write_control checks each answer encodes
    conn = manager.open("tcp", ("127.0.0.1", 1), writer)
    if logged_in:
        token, _ = manager.tokens.issue("alice", manager.clock.seconds())
        conn.receive(m.encode(m.Login(token=token)))
        assert isinstance(writer.sent[-1], m.Welcome)
    for payload in items:
        conn.receive(payload)
    manager.clock.advance(1000)
    assert writer.lost


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_stream_adapter_never_raises(chunks):
    manager = _manager()
    proto = ClientStreamFactory(manager, "tcp").buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    for chunk in chunks:
        proto.dataReceived(chunk)
    deframer = fr.TcpDeframer()
    for payload in deframer.receive_data(transport.value()):
        m.decode(payload, sender=m.SERVER)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(payloads, st.integers(1, 3)), max_size=10))
def test_datagram_adapter_never_raises(items):
    manager = _manager()
    proto = ClientDatagramProtocol(manager)
    proto.transport = FakePort()
    for data, port in items:
        proto.datagramReceived(data, ("127.0.0.1", port))
    for data, _ in proto.transport.out:
        m.decode_envelope(data, sender=m.SERVER)
    manager.clock.advance(1000)
