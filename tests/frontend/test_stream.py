"""The TCP/TLS adapter with StringTransport: frames split anywhere, broken framing closes."""
from __future__ import annotations

import struct

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport

from callgw.frontend.connection import SessionManager, State
from callgw.frontend.stream import ClientStreamFactory
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.frontend.gateway import FakeFrontEnd
from tests.frontend.test_connection import Store
from tests.helpers import make_config


@pytest.fixture
def proto(tmp_path):
    manager = SessionManager(Store(), FakeFrontEnd(), make_config(tmp_path), task.Clock())
    p = ClientStreamFactory(manager, "tls").buildProtocol(None)
    transport = StringTransport(peerAddress=_Addr("127.0.0.1", 5555))
    p.makeConnection(transport)
    return p, transport


class _Addr:
    def __init__(self, host, port):
        self.host, self.port = host, port


def replies(transport) -> list[m.Message]:
    return [m.decode(x, sender=m.SERVER)
            for x in fr.TcpDeframer().receive_data(transport.value())]


def test_one_byte_at_a_time(proto):
    p, transport = proto
    data = fr.tcp_frame(m.encode(m.Ping())) * 2
    for i in range(len(data)):
        p.dataReceived(data[i:i + 1])
    assert replies(transport) == [m.Pong(), m.Pong()]
    assert p.conn.framing == "tls" and p.conn.peer == ("127.0.0.1", 5555)


def test_oversized_frame_is_fatal(proto):
    p, transport = proto
    p.dataReceived(struct.pack("!H", fr.MAX_PAYLOAD + 1) + b"{")
    assert replies(transport)[-1].code == ErrorCode.FRAME_TOO_LARGE
    assert transport.disconnecting and p.conn.state is State.CLOSED


def test_zero_length_frame_is_fatal(proto):
    p, transport = proto
    p.dataReceived(b"\x00\x00")
    assert replies(transport)[-1].code == ErrorCode.BAD_FRAME and transport.disconnecting


def test_garbage_payload_is_answered_not_fatal(proto):
    p, transport = proto
    p.dataReceived(fr.tcp_frame(b"hello") + fr.tcp_frame(m.encode(m.Ping())))
    out = replies(transport)
    assert out[0].code == ErrorCode.BAD_FRAME and out[1] == m.Pong()
    assert not transport.disconnecting


def test_connection_lost_reaches_the_session(proto):
    p, transport = proto
    p.connectionLost(None)
    assert p.conn.state is State.CLOSED


def test_frames_before_a_fatal_length_are_answered_then_the_link_closes(proto):
    p, transport = proto
    p.dataReceived(fr.tcp_frame(m.encode(m.Ping())) + b"\x00\x00")
    out = replies(transport)
    assert out[0] == m.Pong() and out[-1].code == ErrorCode.BAD_FRAME
    assert transport.disconnecting and p.conn.state is State.CLOSED
