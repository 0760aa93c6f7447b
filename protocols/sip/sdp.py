"""SDP for audio calls: parse and write session descriptions, and RFC 3264 offer/answer.

Owns RFC 4566 (SDP: line grammar section 5 and 9, origin 5.2, connection data 5.7, media
descriptions 5.14, rtpmap/ptime/direction attributes 6) and RFC 3264 (the offer/answer model:
generating an offer 5, the answer 6 and 6.1, rejected streams with port 0, direction attributes
and the old c=0.0.0.0 hold 8.4), for G.711 audio (static payload types 0 and 8, RFC 3551) and
RFC 4733 telephone-event.

The call leg speaks ``callgw.callserver.events.MediaDescription``; this module must not import
callgw, so ``media_from_sdp`` returns a dict with that class's field names and ``make_offer`` /
``make_answer`` take them as arguments. ``SdpError`` means "no acceptable audio": the leg
answers 488 Not Acceptable Here (RFC 3261 13.3.1.1).

Tests: tests/sip/test_sdp.py.
"""
from __future__ import annotations

import re

__all__ = ["SdpError", "SessionDescription", "Media", "Origin", "parse_sdp", "make_offer",
           "make_answer", "media_from_sdp", "DIRECTIONS", "STATIC_PAYLOAD_TYPES"]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
STATIC_PAYLOAD_TYPES = {0: "PCMU", 8: "PCMA"}           # RFC 3551 table 4 (the ones we carry)
_CODEC_PT = {"PCMU": 0, "PCMA": 8}
_AUDIO_PROTOS = ("RTP/AVP", "RTP/AVPF")
_LINE_RE = re.compile(r"([a-z])=(.*)\Z")


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


class SdpError(ValueError):
    """The description is not SDP, or offers no audio we can take (answer with 488)."""

    status = 488

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Origin:
    """The o= line (RFC 4566 5.2)."""

    __slots__ = ("username", "session_id", "version", "nettype", "addrtype", "address")

    def __init__(self, username="-", session_id="0", version="0", nettype="IN", addrtype="IP4",
                 address="0.0.0.0"):
        self.username = username
        self.session_id = str(session_id)
        self.version = str(version)
        self.nettype = nettype
        self.addrtype = addrtype
        self.address = address

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.version} {self.nettype} "
                f"{self.addrtype} {self.address}")

    def __eq__(self, other) -> bool:
        return isinstance(other, Origin) and str(self) == str(other)


def _parse_origin(value: str) -> Origin:
    parts = value.split(" ")
    if len(parts) != 6 or not all(parts):
        raise SdpError("Bad o= line")
    return Origin(*parts)


def _connection_address(value: str) -> tuple[str, str]:
    """c=IN IP4 192.0.2.1[/ttl] -> ("IP4", "192.0.2.1")."""
    parts = value.split(" ")
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6") or not parts[2]:
        raise SdpError("Bad c= line")
    return parts[1], parts[2].split("/", 1)[0]


class Media:
    """One m= section: ``kind`` (audio, video...), ``port``, ``proto``, ``formats`` (strings)
    and its other lines in order as (type, value) pairs; attributes are ``a`` lines."""

    __slots__ = ("kind", "port", "port_count", "proto", "formats", "lines")

    def __init__(self, kind: str, port: int, proto: str, formats, lines=None, port_count=None):
        self.kind = kind
        self.port = port
        self.port_count = port_count
        self.proto = proto
        self.formats = list(formats)
        self.lines = [] if lines is None else lines

    def attributes(self, name: str) -> list[str | None]:
        """Values of every ``a=name[:value]`` line of this section (None for a flag)."""
        out = []
        for kind, value in self.lines:
            if kind == "a":
                attr, colon, rest = value.partition(":")
                if attr == name:
                    out.append(rest if colon else None)
        return out

    @property
    def connection(self) -> str | None:
        for kind, value in self.lines:
            if kind == "c":
                return value
        return None

    def rtpmap(self) -> dict[int, tuple[str, int, str | None]]:
        """{payload type: (encoding name, clock rate, channels)} from a=rtpmap lines."""
        out = {}
        for value in self.attributes("rtpmap"):
            if value is None:
                continue
            pt, _, enc = value.partition(" ")
            parts = enc.strip().split("/")
            if _is_number(pt) and len(parts) >= 2 and _is_number(parts[1]):
                out[int(pt)] = (parts[0], int(parts[1]), parts[2] if len(parts) > 2 else None)
        return out

    def fmtp(self, pt: int) -> str | None:
        for value in self.attributes("fmtp"):
            if value is not None:
                fpt, _, params = value.partition(" ")
                if fpt == str(pt):
                    return params.strip()
        return None

    def direction(self) -> str | None:
        for kind, value in self.lines:
            if kind == "a" and value in DIRECTIONS:
                return value
        return None

    def header(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count else str(self.port)
        return " ".join([self.kind, port, self.proto] + self.formats)

    def __eq__(self, other) -> bool:
        return isinstance(other, Media) and self.header() == other.header() \
            and self.lines == other.lines


class SessionDescription:
    """A parsed SDP: ``origin``, ``name``, session-level ``lines`` (type, value) other than
    v/o/s, and ``media`` sections. ``to_bytes()`` writes the lines in the order held (parsing
    keeps the wire order; builders here add them in RFC 4566 order) with CRLF."""

    __slots__ = ("origin", "name", "lines", "media")

    def __init__(self, origin: Origin, name: str = "-", lines=None, media=None):
        self.origin = origin
        self.name = name
        self.lines = [] if lines is None else lines
        self.media = [] if media is None else media

    @property
    def connection(self) -> str | None:
        for kind, value in self.lines:
            if kind == "c":
                return value
        return None

    def attributes(self, name: str) -> list[str | None]:
        return Media.attributes(self, name)

    def to_bytes(self) -> bytes:
        out = ["v=0", f"o={self.origin}", f"s={self.name}"]
        out += [f"{k}={v}" for k, v in self.lines]
        for media in self.media:
            out.append("m=" + media.header())
            out += [f"{k}={v}" for k, v in media.lines]
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")

    def __eq__(self, other) -> bool:
        return isinstance(other, SessionDescription) and self.origin == other.origin \
            and self.name == other.name and self.lines == other.lines \
            and self.media == other.media


def parse_sdp(data: bytes) -> SessionDescription:
    """Parse an SDP body (CRLF or LF line ends). Raises ``SdpError`` and nothing else."""
    try:
        text = bytes(data).decode("utf-8", "surrogateescape")
    except (TypeError, ValueError):
        raise SdpError("SDP body is not bytes") from None
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    origin = name = None
    session, media, current = [], [], None
    for line in lines[1:]:
        m = _LINE_RE.match(line)
        if m is None:
            raise SdpError("Bad SDP line")
        kind, value = m.groups()
        if kind == "m":
            parts = value.split(" ")
            if len(parts) < 3 or not all(parts):
                raise SdpError("Bad m= line")
            port_text, slash, count = parts[1].partition("/")
            if not _is_number(port_text) or int(port_text) > 65535 or \
                    (slash and not _is_number(count)):
                raise SdpError("Bad port in m= line")
            if len(parts) == 3 and port_text != "0":
                raise SdpError("No formats in m= line")
            current = Media(parts[0], int(port_text), parts[2], parts[3:], [],
                            int(count) if slash else None)
            media.append(current)
        elif current is not None:
            if kind not in "icbka":
                raise SdpError(f"Unexpected {kind}= line in a media section")
            if kind == "c":
                _connection_address(value)
            current.lines.append((kind, value))
        elif kind == "o":
            if origin is not None:
                raise SdpError("Several o= lines")
            origin = _parse_origin(value)
        elif kind == "s":
            if name is not None:
                raise SdpError("Several s= lines")
            name = value
        elif kind in "iuepcbtrzka":
            if kind == "c":
                _connection_address(value)
            session.append((kind, value))
        else:
            raise SdpError(f"Unknown SDP line type {kind}=")
    if origin is None or name is None:
        raise SdpError("SDP needs o= and s= lines")
    return SessionDescription(origin, name, session, media)


def _direction(media: Media, sdp: SessionDescription) -> str:
    direction = media.direction()
    if direction is None:
        for kind, value in sdp.lines:
            if kind == "a" and value in DIRECTIONS:
                return value
        return "sendrecv"
    return direction


def _audio_choice(sdp: SessionDescription):
    """The first audio stream we could use: (index, media, [(pt, codec)], te_pt) or None."""
    for index, media in enumerate(sdp.media):
        if media.kind != "audio" or media.port == 0 or media.proto.upper() not in _AUDIO_PROTOS:
            continue
        rtpmap = media.rtpmap()
        codecs, te = [], None
        for fmt in media.formats:
            if not _is_number(fmt):
                continue
            pt = int(fmt)
            enc = rtpmap.get(pt)
            if enc is None:
                name = STATIC_PAYLOAD_TYPES.get(pt)
                if name is not None:
                    codecs.append((pt, name))
                continue
            name, clock = enc[0].upper(), enc[1]
            if name in _CODEC_PT and clock == 8000:
                if all(c != name for _, c in codecs):
                    codecs.append((pt, name))
            elif name == "TELEPHONE-EVENT" and clock == 8000 and te is None:
                te = pt
        if codecs:
            return index, media, codecs, te
    return None


def media_from_sdp(data: bytes) -> dict:
    """The first usable audio stream as MediaDescription fields.

    Returns ``dict(address, port, codecs, telephone_event, ptime, direction)``; ``codecs`` are
    "PCMU"/"PCMA" in the stream's order. c= comes from the stream or the session level. An old
    style hold (c=0.0.0.0, RFC 3264 8.4) keeps its address and turns sendrecv into sendonly and
    recvonly into inactive. Raises ``SdpError`` when there is no acceptable audio.
    """
    sdp = parse_sdp(data)
    choice = _audio_choice(sdp)
    if choice is None:
        raise SdpError("No acceptable audio stream (PCMU or PCMA over RTP/AVP)")
    _, media, codecs, te = choice
    conn = media.connection or sdp.connection
    if conn is None:
        raise SdpError("No c= line for the audio stream")
    _, address = _connection_address(conn)
    direction = _direction(media, sdp)
    if address in ("0.0.0.0", "::"):
        direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
    ptime = 20
    for value in media.attributes("ptime"):
        try:
            value = int(float(value))
        except (TypeError, ValueError, OverflowError):
            continue
        if 0 < value <= 1000:
            ptime = value
            break
    return dict(address=address, port=media.port, codecs=tuple(c for _, c in codecs),
                telephone_event=te, ptime=ptime, direction=direction)


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _audio_lines(pts_codecs, te, te_fmtp, ptime, direction) -> list:
    lines = []
    for pt, codec in pts_codecs:
        lines.append(("a", f"rtpmap:{pt} {codec}/8000"))
    if te is not None:
        lines.append(("a", f"rtpmap:{te} telephone-event/8000"))
        lines.append(("a", f"fmtp:{te} {te_fmtp}"))
    if ptime:
        lines.append(("a", f"ptime:{ptime}"))
    lines.append(("a", direction))
    return lines


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")


def make_offer(address: str, port: int, codecs=("PCMU", "PCMA"), telephone_event=101,
               ptime=20, direction="sendrecv", session_id=1, version=1) -> bytes:
    """An RFC 3264 section 5 offer with one audio stream (static PT 0/8, telephone-event)."""
    _check_direction(direction)
    pts = []
    for codec in codecs:
        if codec not in _CODEC_PT:
            raise ValueError(f"unsupported codec {codec!r}")
        pts.append((_CODEC_PT[codec], codec))
    formats = [str(pt) for pt, _ in pts]
    if telephone_event is not None:
        formats.append(str(telephone_event))
    kind = _addrtype(address)
    media = Media("audio", port, "RTP/AVP", formats,
                  _audio_lines(pts, telephone_event, "0-16", ptime, direction))
    sdp = SessionDescription(Origin("-", session_id, version, "IN", kind, address), "-",
                             [("c", f"IN {kind} {address}"), ("t", "0 0")], [media])
    return sdp.to_bytes()


_COMPLEMENT = {"sendrecv": (True, True), "sendonly": (True, False),
               "recvonly": (False, True), "inactive": (False, False)}


def _answer_direction(offered: str, wanted: str) -> str:
    """RFC 3264 6.1: we may send only if the offerer receives, receive only if it sends."""
    off_send, off_recv = _COMPLEMENT[offered]
    our_send, our_recv = _COMPLEMENT[wanted]
    send, recv = our_send and off_recv, our_recv and off_send
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(send, recv)]


def make_answer(offer: bytes, address: str, port: int, supported_codecs=("PCMU", "PCMA"),
                telephone_event=101, ptime=20, direction="sendrecv", session_id=1,
                version=1) -> bytes:
    """Answer ``offer`` per RFC 3264 section 6: one m= line per offered stream, in order.

    The first usable audio stream is accepted with the offered codecs we support, in the
    offer's order and with the offer's payload type numbers (6.1), telephone-event when both
    sides have it (``telephone_event`` None refuses it), and the direction complemented and
    limited by ``direction``. Every other stream is rejected with port 0. Raises ``SdpError``
    when there is no acceptable audio.
    """
    _check_direction(direction)
    sdp = parse_sdp(offer)
    choice = _audio_choice(sdp)
    if choice is not None:
        index, media, codecs, te = choice
        codecs = [(pt, c) for pt, c in codecs if c in supported_codecs]
    if choice is None or not codecs:
        raise SdpError("No acceptable audio stream (PCMU or PCMA over RTP/AVP)")
    if telephone_event is None:
        te = None
    kind = _addrtype(address)
    answer_media = []
    for i, offered in enumerate(sdp.media):
        if i == index:
            formats = [str(pt) for pt, _ in codecs] + ([str(te)] if te is not None else [])
            te_fmtp = offered.fmtp(te) if te is not None else None
            lines = _audio_lines(codecs, te, te_fmtp or "0-15", ptime,
                                 _answer_direction(_direction(offered, sdp), direction))
            answer_media.append(Media("audio", port, offered.proto, formats, lines))
        else:
            answer_media.append(Media(offered.kind, 0, offered.proto, offered.formats[:1] or ["0"]))
    timing = [kv for kv in sdp.lines if kv[0] == "t"][:1] or [("t", "0 0")]
    answer = SessionDescription(Origin("-", session_id, version, "IN", kind, address), "-",
                                [("c", f"IN {kind} {address}")] + timing, answer_media)
    return answer.to_bytes()
