"""The relay over real UDP on 127.0.0.1: latching, pass-through, conversion, DTMF, RTCP,
inactivity, statistics and port release."""
import pytest
import pytest_twisted

from callgw.callserver.events import Dtmf, MediaDescription
from callgw.media import MediaError
from protocols.rtp import dtmf as rfc4733
from protocols.rtp.packet import (
    ReceiverReport, ReportBlock, SenderReport, build_rtcp, parse_rtcp, parse_rtp)

from mediatools import is_tone, peer, relay, rtp, sleep, tone, wait_until


async def two_sided(codec_client="PCMU", codec_gateway="PCMU", **kw):
    r = relay(**kw)
    events = []
    s = r.session("call-1", on_dtmf=lambda side, ev: events.append((side, ev)),
                  on_inactive=lambda sess, side, idle: events.append(("inactive", side)))
    client, gateway_sdp, gateway_nat = peer(), peer(), peer()
    address, cport = await s.allocate("client")
    _, gport = await s.allocate("gateway")
    assert address == "127.0.0.1" and cport % 2 == 0 and gport % 2 == 0
    s.connect("client", MediaDescription(*client.addr, codecs=(codec_client,)))
    s.connect("gateway", MediaDescription(*gateway_sdp.addr, codecs=(codec_gateway,)))
    return r, s, events, client, gateway_sdp, gateway_nat, (address, cport), (address, gport)


def close_peers(*peers):
    for p in peers:
        p.port.stopListening()


@pytest_twisted.ensureDeferred
async def test_nat_sender_is_latched_and_bytes_pass_untouched():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided()
    try:
        first = rtp(0, 1, 160, 0xC1)
        client.send(first, caddr)
        await wait_until(lambda: gw_sdp.received)           # before latching: to the SDP address
        assert gw_sdp.received[0][0] == first
        stranger = peer()
        stranger.send(rtp(96, 1, 0, 0x99), gaddr)           # wrong payload type: no latch
        await sleep(0.05)
        gw_nat.send(rtp(0, 7, 1000, 0x6A7E), gaddr)         # the gateway, from behind a NAT
        await wait_until(lambda: client.received)
        assert parse_rtp(client.received[0][0]).ssrc == 0x6A7E
        assert client.received[0][1] == caddr               # symmetric: from the advertised port
        for seq in range(2, 12):
            client.send(rtp(0, seq, 160 * seq, 0xC1), caddr)
        await wait_until(lambda: len(gw_nat.received) == 10)
        assert [d for d, _ in gw_nat.received] == [rtp(0, q, 160 * q, 0xC1) for q in range(2, 12)]
        assert len(gw_sdp.received) == 1
        stranger.send(rtp(0, 2, 0, 0x99), gaddr)            # latched: others are dropped
        await sleep(0.05)                                   # (by the kernel: it is connected)
        assert len(client.received) == 1
        assert s.endpoints["gateway"].connected
        stats = s.statistics()
        assert stats["latched"]["gateway"] == "%s:%d" % gw_nat.addr
        c2g = stats["client_to_gateway"]
        assert c2g["packets"] == 11 and c2g["forwarded"] == 11 and c2g["lost"] == 0
        assert c2g["octets"] == 11 * 172 and c2g["mos"] > 4
        assert stats["gateway_to_client"]["dropped"] == 1   # the wrong payload type
        assert stats["gateway_to_client"]["ssrc"] == 0x6A7E
        close_peers(stranger)
    finally:
        close_peers(client, gw_sdp, gw_nat)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_loss_is_counted_per_direction():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided()
    try:
        for seq in [1, 2, 3, 5, 6, 9, 10]:
            client.send(rtp(0, seq, 160 * seq, 5), caddr)
        await wait_until(lambda: len(gw_sdp.received) == 7)
        c2g = s.statistics()["client_to_gateway"]
        assert (c2g["packets"], c2g["lost"]) == (7, 3)
        assert c2g["loss"] == pytest.approx(0.3)
    finally:
        close_peers(client, gw_sdp, gw_nat)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_pcmu_client_and_pcma_gateway_convert_both_ways():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided("PCMU", "PCMA")
    try:
        for i, payload in enumerate(tone("PCMU", 5)):
            client.send(rtp(0, i, 160 * i, 1, payload), caddr)
        await wait_until(lambda: len(gw_sdp.received) == 5)
        for data, _ in gw_sdp.received:
            packet = parse_rtp(data)
            assert packet.payload_type == 8
            assert is_tone("PCMA", packet.payload)
        for i, payload in enumerate(tone("PCMA", 5, freq=1000.0)):
            gw_sdp.send(rtp(8, i, 160 * i, 2, payload), gaddr)
        await wait_until(lambda: len(client.received) == 5)
        for data, _ in client.received:
            packet = parse_rtp(data)
            assert packet.payload_type == 0 and is_tone("PCMU", packet.payload)
            assert not is_tone("PCMU", packet.payload, freq=1300.0)
    finally:
        close_peers(client, gw_sdp, gw_nat)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_rfc4733_events_are_reported_once_and_forwarded_with_the_peer_type():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided()
    s.connect("client", MediaDescription(*client.addr, codecs=("PCMU",), telephone_event=96))
    try:
        gw_sdp.send(rtp(0, 1, 0, 3), gaddr)
        sender = rfc4733.DtmfSender(101, 3)
        for _, packet in sender.packets("9", 60, 2, 160):
            gw_sdp.send(packet.to_bytes(), gaddr)
        await wait_until(lambda: len(client.received) == 1 + 5)
        assert events == [("gateway", Dtmf("9", 60))]
        forwarded = [parse_rtp(d) for d, _ in client.received[1:]]
        assert {p.payload_type for p in forwarded} == {96}
    finally:
        close_peers(client, gw_sdp, gw_nat)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_rtcp_is_forwarded_and_reports_are_kept():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided()
    rtcp_gw = peer()
    try:
        rr = build_rtcp([ReceiverReport(0xC1, (ReportBlock(0xAA, 25, 4, 100, 80),))])
        client.send(rtp(0, 1, 0, 0xC1), caddr)
        rtcp_gw.send(rtp(0, 1, 0, 0x9A), gaddr)  # latches the gateway RTP to this peer
        await wait_until(lambda: client.received)
        rtcp_gw.send(rr, (gaddr[0], gaddr[1] + 1))
        sr = build_rtcp([SenderReport(0xC1, 1 << 40, 0, 1, 172)])
        client.send(sr, (caddr[0], caddr[1] + 1))
        await wait_until(lambda: s.statistics()["reported"].get("gateway"))
        assert s.statistics()["reported"]["gateway"]["cumulative_lost"] == 4
        # the client's SR goes to the latched gateway host, RTP port + 1 (the peer itself is
        # on the RTP port, so it arrives nowhere we listen); the gateway's RR goes to the
        # client's SDP RTCP port, which nobody holds: nothing to assert beyond no errors
    finally:
        close_peers(client, gw_sdp, gw_nat, rtcp_gw)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_inactivity_is_reported_once_per_silent_side():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided(inactivity_timeout=0.2)
    try:
        for seq in range(40):
            client.send(rtp(0, seq, 160 * seq, 1), caddr)
            await sleep(0.01)
        assert ("inactive", "gateway") in events and ("inactive", "client") not in events
        await sleep(0.3)
        assert events.count(("inactive", "gateway")) == 1
        assert ("inactive", "client") in events
    finally:
        close_peers(client, gw_sdp, gw_nat)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_hold_direction_stops_sending_and_watching():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided(inactivity_timeout=0.2)
    try:
        s.connect("gateway", MediaDescription(*gw_sdp.addr, codecs=("PCMU",),
                                              direction="inactive"))
        for seq in range(30):
            client.send(rtp(0, seq, 160 * seq, 1), caddr)
            await sleep(0.01)
        assert gw_sdp.received == [] and ("inactive", "gateway") not in events
    finally:
        close_peers(client, gw_sdp, gw_nat)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_close_releases_ports_and_returns_final_statistics():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided()
    client.send(rtp(0, 1, 0, 1), caddr)
    await wait_until(lambda: gw_sdp.received)
    in_use = r.ports.in_use
    final = await s.close()
    assert final["client_to_gateway"]["packets"] == 1
    assert r.ports.in_use == in_use - 2 and r.sessions == {}
    assert await s.close() == final
    with pytest.raises(MediaError):
        await s.allocate("client")
    close_peers(client, gw_sdp, gw_nat)


@pytest_twisted.ensureDeferred
async def test_bad_use_is_refused():
    r = relay()
    s = r.session("x")
    with pytest.raises(MediaError):
        await s.allocate("moon")
    with pytest.raises(MediaError):
        s.connect("client", MediaDescription("127.0.0.1", 4000))
    await s.allocate("client")
    with pytest.raises(MediaError):
        s.connect("client", MediaDescription("127.0.0.1", 4000, codecs=("G729",)))
    with pytest.raises(MediaError):
        await s.send_dtmf("1")
    await r.close()


@pytest_twisted.ensureDeferred
async def test_fast_path_takes_over_and_notices_a_new_ssrc():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided()
    try:
        client.send(rfc4733.DtmfSender(101, 0xC1).packets("1", 20, 0, 0)[0][1].to_bytes(), caddr)
        await sleep(0.05)                                   # latched on an event packet
        for seq in range(1, 6):
            client.send(rtp(0, seq, 160 * seq, 0xC1), caddr)
        await wait_until(lambda: len(gw_sdp.received) == 6)  # the event, then 5 audio
        assert s.endpoints["client"].fast
        for seq in range(40000, 40005):                     # the client restarted its stream
            client.send(rtp(0, seq, 160 * seq, 0xC2), caddr)
        await wait_until(lambda: len(gw_sdp.received) == 11)
        c2g = s.statistics()["client_to_gateway"]
        assert c2g["ssrc"] == 0xC2 and c2g["lost"] == 0 and c2g["packets"] == 11
    finally:
        close_peers(client, gw_sdp, gw_nat)
        await s.close()


@pytest_twisted.ensureDeferred
async def test_a_silent_latched_source_gives_way_to_a_new_one():
    r, s, events, client, gw_sdp, gw_nat, caddr, gaddr = await two_sided(relatch_after=0.2)
    rebound = peer()
    try:
        gw_nat.send(rtp(0, 1, 0, 0x6A), gaddr)
        await wait_until(lambda: client.received)
        rebound.send(rtp(0, 2, 160, 0x6A), gaddr)           # too soon: still the old binding
        await sleep(0.05)
        assert len(client.received) == 1
        await sleep(0.5)                                    # silent longer than relatch_after
        assert not s.endpoints["gateway"].connected
        rebound.send(rtp(0, 3, 320, 0x6A), gaddr)           # the NAT's new binding
        await wait_until(lambda: len(client.received) == 2)
        client.send(rtp(0, 1, 0, 0xC1), caddr)
        await wait_until(lambda: rebound.received)
        assert s.statistics()["latched"]["gateway"] == "%s:%d" % rebound.addr
        for seq in range(4, 60):
            rebound.send(rtp(0, seq, 160 * seq, 0x6A), gaddr)
            await sleep(0.01)
        assert s.endpoints["gateway"].connected and s.endpoints["gateway"].fast
    finally:
        close_peers(client, gw_sdp, gw_nat, rebound)
        await s.close()
