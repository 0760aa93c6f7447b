"""SIP, SIPS and tel URIs: parse, hold and serialize.

Owns the URI grammar of RFC 3261 section 19.1 (SIP-URI, SIPS-URI, section 25.1 ABNF), the
IPv6 references of RFC 5118 and the tel URI of RFC 3966 (as a plain number with parameters).
Any other scheme parses to an ``AbsoluteURI`` kept as opaque text (RFC 3261 25.1 absoluteURI),
so that a message with, say, an ``im:`` Request-URI still parses and the UAS core answers 416.

Values are kept as they were on the wire: user, password, parameter values and header values
stay %-escaped, so ``str(parse_uri(text)) == text`` for any URI whose parameter names are in
lower case (parameter names are case-insensitive and stored lower-cased, RFC 3261 19.1.4).
``SipURI.__eq__`` is plain field equality (a dict key, a test assertion); ``uri_equal`` applies
the comparison rules of RFC 3261 19.1.4 (escapes, case, which parameters count).
``unescape`` decodes a %-escaped part when a caller needs the characters. The host keeps its
brackets for an IPv6 reference (``[2001:db8::1]``), as it appears in the URI.

Errors raise ``SipParseError(400, reason)``. The exception is defined here, in the lowest layer
of the package, and re-exported by ``protocols.sip.message`` (import it from there).

Tests: tests/sip/test_message.py (URI section) and tests/sip/test_torture.py.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

__all__ = ["SipParseError", "SipURI", "TelURI", "AbsoluteURI", "parse_uri", "unescape", "uri_equal",
           "SIP_BODY_PATTERN", "sip_uri_from_groups"]


class SipParseError(Exception):
    """The peer sent something that is not SIP.

    ``status`` is the response a UAS answers a bad request with (400; 505 for an unsupported
    version, 413 for a message too large); ``reason`` is a reason phrase naming the fault.
    """

    def __init__(self, status: int, reason: str):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"

# RFC 3261 25.1 character classes (escaped "%HH" is checked separately).
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER = _UNRESERVED + r"%&=+$,;?/"
_PASSWORD = _UNRESERVED + r"%&=+$,"
_PARAM = _UNRESERVED + r"%\[\]/:&+$"
_HEADER = _UNRESERVED + r"%\[\]/?:+$"

# The part after "sip:" as 6 groups (user, password, host, port, params, headers); other
# modules embed it (headers.py's fast name-addr pattern) and call ``sip_uri_from_groups``.
SIP_BODY_PATTERN = (
    r"(?:([" + _USER + r"]*)(?::([" + _PASSWORD + r"]*))?@)?"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
    r"(?::([0-9]{1,5}))?"
    r"((?:;[" + _PARAM + r"=]*)*)"
    r"(?:\?([" + _HEADER + r"=&]*))?")
_SIP_RE = re.compile(SIP_BODY_PATTERN + r"\Z")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_OPAQUE_RE = re.compile(r"[" + _UNRESERVED + r"%;?/:@&=+$,\[\]#]+\Z")
_TEL_RE = re.compile(r"([+]?[0-9A-Fa-f*#\-.()pPwW]+)((?:;[" + _PARAM + r"=]*)*)\Z")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_IPV6_RE = re.compile(r"\[(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|\d+\.\d+\.\d+\.\d+)\]\Z")


def unescape(text: str) -> str:
    """Decode %HH escapes (UTF-8, invalid sequences kept as surrogates)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _params(text: str, what: str) -> dict:
    """';a=b;c' -> {'a': 'b', 'c': None}; names lower-cased."""
    params = {}
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise SipParseError(400, f"Empty parameter in {what}")
        params[name.lower()] = value if eq else None
    return params


def _format_params(params: dict) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


class SipURI:
    """A sip: or sips: URI (RFC 3261 19.1.1). ``params``/``headers`` are ordered dicts.

    Build one with keywords: ``SipURI(user="+4930123", host="gw.example.net", port=5060,
    params={"transport": "tcp"})``.
    """

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers")

    def __init__(self, scheme: str = "sip", user: str | None = None,
                 password: str | None = None, host: str = "", port: int | None = None,
                 params: dict | None = None, headers: dict | None = None):
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = {} if params is None else params
        self.headers = {} if headers is None else headers

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or None."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        """True when the URI carries the ``lr`` (loose routing) parameter."""
        return "lr" in self.params

    def copy(self) -> "SipURI":
        return SipURI(self.scheme, self.user, self.password, self.host, self.port,
                      dict(self.params), dict(self.headers))

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(_format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)

    def __eq__(self, other) -> bool:
        if not isinstance(other, SipURI):
            return NotImplemented
        return (self.scheme == other.scheme and self.user == other.user
                and self.password == other.password and self.host.lower() == other.host.lower()
                and self.port == other.port and self.params == other.params
                and self.headers == other.headers)

    def __hash__(self):
        return hash((self.scheme, self.user, self.host.lower(), self.port))

    def __repr__(self) -> str:
        return f"SipURI({str(self)!r})"


class TelURI:
    """A tel: URI (RFC 3966): ``user`` is the number as written, ``params`` its parameters."""

    __slots__ = ("user", "params")
    scheme = "tel"
    password = None
    host = None
    port = None

    def __init__(self, user: str, params: dict | None = None):
        self.user = user
        self.params = {} if params is None else params

    @property
    def headers(self) -> dict:
        return {}

    def __str__(self) -> str:
        return f"tel:{self.user}{_format_params(self.params)}"

    def __eq__(self, other) -> bool:
        if not isinstance(other, TelURI):
            return NotImplemented
        return self.user == other.user and self.params == other.params

    def __hash__(self):
        return hash(self.user)

    def __repr__(self) -> str:
        return f"TelURI({str(self)!r})"


class AbsoluteURI:
    """A URI of a scheme we do not interpret (RFC 3261 absoluteURI): scheme + opaque text."""

    __slots__ = ("scheme", "opaque")
    user = password = host = port = None

    def __init__(self, scheme: str, opaque: str):
        self.scheme = scheme
        self.opaque = opaque

    @property
    def params(self) -> dict:
        return {}

    @property
    def headers(self) -> dict:
        return {}

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def __eq__(self, other) -> bool:
        if not isinstance(other, AbsoluteURI):
            return NotImplemented
        return self.scheme == other.scheme and self.opaque == other.opaque

    def __hash__(self):
        return hash((self.scheme, self.opaque))

    def __repr__(self) -> str:
        return f"AbsoluteURI({str(self)!r})"


def sip_uri_from_groups(scheme, user, password, host, port, params, headers,
                        escaped, build=True) -> SipURI | None:
    """Check and build a SipURI from ``SIP_BODY_PATTERN``'s groups.

    ``escaped`` is the URI text when it holds a '%' (to check the escapes), else False.
    ``build=False`` only checks (the parser's validation of values it does not keep parsed).
    """
    if escaped and _BAD_ESCAPE_RE.search(escaped):
        raise SipParseError(400, "Bad escape in SIP URI")
    if host[0] == "[":
        if not _IPV6_RE.match(host):
            raise SipParseError(400, "Bad IPv6 reference in SIP URI")
    elif not host[0].isalnum() or ".." in host:
        raise SipParseError(400, "Bad host in SIP URI")
    if port is not None:
        port = int(port)
        if port > 65535:
            raise SipParseError(400, "Bad port in SIP URI")
    if user == "" and password is None:
        raise SipParseError(400, "Empty user in SIP URI")
    hdrs = {}
    if headers:
        for item in headers.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise SipParseError(400, "Bad header in SIP URI")
            hdrs[name] = value
    if not build:
        if params and (";;" in params or ";=" in params or params[-1] == ";"):
            raise SipParseError(400, "Empty parameter in SIP URI")
        return None
    uri = SipURI.__new__(SipURI)
    uri.scheme = scheme
    uri.user = user
    uri.password = password
    uri.host = host
    uri.port = port
    uri.params = _params(params, "SIP URI") if params else {}
    uri.headers = hdrs
    return uri


def parse_uri(text: str) -> SipURI | TelURI | AbsoluteURI:
    """Parse a URI; raises ``SipParseError(400, ...)`` when it is not one."""
    if not isinstance(text, str):
        raise SipParseError(400, "Bad URI")
    scheme, colon, rest = text.partition(":")
    lscheme = scheme.lower()
    if lscheme == "sip" or lscheme == "sips":
        m = _SIP_RE.match(rest)
        if m is None:
            raise SipParseError(400, "Bad SIP URI")
        return sip_uri_from_groups(lscheme, *m.groups(), "%" in rest and rest)
    if not colon or not _SCHEME_RE.match(scheme):
        raise SipParseError(400, "Bad URI scheme")
    if lscheme == "tel":
        m = _TEL_RE.match(rest)
        if m is None:
            raise SipParseError(400, "Bad tel URI")
        number, params = m.groups()
        return TelURI(number, _params(params, "tel URI") if params else {})
    if not _OPAQUE_RE.match(rest) or _BAD_ESCAPE_RE.search(rest):
        raise SipParseError(400, "Bad URI")
    return AbsoluteURI(lscheme, rest)


_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _norm(value):
    return None if value is None else unescape(value).lower()


def uri_equal(a, b) -> bool:
    """Compare two URIs by RFC 3261 19.1.4.

    SIP/SIPS: same scheme; user and password equal after unescaping (case-sensitive); host
    case-insensitive; ports equal (an absent port differs from an explicit 5060); the user, ttl,
    method, maddr and transport parameters must match when either URI has them, any other
    parameter only when both have it; URI headers must all match. Other schemes compare as
    written, case-insensitively.
    """
    if isinstance(a, str):
        a = parse_uri(a)
    if isinstance(b, str):
        b = parse_uri(b)
    if not (isinstance(a, SipURI) and isinstance(b, SipURI)):
        return str(a).lower() == str(b).lower()
    if a.scheme != b.scheme or a.host.lower() != b.host.lower() or a.port != b.port:
        return False
    for x, y in ((a.user, b.user), (a.password, b.password)):      # userinfo: case-sensitive
        if (x is None) != (y is None) or (x is not None and unescape(x) != unescape(y)):
            return False
    for name in set(a.params) | set(b.params):
        in_a, in_b = name in a.params, name in b.params
        if in_a and in_b:
            if _norm(a.params[name]) != _norm(b.params[name]):
                return False
        elif name in _STRICT_PARAMS:
            return False
    ha = {k.lower(): _norm(v) for k, v in a.headers.items()}
    hb = {k.lower(): _norm(v) for k, v in b.headers.items()}
    return ha == hb
