"""UDP reliability on a Clock: retransmission with back-off, acks, duplicates, giving up, loss;
and the UDP listener's protocol with a fake transport."""
from __future__ import annotations

import random

from twisted.internet import task

from callgw.frontend.connection import SessionManager
from callgw.frontend.udp import T1, ClientDatagramProtocol, ReliableChannel
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.frontend.gateway import FakeFrontEnd
from tests.frontend.test_connection import Store
from tests.helpers import make_config


class Pair:
    """Two channels joined by a lossy, duplicating, delaying link on one Clock."""

    def __init__(self, loss=0.0, dup=0.0, seed=7):
        self.clock = task.Clock()
        self.rng = random.Random(seed)
        self.loss, self.dup = loss, dup
        self.got = {"a": [], "b": []}
        self.gave_up = []
        self.a = ReliableChannel(self.clock, lambda d: self._wire(d, "b"),
                                 self.got["a"].append, lambda: self.gave_up.append("a"),
                                 sender=m.SERVER)
        self.b = ReliableChannel(self.clock, lambda d: self._wire(d, "a"),
                                 self.got["b"].append, lambda: self.gave_up.append("b"),
                                 sender=m.CLIENT)

    def _wire(self, data, to):
        if self.rng.random() < self.loss:
            return
        target = self.a if to == "a" else self.b
        for _ in range(2 if self.rng.random() < self.dup else 1):
            self.clock.callLater(self.rng.uniform(0.001, 0.05), target.receive, data)

    def run(self, seconds=60.0, step=0.01):
        for _ in range(int(seconds / step)):
            self.clock.advance(step)


def test_lossless_delivery_and_acks():
    pair = Pair()
    pair.a.send(m.Ping())
    pair.b.send(m.Pong())
    pair.run(1)
    assert pair.got == {"a": [m.Pong()], "b": [m.Ping()]}
    assert pair.a.unacknowledged == pair.b.unacknowledged == 0


def test_thirty_percent_loss_with_duplicates_delivers_each_once():
    pair = Pair(loss=0.3, dup=0.2)
    for i in range(20):
        pair.a.send(m.Dtmf(call=f"c{i}", digits="1"))
    pair.run(60)
    assert sorted(x.call for x in pair.got["b"]) == sorted(f"c{i}" for i in range(20))
    assert pair.a.unacknowledged == 0 and not pair.gave_up


def test_back_off_then_give_up():
    clock = task.Clock()
    sent, gave_up = [], []
    ch = ReliableChannel(clock, sent.append, lambda x: None, lambda: gave_up.append(1))
    ch.send(m.Pong())
    times = []
    for _ in range(400):
        clock.advance(0.1)
        if len(sent) > len(times):
            times.append(round(clock.seconds(), 1))
    assert times[:4] == [0.1, 0.5, 1.5, 3.5] or sent[0] == sent[-1]
    assert gave_up == [1] and ch.closed and len(sent) == ch.tries


def test_bad_message_is_acknowledged_so_not_retransmitted():
    sent = []
    ch = ReliableChannel(task.Clock(), sent.append, lambda x: None, lambda: None)
    try:
        ch.receive(b'{"v":1,"cmd":"fly","id":9}')
    except Exception as e:
        assert e.code == ErrorCode.UNKNOWN_COMMAND
    assert m.decode_envelope(sent[-1]).acks == (9,)


class FakePort:
    def __init__(self):
        self.out = []

    def write(self, data, addr):
        self.out.append((data, addr))


def test_listener_protocol_sessions_per_address(tmp_path):
    clock = task.Clock()
    manager = SessionManager(Store(), FakeFrontEnd(), make_config(tmp_path), clock)
    proto = ClientDatagramProtocol(manager)
    proto.transport = FakePort()
    proto.datagramReceived(m.encode(m.Ping(), mid=1), ("127.0.0.1", 1111))
    proto.datagramReceived(m.encode(m.Ping(), mid=1), ("127.0.0.1", 1111))   # duplicate
    proto.datagramReceived(m.encode(m.Ping(), mid=1), ("127.0.0.1", 2222))
    got = [(m.decode_envelope(d), a) for d, a in proto.transport.out]
    pongs = [(e.message, a) for e, a in got if e.message is not None]
    assert pongs == [(m.Pong(), ("127.0.0.1", 1111)), (m.Pong(), ("127.0.0.1", 2222))]
    assert set(proto.peers) == {("127.0.0.1", 1111), ("127.0.0.1", 2222)}
    proto.transport.out.clear()
    proto.datagramReceived(b"\x99garbage", ("127.0.0.1", 3333))
    assert m.decode(proto.transport.out[-1][0]).code == ErrorCode.BAD_FRAME
    assert ("127.0.0.1", 3333) not in proto.peers
    clock.advance(manager.login_timeout + 1)       # unauthenticated peers expire
    assert proto.peers == {}
