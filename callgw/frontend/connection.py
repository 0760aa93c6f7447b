"""One client session, whatever its framing: the Twisted side of the core's ``ServerSession``.

Owned by the front-end listeners. A framing adapter (``udp.py``, ``stream.py``, ``web/``) turns
its bytes into payloads and gives them to a ``ClientConnection``, which drives
``protocols.client.session.ServerSession`` (login, ping, logout, call states, protocol errors,
login and idle expiry: docs/protocol.md sections 5 to 9 and 13) and does only what the core
asks of callgw: the store lookup of a user's credential (``LookupCredentials``, through
``callgw.frontend.users.RecentUsers``: recent users are served from memory while the database
is unavailable, others refused at once with the cause), accepting or refusing a proven user (``Authenticated``), its timer on the
injected clock (``get_timer``/``handle_timer``), writing ``Send`` actions to the framing and
closing on ``Close``. Every refused login (``LoginRefused``) is logged with the user name and
source and counted in the metrics; ``SessionManager.recheck_accounts`` (on every configuration
change) ends the sessions of disabled users and tenants. Call commands and media frames go to the *front end* (the call path)
through four calls:

- ``frontend.session_opened(conn)`` after a successful login; returns a dict (or a Deferred
  firing with one) of extra ``welcome`` fields (``branding``, ``name``, ``number``);
- ``frontend.client_message(conn, message)`` for call, answer, reject, hangup, dtmf, hold, resume
  (only those the core's call table let through);
- ``frontend.client_media(conn, frame)`` for media frames (``protocols.client.framing.MediaFrame``)
  on an authenticated session; the call path owns media keys and checks them;
- ``frontend.session_closed(conn, reason)`` on logout, idle expiry, a lost connection, shutdown.

A user's requests about their own data (address book, call history: ``UserRequest``) are
answered from the store by ``callgw.frontend.requests.UserRequests``; ``refresh`` is the core's.

What the call path sends with ``conn.send(message)`` (trying, ringing, connected, disconnected,
unauthorized for a call, status, incoming, redirect, error) becomes the session's call methods,
so the core's call table follows every call; ``connected`` keeps the media key the call path
chose. The login glue here (``auth_message``, ``make_token_signer``) is the server's half; the
client library (``callgw.client``) uses the same ``auth_message``.
Tests: tests/frontend/test_connection.py (a recording writer and a Clock) and the framing tests
in tests/frontend/, tests/web/; the core's in tests/client_proto/.
"""
from __future__ import annotations

import enum
import hashlib
import ipaddress
import os
import re
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from callgw import passwords
from callgw.frontend.requests import UserRequests
from callgw.frontend.users import RecentUsers
from callgw.store.errors import StoreUnavailable
from protocols.client import events as ev
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client import scram
from protocols.client.errors import (AuthCode, ErrorCode, LocalProtocolError, ProtocolError,
                                     RemoteProtocolError)
from protocols.client.session import ServerConfig, ServerSession
from protocols.client.session import State as CoreState
from protocols.client.throttle import LoginThrottle
from protocols.client.tokens import TokenSigner

_MEDIA_BYTE = bytes([fr.MEDIA_V1])
MAX_ERRORS = 10                 # protocol errors before a session is ended
MAX_LOGIN_FAILURES = 3          # failed logins before a session is ended
MAX_CALLS = 64                  # live calls of one session (the director limits users' calls)
LOGIN_TIMEOUT = 30.0            # seconds from connect to a welcome
WELCOME_EXTRAS = ("branding", "name", "number")
_BRAND_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

# The protocol core's definition (docs/protocol.md, "Login"): what both sides sign.
auth_message = scram.auth_message


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
    signing, login throttling and the session policy from ``[client]``. ``frontend`` may be
    replaced before the first connection (tests put a fake one there)."""

    log = Logger()

    def __init__(self, store, frontend, config, clock, token_secret: bytes | None = None,
                 metrics=None):
        self.store = store
        self.metrics = metrics          # CallMetrics (callgw/callserver/metrics.py) or None
        self.frontend = frontend
        self.clock = clock
        client = config["client"]
        self.idle_timeout = float(client["idle_timeout"])
        self.max_message = int(client["max_message"])
        self.login_timeout = min(LOGIN_TIMEOUT, self.idle_timeout)
        self.tokens = make_token_signer(config["security"], token_secret)
        self.throttle = LoginThrottle()
        self.users = RecentUsers(store, clock)
        self.connections: set[ClientConnection] = set()
        self.requests = UserRequests(store)
        self._decoy = os.urandom(32)

    @property
    def ping_interval(self) -> int:
        """Seconds between the pings a client should send (a third of the idle timeout)."""
        return max(1, min(3600, int(self.idle_timeout // 3)))

    def session_config(self) -> ServerConfig:
        """The core's policy for a new session (read at each open: tests change limits)."""
        return ServerConfig(fake_salt_key=self._decoy, idle_timeout=self.idle_timeout,
                            ping_interval=self.ping_interval, login_timeout=self.login_timeout,
                            max_login_attempts=MAX_LOGIN_FAILURES, max_calls=MAX_CALLS,
                            max_errors=MAX_ERRORS, strict_before_login=False)

    def open(self, framing: str, peer: tuple[str, int], writer) -> "ClientConnection":
        """A new connection for ``writer`` (``write_control(message)``, ``write_media(bytes)``,
        ``lose()``); its login timer runs from now."""
        conn = ClientConnection(self, framing, peer, writer)
        self.connections.add(conn)
        conn.start()
        return conn

    def close_all(self, reason: str = "shutdown") -> None:
        """Close every connection (service stop); each reports ``session_closed``."""
        for conn in list(self.connections):
            conn.close(reason)

    def recheck_accounts(self) -> Deferred | None:
        """The configuration changed (``store.watch``): end the sessions of users who were
        disabled or removed, or whose tenant was disabled. Fires when done (None: no session
        to check)."""
        names = sorted({c.username for c in self.connections if c.username is not None})
        if not names:
            return None
        d = self.store.run("disabled_accounts", names)
        d.addCallback(self._revoke)
        d.addErrback(lambda f: self.log.failure("checking {n} logged-in accounts", f,
                                                n=len(names)))
        return d

    def _revoke(self, disabled: dict[str, str]) -> None:
        for conn in list(self.connections):
            reason = disabled.get(conn.username) if conn.username is not None else None
            if reason is not None:
                conn.revoke(reason)


class State(enum.Enum):
    """The session's state as the listeners and the call path see it (the core's
    ``protocols.client.session.State`` under the names callgw has always used)."""
    START = "start"               # connected, no login yet (or a failed one)
    LOOKUP = "lookup"             # waiting for the store (the user's credential)
    CHALLENGED = "challenged"     # challenge sent, waiting for the proof
    OPENING = "opening"           # proof or token good: store and front end being asked
    OPEN = "open"                 # logged in
    CLOSED = "closed"


_STATES = {CoreState.CONNECTED: State.START, CoreState.LOOKUP: State.LOOKUP,
           CoreState.CHALLENGED: State.CHALLENGED, CoreState.VERIFIED: State.OPENING,
           CoreState.AUTHENTICATED: State.OPEN, CoreState.CLOSED: State.CLOSED}

# A refused login's reason, as the log and the metrics name it.
_AUTH_REASONS = {int(c): c.name.lower().replace("_", "-") for c in AuthCode}

# Why the core closed a session, as ``session_closed`` reports it.
_CLOSE_REASONS = {ErrorCode.IDLE_TIMEOUT: "idle timeout", ErrorCode.LOGIN_TIMEOUT: "login timeout",
                  ErrorCode.TOO_MANY_ERRORS: "too many errors",
                  ErrorCode.UNREACHABLE: "unreachable"}


class ClientConnection:
    """One client session. The front-end hook's view of it: ``username``, ``user`` (store row),
    ``tenant`` (tenant name), ``peer`` (host, port), ``framing``, ``state``, ``send``,
    ``send_media``, ``close``. ``session`` is the core's ``ServerSession`` it drives."""

    log = Logger()

    def __init__(self, manager: SessionManager, framing: str, peer: tuple[str, int], writer):
        self.manager = manager
        self.framing = framing
        self.peer = (str(peer[0]), int(peer[1]))
        self.writer = writer
        self.username: str | None = None
        self.user: dict | None = None
        self.tenant: str | None = None
        self.session = ServerSession(peer=(_ip_or_unspecified(self.peer[0]), self.peer[1]),
                                     signer=manager.tokens, throttle=manager.throttle,
                                     config=manager.session_config(),
                                     now=manager.clock.seconds(),
                                     proven_source=framing != "udp")
        self._row: dict | None = None           # the store row of the user logging in
        self._inbound: m.Message | None = None  # the client message being handled
        self._welcomed = False                  # session_closed is owed at the end
        self._reason: str | None = None         # why callgw closed it (close, connection_lost)
        self._lost = False                      # the transport is gone: do not lose() it
        self._draining = False
        self._timer = None

    def __repr__(self) -> str:
        return (f"<ClientConnection {self.framing} {self.peer[0]}:{self.peer[1]} "
                f"{self.username or '-'} {self.state.value}>")

    @property
    def state(self) -> State:
        return _STATES[self.session.state]

    @property
    def closed(self) -> bool:
        """True once the session ended (its calls' client legs report it as vanished)."""
        return self.session.state is CoreState.CLOSED

    def _now(self) -> float:
        return self.manager.clock.seconds()

    # -- the front end's side -----------------------------------------------------------------
    def send(self, message: m.Message) -> None:
        """Send a server-to-client message (dropped once closed): call messages go through the
        core's call table (a message for a call the client already ended is dropped). Raises
        LocalProtocolError for a message that does not fit the call's state (a caller bug)."""
        s = self.session
        if s.state is CoreState.CLOSED:
            return
        kind = type(message)
        if kind is m.Trying:
            s.trying(message.call)
        elif kind is m.Ringing:
            s.ringing(message.call)
        elif kind is m.Connected:
            s.connected(message.call, address=message.address, port=message.port,
                        codec=message.codec, key=message.key)
        elif kind is m.Disconnected:
            s.disconnected(message.call, message.cause, q850=message.q850, text=message.text)
        elif kind is m.Unauthorized and message.call is not None:
            s.refuse_call(message.call, message.code, message.text)
        elif kind is m.Status:
            s.status(message.info, call=message.call, text=message.text)
        elif kind is m.Incoming:
            s.incoming(caller=message.caller, name=message.name, number=message.number,
                       codecs=message.codecs, call=message.call)
        elif kind is m.Redirect:
            self._reason = "redirected"
            s.redirect(message.address, message.port, self._now(), text=message.text)
        elif kind is m.Error:
            s.send_error(message.code, message.text or "error", call=message.call,
                         re=message.re)
        else:
            raise LocalProtocolError(f"{message.command} is not callgw's to send")
        self._drive()

    def send_media(self, frame: fr.MediaFrame) -> bool:
        """Send a media frame (only on an open session; the call path chose its key). False
        when it did not go: the session is not open, or the framing did not take it (a send
        that failed, a stream backed up: real-time audio is dropped, not queued)."""
        if self.session.state is not CoreState.AUTHENTICATED:
            return False
        return self.writer.write_media(fr.encode_media(frame)) is not False

    def close(self, reason: str = "closed") -> None:
        """End the session and its transport; reports ``session_closed`` if it was open."""
        self._end(reason)

    def revoke(self, reason: str) -> None:
        """The account may no longer be logged in (``reason``: user disabled, user removed,
        tenant disabled): the client is told (``disconnected`` for each call, then
        ``unauthorized`` 405), the session ends and the front end releases its calls."""
        if self.session.state is CoreState.CLOSED:
            return
        self.log.info("session revoked: {user} over {framing} from {host}:{port} ({reason})",
                      user=self.username, framing=self.framing, host=self.peer[0],
                      port=self.peer[1], reason=reason)
        self._reason = reason
        self.session.revoke(AuthCode.ACCOUNT_DISABLED, reason, self._now())
        self._drive()

    # -- the framing's side -------------------------------------------------------------------
    def start(self) -> None:
        self._arm()

    def receive(self, payload: bytes) -> None:
        """One payload from the framing (control JSON or a media frame). Never raises."""
        try:
            if payload[:1] == _MEDIA_BYTE or fr.kind_of(payload) == fr.MEDIA:
                self.receive_media(fr.decode_media(payload))
                return
            if len(payload) > self.manager.max_message:
                raise RemoteProtocolError(ErrorCode.TOO_LARGE,
                                          f"message over {self.manager.max_message} bytes")
            message = m.decode(payload, sender=m.CLIENT)
        except ProtocolError as e:
            self.protocol_error(e)
            return
        self.receive_message(message)

    def receive_message(self, message: m.Message) -> None:
        """One decoded client message (UDP: from the reliable channel). Never raises."""
        self._feed(self.session.receive_message, message)

    def receive_media(self, frame: fr.MediaFrame) -> None:
        """A media frame: to the front end when logged in, else dropped."""
        if self.session.state is not CoreState.AUTHENTICATED:
            return
        try:
            self.manager.frontend.client_media(self, frame)
        except Exception:
            self.log.failure("client_media from {conn}", conn=repr(self))

    def protocol_error(self, error: ProtocolError) -> None:
        """Input that broke a rule: the core answers ``error`` and closes when fatal or after
        too many."""
        self._feed(self.session.receive_error, error)

    def connection_lost(self, reason: str = "connection lost") -> None:
        """The transport is gone (called by the framing)."""
        self._lost = True
        self._end(reason)

    # -- driving the core ---------------------------------------------------------------------
    def _feed(self, method, item) -> None:
        if self.session.state is CoreState.CLOSED:
            return
        self._inbound = item if isinstance(item, m.Message) else None
        try:
            method(item, self._now())
        except Exception:
            self.log.failure("handling input from {conn}", conn=repr(self))
            self.session.send_error(ErrorCode.INTERNAL, "server error",
                                    re=getattr(item, "command", None))
        finally:
            self._drive()
            self._inbound = None

    def _end(self, reason: str) -> None:
        if self.session.state is CoreState.CLOSED:
            return
        self._reason = reason
        self.session.close(self._now(), 0, reason)
        self._drive()

    def _drive(self) -> None:
        """Carry out what the core asked for, in order; re-entrant calls (the front end
        answering from inside a hook) leave their actions to the loop already running."""
        if self._draining:
            return
        self._draining = True
        try:
            while True:
                actions = self.session.next_actions()
                if not actions:
                    break
                for action in actions:
                    self._act(action)
        finally:
            self._draining = False
        self._arm()

    def _act(self, action) -> None:
        kind = type(action)
        if kind is ev.Send:
            self.writer.write_control(action.message)
        elif kind is ev.SendMedia:
            self.writer.write_media(action.payload)
        elif kind is ev.Close:
            self._closed(action)
        elif kind is ev.LookupCredentials:
            self._lookup(action.user)
        elif kind is ev.Authenticated:
            self._authenticated(action)
        elif kind is ev.LoggedIn:
            self._logged_in()
        elif kind is ev.LoginRefused:
            self._login_refused(action)
        elif kind is ev.SealDatagrams:
            if self.framing == "udp":           # the other framings' transports are sealed
                self.writer.seal_datagrams(action)
        elif kind is ev.MediaReceived:
            self.receive_media(action.frame)
        elif kind is ev.UserRequest:
            d = self.manager.requests.answer(action.user, action.message)
            d.addCallback(self._answer_request)
            d.addErrback(lambda f: self.log.failure("answering {conn}", f, conn=repr(self)))
        else:
            self._call_event(action)

    def _call_event(self, event) -> None:
        """A client call command the core let through: the front end gets the message itself.
        Calls released because the session ended are the front end's ``session_closed``."""
        message = self._inbound
        if message is None or getattr(message, "call", None) != event.call or self.closed:
            return                      # closed: the front end's answer ended the session
        d = maybeDeferred(self.manager.frontend.client_message, self, message)
        d.addErrback(self._frontend_failed, message)

    def _frontend_failed(self, failure, message) -> None:
        self.log.failure("front end failed on {command} from {conn}", failure,
                         command=message.command, conn=repr(self))
        self.session.send_error(ErrorCode.INTERNAL, "server error", re=message.command,
                                call=getattr(message, "call", None))
        self._drive()

    def _answer_request(self, answer: m.Message) -> None:
        try:
            self.session.answer_request(answer)
        except LocalProtocolError:
            self.log.failure("answer to {conn}'s request", conn=repr(self))
            self.session.answer_request(m.Error(code=ErrorCode.INTERNAL, text="server error",
                                                req=answer.req))
        self._drive()

    # -- login: what the core asks of callgw --------------------------------------------------
    def _lookup(self, user: str) -> None:
        d = self.manager.users.get(user)
        d.addCallback(self._credentials, user)
        d.addErrback(self._login_failed, "user lookup")

    def _credentials(self, row: dict | None, user: str) -> None:
        if self.session.state is not CoreState.LOOKUP:
            return                                  # closed while the store was busy
        cred = None
        if row is not None:
            try:
                cred = passwords.parse(row["password"])
            except ValueError:
                self.log.warn("user {user}: unusable stored credential", user=user)
        self._row = row if cred is not None else None
        self.session.credentials_found(user, cred, self._now())
        self._drive()

    def _authenticated(self, event: ev.Authenticated) -> None:
        if event.via == "password":
            self._check_user(self._row)
            return
        d = self.manager.users.get(event.user)
        d.addCallback(self._check_user)
        d.addErrback(self._login_failed, "token user lookup")

    def _check_user(self, row: dict | None) -> None:
        if self.session.state is not CoreState.VERIFIED:
            return
        self._row = None
        if row is None:
            self.session.refuse(AuthCode.TOKEN_INVALID, "no such user", self._now())
        elif not row.get("enabled"):
            self.session.refuse(AuthCode.ACCOUNT_DISABLED, "account disabled", self._now())
        elif not row.get("tenant_enabled", 1):
            self.session.refuse(AuthCode.ACCOUNT_DISABLED, "tenant disabled", self._now())
        else:
            self.username, self.user, self.tenant = row["username"], row, row.get("tenant")
            d = maybeDeferred(self.manager.frontend.session_opened, self)
            d.addCallback(self._accept)
            d.addErrback(self._login_failed, "session_opened")
            return
        self._drive()

    def _accept(self, extra: dict | None) -> None:
        if self.session.state is CoreState.CLOSED:      # lost (or redirected) meanwhile
            self._report_closed("redirected" if self._reason == "redirected"
                                else "connection lost")
            return
        fields: dict[str, Any] = {}
        number = self.user.get("number")
        if number and m.E164_RE.match(number):
            fields["number"] = number
        for key, value in (extra or {}).items():
            if key in WELCOME_EXTRAS and value is not None:
                fields[key] = clean_branding(value) if key == "branding" else value
        self.session.accept(self._now(), **fields)
        self._drive()

    def _logged_in(self) -> None:
        self._welcomed = True
        validated = getattr(self.writer, "login_succeeded", None)   # UDP: address validated
        if validated is not None:
            validated()
        self.log.info("session open: {user} over {framing} from {host}:{port}",
                      user=self.username, framing=self.framing, host=self.peer[0],
                      port=self.peer[1])

    def _login_refused(self, event: ev.LoginRefused) -> None:
        """Every refused login: one log line with the user name and the source, and the
        ``callgw_login_failures_total`` metric by reason."""
        reason = _AUTH_REASONS.get(event.code, str(event.code))
        self.log.info("login refused: user {user} from {host}:{port} over {framing}: {reason}",
                      user=event.user or "(token)", host=self.peer[0], port=self.peer[1],
                      framing=self.framing, reason=reason, counted=event.counted)
        if self.manager.metrics is not None:
            self.manager.metrics.login_failed(reason)

    def _login_failed(self, failure, what: str) -> None:
        """The store or the front end failed during a login: the client is told and the
        session ends (it may log in again on a new one). A database fault is one line and the
        client is told the cause."""
        text = "server error"
        if isinstance(failure.value, StoreUnavailable):
            text = clean_text(f"{failure.value.text}: try again shortly")
            self.log.warn("login of {conn} refused: {what}: {cause}", conn=repr(self),
                          what=what, cause=str(failure.value))
        else:
            self.log.failure("login of {conn}: {what} failed", failure, conn=repr(self),
                             what=what)
        if self.session.state is not CoreState.CLOSED:
            self.username = self.user = self.tenant = None
            self.session.close(self._now(), ErrorCode.INTERNAL, text)
            self._drive()

    # -- timers and the end -------------------------------------------------------------------
    def _arm(self) -> None:
        """Keep one clock call at the core's next deadline (or earlier: it re-asks then)."""
        due = self.session.get_timer()
        timer = self._timer
        if timer is not None and timer.active():
            if due is not None and timer.getTime() <= due:
                return
            timer.cancel()
        self._timer = None
        if due is not None:
            self._timer = self.manager.clock.callLater(max(0.0, due - self._now()),
                                                       self._expired)

    def _expired(self) -> None:
        self._timer = None
        now = self._now()
        due = self.session.get_timer()
        if due is not None and due <= now:
            self.session.handle_timer(now)
        self._drive()

    def _closed(self, close: ev.Close) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.manager.connections.discard(self)
        if self._reason is None:        # the core ended it: logout, expiry, errors
            self._reason = _CLOSE_REASONS.get(close.code, close.text if close.code == 0
                                              else "protocol error")
        if self._welcomed:
            self._report_closed(self._reason)
        if not self._lost:
            self.writer.lose()

    def _report_closed(self, reason: str) -> None:
        self.log.info("session closed: {user} over {framing} ({reason})", user=self.username,
                      framing=self.framing, reason=reason)
        d = maybeDeferred(self.manager.frontend.session_closed, self, reason)
        d.addErrback(lambda f: self.log.failure("session_closed for {conn}", f,
                                                conn=repr(self)))


def _ip_or_unspecified(host: str) -> str:
    """The peer's host for the core (an IP address; anything else, e.g. a test's name, as
    0.0.0.0: ``welcome`` can only carry an address)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0"
    return host


