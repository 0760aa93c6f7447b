"""UDP reliability: ids, acks, duplicates, order, back-off on an injected clock, giving up,
anti-amplification; and a login plus a call over a link losing 30% of datagrams."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, ProtocolError
from protocols.client.framing import MediaFrame, encode_media
from protocols.client.reliable import AMPLIFICATION, ReliableEndpoint, opens_session

from .netsim import Net


def pair():
    return (ReliableEndpoint(sender=m.CLIENT, validated=True),
            ReliableEndpoint(sender=m.SERVER, validated=True))


def test_ids_acks_and_piggybacking():
    client, server = pair()
    client.send(m.Ping(), 0)
    [d1] = client.datagrams_to_send()
    assert json.loads(d1) == {"v": 1, "cmd": "ping", "id": 1}
    assert server.receive_datagram(d1, 0.01) == [m.Ping()]
    server.send(m.Pong(), 0.01)                             # the ack rides on the reply
    [d2] = server.datagrams_to_send()
    assert json.loads(d2) == {"v": 1, "cmd": "pong", "id": 1, "ack": [1]}
    assert client.receive_datagram(d2, 0.02) == [m.Pong()]
    assert client.idle and client.get_timer() is None
    [d3] = client.datagrams_to_send()                       # nothing to carry it: a bare ack
    assert d3 == b'{"v":1,"ack":[1]}'
    assert server.receive_datagram(d3, 0.03) == [] and server.idle


def test_duplicates_are_acked_again_but_delivered_once():
    client, server = pair()
    client.send(m.Hangup(call="c1"), 0)
    [d] = client.datagrams_to_send()
    assert server.receive_datagram(d, 0) == [m.Hangup(call="c1")]
    for _ in range(3):
        assert server.receive_datagram(d, 0) == []
    assert server.datagrams_to_send() == [b'{"v":1,"ack":[1]}']
    assert server.receive_datagram(d, 0) == []
    assert server.datagrams_to_send() == [b'{"v":1,"ack":[1]}']      # acked again


def test_reordered_messages_are_delivered_in_order():
    client, server = pair()
    msgs = [m.Dtmf(call="c1", digits=str(i)) for i in range(5)]
    for msg in msgs:
        client.send(msg, 0)
    data = client.datagrams_to_send()
    out = []
    for i in (3, 1, 4, 0, 2):
        out += server.receive_datagram(data[i], 0)
    assert out == msgs


def test_far_ahead_ids_are_dropped_unacked():
    _, server = pair()
    assert server.receive_datagram(m.encode(m.Ping(), mid=1000), 0) == []
    assert server.datagrams_to_send() == []


def test_backoff_and_giving_up_on_the_injected_clock():
    client = ReliableEndpoint(sender=m.CLIENT, validated=True, rto=0.5, max_rto=4.0,
                              max_tries=6)
    client.send(m.Ping(), 0)
    sends = [0.0] if client.datagrams_to_send() else []  # rto 0.5 doubling to 4.0
    while client.failure is None:
        t = client.get_timer()
        client.handle_timer(t)
        if client.datagrams_to_send():
            sends.append(t)
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert client.failure.code == ErrorCode.UNREACHABLE and client.failure.fatal
    assert client.get_timer() is None


def test_media_is_neither_numbered_nor_retransmitted():
    client, server = pair()
    frame = encode_media(MediaFrame(bytes(16), 0, 1, 160, b"\xff" * 160))
    client.send_media(frame)
    assert client.datagrams_to_send() == [frame] and client.get_timer() is None
    assert server.receive_datagram(frame, 0) == [frame]
    assert server.datagrams_to_send() == []


def test_bad_datagrams_are_reported_not_raised():
    _, server = pair()
    [err] = server.receive_datagram(b"\x07garbage", 0)
    assert isinstance(err, ProtocolError) and err.code == ErrorCode.BAD_FRAME
    [err] = server.receive_datagram(b'{"v":1,"cmd":"ping"}', 0)
    assert err.code == ErrorCode.MISSING_FIELD
    [err] = server.receive_datagram(m.encode(m.Pong(), mid=1), 0)     # wrong direction
    assert err.code == ErrorCode.UNKNOWN_COMMAND


@given(st.binary(max_size=200))
def test_random_datagrams_never_raise(data):
    _, server = pair()
    for item in server.receive_datagram(data, 0):
        assert isinstance(item, (m.Message, bytes, ProtocolError))


def test_anti_amplification_before_the_address_is_validated():
    server = ReliableEndpoint(sender=m.SERVER)
    login = m.encode(m.Login(user="alice", nonce="n" * 24), mid=1)
    assert opens_session(login) and not opens_session(b'{"v":1,"cmd":"ping","id":1}')
    server.receive_datagram(login, 0)
    big = m.Status(info="x", text="y" * 250)              # not sent pre-login; just big
    for _ in range(3):
        server.send(big, 0)
    sent = sum(len(d) for d in server.datagrams_to_send())
    assert sent <= AMPLIFICATION * len(login)
    server.address_validated()
    server.handle_timer(100)
    assert len(server.datagrams_to_send()) >= 1


# ---------------------------------------------------------------- over a lossy link

def call_flow(net: Net, event) -> None:
    """The far end: trying, ringing, connected at once."""
    if isinstance(event, ev.CallRequested):
        net.server.trying(event.call)
        net.server.ringing(event.call)
        net.server.connected(event.call)


def _login_and_call(seed: int, **link) -> Net:
    net = Net(seed, **link)
    net.on_server_event = call_flow
    net.client.login("alice", 0.0)
    assert net.run(lambda n: n.client.state.value == "authenticated"), "login did not finish"
    call = net.client.call(net.now, number="+4930123456")
    assert net.run(lambda n: n.client.calls.get(call, {}).get("state") == "active"), \
        "call did not connect"
    net.client.hangup(call, net.now)
    assert net.run(lambda n: call not in n.client.calls), "hangup did not finish"
    kinds = [type(e.message).__name__ for e in net.events[m.CLIENT]
             if isinstance(e, ev.CallEvent)]
    assert kinds == ["Trying", "Ringing", "Connected", "Disconnected"]
    assert [type(e) for e in net.events[m.SERVER] if not isinstance(e, ev.LoggedIn)] == [
        ev.CallRequested, ev.HangupRequested]
    # everything after the login was sealed both ways: nothing was dropped as forged
    for end in net.ends.values():
        assert end.seal.sealing and end.seal.required and end.seal.counts["forged"] == 0
    return net


@pytest.mark.parametrize("seed", range(40))
def test_login_and_call_complete_with_30_percent_loss(seed):
    net = _login_and_call(seed, loss=0.3, dup=0.1)
    assert net.link.dropped > 0 or net.link.sent < 10


@settings(max_examples=30)
@given(st.integers(0, 2 ** 32), st.floats(0, 0.3), st.floats(0, 0.5))
def test_login_and_call_complete_under_random_loss_duplication_reordering(seed, loss, dup):
    _login_and_call(seed, loss=loss, dup=dup, delay=(0.0, 1.0))


def test_an_unreachable_client_is_hung_up():
    net = Net(7, loss=0.0, dup=0.0)
    net.on_server_event = call_flow
    net.client.login("alice", 0.0)
    net.run(lambda n: n.client.state.value == "authenticated")
    call = net.client.call(net.now, number="+4930123456")
    net.run(lambda n: n.client.calls.get(call, {}).get("state") == "active")
    net.link.loss = 1.0
    net.server.status("still-there")
    assert net.run(lambda n: n.server.state.value == "closed", limit=1000)
    assert ev.HangupRequested(call, "network-error") in net.events[m.SERVER]


def test_owed_acks_stay_bounded_before_validation():
    server = ReliableEndpoint(sender=m.SERVER)
    login = m.encode(m.Login(user="alice", nonce="n" * 24), mid=1)
    for _ in range(1000):
        server.receive_datagram(login, 0)
        assert server.datagrams_to_send() == []       # no bare acks to an unproven address
    assert len(server._acks) == 1


_net_ops = st.lists(st.tuples(st.sampled_from(["send", "deliver", "drop", "dup", "tick"]),
                              st.integers(0, 50)), max_size=80)


@settings(max_examples=200)
@given(_net_ops)
def test_delivery_is_an_ordered_prefix_and_completes(ops):
    """Any interleaving of sends, deliveries, drops, duplicates and clock ticks: the receiver
    has delivered an exact prefix of what was sent, in order, without duplicates; once the
    network behaves, everything arrives (unless the sender gave up)."""
    a, b = pair()
    sent, got, wire, now = [], [], [], 0.0   # wire: datagrams in flight, either direction

    def pump():
        wire.extend((b, d) for d in a.datagrams_to_send(now))
        wire.extend((a, d) for d in b.datagrams_to_send(now))

    for op, n in ops:
        if op == "send":
            msg = m.Dtmf(call="c1", digits=str(len(sent) % 10))
            sent.append(msg)
            a.send(msg, now)
        elif op == "tick":
            now += n / 10
            for end in (a, b):
                if end.get_timer() is not None and end.get_timer() <= now:
                    end.handle_timer(now)
        elif wire:
            i = n % len(wire)
            if op == "drop":
                wire.pop(i)
            elif op == "dup":
                wire.append(wire[i])
            else:
                dest, data = wire.pop(i)
                items = dest.receive_datagram(data, now)
                if dest is b:
                    got += items
        pump()
        assert got == sent[:len(got)]
    for _ in range(200):                              # a perfect network from now on
        while wire:
            dest, data = wire.pop(0)
            items = dest.receive_datagram(data, now)
            if dest is b:
                got += items
            pump()
        if a.idle or a.failure is not None:
            break
        now = a.get_timer()
        a.handle_timer(now)
        pump()
    assert got == sent if a.failure is None else got == sent[:len(got)]


def test_an_undecodable_message_with_an_id_is_acked_and_does_not_stall_the_rest():
    _, server = pair()
    bad = b'{"v":1,"cmd":"dtmf","id":1,"call":"c1","digits":"not digits!"}'
    [err] = server.receive_datagram(bad, 0)
    assert isinstance(err, ProtocolError)
    assert server.datagrams_to_send() == [b'{"v":1,"ack":[1]}']       # consumed: no resend
    assert server.receive_datagram(bad, 0) == []                       # a resend is a duplicate
    assert server.receive_datagram(m.encode(m.Ping(), mid=2), 0) == [m.Ping()]
