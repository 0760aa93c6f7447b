"""G.711 mu-law and A-law (ITU-T G.711), table-driven, sans-I/O.

Encodes 16-bit native-endian linear PCM to 8-bit codes and back, bit for bit as stdlib
``audioop`` (lin2ulaw / ulaw2lin / lin2alaw / alaw2lin with width 2) does, without importing it
(it is gone in Python 3.13). The tables are computed once at import from the reference
algorithm (the Sun/CCITT code audioop carries). ``ulaw_to_alaw`` / ``alaw_to_ulaw`` are
256-entry ``bytes.translate`` tables equal to decode-then-encode.

Tests: tests/rtp/test_rtp_g711.py (exhaustive against audioop on all 65,536 / 256 codes).
"""
from __future__ import annotations

import struct
import sys
from array import array

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_BIAS = 0x84
_CLIP = 8159

ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for index, end in enumerate(ends):
        if value <= end:
            return index
    return len(ends)


def _linear14_to_ulaw(pcm: int) -> int:
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, _CLIP) + (_BIAS >> 2)
    seg = _segment(pcm, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask


def _linear13_to_alaw(pcm: int) -> int:
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = _segment(pcm, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    code = seg << 4
    code |= (pcm >> (1 if seg < 2 else seg)) & 0x0F
    return code ^ mask


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + _BIAS) << ((code & 0x70) >> 4)
    return _BIAS - t if code & 0x80 else t - _BIAS


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


def _signed(index: int) -> int:
    return index - 0x10000 if index & 0x8000 else index


_ULAW_ENCODE = bytes(_linear14_to_ulaw(_signed(i) >> 2) for i in range(0x10000))
_ALAW_ENCODE = bytes(_linear13_to_alaw(_signed(i) >> 3) for i in range(0x10000))
ULAW_LINEAR = tuple(_ulaw_to_linear(c) for c in range(256))
"""mu-law code -> linear 16-bit sample."""
ALAW_LINEAR = tuple(_alaw_to_linear(c) for c in range(256))
"""A-law code -> linear 16-bit sample."""
_ORDER = "<" if sys.byteorder == "little" else ">"
_ULAW_DECODE = tuple(struct.pack(_ORDER + "h", v) for v in ULAW_LINEAR)
_ALAW_DECODE = tuple(struct.pack(_ORDER + "h", v) for v in ALAW_LINEAR)

ULAW_TO_ALAW = bytes(_ALAW_ENCODE[v & 0xFFFF] for v in ULAW_LINEAR)
"""``bytes.translate`` table: mu-law code -> A-law code (decode, then encode)."""
ALAW_TO_ULAW = bytes(_ULAW_ENCODE[v & 0xFFFF] for v in ALAW_LINEAR)
"""``bytes.translate`` table: A-law code -> mu-law code."""

_ENCODERS = {"PCMU": _ULAW_ENCODE, "PCMA": _ALAW_ENCODE}
_DECODERS = {"PCMU": _ULAW_DECODE, "PCMA": _ALAW_DECODE}
SILENCE = {"PCMU": ULAW_SILENCE, "PCMA": ALAW_SILENCE}
"""The code for a zero sample in each encoding."""


def _check(pcm: bytes) -> memoryview:
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even length")
    return memoryview(pcm).cast("B").cast("H")


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit native-endian PCM -> mu-law (as ``audioop.lin2ulaw(pcm, 2)``)."""
    return bytes(map(_ULAW_ENCODE.__getitem__, _check(pcm)))


def alaw_encode(pcm: bytes) -> bytes:
    """16-bit native-endian PCM -> A-law (as ``audioop.lin2alaw(pcm, 2)``)."""
    return bytes(map(_ALAW_ENCODE.__getitem__, _check(pcm)))


def ulaw_decode(codes: bytes) -> bytes:
    """mu-law -> 16-bit native-endian PCM (as ``audioop.ulaw2lin(codes, 2)``)."""
    return b"".join(map(_ULAW_DECODE.__getitem__, codes))


def alaw_decode(codes: bytes) -> bytes:
    """A-law -> 16-bit native-endian PCM (as ``audioop.alaw2lin(codes, 2)``)."""
    return b"".join(map(_ALAW_DECODE.__getitem__, codes))


def ulaw_to_alaw(codes: bytes) -> bytes:
    """mu-law codes -> A-law codes (one table lookup per octet)."""
    return codes.translate(ULAW_TO_ALAW)


def alaw_to_ulaw(codes: bytes) -> bytes:
    """A-law codes -> mu-law codes."""
    return codes.translate(ALAW_TO_ULAW)


def encode(codec: str, pcm: bytes) -> bytes:
    """Encode PCM with ``codec`` ("PCMU" or "PCMA")."""
    return bytes(map(_ENCODERS[codec].__getitem__, _check(pcm)))


def decode(codec: str, codes: bytes) -> bytes:
    """Decode ``codec`` ("PCMU" or "PCMA") codes to PCM."""
    return b"".join(map(_DECODERS[codec].__getitem__, codes))


def decode_samples(codec: str, codes: bytes) -> array:
    """Decode to an ``array('h')`` of samples (handy for tone analysis)."""
    table = ULAW_LINEAR if codec == "PCMU" else ALAW_LINEAR
    return array("h", map(table.__getitem__, codes))


def translation(source: str, target: str) -> bytes | None:
    """The ``bytes.translate`` table from ``source`` to ``target`` codes, or None if equal."""
    if source == target:
        return None
    if (source, target) == ("PCMU", "PCMA"):
        return ULAW_TO_ALAW
    if (source, target) == ("PCMA", "PCMU"):
        return ALAW_TO_ULAW
    raise ValueError("no G.711 translation from %s to %s" % (source, target))
