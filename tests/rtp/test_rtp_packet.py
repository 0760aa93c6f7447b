"""RTP/RTCP parse and build (RFC 3550): round trips under Hypothesis, fixed vectors, bad input."""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from protocols.rtp import packet as p

settings.register_profile("rtp", deadline=None, max_examples=150)
settings.load_profile("rtp")

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

rtp_packets = st.builds(
    p.RtpPacket,
    payload_type=st.integers(0, 127), sequence=u16, timestamp=u32, ssrc=u32,
    payload=st.binary(max_size=200), marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.one_of(st.none(), st.tuples(u16, st.binary(max_size=40).map(
        lambda b: b + bytes(-len(b) % 4)))),
    padding=st.integers(0, 255))

blocks = st.builds(p.ReportBlock, ssrc=u32, fraction_lost=u8,
                   cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
                   highest_sequence=u32, jitter=u32, lsr=u32, dlsr=u32)
block_lists = st.lists(blocks, max_size=31).map(tuple)
sdes_items = st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=255)), max_size=4).map(tuple)
rtcp_packets = st.one_of(
    st.builds(p.SenderReport, ssrc=u32, ntp_timestamp=st.integers(0, 2**64 - 1),
              rtp_timestamp=u32, packet_count=u32, octet_count=u32, reports=block_lists),
    st.builds(p.ReceiverReport, ssrc=u32, reports=block_lists),
    st.builds(p.SourceDescription,
              chunks=st.lists(st.builds(p.SdesChunk, ssrc=u32, items=sdes_items),
                              max_size=31).map(tuple)),
    st.builds(p.Bye, ssrcs=st.lists(u32, max_size=31).map(tuple),
              reason=st.one_of(st.none(), st.binary(max_size=255))),
    st.builds(p.RtcpUnknown, packet_type=st.sampled_from([204, 205, 206]),
              count=st.integers(0, 31), body=st.binary(max_size=40).map(
                  lambda b: b + bytes(-len(b) % 4))))


@given(rtp_packets)
def test_rtp_round_trip(packet):
    assert p.parse_rtp(packet.to_bytes()) == packet


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_rtcp_compound_round_trip(packets):
    data = p.build_rtcp(packets)
    assert len(data) % 4 == 0
    assert p.parse_rtcp(data) == tuple(packets)
    assert p.is_rtcp(data)


@given(st.binary(max_size=300))
def test_parsers_raise_only_parse_errors(data):
    for parse in (p.parse_rtp, p.parse_rtcp):
        try:
            parse(data)
        except p.RtpParseError:
            pass


def test_rtp_fixed_vector():
    data = bytes.fromhex("80e0 0001 000000a0 deadbeef") + b"\xff" * 160
    packet = p.parse_rtp(data)
    assert (packet.payload_type, packet.marker, packet.sequence, packet.timestamp,
            packet.ssrc) == (96, True, 1, 160, 0xDEADBEEF)
    assert packet.payload == b"\xff" * 160
    assert packet.to_bytes() == data
    assert not p.is_rtcp(data)


def test_rtp_padding_is_removed_from_payload():
    data = bytes.fromhex("a000 0002 00000000 00000001") + b"abc" + b"\x00\x00\x03"
    packet = p.parse_rtp(data)
    assert packet.payload == b"abc" and packet.padding == 3


@pytest.mark.parametrize("data", [
    b"\x80\x00",                                           # short
    bytes.fromhex("4000 0001 00000000 00000001"),          # version 1
    bytes.fromhex("8f00 0001 00000000 00000001"),          # 15 CSRCs missing
    bytes.fromhex("9000 0001 00000000 00000001 0001"),     # extension header cut
    bytes.fromhex("a000 0001 00000000 00000001 00"),       # padding count 0
])
def test_bad_rtp(data):
    with pytest.raises(p.RtpParseError):
        p.parse_rtp(data)


def test_sender_report_with_sdes_and_bye_fixed_layout():
    sr = p.SenderReport(1, 0x0102030405060708, 160, 10, 1600,
                        (p.ReportBlock(2, 64, -1, 70000, 12, 0xAABBCCDD, 65536),))
    sdes = p.SourceDescription((p.SdesChunk(1, ((p.SDES_CNAME, b"gw@callgw"),)),))
    data = p.build_rtcp([sr, sdes, p.Bye((1,), b"bye")])
    assert data[:4] == bytes.fromhex("81c8000c")       # V=2 RC=1 SR, 13 words
    assert struct.unpack_from("!I", data, 8 + 20 + 4)[0] >> 24 == 64
    assert data[8 + 20 + 5:8 + 20 + 8] == b"\xff\xff\xff"  # -1 as 24 bits
    parsed = p.parse_rtcp(data)
    assert parsed[0] == sr and parsed[1] == sdes and parsed[2].reason == b"bye"


def test_rtcp_padding_and_truncation():
    body = p.build_rtcp([p.ReceiverReport(7)])
    padded = bytes([body[0] | 0x20]) + body[1:3] + bytes([body[3] + 1]) + body[4:] + b"\0\0\0\4"
    assert p.parse_rtcp(padded) == (p.ReceiverReport(7),)
    with pytest.raises(p.RtpParseError):
        p.parse_rtcp(body[:-1])
    with pytest.raises(p.RtpParseError):
        p.parse_rtcp(bytes.fromhex("81c90001 00000007"))  # RR claims a block it lacks


def test_ntp_helpers():
    ntp = p.ntp_timestamp(1.5)
    assert ntp >> 32 == p.NTP_UNIX_OFFSET + 1
    assert ntp & 0xFFFFFFFF == 1 << 31
    assert p.ntp_middle32(ntp) == ((p.NTP_UNIX_OFFSET + 1) & 0xFFFF) << 16 | 0x8000


def test_build_refuses_out_of_range():
    with pytest.raises(ValueError):
        p.build_rtp(p.RtpPacket(128, 0, 0, 0))
    with pytest.raises(ValueError):
        p.build_rtcp([p.ReceiverReport(1, tuple(p.ReportBlock(i) for i in range(32)))])
