"""RTP and RTCP packets (RFC 3550 sections 5 and 6): parse and build, sans-I/O.

Owns the RTP fixed header with CSRCs, header extension and padding (RFC 3550 5.1, 5.3), and
the RTCP packets SR (6.4.1), RR (6.4.2), SDES (6.5), BYE (6.6) and compound packets (6.1);
other RTCP types (APP, feedback) are kept as opaque ``RtcpUnknown`` packets. Values are
frozen dataclasses; ``parse_*`` raise ``RtpParseError`` for malformed input and nothing else.
RTP/RTCP on one port is told apart by ``is_rtcp`` (RFC 5761 section 4).

Tests: tests/rtp/test_rtp_packet.py.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_CNAME = 1
SDES_NAME = 2
SDES_TOOL = 6

NTP_UNIX_OFFSET = 2208988800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""

_HEADER = struct.Struct("!BBHII")
_RTCP_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IB3sIIII")


class RtpParseError(ValueError):
    """The bytes are not a well-formed RTP or RTCP packet (the peer's fault)."""


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet. ``extension`` is ``(profile, data)`` with ``len(data) % 4 == 0``, or None.

    ``padding`` is the number of padding octets (0 for none; the last octet holds the count).
    """
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    def to_bytes(self) -> bytes:
        """Serialize this packet (RFC 3550 5.1)."""
        return build_rtp(self)


def build_rtp(packet: RtpPacket) -> bytes:
    """Serialize ``packet``. Raises ValueError when a field is out of range."""
    if not 0 <= packet.payload_type < 128:
        raise ValueError("payload type out of range")
    if len(packet.csrcs) > 15:
        raise ValueError("at most 15 CSRCs")
    if not 0 <= packet.padding < 256:
        raise ValueError("padding out of range")
    first = (RTP_VERSION << 6) | len(packet.csrcs)
    if packet.padding:
        first |= 0x20
    if packet.extension is not None:
        first |= 0x10
    second = packet.payload_type | (0x80 if packet.marker else 0)
    parts = [_HEADER.pack(first, second, packet.sequence & 0xFFFF,
                          packet.timestamp & 0xFFFFFFFF, packet.ssrc & 0xFFFFFFFF)]
    for csrc in packet.csrcs:
        parts.append(struct.pack("!I", csrc))
    if packet.extension is not None:
        profile, data = packet.extension
        if len(data) % 4:
            raise ValueError("extension data must be a multiple of 4 octets")
        parts.append(struct.pack("!HH", profile, len(data) // 4))
        parts.append(data)
    parts.append(packet.payload)
    if packet.padding:
        parts.append(bytes(packet.padding - 1) + bytes((packet.padding,)))
    return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; raises ``RtpParseError`` when it is malformed."""
    if len(data) < 12:
        raise RtpParseError("RTP packet shorter than 12 octets")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError("RTP version is not 2")
    offset = 12
    count = first & 0x0F
    if len(data) < offset + 4 * count:
        raise RtpParseError("CSRC list truncated")
    csrcs = struct.unpack_from("!%dI" % count, data, offset)
    offset += 4 * count
    extension = None
    if first & 0x10:
        if len(data) < offset + 4:
            raise RtpParseError("extension header truncated")
        profile, words = struct.unpack_from("!HH", data, offset)
        offset += 4
        if len(data) < offset + 4 * words:
            raise RtpParseError("extension truncated")
        extension = (profile, bytes(data[offset:offset + 4 * words]))
        offset += 4 * words
    end = len(data)
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or end - padding < offset:
            raise RtpParseError("bad padding count")
        end -= padding
    return RtpPacket(payload_type=second & 0x7F, sequence=sequence, timestamp=timestamp,
                     ssrc=ssrc, payload=bytes(data[offset:end]), marker=bool(second & 0x80),
                     csrcs=tuple(csrcs), extension=extension, padding=padding)


def is_rtcp(data: bytes) -> bool:
    """True when ``data`` looks like RTCP rather than RTP (packet type 192-223, RFC 5761 4)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# --- RTCP -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportBlock:
    """One reception report block (RFC 3550 6.4.1).

    ``cumulative_lost`` is signed (24 bits); ``lsr`` and ``dlsr`` are in the NTP-middle-32
    format and 1/65536 s units.
    """
    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0


@dataclass(frozen=True)
class SenderReport:
    """An SR: sender info plus reception report blocks. ``ntp_timestamp`` is the 64-bit value."""
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class ReceiverReport:
    """An RR: reception report blocks from a participant that did not send."""
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its ``(item type, value)`` items (CNAME is type 1)."""
    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class SourceDescription:
    """An SDES packet."""
    chunks: tuple[SdesChunk, ...] = ()


@dataclass(frozen=True)
class Bye:
    """A BYE packet with an optional reason."""
    ssrcs: tuple[int, ...] = ()
    reason: bytes | None = None


@dataclass(frozen=True)
class RtcpUnknown:
    """An RTCP packet of a type this module does not decode (APP, feedback...), kept whole."""
    packet_type: int
    count: int
    body: bytes = b""


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


def _pack_block(block: ReportBlock) -> bytes:
    lost = block.cumulative_lost
    if not -0x800000 <= lost <= 0x7FFFFF:
        raise ValueError("cumulative lost out of 24-bit range")
    return _BLOCK.pack(block.ssrc, block.fraction_lost, (lost & 0xFFFFFF).to_bytes(3, "big"),
                       block.highest_sequence, block.jitter, block.lsr, block.dlsr)


def _unpack_block(data: bytes, offset: int) -> ReportBlock:
    ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
    cumulative = int.from_bytes(lost, "big")
    if cumulative & 0x800000:
        cumulative -= 0x1000000
    return ReportBlock(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


def _frame(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise ValueError("RTCP count field holds at most 31")
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 octets")
    return _RTCP_HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def build_rtcp_packet(packet: RtcpPacket) -> bytes:
    """Serialize one RTCP packet."""
    if isinstance(packet, SenderReport):
        body = _SR_INFO.pack(packet.ssrc, packet.ntp_timestamp, packet.rtp_timestamp,
                             packet.packet_count, packet.octet_count)
        body += b"".join(_pack_block(b) for b in packet.reports)
        return _frame(RTCP_SR, len(packet.reports), body)
    if isinstance(packet, ReceiverReport):
        body = struct.pack("!I", packet.ssrc) + b"".join(_pack_block(b) for b in packet.reports)
        return _frame(RTCP_RR, len(packet.reports), body)
    if isinstance(packet, SourceDescription):
        chunks = []
        for chunk in packet.chunks:
            items = b"".join(bytes((kind, len(value))) + value for kind, value in chunk.items)
            raw = struct.pack("!I", chunk.ssrc) + items + b"\x00"
            chunks.append(_pad4(raw))
        return _frame(RTCP_SDES, len(packet.chunks), b"".join(chunks))
    if isinstance(packet, Bye):
        body = b"".join(struct.pack("!I", s) for s in packet.ssrcs)
        if packet.reason is not None:
            body += _pad4(bytes((len(packet.reason),)) + packet.reason)
        return _frame(RTCP_BYE, len(packet.ssrcs), body)
    if isinstance(packet, RtcpUnknown):
        return _frame(packet.packet_type, packet.count, packet.body)
    raise TypeError("not an RTCP packet: %r" % (packet,))


def build_rtcp(packets) -> bytes:
    """Serialize a compound RTCP packet (RFC 3550 6.1) from an iterable of packets."""
    return b"".join(build_rtcp_packet(p) for p in packets)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtpParseError("SDES chunk truncated")
        ssrc = int.from_bytes(body[offset:offset + 4], "big")
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RtpParseError("SDES item list not terminated")
            kind = body[offset]
            if kind == 0:
                offset += 1
                offset += -offset % 4
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtpParseError("SDES item truncated")
            length = body[offset + 1]
            items.append((kind, bytes(body[offset + 2:offset + 2 + length])))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24 + 24 * count:
            raise RtpParseError("SR truncated")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        blocks = tuple(_unpack_block(body, 24 + 24 * i) for i in range(count))
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks)
    if packet_type == RTCP_RR:
        if len(body) < 4 + 24 * count:
            raise RtpParseError("RR truncated")
        ssrc = int.from_bytes(body[:4], "big")
        return ReceiverReport(ssrc, tuple(_unpack_block(body, 4 + 24 * i) for i in range(count)))
    if packet_type == RTCP_SDES:
        return _parse_sdes(body, count)
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtpParseError("BYE truncated")
        ssrcs = struct.unpack_from("!%dI" % count, body)
        reason = None
        rest = body[4 * count:]
        if rest:
            if 1 + rest[0] > len(rest):
                raise RtpParseError("BYE reason truncated")
            reason = bytes(rest[1:1 + rest[0]])
        return Bye(tuple(ssrcs), reason)
    return RtcpUnknown(packet_type, count, bytes(body))


def parse_rtcp(data: bytes) -> tuple[RtcpPacket, ...]:
    """Parse a (compound) RTCP packet into its packets; raises ``RtpParseError``."""
    packets = []
    offset = 0
    if len(data) < 4:
        raise RtpParseError("RTCP packet shorter than 4 octets")
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtpParseError("RTCP header truncated")
        first, packet_type, words = _RTCP_HEADER.unpack_from(data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError("RTCP version is not 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise RtpParseError("RTCP length beyond the datagram")
        body = data[offset + 4:end]
        if first & 0x20:
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtpParseError("bad RTCP padding")
            body = body[:-body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, body))
        offset = end
    return tuple(packets)


def ntp_timestamp(unix_time: float) -> int:
    """The 64-bit NTP timestamp for a Unix time in seconds (RFC 3550 4)."""
    seconds = unix_time + NTP_UNIX_OFFSET
    whole = int(seconds)
    return ((whole & 0xFFFFFFFF) << 32) | int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (the LSR / RTT time base)."""
    return (ntp >> 16) & 0xFFFFFFFF
