"""The server side of the client protocol: one sans-I/O session machine per connected client.

Owned by the client protocol; the spec is docs/protocol.md ("Session states", "Login",
"Calls", "Driving the core"). The adapter feeds what arrives (``receive_payload`` for bytes,
``receive_message`` / ``receive_error`` when ``reliable.py`` decoded them), calls the methods for
what callgw decided (``credentials_found``, ``accept``, ``trying``, ``ringing``, ``connected``,
``disconnected``, ``incoming``...), and after every call drains ``next_actions()`` (see
``events.py``). Time comes in as ``now``; the session asks for its timer with ``get_timer()``
and expects ``handle_timer(now)`` then. It never computes scrypt: the server side of SCRAM is
two HMACs and a hash; the stored keys come back from ``LookupCredentials`` asynchronously.
The user's requests about their own data (section 18: address book, history) become
``UserRequest`` actions that callgw answers with ``answer_request``; ``refresh`` is answered
here with a fresh token.

Session states (after RFC 5802's exchange): CONNECTED -> LOOKUP -> CHALLENGED -> VERIFIED ->
AUTHENTICATED -> CLOSED (a token login goes CONNECTED -> VERIFIED). Call states are named after
Q.931's network-side states (``calls.py``).

Tests: tests/client_proto/test_session.py.
"""
from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client import scram, sealing
from protocols.client.calls import CallTable
from protocols.client.errors import (AuthCode, ErrorCode, LocalProtocolError, ProtocolError,
                                     RemoteProtocolError)
from protocols.client.framing import CONTROL, decode_media, kind_of
from protocols.client.throttle import LoginThrottle
from protocols.client.tokens import TokenError, TokenSigner


class State(Enum):
    CONNECTED = "connected"          # waiting for login
    LOOKUP = "lookup"                # waiting for callgw's credential lookup
    CHALLENGED = "challenged"        # challenge sent, waiting for the proof
    VERIFIED = "verified"            # proof or token good, waiting for callgw to accept
    AUTHENTICATED = "authenticated"  # welcome sent: calls allowed
    CLOSED = "closed"


@dataclass(frozen=True)
class ServerConfig:
    """Session policy. ``fake_salt_key`` (>= 16 random bytes, constant per deployment) makes the
    challenge for unknown users look like a real one."""
    fake_salt_key: bytes
    idle_timeout: float = 90.0       # no message at all for this long ends the session
    ping_interval: int = 30          # told to the client in welcome
    login_timeout: float = 30.0      # a session must authenticate within this
    challenge_lifetime: float = 30.0
    max_login_attempts: int = 3
    max_calls: int = 4
    max_errors: int = 10
    # False: before authentication, a command the table does not allow (a call command, a
    # login while one is looked up) and an oversized message are answered with ``error`` and
    # counted like any protocol error instead of closing the session, and a new first login
    # while challenged starts the login over (callgw's listeners have always done so).
    strict_before_login: bool = True


MAX_CLIENT_NONCE = 96              # + 24 characters of server nonce <= the 128 of NONCE
_NO_USER_KEY = bytes(32)            # unknown users: the same work, a proof that never verifies
_LOGIN_STATES = (State.CONNECTED, State.LOOKUP, State.CHALLENGED, State.VERIFIED)
_CALL_COMMANDS = ("call", "answer", "reject", "hangup", "dtmf", "hold", "resume", "attach")
_USER_REQUESTS = ("book-list", "book-put", "book-delete", "history")
MAX_PENDING_REQUESTS = 8            # user requests waiting for callgw's answer, per session

# (state, input) -> (handler, allowed next states). docs/protocol.md's diagram is made from this.
TRANSITIONS: dict[tuple[State, str], tuple[str, tuple[State, ...]]] = {
    (State.CONNECTED, "login"): ("_on_login", (State.LOOKUP, State.VERIFIED, State.CONNECTED,
                                               State.CLOSED)),
    (State.LOOKUP, "credentials_found"): ("_on_credentials", (State.CHALLENGED,)),
    (State.CHALLENGED, "login"): ("_on_proof", (State.VERIFIED, State.CONNECTED, State.CLOSED)),
    (State.VERIFIED, "accept"): ("_on_accept", (State.AUTHENTICATED,)),
    (State.VERIFIED, "refuse"): ("_on_refuse", (State.CONNECTED, State.CLOSED)),
    **{(s, "ping"): ("_on_ping", (s,)) for s in State if s is not State.CLOSED},
    **{(s, "logout"): ("_on_logout", (State.CLOSED,)) for s in State if s is not State.CLOSED},
    **{(State.AUTHENTICATED, c): ("_on_call_command", (State.AUTHENTICATED,))
       for c in _CALL_COMMANDS},
    **{(State.AUTHENTICATED, c): ("_on_request", (State.AUTHENTICATED,))
       for c in _USER_REQUESTS},
    (State.AUTHENTICATED, "refresh"): ("_on_refresh", (State.AUTHENTICATED,)),
    **{(s, "timeout"): ("_on_timeout", (State.CLOSED,)) for s in State if s is not State.CLOSED},
    **{(s, "revoke"): ("_on_revoke", (State.CLOSED,))
       for s in (State.VERIFIED, State.AUTHENTICATED)},
}


class ServerSession:
    """One client's session on the server. See the module docstring for how to drive it."""

    def __init__(self, *, peer: tuple[str, int], signer: TokenSigner, throttle: LoginThrottle,
                 config: ServerConfig, now: float,
                 random: Callable[[int], bytes] = os.urandom,
                 proven_source: bool = True) -> None:
        """``proven_source``: the transport proved the peer's address (a TCP handshake); False
        for UDP, where the address counts as proven once a proof answers our challenge."""
        self.peer = (_canonical_host(peer[0]), peer[1])
        self._proven = proven_source
        self.state = State.CONNECTED
        self.user: str | None = None
        self.calls = CallTable(random)
        self._signer, self._throttle, self._config = signer, throttle, config
        self._random = random
        self._actions: list[Any] = []
        self._started = now
        self._last_heard = now
        self._login_attempts = 0
        self._errors = 0
        self._pending: dict[str, Any] = {}
        self._via = ""
        self._signature: bytes | None = None
        self._keys: sealing.DatagramKeys | None = None
        self._requests: set[int] = set()        # user requests waiting for callgw's answer
        self.dropped_media = 0

    # ------------------------------------------------------------ output
    def next_actions(self) -> list[Any]:
        """Drain the actions (``events.py``) produced so far, in order."""
        out, self._actions = self._actions, []
        return out

    def _send(self, message: m.Message) -> None:
        m.to_dict(message)              # LocalProtocolError now, not in the adapter's encode
        self._actions.append(ev.Send(message))

    def _go(self, key: tuple[State, str], state: State) -> None:
        if state not in TRANSITIONS[key][1]:
            raise LocalProtocolError(f"{key} may not lead to {state}")
        self.state = state

    # ------------------------------------------------------------ input
    def receive_payload(self, payload: bytes, now: float) -> None:
        """Bytes of one control message or media frame (TCP frame, WebSocket message, POST)."""
        if self.state is State.CLOSED:
            return
        try:
            if kind_of(payload) == CONTROL:
                message = m.decode(payload, sender=m.CLIENT)
            else:
                self._on_media(payload)
                return
        except ProtocolError as e:
            self.receive_error(e, now)
            return
        self.receive_message(message, now)

    def receive_error(self, error: ProtocolError, now: float) -> None:
        """Input that could not be decoded: answer ``error``; close when fatal or too many."""
        if self.state is State.CLOSED:
            return
        self._last_heard = now
        code = error.code if 100 <= error.code <= 999 else ErrorCode.INTERNAL
        self._count_error(m.Error(code=code, text=_safe_text(error.text),
                                  call=_call_id(error.call), re=_command(error.command)),
                          error.fatal)

    def _count_error(self, message: m.Error, fatal: bool = False) -> None:
        """Send ``message`` (the client's protocol error); close when fatal or too many."""
        code = message.code
        self._send(message)
        self._errors += 1
        if fatal or (self._config.strict_before_login and self.state in _LOGIN_STATES
                     and code == ErrorCode.TOO_LARGE):
            self._close(code, message.text or "protocol error", cause="network-error")
        elif self._errors >= self._config.max_errors:
            self._send(m.Error(code=ErrorCode.TOO_MANY_ERRORS, text="too many protocol errors"))
            self._close(ErrorCode.TOO_MANY_ERRORS, "too many protocol errors",
                        cause="network-error")

    def receive(self, item: m.Message | bytes | ProtocolError, now: float) -> None:
        """Whatever ``ReliableEndpoint.receive_datagram`` delivered."""
        if isinstance(item, m.Message):
            self.receive_message(item, now)
        elif isinstance(item, ProtocolError):
            self.receive_error(item, now)
        else:
            self.receive_payload(item, now)

    def receive_message(self, message: m.Message, now: float) -> None:
        """One decoded control message from the client."""
        if self.state is State.CLOSED:
            return
        if message.sender != m.CLIENT:
            self.receive_error(RemoteProtocolError(ErrorCode.UNKNOWN_COMMAND,
                                                   f"{message.command} is a server message"),
                               now)
            return
        self._last_heard = now
        self._dispatch(message.command, message, now)

    def _dispatch(self, name: str, arg: Any, now: float) -> None:
        entry = TRANSITIONS.get((self.state, name))
        if entry is None:
            self._undefined(name, arg, now)
            return
        getattr(self, entry[0])((self.state, name), arg, now)

    def _undefined(self, name: str, arg: Any, now: float) -> None:
        if not isinstance(arg, m.Message):
            raise LocalProtocolError(f"{name} is not allowed in state {self.state.value}")
        if self.state is State.AUTHENTICATED:
            self.receive_error(RemoteProtocolError(
                ErrorCode.OUT_OF_ORDER, f"{name} not allowed now", command=name), now)
            return
        code = ErrorCode.NOT_AUTHENTICATED if name in _CALL_COMMANDS else ErrorCode.OUT_OF_ORDER
        if not self._config.strict_before_login:
            self.receive_error(RemoteProtocolError(
                code, f"{name} not allowed in {self.state.value}", command=name,
                call=getattr(arg, "call", None)), now)
            return
        self._send(m.Error(code=code, text=f"{name} not allowed in {self.state.value}",
                           re=name, call=getattr(arg, "call", None)))
        self._close(code, f"{name} in {self.state.value}")

    # ------------------------------------------------------------ login
    def _on_login(self, key: tuple[State, str], msg: m.Login, now: float) -> None:
        user = msg.user
        wait = self._throttle.retry_after(user, self.peer[0], now)
        if wait > 0:
            self.user = user
            self._refuse_login(key, AuthCode.THROTTLED, "too many failed logins", now,
                               retry=math.ceil(wait), count=False)
            return
        if msg.proof is not None:
            self.user = user
            self._refuse_login(key, AuthCode.STALE_NONCE, "no challenge to answer", now)
            return
        if msg.token is not None:
            try:
                claims = self._signer.verify(msg.token, now)
            except TokenError as e:
                self._refuse_login(key, e.code, e.text, now)
                return
            self.user, self._via, self._signature = claims.user, "token", None
            self._keys = sealing.token_keys(msg.token, msg.nonce)
            self._go(key, State.VERIFIED)
            self._actions.append(ev.Authenticated(claims.user, "token"))
            return
        if len(msg.nonce) > MAX_CLIENT_NONCE:
            # the combined nonce must keep all of the server's part (replay protection)
            self.receive_error(RemoteProtocolError(
                ErrorCode.BAD_FIELD, f"client nonce over {MAX_CLIENT_NONCE} characters",
                command="login"), now)
            return
        self.user = user
        self._pending = {"client_nonce": msg.nonce, "user": user}
        self._go(key, State.LOOKUP)
        self._actions.append(ev.LookupCredentials(user))

    def credentials_found(self, user: str, credential: Any | None, now: float) -> None:
        """callgw's answer to ``LookupCredentials``: the stored credential, or None."""
        if self.state is State.CLOSED:
            return
        if self.state is not State.LOOKUP or user != self.user:
            raise LocalProtocolError(f"credentials for {user!r} in state {self.state.value}")
        self._dispatch("credentials_found", credential, now)

    def _on_credentials(self, key: tuple[State, str], cred: Any | None, now: float) -> None:
        p = self._pending
        if cred is None:
            salt, n, r, pp = scram.fake_salt(self._config.fake_salt_key, p["user"]), \
                scram.DEFAULT_N, scram.DEFAULT_R, scram.DEFAULT_P
            stored = server = None
        else:
            salt, n, r, pp = cred.salt, cred.n, cred.r, cred.p
            stored, server = cred.stored_key, cred.server_key
        nonce = p["client_nonce"] + m.b64e(self._random(18))
        challenge = m.Challenge(nonce=nonce, salt=salt, n=n, r=r, p=pp)
        m.to_dict(challenge)            # a credential the protocol cannot carry: callgw's bug
        p.update(nonce=nonce, salt=salt, n=n, r=r, p=pp, stored=stored, server=server,
                 expires=now + self._config.challenge_lifetime)
        self._go(key, State.CHALLENGED)
        self._send(challenge)

    def _on_proof(self, key: tuple[State, str], msg: m.Login, now: float) -> None:
        if msg.proof is None and not self._config.strict_before_login:
            self.user, self._pending = None, {}         # a new first message: start over
            self._go(key, State.CONNECTED)
            self._dispatch("login", msg, now)
            return
        p, self._pending = self._pending, {}
        if msg.nonce == p["nonce"]:
            self._proven = True          # it received our challenge at its address
        if msg.proof is None or msg.user != p["user"] or msg.nonce != p["nonce"] \
                or now > p["expires"]:
            self._refuse_login(key, AuthCode.STALE_NONCE, "proof does not answer the challenge"
                               " (expired, replayed or another nonce)", now)
            return
        auth = scram.auth_message(p["user"], p["client_nonce"], p["nonce"], p["salt"], p["n"],
                                  p["r"], p["p"])
        stored = p["stored"] if p["stored"] is not None else _NO_USER_KEY
        if not scram.verify_proof(stored, auth, msg.proof) or p["stored"] is None:
            self._refuse_login(key, AuthCode.BAD_CREDENTIALS, "wrong user name or password", now)
            return
        self._via, self._signature = "password", scram.server_signature(p["server"], auth)
        self._keys = sealing.password_keys(
            scram.recover_client_key(p["stored"], auth, msg.proof), auth)
        self._go(key, State.VERIFIED)
        self._actions.append(ev.Authenticated(p["user"], "password"))

    def _refuse_login(self, key: tuple[State, str], code: AuthCode, text: str, now: float,
                      retry: int | None = None, count: bool = True) -> None:
        # A failure counts toward throttling only from a proven address (docs/protocol.md 7):
        # over UDP a spoofed first datagram (a stale proof, a bad token) tests no password,
        # and counting it would let anybody block a victim's address.
        counted = count and (self._proven or code == AuthCode.BAD_CREDENTIALS)
        if counted:
            self._throttle.failed(self.user, self.peer[0], now)
        self._login_attempts += 1
        self._send(m.Unauthorized(code=code, text=text, retry=retry))
        self._actions.append(ev.LoginRefused(self.user, int(code), text, counted))
        self.user, self._pending = None, {}
        if self._login_attempts >= self._config.max_login_attempts:
            self._go(key, State.CLOSED)
            self._close(code, "too many login attempts")
        else:
            self._go(key, State.CONNECTED)

    def accept(self, now: float, *, name: str | None = None, number: str | None = None,
               branding: dict | None = None) -> None:
        """callgw accepts the authenticated user: send welcome with a fresh token."""
        if self.state is State.CLOSED:
            return
        self._dispatch("accept", dict(name=name, number=number, branding=branding), now)

    def _on_accept(self, key: tuple[State, str], info: dict, now: float) -> None:
        assert self.user is not None
        token, expires = self._signer.issue(self.user, now)
        welcome = m.Welcome(user=self.user, token=token, expires=expires, address=self.peer[0],
                            port=self.peer[1], ping=self._config.ping_interval,
                            signature=self._signature, **info)
        m.to_dict(welcome)              # bad branding is callgw's bug: raise before any change
        self._throttle.succeeded(self.user, self.peer[0], now)
        self._go(key, State.AUTHENTICATED)
        if self._keys is not None:       # UDP: the welcome and all after it are sealed
            self._actions.append(ev.SealDatagrams(self._keys.server, self._keys.client, True))
        self._send(welcome)
        self._actions.append(ev.LoggedIn(self.user, expires))

    def refuse(self, code: AuthCode, text: str, now: float) -> None:
        """callgw refuses the authenticated user (e.g. ACCOUNT_DISABLED)."""
        if self.state is State.CLOSED:
            return
        self._dispatch("refuse", (code, text), now)

    def _on_refuse(self, key: tuple[State, str], arg: tuple[AuthCode, str], now: float) -> None:
        self._refuse_login(key, arg[0], arg[1], now, count=False)

    def revoke(self, code: AuthCode, text: str, now: float) -> None:
        """callgw withdraws the user's authorization (the account or its tenant was disabled):
        every call gets ``disconnected`` (cause ``unauthorized``) and is released, the client
        gets ``unauthorized`` with ``code``, and the session ends. A no-op before a user
        proved who they are."""
        if self.state not in (State.VERIFIED, State.AUTHENTICATED):
            return
        self._dispatch("revoke", (code, text), now)

    def _on_revoke(self, key: tuple[State, str], arg: tuple[AuthCode, str], now: float) -> None:
        code, text = arg
        for call in sorted(self.calls.ids()):
            message = self.calls.disconnected(call, "unauthorized", None, _safe_text(text))
            if message is not None:
                self._send(message)
            self._actions.append(ev.HangupRequested(call, "unauthorized"))
        self._send(m.Unauthorized(code=code, text=_safe_text(text)))
        self._go(key, State.CLOSED)
        self._close(int(code), text, cause="unauthorized")

    # ------------------------------------------------------------ session commands
    def _on_ping(self, key: tuple[State, str], msg: m.Ping, now: float) -> None:
        self._send(m.Pong())

    def _on_logout(self, key: tuple[State, str], msg: m.Logout, now: float) -> None:
        """Every call still up ends normally: the client is sent its ``disconnected`` (cause
        normal) first, callgw gets ``HangupRequested(call, "normal")``, then the session
        closes (docs/protocol.md, ``logout``)."""
        self._go(key, State.CLOSED)
        for call in self.calls.release_all():
            self._send(m.Disconnected(call=call, cause="normal", text="logged out"))
            self._actions.append(ev.HangupRequested(call, "normal"))
        self._close(0, "logout", cause="normal")

    def _on_refresh(self, key: tuple[State, str], msg: m.Refresh, now: float) -> None:
        assert self.user is not None
        token, expires = self._signer.issue(self.user, now)
        self._send(m.Token(req=msg.req, token=token, expires=expires))

    # ------------------------------------------------------------ user requests
    def _on_request(self, key: tuple[State, str], msg: Any, now: float) -> None:
        if msg.req in self._requests or len(self._requests) >= MAX_PENDING_REQUESTS:
            dup = msg.req in self._requests
            self._count_error(m.Error(
                code=ErrorCode.BAD_FIELD if dup else ErrorCode.TOO_MANY_REQUESTS,
                text="req: a request with this id is waiting for its answer" if dup else
                f"over {MAX_PENDING_REQUESTS} requests waiting for an answer",
                re=msg.command, req=msg.req))
            return
        assert self.user is not None
        self._requests.add(msg.req)
        self._actions.append(ev.UserRequest(self.user, msg))

    def answer_request(self, message: m.Message) -> bool:
        """callgw's answer to ``UserRequest``: ``Book``, ``Done``, ``Records`` or an ``Error``
        with the ``req``. False when the session ended meanwhile; LocalProtocolError for an
        answer to no request waiting (a callgw bug)."""
        if self.state is not State.AUTHENTICATED:
            return False
        req = getattr(message, "req", None)
        if not isinstance(message, (m.Book, m.Done, m.Records, m.Error)) \
                or req not in self._requests:
            raise LocalProtocolError(f"{message.command} answers no request waiting")
        self._send(message)
        self._requests.discard(req)
        return True

    def _on_timeout(self, key: tuple[State, str], code: ErrorCode, now: float) -> None:
        self._send(m.Error(code=code, text="session expired"))
        self._go(key, State.CLOSED)
        self._close(code, "session expired", cause="timeout")

    def redirect(self, address: str, port: int, now: float, text: str | None = None) -> None:
        """Send the client to another call server; the session then ends."""
        if self.state is State.CLOSED:
            return
        self._send(m.Redirect(address=address, port=port, text=text))
        self._close(0, "redirected", cause="normal")

    def send_error(self, code: int, text: str, *, call: str | None = None,
                   re: str | None = None) -> None:
        """callgw answers a client command with ``error`` (e.g. INTERNAL when it failed on
        it); not counted as the client's protocol error."""
        if self.state is not State.CLOSED:
            self._send(m.Error(code=code, text=_safe_text(text), call=_call_id(call),
                               re=_command(re)))

    def status(self, info: str, call: str | None = None, text: str | None = None) -> None:
        """Send a status word (for the session, or for ``call``)."""
        if self.state is State.AUTHENTICATED:
            self._send(m.Status(info=info, call=call, text=text))

    def close(self, now: float, code: int = 0, text: str = "closed by the server") -> None:
        """End the session from callgw's side (shutdown, transport lost); hangs up its calls.
        A non-zero ``code`` (ErrorCode) is sent to the client as an ``error``."""
        if self.state is State.CLOSED:
            return
        if code:
            self._send(m.Error(code=code, text=_safe_text(text)))
        self._close(code, text, cause="network-error" if code == ErrorCode.UNREACHABLE
                    else "normal")

    def _close(self, code: int, text: str, cause: str = "normal") -> None:
        self.state = State.CLOSED
        for call in self.calls.release_all():
            self._actions.append(ev.HangupRequested(call, cause))
        self._actions.append(ev.Close(int(code), text))

    # ------------------------------------------------------------ calls
    def _on_call_command(self, key: tuple[State, str], msg: m.Message, now: float) -> None:
        try:
            out = self.calls.client_command(msg, self._config.max_calls)
        except RemoteProtocolError as e:
            self.receive_error(e, now)
            return
        for item in out:
            if isinstance(item, m.Message):
                self._send(item)
            else:
                self._actions.append(item)

    def _call_api(self, method: str, *args: Any, **kw: Any) -> bool:
        if self.state is not State.AUTHENTICATED:
            return False
        result = getattr(self.calls, method)(*args, **kw)
        if result is None:
            return False
        self._send(result)
        return True

    def trying(self, call: str) -> bool:
        """The call request is being placed. False when the call is gone (a race, not a bug)."""
        return self._call_api("trying", call)

    def ringing(self, call: str) -> bool:
        """The far end rings."""
        return self._call_api("ringing", call)

    def connected(self, call: str, *, address: str | None = None, port: int | None = None,
                  codec: str | None = None, key: bytes | None = None) -> bytes | None:
        """The call is answered. Direct mode: the gateway's ``address`` and ``port``; relay mode
        (no address): ``key`` is the media key (callgw's call path made it), or one is made.
        Returns the key (relay), b"" (direct) or None when the call is gone."""
        if self.state is not State.AUTHENTICATED:
            return None
        result = self.calls.connected(call, address, port, codec, key)
        if result is None:
            return None
        self._send(result)
        return result.key if result.key is not None else b""

    def disconnected(self, call: str, cause: str = "normal", *, q850: int | None = None,
                     text: str | None = None) -> bool:
        """The call ended on callgw's side."""
        return self._call_api("disconnected", call, cause, q850, text)

    def refuse_call(self, call: str, code: AuthCode, text: str | None = None) -> bool:
        """The director refused the call: ``unauthorized`` with the call id ends it."""
        return self._call_api("refuse", call, int(code), text)

    def incoming(self, *, caller: str | None = None, name: str | None = None,
                 number: str | None = None, codecs: tuple[str, ...] | None = None,
                 call: str | None = None) -> str | None:
        """Offer a call to the client; returns its (server-chosen) call id, or None when the
        session is not authenticated. ``call``: callgw's own id (``s...``), else one is made."""
        if self.state is not State.AUTHENTICATED:
            return None
        msg = self.calls.incoming(caller, name, number, codecs, call)
        self._send(msg)
        return msg.call

    # ------------------------------------------------------------ media
    def _on_media(self, payload: bytes) -> None:
        frame = decode_media(payload)
        call = self.calls.call_for_key(frame.key) if self.state is State.AUTHENTICATED else None
        if call is None:
            self.dropped_media += 1
            return
        self._actions.append(ev.MediaReceived(call, frame))

    def send_media(self, call: str, *, payload_type: int, sequence: int, timestamp: int,
                   payload: bytes) -> bool:
        """Queue a media frame of ``call`` to the client (False when it has no media key)."""
        data = self.calls.media_frame(call, payload_type, sequence, timestamp, payload)
        if data is None:
            return False
        self._actions.append(ev.SendMedia(data))
        return True

    # ------------------------------------------------------------ time
    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next (absolute), or None once closed."""
        if self.state is State.CLOSED:
            return None
        idle = self._last_heard + self._config.idle_timeout
        if self.state in _LOGIN_STATES:
            return min(idle, self._started + self._config.login_timeout)
        return idle

    def handle_timer(self, now: float) -> None:
        """Expire the session when its login or idle deadline passed."""
        if self.state is State.CLOSED:
            return
        if self.state in _LOGIN_STATES and now >= self._started + self._config.login_timeout:
            self._dispatch("timeout", ErrorCode.LOGIN_TIMEOUT, now)
        elif now >= self._last_heard + self._config.idle_timeout:
            self._dispatch("timeout", ErrorCode.IDLE_TIMEOUT, now)


def _canonical_host(host: str) -> str:
    """The peer's address as ``welcome`` reports it: canonical text, IPv4-mapped IPv6
    addresses as IPv4. LocalProtocolError when it is not an IP address (an adapter bug)."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise LocalProtocolError(f"peer {host!r} is not an IP address") from None
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped if mapped is not None else addr)


def _safe_text(text: str) -> str | None:
    """``text`` fit for an ``error`` message: no control characters or lone surrogates, at
    most 256 characters (texts quote peer input only through repr, but never trust that)."""
    clean = "".join(c if ord(c) >= 0x20 and not 0xD800 <= ord(c) <= 0xDFFF else "?"
                    for c in text[:256])
    return clean or None


def _call_id(value: str | None) -> str | None:
    try:
        return m.CALL_ID.load(value) if value is not None else None
    except m.FieldError:
        return None


def _command(value: str | None) -> str | None:
    return value if value in m.BY_COMMAND else None
