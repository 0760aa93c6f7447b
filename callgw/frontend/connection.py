"""One client session, whatever its framing: login, ping, logout, idle expiry, the front-end hook.

Owned by the front-end listeners. A framing adapter (``udp.py``, ``stream.py``, ``web/``) turns
its bytes into payloads and gives them to a ``ClientConnection``; the connection decodes them
(``protocols.client.messages``), runs the login (a SCRAM-style challenge and response over the
user's stored scrypt keys, or a signed token from an earlier ``welcome``), answers pings and
hands call commands and media frames to the *front end* (the call path) through four calls:

- ``frontend.session_opened(conn)`` after a successful login; returns a dict (or a Deferred
  firing with one) of extra ``welcome`` fields (``branding``, ``name``, ``number``);
- ``frontend.client_message(conn, message)`` for call, answer, reject, hangup, dtmf, hold, resume;
- ``frontend.client_media(conn, frame)`` for media frames (``protocols.client.framing.MediaFrame``);
- ``frontend.session_closed(conn, reason)`` on logout, idle expiry, a lost connection, shutdown.

The login glue here (``auth_message``, ``make_token_signer``) is the server's half; the client
library (``callgw.client``) uses the same ``auth_message``. docs/protocol.md is the spec (login
section 5, limits section 13). This class does not drive the core's
``protocols.client.session.ServerSession``: that machine keeps its own call table and media
keys, which in callgw belong to the call path's client leg (it sends ``trying``...``connected``
itself through ``send``); tokens, throttling, SCRAM math and UDP reliability are the core's.
Tests: tests/frontend/test_connection.py (StringTransport-free: a recording writer and a Clock)
and the framing tests in tests/frontend/, tests/web/.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import math
import os
import re
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from callgw import passwords
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client import scram
from protocols.client.errors import AuthCode, ErrorCode, ProtocolError, RemoteProtocolError
from protocols.client.throttle import LoginThrottle
from protocols.client.tokens import TokenError, TokenSigner

MAX_ERRORS = 10                 # protocol errors before a session is ended
MAX_LOGIN_FAILURES = 3          # failed logins before a session is ended
MAX_CLIENT_NONCE = 96           # characters, so that the combined nonce fits in 128
LOGIN_TIMEOUT = 30.0            # seconds from connect (or a failed login) to a welcome
CALL_COMMANDS = (m.Call, m.Answer, m.Reject, m.Hangup, m.Dtmf, m.Hold, m.Resume)
WELCOME_EXTRAS = ("branding", "name", "number")
_BRAND_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _auth_message(user: str, client_nonce: str, nonce: str, salt: bytes, n: int, r: int,
                  p: int) -> bytes:
    """What both sides sign in a password login (after RFC 5802 section 3's AuthMessage)."""
    return (f"callgw-v1,n={user},r={client_nonce},r={nonce},s={m.b64e(salt)},"
            f"i={n}:{r}:{p},c=none,r={nonce}").encode("utf-8")


# The protocol core's definition (docs/protocol.md, "Login") when it has one; same bytes.
auth_message = getattr(scram, "auth_message", _auth_message)


def make_token_signer(security: dict, secret: bytes | None = None) -> TokenSigner:
    """A TokenSigner from ``[security]``: the first ``KEYID:SECRET`` signs, all verify; with no
    keys configured, a random key of this process (``secret`` or fresh random bytes)."""
    keys = []
    for entry in security.get("token_keys", []):
        kid, _, text = entry.partition(":")
        keys.append((kid, hashlib.sha256(b"callgw token key\0" + text.encode()).digest()))
    if not keys:
        keys = [("local", secret or os.urandom(32))]
    return TokenSigner(keys[0], dict(keys[1:]), ttl=int(security.get("token_lifetime", 3600)))


def clean_text(text: Any, limit: int = 256) -> str:
    """``text`` as a protocol TEXT value: no control characters, at most ``limit`` chars."""
    return "".join(c if c >= " " and not 0xD800 <= ord(c) <= 0xDFFF else " "
                   for c in str(text))[:limit]


def clean_branding(branding: Any) -> dict[str, str]:
    """A tenant's branding reduced to what ``welcome`` may carry."""
    if not isinstance(branding, dict):
        return {}
    out = {}
    for key, value in branding.items():
        if isinstance(key, str) and _BRAND_KEY.match(key) and len(out) < 16:
            out[key] = clean_text("" if value is None else value)
    return out


class SessionManager:
    """What every framing's connections share: the store, the front end, the clock, token
    signing, login throttling and the limits from ``[client]``. ``frontend`` may be replaced
    before the first connection (tests put a fake one there)."""

    log = Logger()

    def __init__(self, store, frontend, config, clock, token_secret: bytes | None = None):
        self.store = store
        self.frontend = frontend
        self.clock = clock
        client = config["client"]
        self.idle_timeout = float(client["idle_timeout"])
        self.max_message = int(client["max_message"])
        self.login_timeout = min(LOGIN_TIMEOUT, self.idle_timeout)
        self.tokens = make_token_signer(config["security"], token_secret)
        self.throttle = LoginThrottle()
        self.connections: set[ClientConnection] = set()
        self._decoy = os.urandom(32)

    @property
    def ping_interval(self) -> int:
        """Seconds between the pings a client should send (a third of the idle timeout)."""
        return max(1, min(3600, int(self.idle_timeout // 3)))

    def open(self, framing: str, peer: tuple[str, int], writer) -> "ClientConnection":
        """A new connection for ``writer`` (``write_control(message)``, ``write_media(bytes)``,
        ``lose()``); its login timer runs from now."""
        conn = ClientConnection(self, framing, peer, writer)
        self.connections.add(conn)
        conn.start()
        return conn

    def decoy_credential(self, user: str) -> tuple[bytes, int, int, int]:
        """A stable fake salt for an unknown user, so a challenge does not tell users apart."""
        return (hmac.new(self._decoy, user.encode(), hashlib.sha256).digest()[:16],
                scram.DEFAULT_N, scram.DEFAULT_R, scram.DEFAULT_P)

    def close_all(self, reason: str = "shutdown") -> None:
        """Close every connection (service stop); each reports ``session_closed``."""
        for conn in list(self.connections):
            conn.close(reason)


class State(enum.Enum):
    """Server-side session states (docs/protocol.md, "Session")."""
    START = "start"               # connected, no login yet (or a failed one)
    LOOKUP = "lookup"             # waiting for the store (user row, tenant)
    CHALLENGED = "challenged"     # challenge sent, waiting for the proof
    OPENING = "opening"           # proof good, waiting for the front end's session_opened
    OPEN = "open"                 # logged in
    CLOSED = "closed"


class ClientConnection:
    """One client session. The front-end hook's view of it: ``username``, ``user`` (store row),
    ``tenant`` (tenant name), ``peer`` (host, port), ``framing``, ``send``, ``send_media``,
    ``close``."""

    log = Logger()

    def __init__(self, manager: SessionManager, framing: str, peer: tuple[str, int], writer):
        self.manager = manager
        self.framing = framing
        self.peer = (str(peer[0]), int(peer[1]))
        self.writer = writer
        self.username: str | None = None
        self.user: dict | None = None
        self.tenant: str | None = None
        self.token: str | None = None
        self.state = State.START
        self.errors = 0
        self.login_failures = 0
        self._login: dict | None = None
        self._timer = None
        self._last = 0.0

    def __repr__(self) -> str:
        return (f"<ClientConnection {self.framing} {self.peer[0]}:{self.peer[1]} "
                f"{self.username or '-'} {self.state.value}>")

    # -- the front end's side -----------------------------------------------------------------
    def send(self, message: m.Message) -> None:
        """Send a server-to-client control message (dropped once closed)."""
        if self.state is State.CLOSED:
            return
        self.writer.write_control(message)

    def send_media(self, frame: fr.MediaFrame) -> None:
        """Send a media frame (only on an open session)."""
        if self.state is State.OPEN:
            self.writer.write_media(fr.encode_media(frame))

    def close(self, reason: str = "closed") -> None:
        """End the session and its transport; reports ``session_closed`` if it was open."""
        if self._finish(reason):
            self.writer.lose()

    # -- the framing's side -------------------------------------------------------------------
    def start(self) -> None:
        self._last = self.manager.clock.seconds()
        self._arm(self.manager.login_timeout)

    def receive(self, payload: bytes) -> None:
        """One payload from the framing (control JSON or a media frame). Never raises."""
        try:
            if fr.kind_of(payload) == fr.MEDIA:
                self.receive_media(fr.decode_media(payload))
                return
            if len(payload) > self.manager.max_message:
                raise RemoteProtocolError(ErrorCode.TOO_LARGE,
                                          f"message over {self.manager.max_message} bytes")
            message = m.decode(payload, sender=m.CLIENT)
        except RemoteProtocolError as e:
            self.protocol_error(e)
            return
        self.receive_message(message)

    def receive_message(self, message: m.Message) -> None:
        """One decoded client message. Never raises."""
        if self.state is State.CLOSED:
            return
        self._last = self.manager.clock.seconds()
        try:
            self._dispatch(message)
        except RemoteProtocolError as e:
            self.protocol_error(e)
        except Exception:
            self.log.failure("handling {command} from {conn}", command=message.command,
                             conn=repr(self))
            self.send(m.Error(code=ErrorCode.INTERNAL, text="server error",
                              re=message.command))

    def receive_media(self, frame: fr.MediaFrame) -> None:
        """A media frame: to the front end when logged in, else dropped."""
        if self.state is not State.OPEN:
            return
        self._last = self.manager.clock.seconds()       # any input keeps a session alive
        try:
            self.manager.frontend.client_media(self, frame)
        except Exception:
            self.log.failure("client_media from {conn}", conn=repr(self))

    def protocol_error(self, error: ProtocolError) -> None:
        """Answer a broken rule with ``error``; close when fatal or after too many."""
        if self.state is State.CLOSED:
            return
        self.errors += 1
        self.log.debug("protocol error from {conn}: {error}", conn=repr(self), error=str(error))
        re_cmd = error.command if error.command and re.match(r"^[a-z]{1,16}$",
                                                             error.command) else None
        self.send(m.Error(code=error.code, text=clean_text(error.text), re=re_cmd))
        if error.fatal:
            self.close("protocol error")
        elif self.errors >= MAX_ERRORS:
            self.send(m.Error(code=ErrorCode.TOO_MANY_ERRORS, text="too many errors"))
            self.close("too many errors")

    def connection_lost(self, reason: str = "connection lost") -> None:
        """The transport is gone (called by the framing)."""
        self._finish(reason)

    # -- dispatch -------------------------------------------------------------------------------
    def _dispatch(self, message: m.Message) -> None:
        if isinstance(message, m.Ping):
            self.send(m.Pong())
        elif isinstance(message, m.Login):
            self._on_login(message)
        elif isinstance(message, m.Logout):
            self.close("logout")
        elif self.state is not State.OPEN:
            raise RemoteProtocolError(ErrorCode.NOT_AUTHENTICATED, "log in first",
                                      command=message.command)
        else:
            d = maybeDeferred(self.manager.frontend.client_message, self, message)
            d.addErrback(self._frontend_failed, message)

    def _frontend_failed(self, failure, message) -> None:
        self.log.failure("front end failed on {command} from {conn}", failure,
                         command=message.command, conn=repr(self))
        self.send(m.Error(code=ErrorCode.INTERNAL, text="server error", re=message.command,
                          call=getattr(message, "call", None)))

    # -- login ----------------------------------------------------------------------------------
    def _on_login(self, login: m.Login) -> None:
        if self.state in (State.OPEN, State.LOOKUP, State.OPENING):
            raise RemoteProtocolError(ErrorCode.OUT_OF_ORDER, "login in progress or done",
                                      command="login")
        now = self.manager.clock.seconds()
        wait = self.manager.throttle.retry_after(login.user, self.peer[0], now)
        if wait > 0:
            self._refuse(AuthCode.THROTTLED, "too many failed logins", retry=math.ceil(wait))
        elif login.token is not None:
            self._token_login(login.token, now)
        elif login.proof is None:
            self._first(login)
        else:
            self._final(login, now)

    def _first(self, login: m.Login) -> None:
        if len(login.nonce) > MAX_CLIENT_NONCE:
            raise RemoteProtocolError(ErrorCode.BAD_FIELD,
                                      f"client nonce over {MAX_CLIENT_NONCE}", command="login")
        self.state = State.LOOKUP
        d = self.manager.store.run("get_user", login.user)
        d.addCallback(self._challenge, login)
        d.addErrback(self._login_failed, "user lookup")

    def _challenge(self, row: dict | None, login: m.Login) -> None:
        if self.state is State.CLOSED:
            return
        cred = None
        if row is not None:
            try:
                cred = passwords.parse(row["password"])
            except ValueError:
                self.log.warn("user {user}: unusable stored credential", user=login.user)
        salt, n, r, p = ((cred.salt, cred.n, cred.r, cred.p) if cred is not None
                         else self.manager.decoy_credential(login.user))
        nonce = login.nonce + m.b64e(os.urandom(18))
        self._login = {"user": login.user, "client_nonce": login.nonce, "nonce": nonce,
                       "row": row, "cred": cred,
                       "auth": auth_message(login.user, login.nonce, nonce, salt, n, r, p)}
        self.state = State.CHALLENGED
        self.send(m.Challenge(nonce=nonce, salt=salt, n=n, r=r, p=p))

    def _final(self, login: m.Login, now: float) -> None:
        pending, self._login = self._login, None
        if (self.state is not State.CHALLENGED or pending is None
                or pending["user"] != login.user or pending["nonce"] != login.nonce):
            self.state = State.START
            self._refuse(AuthCode.STALE_NONCE, "no such challenge: start the login again")
            return
        self.state = State.START
        cred, row = pending["cred"], pending["row"]
        if cred is None or not scram.verify_proof(cred.stored_key, pending["auth"], login.proof):
            self.manager.throttle.failed(login.user, self.peer[0], now)
            self.log.info("login refused: {user} from {host}", user=login.user,
                          host=self.peer[0])
            self._refuse(AuthCode.BAD_CREDENTIALS, "wrong user name or password")
            return
        if not row.get("enabled"):
            self._refuse(AuthCode.ACCOUNT_DISABLED, "account disabled")
            return
        self.manager.throttle.succeeded(login.user, self.peer[0], now)
        self._opening(row, scram.server_signature(cred.server_key, pending["auth"]))

    def _token_login(self, token: str, now: float) -> None:
        try:
            claims = self.manager.tokens.verify(token, now)
        except TokenError as e:
            self.manager.throttle.failed(None, self.peer[0], now)
            self._refuse(e.code, e.text)
            return
        self.state = State.LOOKUP
        d = self.manager.store.run("get_user", claims.user)
        d.addCallback(self._token_user)
        d.addErrback(self._login_failed, "token user lookup")

    def _token_user(self, row: dict | None) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.START
        if row is None:
            self._refuse(AuthCode.TOKEN_INVALID, "no such user")
        elif not row.get("enabled"):
            self._refuse(AuthCode.ACCOUNT_DISABLED, "account disabled")
        else:
            self._opening(row, None)

    def _opening(self, row: dict, signature: bytes | None) -> None:
        self.state = State.OPENING
        self.username, self.user, self.tenant = row["username"], row, row.get("tenant")
        d = maybeDeferred(self.manager.frontend.session_opened, self)
        d.addCallback(self._welcome, signature)
        d.addErrback(self._login_failed, "session_opened")

    def _welcome(self, extra: dict | None, signature: bytes | None) -> None:
        if self.state is State.CLOSED:          # lost while the front end was busy
            self._report_closed("connection lost")
            return
        now = self.manager.clock.seconds()
        self.token, expires = self.manager.tokens.issue(self.username, now)
        fields: dict[str, Any] = {}
        number = self.user.get("number")
        if number and m.E164_RE.match(number):
            fields["number"] = number
        for key, value in (extra or {}).items():
            if key in WELCOME_EXTRAS and value is not None:
                fields[key] = clean_branding(value) if key == "branding" else value
        self.state = State.OPEN
        validated = getattr(self.writer, "login_succeeded", None)   # UDP: address validated
        if validated is not None:
            validated()
        self.log.info("session open: {user} over {framing} from {host}:{port}",
                      user=self.username, framing=self.framing, host=self.peer[0],
                      port=self.peer[1])
        self._arm(self.manager.idle_timeout)
        self.send(m.Welcome(user=self.username, token=self.token, expires=expires,
                            address=self.peer[0], port=self.peer[1],
                            ping=self.manager.ping_interval, signature=signature, **fields))

    def _refuse(self, code: int, text: str, retry: int | None = None) -> None:
        self.send(m.Unauthorized(code=code, text=clean_text(text), retry=retry))
        if code != AuthCode.THROTTLED:
            self.login_failures += 1
            if self.login_failures >= MAX_LOGIN_FAILURES:
                self.close("too many failed logins")

    def _login_failed(self, failure, what: str) -> None:
        self.log.failure("login of {conn}: {what} failed", failure, conn=repr(self), what=what)
        if self.state is State.OPENING:
            self.username = self.user = self.tenant = None
        if self.state is not State.CLOSED:
            self.state = State.START
            self.send(m.Error(code=ErrorCode.INTERNAL, text="server error", re="login"))

    # -- timers and the end -----------------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.manager.clock.callLater(delay, self._check_idle)

    def _check_idle(self) -> None:
        self._timer = None
        now = self.manager.clock.seconds()
        if self.state is State.OPEN:
            limit, code, text = self.manager.idle_timeout, ErrorCode.IDLE_TIMEOUT, "idle"
        else:
            limit, code, text = self.manager.login_timeout, ErrorCode.LOGIN_TIMEOUT, "no login"
        left = self._last + limit - now
        if left > 0 and self.state is State.OPEN:
            self._timer = self.manager.clock.callLater(left, self._check_idle)
            return
        if self.state is State.OPENING:
            self._timer = self.manager.clock.callLater(limit, self._check_idle)
            return
        self.send(m.Error(code=code, text=f"session expired: {text}"))
        self.close("idle timeout" if code == ErrorCode.IDLE_TIMEOUT else "login timeout")

    def _finish(self, reason: str) -> bool:
        """Move to CLOSED; True if this call did it."""
        if self.state is State.CLOSED:
            return False
        was_open = self.state is State.OPEN
        self.state = State.CLOSED
        self._login = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.manager.connections.discard(self)
        if was_open:
            self._report_closed(reason)
        return True

    def _report_closed(self, reason: str) -> None:
        self.log.info("session closed: {user} over {framing} ({reason})", user=self.username,
                      framing=self.framing, reason=reason)
        d = maybeDeferred(self.manager.frontend.session_closed, self, reason)
        d.addErrback(lambda f: self.log.failure("session_closed for {conn}", f,
                                                conn=repr(self)))


class MinimalFrontEnd:
    """The front end used until the call path exists: branding in ``welcome``, and every
    ``call`` answered with ``disconnected`` (cause ``unreachable``: no call path yet)."""

    log = Logger()

    def __init__(self, store):
        self.store = store

    def session_opened(self, conn: ClientConnection):
        """Fires with ``{"branding": ...}`` from the user's tenant (empty without one)."""
        d = self.store.run("get_tenant", conn.tenant) if conn.tenant else None
        if d is None:
            return {}
        d.addCallback(lambda t: {"branding": t["branding"]} if t else {})
        return d

    def client_message(self, conn: ClientConnection, message: m.Message) -> None:
        if isinstance(message, m.Call):
            conn.send(m.Disconnected(call=message.call, cause="unreachable",
                                     text="no call path yet"))
        else:
            conn.send(m.Error(code=ErrorCode.UNKNOWN_CALL, text="no such call",
                              call=message.call, re=message.command))

    def client_media(self, conn: ClientConnection, frame) -> None:
        """Dropped: no call can be up."""

    def session_closed(self, conn: ClientConnection, reason: str) -> None:
        """Nothing to release."""
