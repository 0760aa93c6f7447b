"""SIP header fields: the header multi-dict and the structured values the stack reads.

Owns RFC 3261 section 7.3 (header field format, compact forms 7.3.3, comma-separated lists),
section 20 (the header fields: names, which are lists, Via 20.42, From/To/Contact name-addr
20.10/20.20/20.39, CSeq 20.16) and section 25.1's LWS, quoted-string and generic-param rules.
``Headers`` keeps raw values in wire order; ``Via``, ``NameAddr`` and ``parse_cseq`` parse
the few values the transaction and dialog layers need.

Parameter names are case-insensitive (RFC 3261 7.3.1) and stored lower-cased; values keep
their case. ``str()`` of a ``Via`` or ``NameAddr`` gives its canonical form (single spaces,
a name-addr always in angle brackets).

Tests: tests/sip/test_message.py, tests/sip/test_torture.py.
"""
from __future__ import annotations

import re

from protocols.sip.uri import SIP_BODY_PATTERN, SipParseError, parse_uri, sip_uri_from_groups

__all__ = ["Headers", "Via", "NameAddr", "parse_via", "parse_name_addr", "parse_cseq",
           "split_list", "canonical_name", "quote", "LIST_HEADERS"]

# Canonical spellings of the header names we know (RFC 3261 section 20 and extensions).
_KNOWN = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization",
    "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To",
    "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Security-Client",
    "Security-Server", "Security-Verify", "Server", "Service-Route", "Session-Expires",
    "Subject", "Subscription-State", "Supported", "Timestamp", "To", "Unsupported",
    "User-Agent", "Via", "Warning", "WWW-Authenticate",
]
# RFC 3261 7.3.3 and the IANA registry's compact forms.
_COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
    "y": "Identity",
}
# Header fields whose value is a comma-separated list (RFC 3261 7.3.1): get_all splits them.
LIST_HEADERS = frozenset(n.lower() for n in [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Call-Info", "Contact", "Content-Encoding", "Content-Language",
    "Error-Info", "In-Reply-To", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
    "Proxy-Require", "Reason", "Record-Route", "Reject-Contact", "Require", "Route",
    "Security-Client", "Security-Server", "Security-Verify", "Service-Route", "Supported",
    "Unsupported", "Via", "Warning",
])

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# name (any spelling seen) -> (lower-case key, canonical spelling)
_NAMES: dict = {}
for _n in _KNOWN:
    _NAMES[_n] = _NAMES[_n.lower()] = _NAMES[_n.upper()] = (_n.lower(), _n)
for _c, _n in _COMPACT.items():
    _NAMES[_c] = _NAMES[_c.upper()] = (_n.lower(), _n)
_NAMES_MAX = 4096


def canonical_name(name: str) -> tuple[str, str]:
    """Return (key, spelling) for a header name; compact forms expand to full names.

    Raises ``SipParseError`` when ``name`` is not a token.
    """
    hit = _NAMES.get(name)
    if hit is not None:
        return hit
    hit = _NAMES.get(name.lower())
    if hit is None:
        if not _TOKEN_RE.match(name):
            raise SipParseError(400, "Bad header name")
        hit = (name.lower(), name)
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = hit
    return hit


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quoted strings and <...>."""
    if '"' not in value and "<" not in value:
        if "," not in value:
            value = value.strip()
            return [value] if value else []
        return [s for s in (p.strip() for p in value.split(",")) if s]
    out, start, depth, quoted, i, n = [], 0, 0, False, 0, len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [s for s in out if s]


def _checked(value) -> str:
    value = str(value)
    if "\r" in value or "\n" in value:
        raise ValueError("CR or LF in a header value")
    return value


class Headers:
    """Ordered, case-insensitive multi-dict of header fields (raw string values).

    Names are normalized on the way in: compact forms become full names, known names take their
    canonical spelling. ``items()`` yields (name, value) in wire order, one per header line.
    """

    __slots__ = ("_list", "_cache")

    def __init__(self, items=()):
        self._list = []          # [(key, name, value)]
        self._cache = {}         # parsed values, dropped on any change
        if isinstance(items, dict):
            items = items.items()
        for name, value in items:
            self.add(name, value)

    def get(self, name: str, default=None):
        """The first value of ``name`` (first list element for list headers), or ``default``."""
        key = canonical_name(name)[0]
        for k, _, v in self._list:
            if k == key:
                if key in LIST_HEADERS and ("," in v or not v):
                    parts = split_list(v)
                    return parts[0] if parts else v
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers are split at their commas."""
        key = canonical_name(name)[0]
        values = [v for k, _, v in self._list if k == key]
        if key in LIST_HEADERS:
            return [p for v in values for p in split_list(v)]
        return values

    def get_lines(self, name: str) -> list[str]:
        """Every header line's raw value of ``name``, without splitting."""
        key = canonical_name(name)[0]
        return [v for k, _, v in self._list if k == key]

    def set(self, name: str, value) -> None:
        """Replace every ``name`` by one header with ``value`` (at the first one's place)."""
        key, spelled = canonical_name(name)
        value = _checked(value)
        out, done = [], False
        for item in self._list:
            if item[0] == key:
                if not done:
                    out.append((key, spelled, value))
                    done = True
            else:
                out.append(item)
        if not done:
            out.append((key, spelled, value))
        self._list = out
        self._cache.clear()

    def add(self, name: str, value, first: bool = False) -> None:
        """Add one header line; ``first`` puts it before any other of that name."""
        key, spelled = canonical_name(name)
        item = (key, spelled, _checked(value))
        if first:
            for i, old in enumerate(self._list):
                if old[0] == key:
                    self._list.insert(i, item)
                    break
            else:
                self._list.append(item)
        else:
            self._list.append(item)
        self._cache.clear()

    def remove(self, name: str) -> None:
        """Remove every header line of ``name`` (no error when absent)."""
        key = canonical_name(name)[0]
        self._list = [item for item in self._list if item[0] != key]
        self._cache.clear()

    def remove_first(self, name: str) -> None:
        """Remove the first value of ``name`` (a proxy or client popping its own Via)."""
        key = canonical_name(name)[0]
        for i, (k, spelled, v) in enumerate(self._list):
            if k == key:
                parts = split_list(v) if key in LIST_HEADERS else [v]
                if len(parts) > 1:
                    self._list[i] = (k, spelled, ", ".join(parts[1:]))
                else:
                    del self._list[i]
                break
        self._cache.clear()

    def count(self, name: str) -> int:
        """Number of header lines of ``name``."""
        key = canonical_name(name)[0]
        return sum(1 for k, _, _ in self._list if k == key)

    def __contains__(self, name) -> bool:
        key = canonical_name(name)[0]
        return any(k == key for k, _, _ in self._list)

    def items(self) -> list[tuple[str, str]]:
        return [(n, v) for _, n, v in self._list]

    def copy(self) -> "Headers":
        new = Headers()
        new._list = list(self._list)
        return new

    def __iter__(self):
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._list)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._list] == [(k, v) for k, _, v in other._list]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def quote(text: str) -> str:
    """Make a quoted-string (RFC 3261 25.1) of ``text``; CR and LF (which no quoted-pair can
    carry) become spaces, so a display name can never break a header line."""
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str, what: str) -> dict:
    """Parse ';name=value;flag' generic-params with LWS allowed around ';' and '='.

    Names are lower-cased; a flag's value is None. Quoted values keep their quotes.
    """
    if '"' in text:
        items = _split_quoted(text, ";")
    else:
        items = text.split(";")
    if items[0].strip():
        raise SipParseError(400, f"Bad parameters in {what}")
    params = {}
    for item in items[1:]:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not name or not _TOKEN_RE.match(name):
            raise SipParseError(400, f"Bad parameter in {what}")
        if eq:
            value = value.strip()
            if not value:
                raise SipParseError(400, f"Empty parameter value in {what}")
            if value[0] == '"':
                if _parse_quoted(value, 0)[1] != len(value):
                    raise SipParseError(400, f"Bad quoted parameter in {what}")
            elif not _PARAM_VALUE_RE.match(value):
                raise SipParseError(400, f"Bad parameter value in {what}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+\Z")

# Fast paths: the shapes real peers send, matched whole by one pattern; anything else takes
# the general, LWS-tolerant parser below.
_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_FAST_PARAMS = r"((?:;" + _T + r"(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*)"
# The common shapes, without LWS inside: "Name" <uri>;a=b  /  <uri>;a=b
_FAST_NA_RE = re.compile(r'(?:"([^"\\]*)" ?)?<([^<>\s"]+)>' + _FAST_PARAMS + r"\Z")
_FAST_SIP_NA_RE = re.compile(r'(?:"([^"\\]*)" ?)?<([Ss][Ii][Pp][Ss]?):' + SIP_BODY_PATTERN + ">"
                             + _FAST_PARAMS + r"\Z")
_FAST_VIA_RE = re.compile(r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?"
                          + _FAST_PARAMS + r"\Z")


def _fast_params(text: str) -> dict:
    params = {}
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        params[name.lower()] = value if eq else None
    return params


def _split_quoted(text: str, sep: str) -> list[str]:
    out, start, quoted, i, n = [], 0, False, 0, len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == sep:
            out.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise SipParseError(400, "Unterminated quoted string")
    out.append(text[start:])
    return out


def _format_params(params: dict) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


class Via:
    """One Via value (RFC 3261 20.42): ``SIP/2.0/UDP host:port;branch=...``.

    ``protocol`` is "SIP/2.0", ``transport`` upper-cased ("UDP", "TCP", ...), ``host`` as sent
    (an IPv6 reference keeps its brackets), ``port`` an int or None, ``params`` lower-cased names.
    """

    __slots__ = ("protocol", "transport", "host", "port", "params")

    def __init__(self, protocol="SIP/2.0", transport="UDP", host="", port=None, params=None):
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = {} if params is None else params

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value (RFC 3581) as an int, or None when absent or without value."""
        value = self.params.get("rport")
        return int(value) if value and value.isascii() and value.isdigit() else None

    @property
    def wants_rport(self) -> bool:
        """True when the ``rport`` parameter is present (with or without a value)."""
        return "rport" in self.params

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (self.protocol, self.transport, self.host, self.port, self.params) == \
            (other.protocol, other.transport, other.host, other.port, other.params)

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"


_VIA_RE = re.compile(
    r"\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:\s*:\s*([0-9]{1,5}))?\s*(;.*)?\Z", re.S)


def format_via(transport: str, host: str, port: int | None = None, branch: str | None = None,
               **params) -> str:
    """Build a Via value; ``params`` with value True become flags (``rport=True``)."""
    p = {}
    if branch is not None:
        p["branch"] = branch
    for k, v in params.items():
        p[k] = None if v is True else str(v)
    return str(Via("SIP/2.0", transport.upper(), host, port, p))


def parse_via(value: str) -> Via:
    """Parse one Via value (not a comma-separated list: split with ``split_list`` first)."""
    m = _FAST_VIA_RE.match(value)
    if m is not None:
        transport, host, port, params = m.groups()
        if port is not None:
            port = int(port)
            if port > 65535:
                raise SipParseError(400, "Bad port in Via header")
        return Via("SIP/2.0", transport.upper(), host, port,
                   _fast_params(params) if params else {})
    m = _VIA_RE.match(value)
    if m is None:
        raise SipParseError(400, "Bad Via header")
    name, version, transport, host, port, params = m.groups()
    if port is not None:
        port = int(port)
        if port > 65535:
            raise SipParseError(400, "Bad port in Via header")
    return Via(f"{name.upper()}/{version}", transport.upper(), host, port,
               parse_params(params, "Via header") if params else {})


class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route, ...).

    ``display`` is the unquoted display name or None; ``uri`` a parsed URI; ``params`` the
    header parameters (``tag``, ``expires``, ``q``, ...), names lower-cased.
    """

    __slots__ = ("display", "uri", "params")

    def __init__(self, display: str | None, uri, params: dict | None = None):
        self.display = display
        self.uri = uri
        self.params = {} if params is None else params

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        disp = "" if self.display is None else quote(self.display) + " "
        return f"{disp}<{self.uri}>{_format_params(self.params)}"

    def __eq__(self, other) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.display, self.uri, self.params) == (other.display, other.uri, other.params)

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"


# RFC 3261 display-name tokens, plus non-ASCII letters (some gateways send them unquoted).
_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\x80-\U0010ffff]+"
                                r"(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~\x80-\U0010ffff]+)*\Z")
_SIMPLE_NA_RE = re.compile(r"<([^<>\s\"]+)>\Z")


def _parse_quoted(text: str, start: int) -> tuple[str, int]:
    """Decode the quoted-string at text[start] == '"'; return (content, index after it)."""
    out, i, n = [], start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError(400, "Unterminated quoted string")


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Name" <uri>;params`` or ``uri;params`` (RFC 3261 20.10, 25.1)."""
    m = _FAST_SIP_NA_RE.match(value)
    if m is not None:
        display, scheme, user, password, host, port, uparams, uheaders, params = m.groups()
        uri = sip_uri_from_groups(scheme.lower(), user, password, host, port, uparams, uheaders,
                                  "%" in value and value[m.start(2):value.rindex(">")])
        return NameAddr(display, uri, _fast_params(params) if params else {})
    m = _FAST_NA_RE.match(value)
    if m is not None:
        display, uri, params = m.groups()
        return NameAddr(display, parse_uri(uri), _fast_params(params) if params else {})
    v = value.strip()
    if not v:
        raise SipParseError(400, "Empty address")
    display = None
    if v[0] == '"':
        display, i = _parse_quoted(v, 0)
        rest = v[i:].lstrip()
        if not rest.startswith("<"):
            raise SipParseError(400, "Bad address: quoted display name without <uri>")
    else:
        lt = v.find("<")
        if lt < 0:
            # addr-spec: header parameters begin at the first ';' (RFC 3261 20.10)
            uri_text, semi, params = v.partition(";")
            uri_text = uri_text.rstrip()
            if any(c in uri_text for c in ",? \t\""):
                raise SipParseError(400, "Bad address: URI with ',', '?' or LWS needs <>")
            return NameAddr(None, parse_uri(uri_text),
                            parse_params(";" + params, "address") if semi else {})
        head = v[:lt].rstrip()
        if head:
            if not _DISPLAY_TOKENS_RE.match(head):
                raise SipParseError(400, "Bad display name")
            display = head
        rest = v[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError(400, "Bad address: missing '>'")
    uri_text = rest[1:gt]
    if not uri_text or uri_text != uri_text.strip() or " " in uri_text or "\t" in uri_text:
        raise SipParseError(400, "Bad address: LWS inside <>")
    tail = rest[gt + 1:]
    return NameAddr(display, parse_uri(uri_text),
                    parse_params(tail, "address") if tail.strip() else {})


_CSEQ_METHODS = frozenset(("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
                           "UPDATE", "INFO", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"))
_CSEQ_RE = re.compile(r"\s*([0-9]{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*\Z")


def parse_cseq(value: str) -> tuple[int, str]:
    """Parse ``CSeq: 4711 INVITE`` into (4711, "INVITE"); the number must be below 2**31."""
    number, _, method = value.partition(" ")
    if method in _CSEQ_METHODS and number.isascii() and number.isdigit() and len(number) <= 10:
        number = int(number)
        if number < 2 ** 31:
            return number, method
    m = _CSEQ_RE.match(value)
    if m is None:
        raise SipParseError(400, "Bad CSeq header")
    number = int(m.group(1))
    if number >= 2 ** 31:
        raise SipParseError(400, "CSeq number too large")
    return number, m.group(2)


__all__ += ["format_via", "parse_params"]
