"""The v1 message model of the client protocol: fields, validation and the JSON codec.

Owned by the client protocol; the spec is docs/protocol.md ("Messages", "Field types").
Every control message is one compact UTF-8 JSON object ``{"v":1,"cmd":"<command>",...}``:
the same bytes travel as a UDP datagram, a TCP frame payload, a WebSocket text frame, an HTTP
POST body and an SSE ``data:`` line. Media frames are binary (``framing.py``).

- ``encode(message) -> bytes``; ``decode(data, sender=...) -> Message``.
- ``decode_envelope`` also returns the UDP reliability keys ``id`` and ``ack`` (``reliable.py``).
- Decoding is strict: unknown commands and fields, wrong JSON types (``true`` is not an integer),
  duplicate keys, NaN, oversized input and bad E.164 numbers raise ``RemoteProtocolError`` with
  an ``ErrorCode``; nothing else escapes. Encoding an invalid message raises
  ``LocalProtocolError``.

Tests: tests/client_proto/test_messages.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from protocols.client.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocols.client.fields import (  # noqa: F401  (re-exported: messages.USER...)
    ADDRESS, BRANDING, CALL_ID, CAUSE, CAUSES, CODE, CODEC, CODEC_NAMES, CODECS, COMMAND,
    CONTACT, CURSOR, DIGITS, DURATION, E164, E164_RE, ENTRIES, INFO, KEY, MAX_ENTRIES,
    MAX_RECORDS, MODE, NAME, NONCE, PING, PORT, PROOF, Q850, RECORDS, REQ, SALT, SECONDS, TEXT,
    TIME, TOKEN, USER, FieldError, Kind, N, P, R, b64d, b64e, f)

VERSION = 1
MAX_MESSAGE = 4096          # bytes of one encoded control message
MAX_ACKS = 32               # ids in one "ack" list
CLIENT, SERVER = "client", "server"


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, kw_only=True)
class Message:
    """Base of all control messages. ``command`` is the wire ``cmd``; ``sender`` who sends it."""
    command: ClassVar[str] = ""
    sender: ClassVar[str] = ""

    def check_shape(self) -> None:
        """Cross-field rules; raise FieldError(..., ErrorCode.BAD_SHAPE) when broken."""


def _need(cond: bool, text: str) -> None:
    if not cond:
        raise FieldError(text, ErrorCode.BAD_SHAPE)


def _media_shape(msg: Any) -> None:
    direct = msg.mode == "direct"
    _need(direct == (msg.address is not None) == (msg.port is not None),
          "address and port are required with mode direct and only then")


@dataclass(frozen=True, kw_only=True)
class Login(Message):
    """Login, three shapes: ``{user, nonce}`` starts a password login (client nonce);
    ``{user, nonce, proof}`` answers the challenge (nonce = the combined nonce);
    ``{token}`` or ``{token, nonce}`` resumes with a token from ``welcome`` (the nonce keys
    UDP datagram authentication)."""
    command: ClassVar[str] = "login"
    sender: ClassVar[str] = CLIENT
    user: str | None = f(USER)
    nonce: str | None = f(NONCE)
    proof: bytes | None = f(PROOF)
    token: str | None = f(TOKEN)

    def check_shape(self) -> None:
        if self.token is not None:
            _need(self.user is None and self.proof is None,
                  "a token login carries the token (and a nonce) alone")
        else:
            _need(self.user is not None and self.nonce is not None,
                  "a password login carries user and nonce")


@dataclass(frozen=True, kw_only=True)
class Call(Message):
    """Place a call to ``number`` (E.164) or ``contact`` (an address-book entry)."""
    command: ClassVar[str] = "call"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)
    number: str | None = f(E164)
    contact: str | None = f(CONTACT)
    mode: str = f(MODE, True)
    address: str | None = f(ADDRESS, doc="direct mode: where the client receives RTP")
    port: int | None = f(PORT)
    codecs: tuple[str, ...] | None = f(CODECS)

    def check_shape(self) -> None:
        _need((self.number is None) != (self.contact is None),
              "exactly one of number and contact")
        _media_shape(self)


@dataclass(frozen=True, kw_only=True)
class Answer(Message):
    """Answer an incoming call; media as in ``call``. On an active call, a second ``answer``
    changes its media mode (``relay`` when direct media never arrived), confirmed by a second
    ``connected``."""
    command: ClassVar[str] = "answer"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)
    mode: str = f(MODE, True)
    address: str | None = f(ADDRESS)
    port: int | None = f(PORT)
    codecs: tuple[str, ...] | None = f(CODECS)

    def check_shape(self) -> None:
        _media_shape(self)


@dataclass(frozen=True, kw_only=True)
class Reject(Message):
    """Refuse an incoming call (default cause ``busy``)."""
    command: ClassVar[str] = "reject"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)
    cause: str | None = f(CAUSE)


@dataclass(frozen=True, kw_only=True)
class Hangup(Message):
    """End a call in any state."""
    command: ClassVar[str] = "hangup"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)


@dataclass(frozen=True, kw_only=True)
class Dtmf(Message):
    """Send DTMF digits on a connected call."""
    command: ClassVar[str] = "dtmf"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)
    digits: str = f(DIGITS, True)
    duration: int | None = f(DURATION, doc="per digit; default 100")


@dataclass(frozen=True, kw_only=True)
class Hold(Message):
    """Put a connected call on hold."""
    command: ClassVar[str] = "hold"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)


@dataclass(frozen=True, kw_only=True)
class Resume(Message):
    """Take a held call off hold."""
    command: ClassVar[str] = "resume"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)


@dataclass(frozen=True, kw_only=True)
class Attach(Message):
    """Re-attach to ``call``, still up on the server, after the session that held it was lost
    (a dropped socket, a network change): ``key`` is the call's current media key, which only
    the user's client holding the call knows. Answered by ``connected`` with a new key, or by
    ``disconnected`` when there is no such call to attach."""
    command: ClassVar[str] = "attach"
    sender: ClassVar[str] = CLIENT
    call: str = f(CALL_ID, True)
    key: bytes = f(KEY, True)


@dataclass(frozen=True, kw_only=True)
class Ping(Message):
    """Keep the session alive (answered with ``pong``)."""
    command: ClassVar[str] = "ping"
    sender: ClassVar[str] = CLIENT


@dataclass(frozen=True, kw_only=True)
class Logout(Message):
    """End the session; every call of the session is hung up: the server sends each one's
    `disconnected` (cause `normal`) before it closes the session."""
    command: ClassVar[str] = "logout"
    sender: ClassVar[str] = CLIENT


@dataclass(frozen=True, kw_only=True)
class BookList(Message):
    """A page of the user's address book (the same book as ``callgw book``), sorted by name;
    ``after``: the ``next`` of the page before. Answered with ``book``."""
    command: ClassVar[str] = "book-list"
    sender: ClassVar[str] = CLIENT
    req: int = f(REQ, True)
    after: str | None = f(CURSOR)


@dataclass(frozen=True, kw_only=True)
class BookPut(Message):
    """Save an address-book entry: a new one, or (with ``was``, the entry's current name) a
    changed one (new number, new name, or both). Answered with ``done``, or ``error`` 600-602."""
    command: ClassVar[str] = "book-put"
    sender: ClassVar[str] = CLIENT
    req: int = f(REQ, True)
    name: str = f(CONTACT, True)
    number: str = f(E164, True)
    was: str | None = f(CONTACT, doc="the name of the entry being changed")


@dataclass(frozen=True, kw_only=True)
class BookDelete(Message):
    """Delete an address-book entry. Answered with ``done``, or ``error`` 600."""
    command: ClassVar[str] = "book-delete"
    sender: ClassVar[str] = CLIENT
    req: int = f(REQ, True)
    name: str = f(CONTACT, True)


@dataclass(frozen=True, kw_only=True)
class History(Message):
    """A page of the user's own call records (CDRs), newest first; ``after``: the ``next`` of
    the page before. Answered with ``records``."""
    command: ClassVar[str] = "history"
    sender: ClassVar[str] = CLIENT
    req: int = f(REQ, True)
    after: str | None = f(CURSOR)


@dataclass(frozen=True, kw_only=True)
class Refresh(Message):
    """A fresh token before the session's expires (answered with ``token``); the session
    itself stays logged in."""
    command: ClassVar[str] = "refresh"
    sender: ClassVar[str] = CLIENT
    req: int = f(REQ, True)


@dataclass(frozen=True, kw_only=True)
class Challenge(Message):
    """SCRAM server-first: the combined nonce, the user's salt and scrypt parameters."""
    command: ClassVar[str] = "challenge"
    sender: ClassVar[str] = SERVER
    nonce: str = f(NONCE, True)
    salt: bytes = f(SALT, True)
    n: int = f(N, True)
    r: int = f(R, True)
    p: int = f(P, True)

    def check_shape(self) -> None:
        _need(self.n * self.r <= 2 ** 20 and self.p * self.r <= 64,
              "scrypt parameters over the client's memory and time limits")


@dataclass(frozen=True, kw_only=True)
class Welcome(Message):
    """Login succeeded: a signed expiring token, the client's address as seen by callgw, the
    ping interval, the server signature (password logins) and the user's branding."""
    command: ClassVar[str] = "welcome"
    sender: ClassVar[str] = SERVER
    user: str = f(USER, True)
    token: str = f(TOKEN, True)
    expires: int = f(TIME, True)
    address: str = f(ADDRESS, True)
    port: int = f(PORT, True)
    ping: int = f(PING, True)
    signature: bytes | None = f(PROOF, doc="SCRAM server signature")
    name: str | None = f(NAME, doc="the user's display name")
    number: str | None = f(E164, doc="the user's own number")
    branding: dict | None = f(BRANDING)


@dataclass(frozen=True, kw_only=True)
class Unauthorized(Message):
    """A login or (with ``call``) a call was refused; ``code`` is an AuthCode. After
    ``welcome`` and without ``call``: the login was withdrawn (the account or its tenant was
    disabled) and the session ends."""
    command: ClassVar[str] = "unauthorized"
    sender: ClassVar[str] = SERVER
    code: int = f(CODE, True)
    text: str | None = f(TEXT)
    call: str | None = f(CALL_ID)
    retry: int | None = f(SECONDS, doc="seconds to wait before the next login (throttled)")


@dataclass(frozen=True, kw_only=True)
class Redirect(Message):
    """Go to this address instead: the client opens the same framing there and logs in again (sent in answer to `login` in place of `welcome`, or once logged in); this session ends."""
    command: ClassVar[str] = "redirect"
    sender: ClassVar[str] = SERVER
    address: str = f(ADDRESS, True)
    port: int = f(PORT, True)
    text: str | None = f(TEXT)


@dataclass(frozen=True, kw_only=True)
class Trying(Message):
    """The call request was accepted and is being placed."""
    command: ClassVar[str] = "trying"
    sender: ClassVar[str] = SERVER
    call: str = f(CALL_ID, True)


@dataclass(frozen=True, kw_only=True)
class Ringing(Message):
    """The far end rings."""
    command: ClassVar[str] = "ringing"
    sender: ClassVar[str] = SERVER
    call: str = f(CALL_ID, True)


@dataclass(frozen=True, kw_only=True)
class Connected(Message):
    """The call is up. Relay mode: ``key`` (the per-call media key); direct mode: ``address``
    and ``port`` of the gateway's RTP."""
    command: ClassVar[str] = "connected"
    sender: ClassVar[str] = SERVER
    call: str = f(CALL_ID, True)
    key: bytes | None = f(KEY)
    address: str | None = f(ADDRESS)
    port: int | None = f(PORT)
    codec: str | None = f(CODEC)

    def check_shape(self) -> None:
        direct = self.address is not None and self.port is not None
        _need(direct != (self.key is not None)
              and (self.address is None) == (self.port is None),
              "either key (relay) or address and port (direct)")


@dataclass(frozen=True, kw_only=True)
class Incoming(Message):
    """A call for this user: answer or reject it."""
    command: ClassVar[str] = "incoming"
    sender: ClassVar[str] = SERVER
    call: str = f(CALL_ID, True)
    caller: str | None = f(E164)
    name: str | None = f(NAME)
    number: str | None = f(E164, doc="the number called")
    codecs: tuple[str, ...] | None = f(CODECS)


@dataclass(frozen=True, kw_only=True)
class Disconnected(Message):
    """The call ended: a client cause, the Q.850 cause when known, and text."""
    command: ClassVar[str] = "disconnected"
    sender: ClassVar[str] = SERVER
    call: str = f(CALL_ID, True)
    cause: str = f(CAUSE, True)
    q850: int | None = f(Q850)
    text: str | None = f(TEXT)


@dataclass(frozen=True, kw_only=True)
class Status(Message):
    """An informational status word, for the session or one call."""
    command: ClassVar[str] = "status"
    sender: ClassVar[str] = SERVER
    info: str = f(INFO, True)
    call: str | None = f(CALL_ID)
    text: str | None = f(TEXT)


@dataclass(frozen=True, kw_only=True)
class Error(Message):
    """The peer broke the protocol: ``code`` (ErrorCode), the offending command ``re``; or a
    request was refused (``req``, codes 6xx)."""
    command: ClassVar[str] = "error"
    sender: ClassVar[str] = SERVER
    code: int = f(CODE, True)
    text: str | None = f(TEXT)
    call: str | None = f(CALL_ID)
    re: str | None = f(COMMAND)
    req: int | None = f(REQ, doc="the request refused")


@dataclass(frozen=True, kw_only=True)
class Book(Message):
    """A page of the address book (``book-list``); ``next`` when more entries follow."""
    command: ClassVar[str] = "book"
    sender: ClassVar[str] = SERVER
    req: int = f(REQ, True)
    entries: tuple = f(ENTRIES, True)
    next: str | None = f(CURSOR)


@dataclass(frozen=True, kw_only=True)
class Done(Message):
    """A ``book-put`` or ``book-delete`` was carried out."""
    command: ClassVar[str] = "done"
    sender: ClassVar[str] = SERVER
    req: int = f(REQ, True)


@dataclass(frozen=True, kw_only=True)
class Records(Message):
    """A page of the user's call records (``history``); ``next`` when older records follow."""
    command: ClassVar[str] = "records"
    sender: ClassVar[str] = SERVER
    req: int = f(REQ, True)
    records: tuple = f(RECORDS, True)
    next: str | None = f(CURSOR)


@dataclass(frozen=True, kw_only=True)
class Token(Message):
    """The answer to ``refresh``: a fresh signed token and when it expires."""
    command: ClassVar[str] = "token"
    sender: ClassVar[str] = SERVER
    req: int = f(REQ, True)
    token: str = f(TOKEN, True)
    expires: int = f(TIME, True)


@dataclass(frozen=True, kw_only=True)
class Pong(Message):
    """The answer to ``ping``."""
    command: ClassVar[str] = "pong"
    sender: ClassVar[str] = SERVER


CLIENT_MESSAGES: tuple[type[Message], ...] = (Login, Call, Answer, Reject, Hangup, Dtmf, Hold,
                                               Resume, Attach, Ping, Logout, BookList, BookPut,
                                               BookDelete, History, Refresh)
SERVER_MESSAGES: tuple[type[Message], ...] = (Challenge, Welcome, Unauthorized, Redirect, Trying,
                                               Ringing, Connected, Incoming, Disconnected,
                                               Status, Error, Pong, Book, Done, Records, Token)
#: Requests: client commands answered by the message with the same ``req`` (or ``error``).
REQUESTS: tuple[type[Message], ...] = (BookList, BookPut, BookDelete, History, Refresh)
ANSWERS: tuple[type[Message], ...] = (Book, Done, Records, Token)
BY_COMMAND: dict[str, type[Message]] = {m.command: m for m in CLIENT_MESSAGES + SERVER_MESSAGES}
ENVELOPE_KEYS = ("v", "cmd", "id", "ack")


# ---------------------------------------------------------------- codec

@dataclass(frozen=True)
class Envelope:
    """A decoded control datagram: the message (None for a bare ack), and the UDP
    reliability keys: ``mid`` (the sender's message id) and ``acks`` (ids it acknowledges)."""
    message: Message | None
    mid: int | None = None
    acks: tuple[int, ...] = ()


def to_dict(message: Message) -> dict[str, Any]:
    """The JSON object of ``message`` (validated); raises LocalProtocolError when invalid."""
    if type(message) not in BY_COMMAND.values():
        raise LocalProtocolError(f"not a client protocol message: {message!r}")
    out: dict[str, Any] = {"v": VERSION, "cmd": message.command}
    try:
        for fl in fields(message):
            value = getattr(message, fl.name)
            if value is None:
                if fl.metadata["required"]:
                    raise FieldError(f"{fl.name}: required", ErrorCode.MISSING_FIELD)
                continue
            kind: Kind = fl.metadata["kind"]
            wire = kind.dump(value)
            if kind.load(wire) != value:
                raise FieldError(f"{fl.name}: does not survive encoding")
            out[fl.name] = wire
        message.check_shape()
    except (FieldError, TypeError, AttributeError) as e:
        raise LocalProtocolError(f"invalid {message.command}: {e}") from None
    return out


def encode(message: Message, *, mid: int | None = None, acks: tuple[int, ...] = ()) -> bytes:
    """The compact JSON bytes of ``message`` (plus UDP ``id``/``ack`` keys when given)."""
    obj = to_dict(message)
    if mid is not None:
        obj["id"] = mid
    if acks:
        obj["ack"] = list(acks)
    data = _dumps(obj)
    if len(data) > MAX_MESSAGE:
        raise LocalProtocolError(f"{message.command} is {len(data)} bytes, over {MAX_MESSAGE}")
    return data


def encode_ack(acks: tuple[int, ...]) -> bytes:
    """A bare UDP acknowledgement ``{"v":1,"ack":[...]}``."""
    return _dumps({"v": VERSION, "ack": list(acks)})


def _dumps(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise FieldError(f"duplicate key {k!r}", ErrorCode.MALFORMED)
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise FieldError(f"{name} is not JSON", ErrorCode.MALFORMED)


def _err(code: int, text: str, command: str | None = None) -> RemoteProtocolError:
    return RemoteProtocolError(code, text, command=command)


def parse_json(data: bytes | str) -> dict[str, Any]:
    """Strictly parse one control message's JSON object (size, UTF-8, duplicates, NaN)."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise _err(ErrorCode.MALFORMED, "not UTF-8") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _err(ErrorCode.MALFORMED, "not bytes")
    if len(data) > MAX_MESSAGE:
        raise _err(ErrorCode.TOO_LARGE, f"message over {MAX_MESSAGE} bytes")
    try:
        text = bytes(data).decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates,
                         parse_constant=_reject_constant)
    except FieldError as e:
        raise _err(e.code, str(e)) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _err(ErrorCode.MALFORMED, "not a UTF-8 JSON text") from None
    if type(obj) is not dict:
        raise _err(ErrorCode.MALFORMED, "not a JSON object")
    return obj


def decode_envelope(data: bytes | str, sender: str | None = None) -> Envelope:
    """Decode a control message with its UDP keys; ``sender`` (CLIENT or SERVER) restricts the
    commands accepted to those that side sends. Raises only RemoteProtocolError."""
    obj = parse_json(data)
    if obj.get("v") != VERSION or type(obj.get("v")) is not int:
        raise _err(ErrorCode.UNSUPPORTED_VERSION, f"only version {VERSION} is spoken")
    mid = obj.get("id")
    if mid is not None and (type(mid) is not int or not 1 <= mid <= 2 ** 31):
        raise _err(ErrorCode.BAD_FIELD, "id: integer 1..2^31")
    acks = obj.get("ack", [])
    if (type(acks) is not list or len(acks) > MAX_ACKS
            or any(type(a) is not int or not 1 <= a <= 2 ** 31 for a in acks)):
        raise _err(ErrorCode.BAD_FIELD, f"ack: list of at most {MAX_ACKS} ids")
    if "cmd" not in obj:
        if set(obj) - {"v", "ack"} or not acks:
            raise _err(ErrorCode.UNKNOWN_COMMAND, "no cmd")
        return Envelope(None, None, tuple(acks))
    return Envelope(_message_from(obj, sender), mid, tuple(acks))


def decode(data: bytes | str, sender: str | None = None) -> Message:
    """Decode one control message (ignoring UDP keys). Raises only RemoteProtocolError."""
    env = decode_envelope(data, sender)
    if env.message is None:
        raise _err(ErrorCode.UNKNOWN_COMMAND, "a bare ack outside UDP")
    return env.message


def _message_from(obj: dict[str, Any], sender: str | None) -> Message:
    cmd = obj["cmd"]
    cls = BY_COMMAND.get(cmd) if type(cmd) is str else None
    if cls is None or (sender is not None and cls.sender != sender):
        raise _err(ErrorCode.UNKNOWN_COMMAND, f"unknown command {str(cmd)[:16]!r}")
    kwargs: dict[str, Any] = {}
    known = {fl.name: fl for fl in fields(cls)}
    for key in obj:
        if key not in known and key not in ENVELOPE_KEYS:
            raise _err(ErrorCode.UNKNOWN_FIELD, f"{cmd} has no field {key[:32]!r}", cmd)
    try:
        for name, fl in known.items():
            if name not in obj:
                if fl.metadata["required"]:
                    raise FieldError(f"{name}: required", ErrorCode.MISSING_FIELD)
                continue
            kwargs[name] = fl.metadata["kind"].load(obj[name])
        message = cls(**kwargs)
        message.check_shape()
    except FieldError as e:
        raise _err(e.code, f"{cmd}: {e}", cmd) from None
    return message


def field_kinds(cls: type[Message]) -> list[tuple[str, Kind, bool, str]]:
    """``(name, kind, required, doc)`` of each field of ``cls`` (docs and tests use it)."""
    return [(fl.name, fl.metadata["kind"], fl.metadata["required"], fl.metadata["doc"])
            for fl in fields(cls)]

