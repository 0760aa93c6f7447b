"""Relay timers driven by task.Clock (sockets stay real): inactivity timing, DTMF pacing."""
import pytest
import pytest_twisted
from twisted.internet import reactor, task

from callgw.callserver.events import MediaDescription
from callgw.media import MediaRelay, PortRange
from protocols.rtp import dtmf as rfc4733
from protocols.rtp.packet import parse_rtp

from mediatools import peer, wait_until


def clocked_relay(**kw):
    import random
    low = random.randrange(40000, 58000, 2)
    clock = task.Clock()
    return MediaRelay(reactor, PortRange(low, low + 400), clock=clock, **kw), clock


@pytest_twisted.ensureDeferred
async def test_inactivity_fires_after_exactly_the_timeout():
    relay, clock = clocked_relay(inactivity_timeout=10.0)
    seen = []
    s = relay.session("t", on_inactive=lambda sess, side, idle: seen.append((side, idle)))
    await s.allocate("gateway")
    s.connect("gateway", MediaDescription("127.0.0.1", 9, codecs=("PCMU",)))
    clock.advance(7.5)
    assert seen == []
    clock.advance(2.5)
    assert seen == [("gateway", 10.0)]
    clock.advance(60)
    assert len(seen) == 1
    s.connect("gateway", MediaDescription("127.0.0.1", 9, codecs=("PCMU",), direction="sendonly"))
    clock.advance(60)
    assert len(seen) == 2  # re-armed by connect: the side sends (sendonly) but stayed silent
    await s.close()
    assert not clock.getDelayedCalls()


@pytest_twisted.ensureDeferred
async def test_dtmf_packets_leave_at_the_gateway_ptime():
    relay, clock = clocked_relay(inactivity_timeout=0, rtcp_interval=0)
    gateway = peer()
    s = relay.session("d")
    await s.allocate("gateway")
    s.connect("gateway", MediaDescription(*gateway.addr, codecs=("PCMU",), ptime=30,
                                          telephone_event=100))
    s.attach_client(lambda *a: None)
    try:
        done = s.send_dtmf("2", 90)
        clock.advance(0)
        for expected in range(1, 6):
            await wait_until(lambda: len(gateway.received) == expected)
            await task.deferLater(reactor, 0.02, lambda: None)
            assert len(gateway.received) == expected  # nothing more until the clock moves
            clock.advance(0.03)
        events = [rfc4733.parse_event(parse_rtp(d).payload) for d, _ in gateway.received]
        assert [e.duration for e in events] == [240, 480, 720, 720, 720]
        assert {parse_rtp(d).payload_type for d, _ in gateway.received} == {100}
        assert (await done) == 5
    finally:
        gateway.port.stopListening()
        await s.close()
