"""Framings of the client protocol: media frames, TCP length prefixes, WebSocket, HTTP and SSE.

Owned by the client protocol; the spec is docs/protocol.md ("Media frames", "Framings").
A *payload* is either a control message (compact JSON, first byte ``{``) or a media frame
(binary, first byte ``MEDIA_V1`` = 0x01); ``kind_of`` tells them apart. Each framing carries
payloads unchanged:

- UDP: one payload per datagram (control payloads go through ``reliable.py``).
- TCP (and TLS): ``length (uint16, big-endian) | payload``; ``TcpDeframer`` splits a stream.
- WebSocket: control in text frames, media in binary frames (``websocket_payload`` checks).
- HTTP: ``POST`` one payload per request; the server's payloads come as SSE events
  (``sse_event``; ``SseParser`` is the client's side).

Nothing here does I/O. Tests: tests/client_proto/test_framing.py.
"""
from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import NamedTuple

from protocols.client.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocols.client.messages import MAX_MESSAGE, b64e

MEDIA_V1 = 0x01
KEY_LEN = 16
MEDIA_HEADER = struct.Struct("!BBHI16s")      # kind, payload type, sequence, timestamp, key
MAX_MEDIA_PAYLOAD = 1400
MAX_PAYLOAD = max(MAX_MESSAGE, MEDIA_HEADER.size + MAX_MEDIA_PAYLOAD)
TCP_PREFIX = struct.Struct("!H")
_pack_header = MEDIA_HEADER.pack
CONTROL, MEDIA = "control", "media"


class MediaFrame(NamedTuple):
    """One media frame: the per-call ``key`` (16 bytes), an RTP-style payload type (0..127),
    sequence (uint16, wraps), timestamp (uint32, sample clock) and the codec payload.

    A named tuple (immutable) rather than a frozen dataclass: one is made per frame each way,
    and a tuple costs a fifth of a frozen dataclass to build (bench/frames_profile.py)."""
    key: bytes
    payload_type: int
    sequence: int
    timestamp: int
    payload: bytes


def encode_media(frame: MediaFrame) -> bytes:
    """The binary form of ``frame``; raises LocalProtocolError when a field is out of range."""
    key, pt, seq, ts, payload = frame
    if len(key) != KEY_LEN or len(payload) > MAX_MEDIA_PAYLOAD or not 0 <= pt <= 127:
        raise LocalProtocolError(f"invalid media frame {frame!r:.80}")
    try:
        head = _pack_header(MEDIA_V1, pt, seq, ts, bytes(key))
    except struct.error:        # sequence or timestamp out of range
        raise LocalProtocolError(f"invalid media frame {frame!r:.80}") from None
    return head + payload if type(payload) is bytes else head + bytes(payload)


_HEADER_SIZE = MEDIA_HEADER.size
_MAX_FRAME = MEDIA_HEADER.size + MAX_MEDIA_PAYLOAD
_unpack_header = MEDIA_HEADER.unpack_from


def check_media(data: bytes) -> None:
    """Raise what ``decode_media`` would for ``data``, without building the frame."""
    size = len(data)
    if size < _HEADER_SIZE or data[0] != MEDIA_V1:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "not a media frame")
    if size > _MAX_FRAME:
        raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, "media payload too large")
    if data[1] > 127:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "payload type over 127")


def decode_media(data: bytes) -> MediaFrame:
    """Parse a media frame; raises RemoteProtocolError (BAD_FRAME / FRAME_TOO_LARGE)."""
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size < _HEADER_SIZE or data[0] != MEDIA_V1:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "not a media frame")
    if size > _MAX_FRAME:
        raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, "media payload too large")
    _, pt, seq, ts, key = _unpack_header(data)
    if pt > 127:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "payload type over 127")
    return MediaFrame(key, pt, seq, ts, data[_HEADER_SIZE:])


def kind_of(payload: bytes) -> str:
    """CONTROL or MEDIA by the first byte; RemoteProtocolError(BAD_FRAME) for anything else."""
    if payload[:1] == b"{":
        return CONTROL
    if payload[:1] == bytes([MEDIA_V1]):
        return MEDIA
    raise RemoteProtocolError(ErrorCode.BAD_FRAME, "payload is neither JSON nor a media frame")


# ---------------------------------------------------------------- TCP

def tcp_frame(payload: bytes) -> bytes:
    """``payload`` with its two-byte big-endian length prefix."""
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise LocalProtocolError(f"payload of {len(payload)} bytes cannot be framed")
    return TCP_PREFIX.pack(len(payload)) + payload


class TcpDeframer:
    """Split a TCP byte stream into payloads. A zero or oversized length cannot be recovered
    from: the frames complete before it are still returned, ``broken`` then holds the fatal
    RemoteProtocolError, and every later ``receive_data`` raises it. An adapter handles the
    returned payloads, then closes the connection when ``broken`` is set."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max = max_payload
        self._broken: RemoteProtocolError | None = None

    def receive_data(self, data: bytes) -> list[bytes]:
        """Feed bytes (any split); returns the complete payloads, in order."""
        if self._broken is not None:
            raise self._broken
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= TCP_PREFIX.size:
            (size,) = TCP_PREFIX.unpack_from(self._buf)
            if size == 0 or size > self._max:
                code = ErrorCode.BAD_FRAME if size == 0 else ErrorCode.FRAME_TOO_LARGE
                self._broken = RemoteProtocolError(code, f"frame length {size}", fatal=True)
                self._buf.clear()
                if out:
                    return out          # deliver what came before the fault
                raise self._broken
            if len(self._buf) < TCP_PREFIX.size + size:
                break
            out.append(bytes(self._buf[TCP_PREFIX.size:TCP_PREFIX.size + size]))
            del self._buf[:TCP_PREFIX.size + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)

    @property
    def broken(self) -> RemoteProtocolError | None:
        """The fatal framing error once the stream is beyond recovery, else None."""
        return self._broken


# ---------------------------------------------------------------- WebSocket

def websocket_payload(data: bytes, is_binary: bool) -> bytes:
    """Check a WebSocket message: control JSON in text frames, media in binary frames."""
    if kind_of(data) != (MEDIA if is_binary else CONTROL):
        raise RemoteProtocolError(ErrorCode.BAD_FRAME,
                                  "media goes in binary frames, control in text frames")
    return data


def websocket_frame_kind(payload: bytes) -> bool:
    """True when ``payload`` must be sent as a binary WebSocket frame."""
    return kind_of(payload) == MEDIA


# ---------------------------------------------------------------- HTTP + SSE

HTTP_CONTENT_TYPES = {CONTROL: "application/json", MEDIA: "application/octet-stream"}


def http_payload(body: bytes, content_type: str) -> bytes:
    """Check a POST body against its Content-Type (parameters such as charset ignored)."""
    base = content_type.split(";", 1)[0].strip().lower()
    if len(body) > MAX_PAYLOAD:
        raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, "body too large")
    if not body or HTTP_CONTENT_TYPES.get(kind_of(body)) != base:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, "body does not match its Content-Type")
    return body


def sse_event(payload: bytes, event_id: int | None = None) -> bytes:
    """One Server-Sent Events event carrying ``payload``: control JSON as ``data:``; media
    frames as ``event: media`` with base64url data. ``event_id`` becomes ``id:``."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    if kind_of(payload) == MEDIA:
        return head + b"event: media\ndata: " + b64e(payload).encode("ascii") + b"\n\n"
    if b"\n" in payload or b"\r" in payload:
        raise LocalProtocolError("control payload with a line break")
    return head + b"data: " + payload + b"\n\n"


def sse_session_event(session: str) -> bytes:
    """The first event of a stream: the HTTP session id the client puts on its POSTs."""
    return b"event: session\ndata: " + session.encode("ascii") + b"\n\n"


@dataclass(frozen=True)
class SseEvent:
    """One parsed SSE event."""
    event: str
    data: str
    id: str | None = None


class SseParser:
    """Parse an SSE stream (the client side of the HTTP framing), per the WHATWG rules that
    matter here: ``event``, ``data`` (joined by newlines), ``id``, comments, CR/LF/CRLF."""

    def __init__(self, max_event: int = 2 * MAX_PAYLOAD) -> None:
        self._buf = b""
        self._max = max_event
        self._event, self._data, self._id = "", [], None

    def receive_data(self, data: bytes) -> list[SseEvent]:
        """Feed bytes; returns the complete events."""
        self._buf += data
        out: list[SseEvent] = []
        while True:
            cut = min((i for i in (self._buf.find(b"\n"), self._buf.find(b"\r")) if i >= 0),
                      default=-1)
            if cut < 0:
                if len(self._buf) > self._max:
                    raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, "SSE line too long",
                                              fatal=True)
                return out
            if self._buf[cut:cut + 1] == b"\r" and cut + 1 == len(self._buf):
                return out          # wait: a CR may be followed by LF
            line = self._buf[:cut]
            step = 2 if self._buf[cut:cut + 2] == b"\r\n" else 1
            self._buf = self._buf[cut + step:]
            event = self._line(line.decode("utf-8", "replace"))
            if event is not None:
                out.append(event)

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            ev = SseEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            if sum(len(d) for d in self._data) > self._max:
                raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, "SSE event too large",
                                          fatal=True)
        elif name == "id":
            self._id = value
        return None


def sse_payload(event: SseEvent) -> bytes:
    """The payload an SSE event carries (media events are base64url-decoded)."""
    if event.event == "media":
        text = event.data
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise RemoteProtocolError(ErrorCode.BAD_FRAME, "bad media event") from None
    return event.data.encode("utf-8")
