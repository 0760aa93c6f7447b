"""SIP messages: parse a datagram or a stream into requests and responses, and serialize them.

Owns RFC 3261 section 7 (message format: start lines 7.1/7.2, header folding and LWS 7.3.1,
compact forms 7.3.3, bodies 7.4, stream framing 7.5 and 18.3), the mandatory-header checks a
UAS makes before it looks at a request (8.2.2, 20.14 Content-Length, 16.3's Max-Forwards
syntax; Contact values of requests and responses, the dialog's remote target 12.1) and
response construction (8.2.6). RFC 4475's torture messages are the bar: see
tests/sip/test_torture.py. Header values and the structured ones (Via, From/To/Contact, CSeq)
live in ``protocols.sip.headers``; URIs in ``protocols.sip.uri``.

Sans-I/O: bytes in, ``Request``/``Response`` out; no clock, no sockets. ``parse_message`` and
``StreamFramer.feed`` raise ``SipParseError`` and nothing else, whatever the input.

Tests: tests/sip/test_message.py, tests/sip/test_torture.py; benchmark: bench/sip_parse.py.
"""
from __future__ import annotations

import re

from protocols.sip.headers import (_FAST_SIP_NA_RE, _NAMES, Headers, NameAddr, Via,
                                   canonical_name, format_via, parse_cseq, parse_name_addr,
                                   parse_via, split_list)
from protocols.sip.uri import SIP_BODY_PATTERN, SipParseError, parse_uri, sip_uri_from_groups

__all__ = ["SipParseError", "Headers", "Request", "Response", "parse_message", "StreamFramer",
           "Via", "parse_via", "format_via", "NameAddr", "parse_name_addr", "parse_cseq",
           "make_response", "REASONS", "MAX_MESSAGE_SIZE", "is_keepalive", "parse_uri"]

MAX_MESSAGE_SIZE = 65535          # one UDP datagram; a stream message may not be larger either
MAX_HEADER_SIZE = 16384           # header block limit on streams before the blank line is seen

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted",
}

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_METHODS = frozenset(("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE",
                      "INFO", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"))
_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")
_SINGLE = frozenset(("call-id", "cseq", "from", "to", "max-forwards", "content-length",
                     "content-type"))


class _Message:
    """What requests and responses share: headers, body, and the transaction keys, parsed on
    first use and cached in ``headers`` until a header changes."""

    __slots__ = ("version", "headers", "body")

    @property
    def call_id(self) -> str | None:
        return self.headers.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        cache = self.headers._cache
        value = cache.get("cseq")
        if value is None:
            value = cache["cseq"] = parse_cseq(self.headers.get("CSeq", ""))
        return value

    @property
    def top_via(self) -> Via | None:
        cache = self.headers._cache
        value = cache.get("via")
        if value is None:
            raw = self.headers.get("Via")
            if raw is None:
                return None
            value = cache["via"] = parse_via(raw)
        return value

    def _addr(self, key: str, name: str) -> NameAddr | None:
        cache = self.headers._cache
        value = cache.get(key)
        if value is None:
            raw = self.headers.get(name)
            if raw is None:
                return None
            value = cache[key] = parse_name_addr(raw)
        return value

    @property
    def from_(self) -> NameAddr | None:
        """The parsed From header."""
        return self._addr("from", "From")

    @property
    def to(self) -> NameAddr | None:
        """The parsed To header."""
        return self._addr("to", "To")

    @property
    def from_tag(self) -> str | None:
        addr = self._addr("from", "From")
        return None if addr is None else addr.params.get("tag")

    @property
    def to_tag(self) -> str | None:
        addr = self._addr("to", "To")
        return None if addr is None else addr.params.get("tag")

    @property
    def branch(self) -> str | None:
        via = self.top_via
        return None if via is None else via.params.get("branch")

    def _encode(self, start: str) -> bytes:
        body = self.body
        length = str(len(body))
        lines = [start]
        hlist = self.headers._list
        seen_length = False
        for i, (key, name, value) in enumerate(hlist):
            if key == "content-length":
                if seen_length:
                    continue
                seen_length = True
                if value != length:
                    hlist[i] = (key, name, length)
                    value = length
            lines.append(f"{name}: {value}")
        if not seen_length:
            hlist.append(("content-length", "Content-Length", length))
            lines.append(f"Content-Length: {length}")
        lines.append("\r\n")
        head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
        return head + body if body else head


class Request(_Message):
    """A SIP request. ``uri`` is the Request-URI text; ``request_uri`` parses it."""

    __slots__ = ("method", "uri")

    def __init__(self, method: str, uri, headers=None, body: bytes = b"",
                 version: str = "SIP/2.0"):
        self.method = method
        self.uri = str(uri)
        if not _TOKEN_RE.match(method) or not self.uri or any(c in self.uri for c in " \t\r\n"):
            raise ValueError("bad method or Request-URI")
        self.version = version
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self.body = bytes(body)

    @property
    def request_uri(self):
        return parse_uri(self.uri)

    def to_bytes(self) -> bytes:
        """Serialize; sets the Content-Length header (in ``headers`` too) from the body."""
        return self._encode(f"{self.method} {self.uri} {self.version}")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self.method == other.method and self.uri == other.uri
                and self.version == other.version and self.headers == other.headers
                and self.body == other.body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


class Response(_Message):
    """A SIP response."""

    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str | None = None, headers=None, body: bytes = b"",
                 version: str = "SIP/2.0"):
        self.status = status
        self.reason = REASONS.get(status, "") if reason is None else reason
        self.version = version
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self.body = bytes(body)

    def to_bytes(self) -> bytes:
        """Serialize; sets the Content-Length header (in ``headers`` too) from the body."""
        return self._encode(f"{self.version} {self.status} {self.reason}")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (self.status == other.status and self.reason == other.reason
                and self.version == other.version and self.headers == other.headers
                and self.body == other.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"


def is_keepalive(data: bytes) -> bool:
    """True for a datagram of nothing but CRLFs (RFC 5626 3.5.1 keep-alive ping / pong)."""
    return not data.strip(b"\r\n")


def parse_message(data: bytes, strict: bool = True) -> Request | Response:
    """Parse one whole message (a UDP datagram, or one framed by ``StreamFramer``).

    Raises ``SipParseError`` for anything that is not a valid message, never anything else.
    ``strict=False`` accepts an RFC 2543 request without Max-Forwards (RFC 4475 3.4.1).
    """
    try:
        return _parse(data, strict)
    except SipParseError:
        raise
    except Exception as exc:      # safety net: no input may escape as another exception
        raise SipParseError(400, "Malformed message") from exc


def _parse(data, strict: bool) -> Request | Response:
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError(513, "Message Too Large")
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")          # RFC 3261 7.5: ignore CRLFs before the start line
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if not data:
            raise SipParseError(400, "Empty message")
        raise SipParseError(400, "Missing empty line after headers")
    text = data[:end].decode("utf-8", "surrogateescape")
    if "\r\n " in text or "\r\n\t" in text:
        text = _FOLD_RE.sub(" ", text)
    lines = text.split("\r\n")
    crlfs = len(lines) - 1
    if text.count("\n") != crlfs or text.count("\r") != crlfs:
        raise SipParseError(400, "Bare CR or LF in headers")
    start = lines[0]
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2:
            raise SipParseError(400, "Malformed Status-Line")
        version, code = parts[0], parts[1]
        if version != "SIP/2.0":
            raise SipParseError(505, "Version Not Supported")
        if len(code) != 3 or not (code.isascii() and code.isdigit()) or not "100" <= code <= "699":
            raise SipParseError(400, "Bad status code")
        msg = Response.__new__(Response)
        msg.status = int(code)
        msg.reason = parts[2] if len(parts) == 3 else ""
        method = None
    else:
        parts = start.split(" ")
        if len(parts) != 3:
            raise SipParseError(400, "Malformed Request-Line")
        method, uri, version = parts
        if version != "SIP/2.0":
            if version.upper() == "SIP/2.0":
                version = "SIP/2.0"
            elif version[:4].upper() == "SIP/":
                raise SipParseError(505, "Version Not Supported")
            else:
                raise SipParseError(400, "Malformed Request-Line")
        if method not in _METHODS and not _TOKEN_RE.match(method):
            raise SipParseError(400, "Bad method")
        _check_request_uri(uri)
        msg = Request.__new__(Request)
        msg.method = method
        msg.uri = uri
    msg.version = version

    headers = Headers.__new__(Headers)
    hlist = []
    cache = {}
    headers._list = hlist
    headers._cache = cache
    first = {}                      # key -> first value
    more = []                       # (key, value) of the second and later lines of a name
    names = _NAMES
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        hit = names.get(name)
        if hit is None or not colon:
            if not colon or not name:
                raise SipParseError(400, "Malformed header line")
            hit = canonical_name(name.rstrip(" \t"))
        key = hit[0]
        value = value.strip(" \t")
        hlist.append((key, hit[1], value))
        if key in first:
            if key in _SINGLE:
                raise SipParseError(400, f"Multiple {hit[1]} headers")
            more.append((key, value))
        else:
            first[key] = value
    msg.headers = headers

    call_id = first.get("call-id")
    if call_id is None:
        raise SipParseError(400, "Missing Call-ID header")
    if "from" not in first:
        raise SipParseError(400, "Missing From header")
    if "to" not in first:
        raise SipParseError(400, "Missing To header")
    if "cseq" not in first:
        raise SipParseError(400, "Missing CSeq header")
    if not call_id or " " in call_id or "\t" in call_id:
        raise SipParseError(400, "Bad Call-ID header")
    cseq = cache["cseq"] = parse_cseq(first["cseq"])
    raw_via = first.get("via")
    if raw_via is None:
        raise SipParseError(400, "Missing Via header")
    if "," in raw_via or '"' in raw_via or not raw_via:
        vias = split_list(raw_via)
        if not vias:
            raise SipParseError(400, "Bad Via header")
        raw_via = vias[0]
    via = cache["via"] = parse_via(raw_via)
    if via.protocol != "SIP/2.0":
        raise SipParseError(400 if method is None else 505, "Bad Via protocol version")
    cache["from"] = parse_name_addr(first["from"])
    cache["to"] = parse_name_addr(first["to"])
    if method is not None:
        if cseq[1] != method:
            raise SipParseError(400, "CSeq method does not match Request-Line")
        mf = first.get("max-forwards")
        if mf is not None:
            if not (mf.isascii() and mf.isdigit()) or int(mf) > 255:
                raise SipParseError(400, "Bad Max-Forwards header")
        elif strict:
            raise SipParseError(400, "Missing Max-Forwards header")
    contacts = first.get("contact")
    if contacts is not None:
        _check_contacts(contacts)
        for key, value in more:
            if key == "contact":
                _check_contacts(value)

    body_start = end + 4
    raw_len = first.get("content-length")
    if raw_len is not None:
        if not (raw_len.isascii() and raw_len.isdigit()) or len(raw_len) > 9:
            raise SipParseError(400, "Bad Content-Length header")
        length = int(raw_len)
        available = len(data) - body_start
        if length > available:
            raise SipParseError(400, "Content-Length larger than message")
        msg.body = data[body_start:body_start + length]
    else:
        msg.body = data[body_start:]
    return msg


def _check_contacts(value: str) -> None:
    """Validate Contact values without keeping them (they are parsed again when read)."""
    for contact in (split_list(value) if "," in value or '"' in value else (value,)):
        if contact == "*":
            continue
        m = _FAST_SIP_NA_RE.match(contact)
        if m is None:
            parse_name_addr(contact)
        else:
            g = m.groups()
            sip_uri_from_groups(g[1].lower(), g[2], g[3], g[4], g[5], g[6], g[7],
                                "%" in contact and contact[m.start(2):contact.rindex(">")],
                                build=False)


def _check_request_uri(uri: str) -> None:
    m = _RURI_RE.match(uri)
    if m is not None:
        if m.group(7):
            raise SipParseError(400, "Headers not allowed in Request-URI")
        sip_uri_from_groups(m.group(1).lower(), *m.groups()[1:], "%" in uri and uri, False)
        return
    parsed = parse_uri(uri)
    if parsed.headers:
        raise SipParseError(400, "Headers not allowed in Request-URI")


_RURI_RE = re.compile(r"([Ss][Ii][Pp][Ss]?):" + SIP_BODY_PATTERN + r"\Z")


_CL_RE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)


class StreamFramer:
    """Cut a TCP (or TLS) byte stream into messages by Content-Length (RFC 3261 18.3).

    ``feed`` returns the messages completed by the new bytes, in order; a message that is framed
    correctly but malformed comes back as a ``SipParseError`` in that list, so the caller can
    answer it. Keep-alive CRLFs between messages are skipped (RFC 5626 3.5.1; ``pings`` counts
    double-CRLF pings so an adapter can answer with a CRLF pong). A framing error (no or bad
    Content-Length, header block or body too large) raises ``SipParseError``: the stream cannot
    be resynchronized and the connection should be closed.
    """

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE):
        self._buf = bytearray()
        self._scan = 0                 # where to resume looking for the end of the headers
        self._crlfs = 0                # CRLF octets skipped since the last message
        self.max_message_size = max_message_size
        self.pings = 0

    def feed(self, data: bytes) -> list:
        buf = self._buf
        buf += data
        out = []
        while buf:
            if self._scan == 0:
                n = 0
                while n < len(buf) and buf[n] in (13, 10):
                    n += 1
                if n:
                    self._crlfs += n
                    if self._crlfs >= 4:
                        self.pings += self._crlfs // 4
                        self._crlfs %= 4
                    del buf[:n]
                    if not buf:
                        break
                self._crlfs = 0
            end = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
            if end < 0:
                self._scan = max(1, len(buf))
                if len(buf) > MAX_HEADER_SIZE:
                    raise SipParseError(513, "Header block too large")
                break
            head = bytes(buf[:end])
            lengths = _CL_RE.findall(head)
            if not lengths:
                raise SipParseError(400, "Missing Content-Length on a stream")
            values = {v.strip() for v in lengths}
            if len(values) != 1:
                raise SipParseError(400, "Conflicting Content-Length headers")
            raw = values.pop()
            if not raw.isdigit() or len(raw) > 9:
                raise SipParseError(400, "Bad Content-Length header")
            total = end + 4 + int(raw)
            if total > self.max_message_size:
                raise SipParseError(413, "Content-Length too large")
            if len(buf) < total:
                self._scan = end + 1
                break
            chunk = bytes(buf[:total])
            del buf[:total]
            self._scan = 0
            try:
                out.append(parse_message(chunk))
            except SipParseError as exc:
                out.append(exc)
        return out


def make_response(request: Request, status: int, reason: str | None = None,
                  to_tag: str | None = None, headers=(), copy_record_route: bool = False
                  ) -> Response:
    """Build a response to ``request`` per RFC 3261 8.2.6.

    Copies every Via (in order), From, To (adding ``to_tag`` unless To already has a tag),
    Call-ID and CSeq, and Timestamp for a 100 (8.2.6.1). ``copy_record_route`` also copies
    Record-Route, as a response that creates a dialog must (12.1.1). ``headers`` are extra
    (name, value) pairs appended after them.
    """
    rh = request.headers
    out = Headers.__new__(Headers)
    out._cache = {}
    lst = out._list = []
    for key, name, value in rh._list:
        if key == "via" or key == "from" or key == "call-id" or key == "cseq":
            lst.append((key, name, value))
        elif key == "to":
            if to_tag is not None and status != 100:
                try:
                    has_tag = request.to_tag is not None
                except SipParseError:
                    has_tag = True
                if not has_tag:
                    value = f"{value};tag={to_tag}"
            lst.append((key, name, value))
        elif key == "timestamp" and status == 100:
            lst.append((key, name, value))
        elif key == "record-route" and copy_record_route:
            lst.append((key, name, value))
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason, out)
