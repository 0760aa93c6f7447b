"""RFC 4733 telephone events (DTMF over RTP), sans-I/O.

Owns the 4-octet event payload (RFC 4733 2.3: event, E bit, volume, duration), the mapping of
DTMF digits to event codes (3.2: 0-9, * = 10, # = 11, A-D = 12-15), a sender that turns a digit
and a duration into the packet sequence at a given ptime (2.5.1: one RTP timestamp for the
event, growing duration, marker on the first packet, the end packet sent three times), and a
receiver that reports each event once, on its first end packet, ignoring retransmitted ends
(2.5.2); an event whose end packets were all lost is reported when the next one starts.
Events longer than 65535 timestamp units are capped at that (RFC 4733 2.5.1.3 segments
are not sent).

Tests: tests/rtp/test_rtp_dtmf.py.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.rtp.packet import RtpPacket

DIGITS = "0123456789*#ABCD"
END_RETRANSMISSIONS = 3
MAX_DURATION = 0xFFFF


class DtmfError(ValueError):
    """A telephone-event payload is malformed or a digit is unknown."""


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit; raises DtmfError for an unknown digit."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise DtmfError("not a DTMF digit: %r" % (digit,))
    return index


def event_digit(code: int) -> str | None:
    """The DTMF digit of an event code, or None for non-DTMF events (tones, 16-255)."""
    return DIGITS[code] if 0 <= code < 16 else None


@dataclass(frozen=True)
class TelephoneEvent:
    """One telephone-event payload. ``volume`` is 0..63 (-dBm0); ``duration`` in samples."""
    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def to_bytes(self) -> bytes:
        """Serialize (RFC 4733 2.3)."""
        if not (0 <= self.event < 256 and 0 <= self.volume < 64 and 0 <= self.duration <= 0xFFFF):
            raise DtmfError("telephone-event field out of range")
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | self.volume,
                           self.duration)


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload (the first 4 octets; RFC 4733 allows redundancy after)."""
    if len(payload) < 4:
        raise DtmfError("telephone-event payload shorter than 4 octets")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class DtmfSender:
    """Turns digits into RFC 4733 packets for one RTP stream.

    ``packets(...)`` returns ``[(offset_seconds, RtpPacket), ...]``: send each packet
    ``offset_seconds`` after the first. The caller owns the stream's sequence numbers and
    passes the next one; the event uses timestamp ``timestamp`` (the event's start).
    """

    def __init__(self, payload_type: int, ssrc: int, clock_rate: int = 8000,
                 ptime: int = 20, volume: int = 10):
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.ptime = ptime
        self.volume = volume

    def packets(self, digit: str, duration_ms: int, sequence: int, timestamp: int):
        """The packets for ``digit`` lasting ``duration_ms``; see the class docstring."""
        code = event_code(digit)
        step = self.clock_rate * self.ptime // 1000
        total = min(max(step, self.clock_rate * duration_ms // 1000), MAX_DURATION)
        out = []
        elapsed = 0
        index = 0
        while True:
            elapsed = min(elapsed + step, total)
            end = elapsed >= total
            repeats = END_RETRANSMISSIONS if end else 1
            for _ in range(repeats):
                payload = TelephoneEvent(code, end, self.volume, elapsed).to_bytes()
                packet = RtpPacket(self.payload_type, (sequence + index) & 0xFFFF,
                                   timestamp & 0xFFFFFFFF, self.ssrc, payload,
                                   marker=(index == 0))
                out.append((index * self.ptime / 1000.0, packet))
                index += 1
            if end:
                return out


@dataclass(frozen=True)
class DtmfEvent:
    """A received DTMF digit. ``ended`` is False when its end packets never arrived."""
    digit: str
    duration_ms: int
    ended: bool = True


class DtmfReceiver:
    """Reports each received telephone event once (RFC 4733 2.5.2).

    Feed it the RTP packets of the telephone-event payload type; ``receive`` returns a list of
    ``DtmfEvent`` (usually empty or one).
    """

    def __init__(self, clock_rate: int = 8000):
        self.clock_rate = clock_rate
        self._current = None  # (timestamp, event, duration) of the event in progress
        self._ended = set()
        self._ended_order = []

    def _event(self, code: int, duration: int, ended: bool):
        digit = event_digit(code)
        if digit is None:
            return []
        return [DtmfEvent(digit, duration * 1000 // self.clock_rate, ended)]

    def receive(self, packet: RtpPacket) -> list[DtmfEvent]:
        """Process one packet; raises DtmfError for a malformed payload."""
        event = parse_event(packet.payload)
        timestamp = packet.timestamp
        if timestamp in self._ended:
            return []  # a retransmitted end (or a late update) of a reported event
        out = []
        if self._current is not None and self._current[0] != timestamp:
            _, code, duration = self._current
            out += self._event(code, duration, False)
            self._remember(self._current[0])
        if event.end:
            self._current = None
            self._remember(timestamp)
            out += self._event(event.event, event.duration, True)
        else:
            self._current = (timestamp, event.event, event.duration)
        return out

    def _remember(self, timestamp: int):
        self._ended.add(timestamp)
        self._ended_order.append(timestamp)
        if len(self._ended_order) > 32:
            self._ended.discard(self._ended_order.pop(0))
