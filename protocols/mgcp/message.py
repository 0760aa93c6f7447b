"""The MGCP codec: commands and responses to and from bytes (RFC 3435 section 3 and appendix A).

Owns RFC 3435 3.1 (message structure), 3.2.1 (command line: verb, transaction id, endpoint
name, "MGCP" and the protocol version with an optional profile), 3.2.2 (parameter lines:
``name: value``, names case-insensitive), 3.3 (response line: three-digit code, transaction id,
``/package`` for package codes, commentary), 3.4 (the session description after an empty line,
kept as bytes: ``protocols.sip.sdp`` reads it) and 3.5.5 (piggy-backing: several messages in one
datagram separated by a line holding a single period). Line ends are CRLF or LF on input; we
write CRLF.

``parse_datagram(data)`` never raises: it returns one item per piggy-backed message, a
``Command``, a ``Response`` or an ``MgcpParseError`` carrying the code to answer with (510, or
528 for a version that is not 1.x) and the transaction id when the first line gave one.
``encode`` / ``encode_datagram`` write messages back; ``parse(encode(m)) == m``. Whether a verb
is known, an endpoint is ours or the version is 1.0 is for the call agent (``agent``) to judge.

Tests: tests/mgcp/test_message.py (examples and Hypothesis round-trip / no-crash).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from protocols.mgcp.codes import RETURN_CODES

__all__ = ["Command", "Response", "MgcpParseError", "parse_datagram", "parse_message", "encode",
           "encode_datagram", "make_response", "summary", "MAX_DATAGRAM"]

#: RFC 3435 3.5.4: the default MaxMGCPDatagram, octets.
MAX_DATAGRAM = 4000
MAX_TID = 999_999_999

_COMMAND_LINE = re.compile(
    r"([A-Za-z][A-Za-z0-9]{3})[ \t]+(\d{1,9})[ \t]+(\S+)[ \t]+([Mm][Gg][Cc][Pp])[ \t]+"
    r"(\d{1,3}\.\d{1,3})(?:[ \t]+(.*?))?[ \t]*\Z")
_RESPONSE_LINE = re.compile(
    r"(\d{3})[ \t]+(\d{1,9})(?:[ \t]+/([^ \t]+))?(?:[ \t]+(.*?))?[ \t]*\Z")
_TID_GUESS = re.compile(r"[^ \t]+[ \t]+(\d{1,9})(?:[ \t]|\Z)")
_PARAM_LINE = re.compile(r"([^:\s]+)[ \t]*:[ \t]*(.*?)[ \t]*\Z")
_PARAM_NAME = re.compile(r"[^:\s]+\Z")
_SEPARATOR = re.compile(rb"(?<=\n)\.[ \t]*(?:\r?\n|\Z)")
_BLANK = re.compile(rb"\r?\n\r?\n")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class MgcpParseError(ValueError):
    """A message we cannot read. ``code`` is the return code to answer with (510 protocol
    error, 528 incompatible version), ``tid`` its transaction id if the first line gave one,
    ``is_command`` whether it looked like a command (only commands are answered)."""

    def __init__(self, reason: str, code: int = 510, tid: int | None = None,
                 is_command: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.tid = tid
        self.is_command = is_command

    def __eq__(self, other) -> bool:
        return (isinstance(other, MgcpParseError) and
                (self.reason, self.code, self.tid, self.is_command) ==
                (other.reason, other.code, other.tid, other.is_command))

    __hash__ = ValueError.__hash__


def _lookup(params, name: str) -> str | None:
    key = name.upper()
    for n, v in params:
        if n.upper() == key:
            return v
    return None


@dataclass(frozen=True, slots=True)
class Command:
    """One command (RFC 3435 3.2). ``params`` keeps the parameter lines in order as
    (name, value) pairs as written; ``param(name)`` looks one up case-insensitively."""
    verb: str
    tid: int
    endpoint: str
    params: tuple[tuple[str, str], ...] = ()
    sdp: bytes | None = None
    version: str = "1.0"
    profile: str = ""

    def param(self, name: str, default: str | None = None) -> str | None:
        value = _lookup(self.params, name)
        return default if value is None else value

    def has(self, name: str) -> bool:
        return _lookup(self.params, name) is not None

    def with_params(self, *extra: tuple[str, str]) -> "Command":
        """A copy with ``extra`` parameter lines added at the end."""
        return replace(self, params=self.params + tuple(extra))


@dataclass(frozen=True, slots=True)
class Response:
    """One response (RFC 3435 3.3): ``code``, ``tid``, ``package`` (8xx codes), ``comment``."""
    code: int
    tid: int
    comment: str = ""
    params: tuple[tuple[str, str], ...] = ()
    sdp: bytes | None = None
    package: str = ""

    def param(self, name: str, default: str | None = None) -> str | None:
        value = _lookup(self.params, name)
        return default if value is None else value

    def has(self, name: str) -> bool:
        return _lookup(self.params, name) is not None

    @property
    def provisional(self) -> bool:
        return 100 <= self.code < 200

    @property
    def final(self) -> bool:
        return self.code >= 200

    @property
    def success(self) -> bool:
        return 200 <= self.code < 300


# ---- parsing ------------------------------------------------------------------------------

def _guess_tid(line: str) -> int | None:
    m = _TID_GUESS.match(line)
    return int(m.group(1)) if m else None


def parse_message(data: bytes):
    """One message (no piggy-backing): a ``Command``, a ``Response`` or an ``MgcpParseError``."""
    split = _BLANK.search(data)
    if split:
        head, body = data[:split.start()], data[split.end():]
    else:
        head, body = data, b""
    head = head.rstrip(b"\r\n")
    raw_lines = head.split(b"\n")
    first_raw = raw_lines[0].rstrip(b"\r")
    first_guess = first_raw.decode("ascii", "replace")
    is_command = not first_guess[:3].isdigit()
    tid = _guess_tid(first_guess)
    try:
        lines = [line.rstrip(b"\r").decode("utf-8") for line in raw_lines]
    except UnicodeDecodeError:
        return MgcpParseError("message header is not UTF-8", tid=tid, is_command=is_command)
    first = lines[0]
    if not first.strip():
        return MgcpParseError("empty first line", tid=None, is_command=is_command)
    params = []
    for line in lines[1:]:
        if _BAD_CHARS.search(line):
            return MgcpParseError("control character in a parameter line", tid=tid,
                                  is_command=is_command)
        m = _PARAM_LINE.match(line)
        if not m:
            return MgcpParseError(f"bad parameter line {line[:40]!r}", tid=tid,
                                  is_command=is_command)
        params.append((m.group(1), m.group(2)))
    sdp = body if body else None
    if _BAD_CHARS.search(first):
        return MgcpParseError("control character in the first line", tid=tid,
                              is_command=is_command)
    if is_command:
        m = _COMMAND_LINE.match(first)
        if not m:
            return MgcpParseError(f"bad command line {first[:60]!r}", tid=tid)
        verb, tid_text, endpoint, _, version, profile = m.groups()
        if version.split(".")[0] != "1":
            return MgcpParseError(f"protocol version MGCP {version}", code=528,
                                  tid=int(tid_text))
        return Command(verb.upper(), int(tid_text), endpoint, tuple(params), sdp, version,
                       profile or "")
    m = _RESPONSE_LINE.match(first)
    if not m:
        return MgcpParseError(f"bad response line {first[:60]!r}", tid=tid, is_command=False)
    code, tid_text, package, comment = m.groups()
    return Response(int(code), int(tid_text), comment or "", tuple(params), sdp, package or "")


def parse_datagram(data: bytes) -> list:
    """Every message in one datagram (RFC 3435 3.5.5): a list of ``Command``, ``Response`` or
    ``MgcpParseError``; empty for a datagram holding only white space. Never raises."""
    out = []
    for part in _SEPARATOR.split(data):
        if not part.strip():
            continue
        try:
            out.append(parse_message(part))
        except Exception as exc:  # noqa: BLE001 - a parser bug must not become a crash
            out.append(MgcpParseError(f"unreadable message ({type(exc).__name__})", tid=None))
    return out


# ---- writing ------------------------------------------------------------------------------

def _check_params(params) -> None:
    for name, value in params:
        if not _PARAM_NAME.match(name):
            raise ValueError(f"bad MGCP parameter name {name!r}")
        if _BAD_CHARS.search(value) or value != value.strip(" \t"):
            raise ValueError(f"bad value for MGCP parameter {name}: {value!r}")


def _head(first: str, params) -> bytes:
    _check_params(params)
    lines = [first] + [f"{n}: {v}" if v else f"{n}:" for n, v in params]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def encode(message) -> bytes:
    """``message`` (Command or Response) as bytes; ValueError if it cannot be written."""
    if isinstance(message, Command):
        if not 0 <= message.tid <= MAX_TID or not re.fullmatch(r"[A-Z][A-Z0-9]{3}",
                                                                 message.verb):
            raise ValueError(f"bad command line {message.verb} {message.tid}")
        if not message.endpoint or re.search(r"\s", message.endpoint):
            raise ValueError(f"bad endpoint name {message.endpoint!r}")
        first = f"{message.verb} {message.tid} {message.endpoint} MGCP {message.version}"
        if message.profile:
            first += f" {message.profile}"
    elif isinstance(message, Response):
        if not 0 <= message.code <= 999 or not 0 <= message.tid <= MAX_TID:
            raise ValueError(f"bad response line {message.code} {message.tid}")
        first = f"{message.code:03d} {message.tid}"
        if message.package:
            first += f" /{message.package}"
        if message.comment:
            if message.comment.startswith("/") and not message.package:
                raise ValueError("a comment may not start with '/' (it reads as a package)")
            first += f" {message.comment}"
    else:
        raise TypeError(f"not an MGCP message: {message!r}")
    if _BAD_CHARS.search(first):
        raise ValueError(f"control character in {first!r}")
    data = _head(first, message.params)
    if message.sdp:
        if _SEPARATOR.search(b"\n" + message.sdp) or _BLANK.match(message.sdp):
            raise ValueError("session description holds a '.' line or starts blank")
        data += b"\r\n" + message.sdp
    return data


def encode_datagram(messages) -> bytes:
    """Several messages piggy-backed in one datagram (RFC 3435 3.5.5)."""
    parts = []
    for message in messages:
        data = encode(message)
        if not data.endswith(b"\n"):
            data += b"\r\n"
        parts.append(data)
    return b".\r\n".join(parts)


def make_response(command: Command, code: int, comment: str | None = None,
                  params=(), sdp: bytes | None = None, package: str = "") -> Response:
    """The response to ``command``; the comment defaults to "OK" for 2xx, else the RFC text."""
    if comment is None:
        comment = "OK" if 200 <= code < 300 else RETURN_CODES.get(code, "")
    return Response(code, command.tid, comment, tuple(params), sdp, package)


def summary(message) -> str:
    """One line for logs and call traces: ``CRCX 17 aaln/1@gw`` or ``200 17 OK``."""
    if isinstance(message, Command):
        return f"{message.verb} {message.tid} {message.endpoint}"
    if isinstance(message, Response):
        text = f"{message.code:03d} {message.tid}"
        return f"{text} {message.comment}" if message.comment else text
    return f"unreadable: {message}"

