"""Every packet callgw receives is accounted for (callgw/media/quality.py): forwarded, or counted
as discarded (the client's transport did not take it, nowhere to send it), RFC 4733 events, or
read as the session closed (after_end, a part of discarded); loss and MOS are those of what the far side gets. And
the send paths say when a media frame did not go: a closed session, a backed-up stream, a UDP
send the socket refused. The same on the wire at 40 calls: tests/media/test_media_load.py."""
from __future__ import annotations

import pytest_twisted
from twisted.internet.testing import StringTransport
from twisted.internet.task import Clock

from callgw.callserver.events import MediaDescription
from callgw.frontend.stream import ClientStreamFactory
from callgw.frontend.udp import ReliableChannel
from protocols.client import messages as m

from mediatools import peer, relay, rtp, sleep, tone, wait_until


async def relayed(deliver):
    r = relay()
    s = r.session("call-a")
    gateway = peer()
    address, gport = await s.allocate("gateway")
    s.connect("gateway", MediaDescription(*gateway.addr, codecs=("PCMU",), telephone_event=101))
    s.attach_client(deliver, codec="PCMU")
    return s, gateway, (address, gport)


@pytest_twisted.ensureDeferred
async def test_frames_the_client_transport_refuses_are_discarded_and_impair_the_figures():
    taken = []
    refuse = {7, 8, 9}

    def deliver(payload, seq, ts):
        if seq in refuse:
            return False                  # what a backed-up stream or a closed session says
        taken.append(seq)
        return True
    s, gateway, gaddr = await relayed(deliver)
    try:
        frames = tone("PCMU", 20)
        for i, payload in enumerate(frames):
            gateway.send(rtp(0, i, 160 * i, 42, payload), gaddr)
        gateway.send(rtp(101, 20, 160 * 20, 42, bytes([5, 0x0A, 0, 160])), gaddr)   # an event
        gateway.send(rtp(13, 21, 160 * 21, 42, b"\x40"), gaddr)                     # CN
        await wait_until(lambda: s.statistics()["gateway_to_client"]["packets"] == 22)
        g2c = s.statistics()["gateway_to_client"]
        assert g2c["forwarded"] == 17 and len(taken) == 17
        assert g2c["discarded"] == 4                  # 3 refused + the comfort noise packet
        assert g2c["events"] == 1
        assert g2c["packets"] == g2c["forwarded"] + g2c["discarded"] + g2c["events"]
        assert g2c["lost"] == 0 and g2c["loss"] == round(4 / 22, 5)
        assert g2c["mos"] < 4.0                      # 18% of what should be heard is not
    finally:
        gateway.port.stopListening()
        await s.close()


@pytest_twisted.ensureDeferred
async def test_what_is_still_queued_when_the_session_closes_is_counted_after_the_end():
    s, gateway, gaddr = await relayed(lambda *a: True)
    try:
        frames = tone("PCMU", 10)
        for i in range(5):
            gateway.send(rtp(0, i, 160 * i, 42, frames[i]), gaddr)
        await wait_until(lambda: s.statistics()["gateway_to_client"]["packets"] == 5)
        s.relay.poller.remove(s.endpoints["gateway"].sock)     # callgw does not read now...
        for i in range(5, 10):
            gateway.send(rtp(0, i, 160 * i, 42, frames[i]), gaddr)
        await sleep(0.1)
    finally:
        final = await s.close()                                # ...and closes the session
        gateway.port.stopListening()
    g2c = final["gateway_to_client"]
    assert g2c["packets"] == 10 and g2c["after_end"] == 5 and g2c["forwarded"] == 5
    assert g2c["discarded"] == 5 and g2c["loss"] == 0.0       # not an impairment of the call
    assert final["ports"]["gateway"] == gaddr[1]


def test_a_backed_up_stream_drops_media_but_not_control():
    from tests.frontend.test_fuzz import _manager
    proto = ClientStreamFactory(_manager(), "tcp").buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    assert transport.producer is proto and transport.streaming
    assert proto.write_media(b"\x01" + b"\x00" * 23 + b"\xff" * 160) is True
    proto.pauseProducing()                            # the transport's buffer is full
    assert proto.write_media(b"\x01" + b"\x00" * 23 + b"\xff" * 160) is False
    before = len(transport.value())
    proto.write_control(m.Pong())
    assert len(transport.value()) > before            # control still goes
    proto.resumeProducing()
    assert proto.write_media(b"\x01" + b"\x00" * 23 + b"\xff" * 160) is True
    assert proto.media_dropped == 1
    proto.lose()
    assert transport.producer is None                 # TLS closes only without a producer


def test_a_udp_send_the_socket_refuses_is_reported():
    sent = []

    def send(data):
        if len(sent) >= 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        sent.append(data)
    channel = ReliableChannel(Clock(), send, lambda item: None, lambda: None, validated=True)
    assert channel.send_media(b"\x01" + b"\x00" * 183) is True
    assert channel.send_media(b"\x01" + b"\x00" * 183) is False
    assert channel.send_failures == 1
    channel.close()
    assert channel.send_media(b"\x01" + b"\x00" * 183) is False
