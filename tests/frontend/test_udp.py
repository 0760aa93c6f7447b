"""UDP on a Clock: the ReliableChannel driving the core's ReliableEndpoint over a lossy,
duplicating, reordering fake network; the listener's protocol with a fake transport; the
client library and the listener logging in and calling through 30% loss."""
from __future__ import annotations

import random

import pytest
from twisted.internet import task

from callgw.frontend.connection import SessionManager
from callgw.frontend.udp import ClientDatagramProtocol, ReliableChannel
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.frontend.gateway import FakeFrontEnd
from tests.frontend.test_connection import Store
from tests.helpers import make_config


class Pair:
    """A server and a client channel joined by a lossy link on one Clock."""

    def __init__(self, loss=0.0, dup=0.0, seed=7):
        self.clock = task.Clock()
        self.rng = random.Random(seed)
        self.loss, self.dup = loss, dup
        self.got = {"server": [], "client": []}
        self.gave_up = []
        self.server = ReliableChannel(self.clock, lambda d: self._wire(d, "client"),
                                      self.got["server"].append,
                                      lambda: self.gave_up.append("server"),
                                      side=m.SERVER, validated=True)
        self.client = ReliableChannel(self.clock, lambda d: self._wire(d, "server"),
                                      self.got["client"].append,
                                      lambda: self.gave_up.append("client"),
                                      side=m.CLIENT, validated=True)

    def _wire(self, data, to):
        if self.rng.random() < self.loss:
            return
        target = self.server if to == "server" else self.client
        for _ in range(2 if self.rng.random() < self.dup else 1):
            self.clock.callLater(self.rng.uniform(0.001, 0.2), target.receive, data)

    def run(self, seconds=60.0, step=0.01):
        for _ in range(int(seconds / step)):
            self.clock.advance(step)


def test_lossless_delivery_and_acks():
    pair = Pair()
    pair.client.send(m.Ping())
    pair.server.send(m.Pong())
    pair.run(2)
    assert pair.got == {"server": [m.Ping()], "client": [m.Pong()]}
    assert pair.server.idle and pair.client.idle


def test_thirty_percent_loss_duplicates_and_reordering_deliver_once_in_order():
    pair = Pair(loss=0.3, dup=0.2)
    for i in range(20):
        pair.client.send(m.Dtmf(call=f"c{i}", digits="1"))
        pair.server.send(m.Status(info="x", call=f"s{i}"))
    pair.run(120)
    assert [x.call for x in pair.got["server"]] == [f"c{i}" for i in range(20)]
    assert [x.call for x in pair.got["client"]] == [f"s{i}" for i in range(20)]
    assert pair.server.idle and pair.client.idle and not pair.gave_up


def test_gives_up_once_when_never_acknowledged():
    clock = task.Clock()
    sent, gave_up = [], []
    ch = ReliableChannel(clock, sent.append, lambda x: None, lambda: gave_up.append(1),
                         side=m.CLIENT, validated=True)
    ch.send(m.Ping())
    for _ in range(1200):
        clock.advance(0.1)
    assert gave_up == [1] and ch.closed and len(sent) > 3
    assert all(m.decode_envelope(d).mid == 1 for d in sent)


class FakePort:
    def __init__(self):
        self.out = []

    def write(self, data, addr):
        self.out.append((data, addr))


def _listener(tmp_path):
    clock = task.Clock()
    manager = SessionManager(Store(), FakeFrontEnd(), make_config(tmp_path), clock)
    proto = ClientDatagramProtocol(manager)
    proto.transport = FakePort()
    return proto, clock


def test_strangers_need_a_login_with_an_id(tmp_path):
    proto, clock = _listener(tmp_path)
    for data in (b"\x99garbage", b"{junk", m.encode(m.Ping(), mid=1),
                 m.encode(m.Login(user="alice", nonce="N" * 20))):          # no id
        proto.datagramReceived(data, ("127.0.0.1", 1111))
    assert proto.transport.out == [] and proto.peers == {}
    proto.datagramReceived(m.encode(m.Login(user="alice", nonce="N" * 20), mid=1),
                           ("127.0.0.1", 1111))
    env = m.decode_envelope(proto.transport.out[-1][0])
    assert isinstance(env.message, m.Challenge) and env.acks == (1,)     # the ack rides along
    assert list(proto.peers) == [("127.0.0.1", 1111)]


def test_known_peer_gets_errors_and_unauthenticated_peers_expire(tmp_path):
    proto, clock = _listener(tmp_path)
    addr = ("127.0.0.1", 2222)
    proto.datagramReceived(m.encode(m.Login(user="alice", nonce="N" * 20), mid=1), addr)
    proto.datagramReceived(m.encode(m.Ping(), mid=2), addr)
    proto.datagramReceived(m.encode(m.Ping(), mid=2), addr)                 # duplicate
    proto.datagramReceived(b'{"v":1,"cmd":"fly","id":3}', addr)
    envelopes = [m.decode_envelope(d) for d, _ in proto.transport.out]
    by_id = {}
    for env in envelopes:
        if env.message is not None:
            by_id.setdefault(env.mid, env.message)    # a duplicate request resends replies
    messages = [by_id[k] for k in sorted(by_id)]
    assert [x.command for x in messages[:2]] == ["challenge", "pong"]
    assert messages[-1].code == ErrorCode.UNKNOWN_COMMAND and len(messages) == 3
    clock.advance(proto.manager.login_timeout + 1)
    assert proto.peers[addr].conn.state.value == "closed"


class LossyPort:
    """A fake UDP socket: what it writes reaches ``deliver(data, from)`` later, or never."""

    def __init__(self, clock, rng, addr, loss):
        self.clock, self.rng, self.addr, self.loss = clock, rng, addr, loss
        self.deliver = None

    def write(self, data, addr):
        if self.rng.random() >= self.loss:
            self.clock.callLater(self.rng.uniform(0.001, 0.1), self.deliver, data, self.addr)

    def stopListening(self):
        return None


@pytest.mark.parametrize("seed", range(8))
def test_token_login_and_call_complete_with_30_percent_loss(tmp_path, seed):
    from callgw.client.links import UdpLink
    from callgw.client.session import ClientSession
    clock = task.Clock()
    clock.advance(1_800_000_000)
    rng = random.Random(seed)
    frontend = FakeFrontEnd()
    manager = SessionManager(Store(), frontend, make_config(tmp_path), clock)
    server = ClientDatagramProtocol(manager)
    link = UdpLink(clock, "127.0.0.1", 7060)
    server.transport = LossyPort(clock, rng, ("127.0.0.1", 7060), 0.3)
    server.transport.deliver = link.datagramReceived
    link.transport = LossyPort(clock, rng, ("127.0.0.1", 5555), 0.3)
    link.transport.deliver = server.datagramReceived
    session = ClientSession(link, clock=clock)
    token, _ = manager.tokens.issue("alice", clock.seconds())
    welcome = session.login_token(token)
    for _ in range(3000):
        clock.advance(0.01)
        if welcome.called:
            break
    assert welcome.result.user == "alice"
    call = session.call("+4930123456")
    for _ in range(3000):
        clock.advance(0.01)
        if call.connected.called:
            break
    call.hangup()
    for _ in range(3000):
        clock.advance(0.01)
        if call.disconnected.called:
            break
    assert [e.command for e in call.events] == ["trying", "ringing", "connected",
                                                "disconnected"]
    session.logout()
    for _ in range(3000):
        clock.advance(0.01)
        if session.closed.called:
            break
    assert session.closed.called            # the logout was acknowledged
    assert [reason for _, reason in frontend.closed] == ["logout"]
    clock.advance(60)
    assert server.peers == {}               # forgotten once acknowledged (or after LINGER)
