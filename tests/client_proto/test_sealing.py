"""UDP datagram authentication (protocols/client/sealing.py and its use by the sessions and
``ReliableEndpoint``): the keys both sides derive, sealing, forged, unsealed and replayed
datagrams, and the switch at the welcome."""
from __future__ import annotations

import pytest

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client import sealing
from protocols.client.reliable import ReliableEndpoint

from .builders import Harness

K1, K2 = b"\x01" * 32, b"\x02" * 32


def opened(seal: sealing.DatagramSeal, datagram: bytes):
    return seal.incoming(datagram), seal.dropped


def test_round_trip_and_tamper():
    tx, rx = sealing.DatagramSeal(), sealing.DatagramSeal()
    tx.configure(K1, None, True)
    rx.configure(None, K1, True)
    datagram = tx.outgoing(b'{"v":1,"cmd":"ping","id":3}')
    assert datagram[0] == sealing.SEALED and len(datagram) == 27 + sealing.OVERHEAD
    assert opened(rx, datagram) == (b'{"v":1,"cmd":"ping","id":3}', None)
    for bad in (datagram[:-1] + bytes([datagram[-1] ^ 1]),          # tag
                datagram[:12] + b"X" + datagram[13:],               # payload
                datagram[:8] + b"\x09" + datagram[9:],              # counter
                datagram[:10], b"\x02"):
        assert opened(rx, bad) == (None, sealing.FORGED)
    other = sealing.DatagramSeal()
    other.configure(K2, None, True)
    assert opened(rx, other.outgoing(b"{}")) == (None, sealing.FORGED)   # another key


def test_unsealed_dropped_only_when_required():
    rx = sealing.DatagramSeal()
    rx.configure(None, K1, False)
    assert opened(rx, b'{"v":1,"ack":[1]}') == (b'{"v":1,"ack":[1]}', None)
    rx.configure(None, K1, True)
    assert opened(rx, b'{"v":1,"ack":[1]}') == (None, sealing.UNSEALED)
    assert rx.counts == {"unsealed": 1, "forged": 0, "replayed": 0}


def test_replay_window():
    rx = sealing.DatagramSeal()
    rx.configure(None, K1, True)
    seal = lambda counter: sealing.seal(K1, counter, b"x")       # noqa: E731
    assert opened(rx, seal(5))[1] is None
    assert opened(rx, seal(5)) == (None, sealing.REPLAYED)      # the same again
    assert opened(rx, seal(3))[1] is None                       # late but new: accepted once
    assert opened(rx, seal(3)) == (None, sealing.REPLAYED)
    assert opened(rx, seal(200))[1] is None
    assert opened(rx, seal(136)) == (None, sealing.REPLAYED)    # older than the window
    assert opened(rx, seal(137))[1] is None                     # the oldest still inside
    assert opened(rx, seal(0)) == (None, sealing.REPLAYED)


@pytest.mark.parametrize("token", [False, True])
def test_both_sides_derive_the_same_keys_and_switch_at_the_welcome(token):
    h = Harness()
    h.login()
    if token:
        saved = h.client.welcome.token
        h = Harness()
        h.client.login_token(saved, 0.0)
        h.pump()
    client_seals = [e for e in h.client_events if isinstance(e, ev.SealDatagrams)]
    server_seals = [e for e in h.server_events if isinstance(e, ev.SealDatagrams)]
    assert [(s.send_key is None, s.required) for s in client_seals] == [(True, False),
                                                                       (False, True)]
    [server] = server_seals
    assert server.required and server.send_key == client_seals[1].receive_key
    assert server.receive_key == client_seals[1].send_key != server.send_key
    if token:
        login = h.sent(">")[0]
        assert login.token and login.nonce
        assert server.receive_key == sealing.token_keys(login.token, login.nonce).client


def test_the_server_seals_from_the_welcome_on():
    h = Harness()
    h.login()
    actions = [type(e).__name__ for e in h.server_events]
    assert actions.index("SealDatagrams") < actions.index("LoggedIn")


def test_reliable_endpoint_drops_and_reports():
    server = ReliableEndpoint(sender=m.SERVER, validated=True)
    client = ReliableEndpoint(sender=m.CLIENT, validated=True)
    keys = sealing.DatagramKeys(K1, K2)
    server.seal_datagrams(keys.server, keys.client, True)
    client.seal_datagrams(keys.client, keys.server, True)
    client.send(m.Ping(), 0.0)
    [datagram] = client.datagrams_to_send(0.0)
    assert server.receive_datagram(datagram, 0.0) == [m.Ping()] and server.dropped is None
    assert server.receive_datagram(m.encode(m.Ping(), mid=2), 0.0) == []
    assert server.dropped == sealing.UNSEALED
    assert server.receive_datagram(datagram, 0.0) == [] and server.dropped == sealing.REPLAYED
    server.send(m.Pong(), 0.0)
    out = server.datagrams_to_send(0.0)
    assert all(d[0] == sealing.SEALED for d in out)
    assert client.receive_datagram(out[0], 0.0) == [m.Pong()]
