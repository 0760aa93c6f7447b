"""TPKT framing (RFC 1006 section 6, as H.225.0 clause 6.2 / H.245 use it on TCP).

Owns: the 4-octet header (version 3, reserved 0, 16-bit length counting the header) and a
sans-I/O ``Framer`` that turns a TCP byte stream into whole payloads. A TPKT of length 4 (no
payload) is what H.323 endpoints send as a keep-alive; it is reported as ``b""``.

Tests: tests/h323/test_tpkt.py.
"""
from __future__ import annotations

VERSION = 3
HEADER = 4
MAX_PAYLOAD = 0xFFFF - HEADER


class TPKTError(Exception):
    """The peer sent something that is not TPKT (wrong version or impossible length)."""


def frame(payload: bytes) -> bytes:
    """``payload`` with its TPKT header."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"TPKT payload of {len(payload)} octets exceeds {MAX_PAYLOAD}")
    length = len(payload) + HEADER
    return bytes((VERSION, 0, length >> 8, length & 0xFF)) + payload


class Framer:
    """Bytes in (any split), whole payloads out; ``TPKTError`` once the stream is not TPKT
    (the framer then refuses further data: the connection is to be closed)."""

    def __init__(self):
        self._buffer = bytearray()
        self._broken = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._broken:
            raise TPKTError(self._broken)
        self._buffer += data
        payloads = []
        while len(self._buffer) >= HEADER:
            version, _reserved, high, low = self._buffer[:HEADER]
            length = (high << 8) | low
            if version != VERSION:
                self._broken = f"TPKT version {version}, expected {VERSION}"
            elif length < HEADER:
                self._broken = f"TPKT length {length} is shorter than its header"
            if self._broken:
                raise TPKTError(self._broken)
            if len(self._buffer) < length:
                break
            payloads.append(bytes(self._buffer[HEADER:length]))
            del self._buffer[:length]
        return payloads

    @property
    def pending(self) -> int:
        """Octets received that do not yet make a whole TPKT."""
        return len(self._buffer)
