"""What the client protocol's session machines hand to their adapters (and to callgw).

Owned by the client protocol; the spec is docs/protocol.md ("Driving the core"). Both session
machines return these frozen dataclasses, in order, from ``next_actions()``. Adapters handle
each type in one small method: ``Send`` and ``SendMedia`` go to the transport (through
``reliable.py`` on UDP), ``Close`` ends the transport once what was queued is sent, and the rest
are requests for callgw (server side) or the client library (client side).

Tests: tests/client_proto/test_session.py, tests/client_proto/test_client_session.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocols.client.framing import MediaFrame
from protocols.client.messages import Message


# ---------------------------------------------------------------- both sides

@dataclass(frozen=True)
class Send:
    """Send ``message`` to the peer (encode with ``messages.encode`` or via ``reliable``)."""
    message: Message


@dataclass(frozen=True)
class SendMedia:
    """Send one encoded media frame (binary; unreliable on UDP)."""
    payload: bytes


@dataclass(frozen=True)
class Close:
    """The session ended: close the transport after sending what is queued.

    ``code`` is an ErrorCode (or 0 for a normal end: logout, redirect); ``text`` says why."""
    code: int
    text: str


@dataclass(frozen=True)
class SealDatagrams:
    """UDP only (other framings ignore it): from now on seal every datagram sent with
    ``send_key`` (None: send plain) and open sealed datagrams with ``receive_key``;
    ``required``: drop every datagram not sealed by it (docs/protocol.md, "UDP datagram
    authentication"; ``reliable.ReliableEndpoint.seal_datagrams`` does it)."""
    send_key: bytes | None
    receive_key: bytes | None
    required: bool


@dataclass(frozen=True)
class MediaReceived:
    """A media frame with the right key for ``call``."""
    call: str
    frame: MediaFrame


# ---------------------------------------------------------------- server side: to callgw

@dataclass(frozen=True)
class LookupCredentials:
    """Find ``user``'s stored SCRAM credentials; answer with
    ``ServerSession.credentials_found(user, credential_or_None, now)``. The credential needs
    attributes ``salt, n, r, p, stored_key, server_key`` (``callgw.passwords.Credential``)."""
    user: str


@dataclass(frozen=True)
class Authenticated:
    """``user`` proved who they are (``via`` ``"password"`` or ``"token"``). Answer with
    ``ServerSession.accept(...)`` (branding, display name, number) or ``refuse(code, text)``."""
    user: str
    via: str


@dataclass(frozen=True)
class LoginRefused:
    """A login was refused with ``code`` (an AuthCode) and ``text``: ``user`` is the name it
    claimed (None for a token login), ``counted`` whether it counted toward throttling. callgw
    logs it with the source and counts it in its metrics."""
    user: str | None
    code: int
    text: str
    counted: bool


@dataclass(frozen=True)
class LoggedIn:
    """The welcome was sent: the session is authenticated (UDP adapters validate the address)."""
    user: str
    expires: int


@dataclass(frozen=True)
class CallRequested:
    """The client asks for a call to ``number`` (E.164) or ``contact`` (address book)."""
    call: str
    number: str | None
    contact: str | None
    mode: str
    address: str | None
    port: int | None
    codecs: tuple[str, ...] | None


@dataclass(frozen=True)
class AnswerRequested:
    """The client answers incoming ``call``."""
    call: str
    mode: str
    address: str | None
    port: int | None
    codecs: tuple[str, ...] | None


@dataclass(frozen=True)
class AttachRequested:
    """The client asks to re-attach to ``call`` (up on the server, its session lost) with the
    call's media ``key``; answer with ``connected`` (a new key) or ``disconnected``."""
    call: str
    key: bytes


@dataclass(frozen=True)
class RejectRequested:
    """The client refuses incoming ``call``."""
    call: str
    cause: str


@dataclass(frozen=True)
class HangupRequested:
    """``call`` must be released: the client hung up (``normal``), logged out, or the session
    expired (``timeout``), became unreachable (``network-error``) or was revoked
    (``unauthorized``: the account was disabled)."""
    call: str
    cause: str


@dataclass(frozen=True)
class DtmfRequested:
    call: str
    digits: str
    duration: int


@dataclass(frozen=True)
class HoldRequested:
    """Hold (``on=True``) or resume (``on=False``) ``call``."""
    call: str
    on: bool


@dataclass(frozen=True)
class UserRequest:
    """The client asks about its own data: ``book-list``, ``book-put``, ``book-delete`` or
    ``history`` (``message``, whose ``req`` the answer carries). Answer with
    ``ServerSession.answer_request(Book | Done | Records | Error(req=...))``."""
    user: str
    message: Message


# ---------------------------------------------------------------- client side: to the library

@dataclass(frozen=True)
class DeriveKey:
    """Compute ``scram.salted_password(password, salt, n, r, p)`` off the reactor (scrypt is
    CPU-heavy) and give it back with ``ClientSession.key_derived(salted, now)``."""
    salt: bytes
    n: int
    r: int
    p: int


@dataclass(frozen=True)
class Welcomed:
    """Login succeeded (the server's signature was checked for password logins)."""
    welcome: Message


@dataclass(frozen=True)
class Redirected:
    """The server sent the client elsewhere (``redirect``, docs/protocol.md "Redirect"): open
    a link of the same framing to ``address``:``port``, then call
    ``ClientSession.reconnected(now)`` (the session logs in again there by itself: same
    derived key, or the newest token) -- or ``close(now, code, text)`` when that link fails.
    ``hops``: redirects in a row so far (1..3)."""
    address: str
    port: int
    text: str | None
    hops: int


@dataclass(frozen=True)
class RedirectRefused:
    """The client does not follow a ``redirect`` (a bad address, or more than three in a
    row: ``text`` says which, e.g. "too many redirects: A -> B -> C -> D -> E"); a ``Close``
    with the same text follows."""
    text: str


@dataclass(frozen=True)
class LoginFailed:
    """Login refused (``code`` an AuthCode or ErrorCode); ``retry`` seconds when throttled."""
    code: int
    text: str
    retry: int | None = None


@dataclass(frozen=True)
class CallEvent:
    """A server message about one call (trying, ringing, connected, incoming, disconnected,
    unauthorized with a call, status with a call, error with a call)."""
    call: str
    message: Message


@dataclass(frozen=True)
class SessionEvent:
    """A server message about the session (status, error, redirect, unauthorized)."""
    message: Message


@dataclass(frozen=True)
class RequestAnswered:
    """The server answered request ``req`` (``book``, ``done``, ``records``, ``token``, or an
    ``error`` carrying the ``req``)."""
    req: int
    message: Message


@dataclass(frozen=True)
class RequestsLost:
    """The session closed with requests unanswered (their ``req`` ids)."""
    reqs: tuple[int, ...]
