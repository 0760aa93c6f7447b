"""Field kinds of the client protocol's messages: the wire types and their validation.

Owned by the client protocol; the spec is docs/protocol.md ("Field types"), whose table is
made from the ``doc`` of each kind. A ``Kind`` turns a JSON value into the Python value (or
raises ``FieldError`` with the ErrorCode to answer) and back. ``messages.py`` builds the
messages from these kinds.

Tests: tests/client_proto/test_messages.py.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from protocols.client.errors import ErrorCode

CAUSES = ("normal", "busy", "no-answer", "rejected", "unreachable", "congestion",
          "invalid-number", "unauthorized", "cancelled", "timeout", "media-timeout",
          "network-error", "server-error")
CODEC_NAMES = re.compile(r"^[A-Za-z0-9.-]{1,16}$")




class FieldError(ValueError):
    """A field value is wrong; ``code`` is the ErrorCode to answer with."""

    def __init__(self, text: str, code: ErrorCode = ErrorCode.BAD_FIELD) -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class Kind:
    """One field type: ``load`` turns a JSON value into the Python value (or raises
    FieldError), ``dump`` the reverse; ``doc`` describes it in docs/protocol.md."""
    doc: str
    load: Callable[[Any], Any]
    dump: Callable[[Any], Any] = lambda v: v


def _str(value: Any, pattern: re.Pattern | None = None, max_len: int = 256,
         what: str = "string") -> str:
    if type(value) is not str:
        raise FieldError(f"{what}: expected a string")
    if len(value) > max_len:
        raise FieldError(f"{what}: longer than {max_len}")
    if pattern is not None and not pattern.match(value):
        raise FieldError(f"{what}: bad format")
    if _FORBIDDEN.search(value) is not None:
        raise FieldError(f"{what}: control character or lone surrogate")
    return value


#: C0 control characters and lone surrogates, refused in every string field (one regular
#: expression scan instead of a Python loop per character: strings are checked twice for each
#: message sent, a large part of the client protocol's cost per call set-up)
_FORBIDDEN = re.compile("[\x00-\x1f\ud800-\udfff]")


def _int(value: Any, lo: int, hi: int, what: str = "integer") -> int:
    if type(value) is not int:
        raise FieldError(f"{what}: expected an integer")
    if not lo <= value <= hi:
        raise FieldError(f"{what}: out of range {lo}..{hi}")
    return value


def b64e(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5), the encoding of every binary field."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64 = re.compile(r"^[A-Za-z0-9_-]*$")


def b64d(text: Any, lo: int, hi: int, what: str = "binary") -> bytes:
    """Strict inverse of ``b64e``: canonical base64url, ``lo``..``hi`` bytes."""
    _str(text, _B64, 4 * hi // 3 + 4, what)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise FieldError(f"{what}: not base64url") from None
    if b64e(data) != text or not lo <= len(data) <= hi:
        raise FieldError(f"{what}: not canonical base64url of {lo}..{hi} bytes")
    return data


def _bin(lo: int, hi: int, what: str) -> Kind:
    size = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return Kind(f"base64url string (no padding) of {size} bytes",
                lambda v: b64d(v, lo, hi, what), b64e)


def _pattern(doc: str, regex: str, what: str, max_len: int = 256) -> Kind:
    pat = re.compile(regex)
    return Kind(doc, lambda v: _str(v, pat, max_len, what))


def _plain_int(value: Any) -> Any:
    """IntEnum members (ErrorCode, AuthCode) go on the wire as plain integers."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _ranged(lo: int, hi: int, what: str, doc: str = "") -> Kind:
    return Kind(doc or f"integer {lo}..{hi}", lambda v: _int(v, lo, hi, what), _plain_int)


E164_RE = re.compile(r"^\+[1-9][0-9]{1,14}$")


def _e164(value: Any) -> str:
    if type(value) is not str or not E164_RE.match(value):
        raise FieldError("not an E.164 number (+ then 2-15 digits)", ErrorCode.BAD_NUMBER)
    return value


def _address(value: Any) -> str:
    _str(value, None, 45, "address")
    try:
        canonical = str(ipaddress.ip_address(value))
    except ValueError:
        raise FieldError("address: not an IP address") from None
    if canonical != value:
        raise FieldError("address: not in canonical form")
    return value


def _power_of_two(value: Any) -> int:
    _int(value, 2, 2 ** 20, "n")
    if value & (value - 1):
        raise FieldError("n: not a power of two")
    return value


def _choice(options: tuple[str, ...], what: str) -> Kind:
    def load(v: Any) -> str:
        if type(v) is not str or v not in options:
            raise FieldError(f"{what}: one of {', '.join(options)}")
        return v
    return Kind("one of " + ", ".join(f"`{o}`" for o in options), load)


_BRAND_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _branding(value: Any) -> dict[str, str]:
    if type(value) is not dict or len(value) > 16:
        raise FieldError("branding: expected an object of at most 16 entries")
    for k, v in value.items():
        _str(k, _BRAND_KEY, 32, "branding key")
        _str(v, None, 256, "branding value")
    return dict(value)


def _codecs(value: Any) -> tuple[str, ...]:
    if type(value) not in (list, tuple) or not 1 <= len(value) <= 8:
        raise FieldError("codecs: expected a list of 1-8 codec names")
    return tuple(_str(c, CODEC_NAMES, 16, "codec") for c in value)


MAX_ENTRIES = 64                # address-book entries in one ``book`` page
MAX_RECORDS = 32                # call records in one ``records`` page


def _objects(value: Any, limit: int, what: str, required: dict, optional: dict) -> tuple:
    """A list of at most ``limit`` objects whose keys are ``required`` (all) and ``optional``,
    each value loaded by its function; returns a tuple of dicts."""
    if type(value) not in (list, tuple) or len(value) > limit:
        raise FieldError(f"{what}: expected a list of at most {limit} objects")
    out = []
    for item in value:
        if type(item) is not dict or not set(required) <= set(item) \
                or set(item) - set(required) - set(optional):
            raise FieldError(f"{what}: each an object with {', '.join(required)}"
                             + (f" and optionally {', '.join(optional)}" if optional else ""))
        out.append({k: {**required, **optional}[k](v) for k, v in item.items()})
    return tuple(out)


def _dump_objects(value: Any) -> list:
    return [dict(item) for item in value]


def _entries(value: Any) -> tuple:
    return _objects(value, MAX_ENTRIES, "entries",
                    {"name": lambda v: _str(v, re.compile(r"^.{1,64}$"), 64, "name"),
                     "number": _e164}, {})


def _records(value: Any) -> tuple:
    time = lambda v: _int(v, 0, 2 ** 40, "time")        # noqa: E731
    return _objects(value, MAX_RECORDS, "records",
                    {"number": _e164, "start": time,
                     "duration": lambda v: _int(v, 0, 86400, "duration"),
                     "cause": lambda v: _choice(CAUSES, "cause").load(v)},
                    {"answered": time, "q850": lambda v: _int(v, 1, 127, "q850"),
                     "text": _str})


USER = _pattern("user name: 1-64 of `A-Z a-z 0-9 . _ @ + -`", r"^[A-Za-z0-9._@+-]{1,64}$",
                "user")
NONCE = _pattern("nonce: 16-128 base64url characters", r"^[A-Za-z0-9_-]{16,128}$", "nonce")
PROOF = _bin(32, 32, "proof")
SALT = _bin(8, 64, "salt")
KEY = _bin(16, 16, "key")
TOKEN = _pattern("token: 1-512 of `A-Z a-z 0-9 . _ -` (opaque to clients)",
                 r"^[A-Za-z0-9._-]{1,512}$", "token", 512)
E164 = Kind("E.164 number: `+`, then 2-15 digits, the first not 0", _e164)
CONTACT = Kind("address-book entry: 1-64 characters, no control characters",
               lambda v: _str(v, re.compile(r"^.{1,64}$"), 64, "contact"))
ADDRESS = Kind("IPv4 or IPv6 address in canonical text form", _address)
PORT = _ranged(1, 65535, "port", "integer 1..65535 (UDP or TCP port)")
CALL_ID = _pattern("call id: 1-64 of `A-Z a-z 0-9 . _ -`; client-chosen ids start with `c`, "
                   "server-chosen ids with `s`", r"^[A-Za-z0-9._-]{1,64}$", "call", 64)
CAUSE = _choice(CAUSES, "cause")
Q850 = _ranged(1, 127, "q850", "Q.850 cause value 1..127")
BRANDING = Kind("object of at most 16 entries: key `[a-z][a-z0-9_]{0,31}`, value a string "
                "of at most 256 characters", _branding, dict)
CODECS = Kind("list of 1-8 codec names (`PCMU`, `PCMA`, `telephone-event`...)", _codecs, list)
MODE = _choice(("relay", "direct"), "mode")
DIGITS = _pattern("1-32 DTMF digits `0-9 * # A-D`", r"^[0-9*#A-D]{1,32}$", "digits", 32)
DURATION = _ranged(40, 5000, "duration", "milliseconds 40..5000")
TEXT = Kind("string of at most 256 characters, no control characters", _str)
NAME = Kind("display name: 1-64 characters, no control characters",
            lambda v: _str(v, re.compile(r"^.{1,64}$"), 64, "name"))
CODE = _ranged(100, 999, "code", "integer 100..999 (see Error codes)")
TIME = _ranged(0, 2 ** 40, "time", "integer seconds since 1970-01-01 UTC")
SECONDS = _ranged(0, 86400, "seconds", "integer seconds 0..86400")
INFO = _pattern("status word: `[a-z][a-z0-9-]{0,31}` (`held`, `resumed`, `remote-held`...)",
                r"^[a-z][a-z0-9-]{0,31}$", "info", 32)
COMMAND = _pattern("command name: `[a-z][a-z-]{0,15}`", r"^[a-z][a-z-]{0,15}$", "re", 16)
N = Kind("scrypt cost N: a power of two 2..2^20", _power_of_two)
R = _ranged(1, 32, "r", "scrypt block size r 1..32")
P = _ranged(1, 16, "p", "scrypt parallelism p 1..16")
PING = _ranged(1, 3600, "ping", "seconds 1..3600 between client pings")
CODEC = _pattern("codec name (`PCMU`, `PCMA`...)", CODEC_NAMES.pattern, "codec", 16)
REQ = _ranged(1, 2 ** 31, "req", "request id 1..2^31: chosen by the client, echoed in the answer")
CURSOR = _pattern("paging cursor: 1-400 of `A-Z a-z 0-9 _ -` (opaque to clients: the `next` "
                  "of the page before)", r"^[A-Za-z0-9_-]{1,400}$", "cursor", 400)
ENTRIES = Kind(f"list of at most {MAX_ENTRIES} address-book entries, each "
               "`{\"name\": CONTACT, \"number\": E164}`", _entries, _dump_objects)
RECORDS = Kind(f"list of at most {MAX_RECORDS} call records, newest first, each "
               "`{\"number\": E164, \"start\": TIME, \"duration\": SECONDS, \"cause\": CAUSE}` "
               "plus, when known, `\"answered\": TIME`, `\"q850\": Q850`, `\"text\": TEXT`",
               _records, _dump_objects)


def f(kind: Kind, required: bool = False, doc: str = "") -> Any:
    """A message field of ``kind``; optional fields default to None (absent on the wire)."""
    meta = {"kind": kind, "required": required, "doc": doc}
    if required:
        return field(metadata=meta)
    return field(default=None, metadata=meta)
