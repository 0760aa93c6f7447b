"""Relayed mode over real UDP: client frames in, paced RTP at the gateway with continuous
sequence numbers and timestamps; gateway RTP back to the client callback; DTMF; RTCP RTT."""
import pytest
import pytest_twisted
from twisted.internet import task

from callgw.callserver.events import MediaDescription
from callgw.media import MediaError
from protocols.rtp import dtmf as rfc4733
from protocols.rtp.packet import (
    ReceiverReport, ReportBlock, SenderReport, build_rtcp, ntp_middle32, parse_rtcp, parse_rtp)

from mediatools import is_tone, peer, relay, rtp, sleep, tone, wait_until


async def relayed(client_codec="PCMU", gateway_codec="PCMU", **kw):
    r = relay(**kw)
    delivered = []
    s = r.session("call-r")
    gateway = peer()
    address, gport = await s.allocate("gateway")
    s.connect("gateway", MediaDescription(*gateway.addr, codecs=(gateway_codec,)))
    s.attach_client(lambda payload, seq, ts: delivered.append((payload, seq, ts)),
                    codec=client_codec)
    return r, s, gateway, (address, gport), delivered


@pytest_twisted.ensureDeferred
async def test_client_frames_become_continuous_rtp_toward_the_gateway():
    clock = task.Clock()            # the pacing's time is the test's: a busy machine's late
    r, s, gateway, gaddr, delivered = await relayed(clock=clock)   # timers conceal nothing
    try:
        frames = tone("PCMU", 12)
        order = [0, 1, 2, 4, 3, 5, 6, 7, 9, 10, 11]   # 3/4 swapped, 8 lost
        for n, i in enumerate(order):
            s.client_frame(frames[i], 100 + i, 5000 + 160 * i)
            clock.advance(0.02)
        for _ in range(100):                          # the playout's last frames
            if len(gateway.received) >= 12:
                break
            clock.advance(0.02)
            await sleep(0.005)
        await wait_until(lambda: len(gateway.received) == 12)
        packets = [parse_rtp(d) for d, _ in gateway.received]
        assert packets[0].marker and not any(p.marker for p in packets[1:])
        for a, b in zip(packets, packets[1:]):
            assert b.sequence == (a.sequence + 1) & 0xFFFF
            assert b.timestamp == (a.timestamp + 160) & 0xFFFFFFFF
            assert b.ssrc == a.ssrc and b.payload_type == 0
        assert [p.payload for p in packets[:8]] == frames[:8]
        assert packets[8].payload == b"\xff" * 160       # the lost frame, concealed
        assert [p.payload for p in packets[9:]] == frames[9:]
        assert gateway.received[0][1] == gaddr
        stats = s.statistics()
        assert stats["mode"] == "relayed"
        c2g = stats["client_to_gateway"]
        assert c2g["packets"] == 11 and c2g["forwarded"] == 12 and c2g["lost"] == 1
    finally:
        gateway.port.stopListening()
        await s.close()


@pytest_twisted.ensureDeferred
async def test_conversion_in_relayed_mode_both_ways():
    r, s, gateway, gaddr, delivered = await relayed("PCMU", "PCMA")
    try:
        for i, frame in enumerate(tone("PCMU", 4)):
            s.client_frame(frame, i, 160 * i)
        await wait_until(lambda: len(gateway.received) == 4)
        for data, _ in gateway.received:
            packet = parse_rtp(data)
            assert packet.payload_type == 8 and is_tone("PCMA", packet.payload)
        for i, payload in enumerate(tone("PCMA", 4)):
            gateway.send(rtp(8, 700 + i, 320 * i, 42, payload), gaddr)
        await wait_until(lambda: len(delivered) == 4)
        assert [(seq, ts) for _, seq, ts in delivered] == [(700 + i, 320 * i) for i in range(4)]
        assert all(is_tone("PCMU", payload) for payload, _, _ in delivered)
        assert s.endpoints["gateway"].fast  # after the first packet: the fast path delivers
        g2c = s.statistics()["gateway_to_client"]
        assert g2c["packets"] == 4 and g2c["forwarded"] == 4
    finally:
        gateway.port.stopListening()
        await s.close()


@pytest_twisted.ensureDeferred
async def test_packets_not_for_the_client_leave_no_gap_in_its_sequence():
    """RFC 4733 events and comfort noise from the gateway are not delivered; the client's
    sequence numbers close over them (a receiver must not count them as lost), while a
    packet really lost still leaves its gap."""
    r, s, gateway, gaddr, delivered = await relayed()
    try:
        frames = tone("PCMU", 8)
        event = rfc4733.TelephoneEvent(1, False, 10, 800).to_bytes()
        sent = [(0, 700, frames[0]), (0, 701, frames[1]), (101, 702, event),
                (101, 703, event), (0, 704, frames[2]), (13, 705, b"\x40"),
                (0, 706, frames[3]), (0, 708, frames[4])]            # 707 lost
        for pt, seq, payload in sent:
            gateway.send(rtp(pt, seq, 160 * seq, 42, payload), gaddr)
            await sleep(0.01)
        await wait_until(lambda: len(delivered) == 5)
        assert [seq for _, seq, _ in delivered] == [700, 701, 702, 703, 705]
    finally:
        gateway.port.stopListening()
        await s.close()


@pytest_twisted.ensureDeferred
async def test_frames_before_the_gateway_is_connected_are_dropped():
    r = relay()
    s = r.session("early")
    s.attach_client(lambda *a: None)
    s.client_frame(b"\xff" * 160, 1, 0)
    assert s.statistics()["client_to_gateway"]["dropped"] == 1
    with pytest.raises(MediaError):
        s.attach_client(lambda *a: None, codec="G722")
    await s.close()


@pytest_twisted.ensureDeferred
async def test_send_dtmf_shares_the_stream_numbering():
    clock = task.Clock()            # the event's timestamp is the stream's clock at its start:
    r, s, gateway, gaddr, delivered = await relayed(clock=clock)   # the test's, not the CPU's
    try:
        s.client_frame(b"\xff" * 160, 1, 0)
        clock.advance(0)
        d = s.send_dtmf("#", 60)
        for _ in range(50):
            if d.called:
                break
            clock.advance(0.02)
        sent = await d
        assert sent == 5
        await wait_until(lambda: len(gateway.received) >= 6)
        packets = [parse_rtp(d) for d, _ in gateway.received]
        events = [p for p in packets if p.payload_type == 101]
        assert len(events) == 5
        assert {p.timestamp for p in events} == {packets[0].timestamp}
        seqs = [p.sequence for p in packets]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
        assert rfc4733.parse_event(events[-1].payload) == rfc4733.TelephoneEvent(11, True, 10, 480)
        with pytest.raises(rfc4733.DtmfError):
            await s.send_dtmf("x")
    finally:
        gateway.port.stopListening()
        await s.close()


@pytest_twisted.ensureDeferred
async def test_sender_reports_go_to_the_gateway_and_its_report_gives_the_rtt():
    r, s, gateway, gaddr, delivered = await relayed(rtcp_interval=0.1)
    gateway_rtcp = peer()
    try:
        # the gateway's first RTCP packet latches its RTCP address (symmetric RTCP)
        gateway_rtcp.send(build_rtcp([ReceiverReport(0x6A7E)]), (gaddr[0], gaddr[1] + 1))
        for i in range(3):
            s.client_frame(b"\xff" * 160, i, 160 * i)
            gateway.send(rtp(0, i, 160 * i, 0x6A7E), gaddr)
        await wait_until(lambda: gateway_rtcp.received)
        reports = parse_rtcp(gateway_rtcp.received[0][0])
        sr = reports[0]
        assert isinstance(sr, SenderReport) and sr.ssrc == s.playout.ssrc
        assert sr.packet_count == 3 and sr.reports[0].ssrc == 0x6A7E
        block = ReportBlock(sr.ssrc, lsr=ntp_middle32(sr.ntp_timestamp), dlsr=0)
        await sleep(0.05)
        gateway_rtcp.send(build_rtcp([ReceiverReport(0x6A7E, (block,))]),
                          (gaddr[0], gaddr[1] + 1))
        await wait_until(lambda: s.statistics()["rtt_ms"] is not None)
        assert 40 <= s.statistics()["rtt_ms"] < 1000
    finally:
        gateway.port.stopListening()
        gateway_rtcp.port.stopListening()
        await s.close()


@pytest_twisted.ensureDeferred
async def test_client_inactivity_in_relayed_mode():
    r = relay(inactivity_timeout=0.15)
    seen = []
    s = r.session("quiet", on_inactive=lambda sess, side, idle: seen.append(side))
    gateway = peer()
    _, gport = await s.allocate("gateway")
    s.connect("gateway", MediaDescription(*gateway.addr, codecs=("PCMU",)))
    s.attach_client(lambda *a: None)
    try:
        for i in range(30):
            gateway.send(rtp(0, i, 160 * i, 9), ("127.0.0.1", gport))
            await sleep(0.01)
        assert seen == ["client"]
    finally:
        gateway.port.stopListening()
        await s.close()
