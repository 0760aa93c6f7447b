"""The client side of the client protocol: the session machine the Python client library and
``callgw-dial`` drive.

Owned by the client protocol; the spec is docs/protocol.md ("Login", "Calls", "Driving the
core"). The library calls ``login`` / ``login_token`` / ``call`` / ``hangup``..., feeds what
arrives (``receive_payload``, or ``receive`` with what ``reliable.py`` delivered) and drains
``next_actions()``. The password never enters this machine: on a challenge it asks for
``DeriveKey`` (scrypt, CPU-heavy: run it in a thread) and takes the salted password back in
``key_derived``. It checks the server's signature in ``welcome`` (mutual authentication), pings
every ``ping`` seconds the welcome names, and gives up when the server stays silent for three
ping intervals. Requests (address book, history, token refresh: ``book_list``...) return
their ``req``; the answers come back as ``RequestAnswered``. Time comes in as ``now``;
``get_timer`` / ``handle_timer`` as on the server.

A ``redirect`` (in answer to ``login`` in place of ``welcome``, or once logged in) is followed
(docs/protocol.md, "Redirect"): the machine asks the library for a new link of the same framing
(``Redirected``), logs in again there by itself once told ``reconnected`` (the salted password
it already derived, no second scrypt; or the newest token) and re-sends ``attach`` for the
calls it was taking back or had up. At most ``MAX_REDIRECTS`` in a row; a bad address or one
more redirect ends the session (``RedirectRefused``, then ``Close``).

Tests: tests/client_proto/test_client_session.py, tests/client_proto/test_client_redirect.py.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from enum import Enum
from typing import Any, Callable

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client import scram, sealing
from protocols.client.errors import (AuthCode, ErrorCode, LocalProtocolError, ProtocolError,
                                     RemoteProtocolError)
from protocols.client.framing import CONTROL, MediaFrame, decode_media, encode_media, kind_of

MAX_REDIRECTS = 3            # redirects in a row (no other server message in between)
# server messages that do not end a chain of redirects: the login's, and a refusal
_LOGIN_ANSWERS = frozenset({"challenge", "welcome", "redirect", "unauthorized", "error"})
_FATAL_ERRORS = (ErrorCode.IDLE_TIMEOUT, ErrorCode.LOGIN_TIMEOUT, ErrorCode.TOO_MANY_ERRORS,
                 ErrorCode.UNREACHABLE, ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE)


class ClientState(Enum):
    CONNECTED = "connected"              # transport up, not logged in
    AWAIT_CHALLENGE = "await-challenge"
    DERIVING = "deriving"                # waiting for the library's scrypt result
    AWAIT_WELCOME = "await-welcome"
    AUTHENTICATED = "authenticated"
    REDIRECTED = "redirected"            # told to go elsewhere: waiting for the new link
    CLOSED = "closed"


class ClientSession:
    """One connection's session, seen from the client."""

    def __init__(self, *, now: float, random: Callable[[int], bytes] = os.urandom,
                 silence_factor: float = 3.0, local_checks: bool = True,
                 server: str = "the server") -> None:
        """``local_checks=False`` sends a command the session state does not allow (before
        login, a second login) and leaves refusing it to the server, as the Python library
        always has; a closed session, one following a redirect and an unknown call id still
        raise. A server ``error`` then ends the session only when the server closes the
        transport (a WebSocket ``bad-frame`` does not). ``server`` names where the link goes
        (``HOST:PORT``) in the "too many redirects" text."""
        self.state = ClientState.CONNECTED
        self.welcome: m.Welcome | None = None
        self.calls: dict[str, dict[str, Any]] = {}
        self._random = random
        self._actions: list[Any] = []
        self._login: dict[str, Any] = {}
        self._next_call = 1
        self._last_heard = now
        self._last_sent = now
        self._silence = silence_factor
        self.dropped_media = 0
        self._local_checks = local_checks
        self._keys: sealing.DatagramKeys | None = None
        self.requests: dict[int, str] = {}     # req -> command, waiting for the answer
        self._next_req = 1
        self.token: str | None = None          # the newest token (welcome, then refresh)
        self.expires: int | None = None
        self._ending: set[str] = set()         # calls up at logout: the server reports their end
        self._how: tuple[str, str] | None = None   # ("password", user) or ("token", token)
        self._salted: tuple[tuple, bytes] | None = None  # ((user, salt, n, r, p), salted)
        self.hops: list[str] = [server]        # this chain of redirects: where it began, then each
        self.following = False                 # from a redirect until the next server's welcome

    def next_actions(self) -> list[Any]:
        """Drain the actions (``events.py``) produced so far, in order."""
        out, self._actions = self._actions, []
        return out

    def _send(self, message: m.Message, now: float) -> None:
        m.to_dict(message)                       # LocalProtocolError before any state change
        self._last_sent = now
        self._actions.append(ev.Send(message))

    def _need(self, *states: ClientState) -> None:
        if self.state not in states:
            raise LocalProtocolError(f"not allowed in state {self.state.value}")

    def _need_for_command(self, *states: ClientState) -> None:
        """``_need`` for the library's commands (see ``local_checks``)."""
        if self.following:
            raise LocalProtocolError("following a redirect: not logged in at the new server yet")
        if self._local_checks or self.state is ClientState.CLOSED:
            self._need(*states)

    # ------------------------------------------------------------ login
    def login(self, user: str, now: float) -> None:
        """Start a password login for ``user`` (the password stays with the library)."""
        self._need_for_command(ClientState.CONNECTED)
        nonce = m.b64e(self._random(18))
        self._send(m.Login(user=user, nonce=nonce), now)
        self._login = {"user": user, "client_nonce": nonce}
        self._how, self._salted = ("password", user), None
        self.state = ClientState.AWAIT_CHALLENGE

    def login_token(self, token: str, now: float) -> None:
        """Resume with a token from an earlier ``welcome``."""
        self._need_for_command(ClientState.CONNECTED)
        nonce = m.b64e(self._random(18))
        self._expect_sealed(sealing.token_keys(token, nonce))
        self._send(m.Login(token=token, nonce=nonce), now)
        self._login = {}
        self._how = ("token", token)
        self.state = ClientState.AWAIT_WELCOME

    def key_derived(self, salted: bytes, now: float) -> None:
        """The library's answer to ``DeriveKey``: ``scram.salted_password(...)``."""
        if self.state is ClientState.CLOSED:
            return
        self._need(ClientState.DERIVING)
        lg = self._login
        # kept for a redirect's second login (same salt and parameters: no second scrypt)
        self._salted = ((lg["user"], lg["salt"], lg["n"], lg["r"], lg["p"]), salted)
        auth = scram.auth_message(lg["user"], lg["client_nonce"], lg["nonce"], lg["salt"],
                                  lg["n"], lg["r"], lg["p"])
        lg["expected"] = scram.server_signature(scram.server_key(salted), auth)
        self._expect_sealed(sealing.password_keys(scram.client_key(salted), auth))
        self._send(m.Login(user=lg["user"], nonce=lg["nonce"],
                           proof=scram.client_proof(salted, auth)), now)
        self.state = ClientState.AWAIT_WELCOME

    # ------------------------------------------------------------ input
    def receive_payload(self, payload: bytes, now: float) -> None:
        """Bytes of one control message or media frame from the server."""
        if self.state is ClientState.CLOSED and not (self._ending and payload[:1] == b"{"):
            return
        try:
            if kind_of(payload) != CONTROL:
                self._on_media(decode_media(payload))
                return
            message = m.decode(payload, sender=m.SERVER)
        except ProtocolError as e:
            if self.state is not ClientState.CLOSED:
                self.receive_error(e, now)
            return
        self.receive_message(message, now)

    def receive(self, item: m.Message | bytes | ProtocolError, now: float) -> None:
        """Whatever ``ReliableEndpoint.receive_datagram`` delivered."""
        if isinstance(item, m.Message):
            self.receive_message(item, now)
        elif isinstance(item, ProtocolError):
            self.receive_error(item, now)
        else:
            self.receive_payload(item, now)

    def receive_error(self, error: ProtocolError, now: float) -> None:
        """The server sent something undecodable (or the transport failed, when fatal)."""
        if self.state is ClientState.CLOSED:
            return
        self._actions.append(ev.SessionEvent(m.Error(code=error.code, text=error.text[:256])))
        if error.fatal:
            self._close(error.code, error.text)

    def receive_message(self, msg: m.Message, now: float) -> None:
        """One decoded control message from the server."""
        if self.state is ClientState.CLOSED:
            if isinstance(msg, m.Disconnected) and msg.call in self._ending:
                self._ending.discard(msg.call)  # after our logout: how the call ended
                self._actions.append(ev.CallEvent(msg.call, msg))
            return
        if msg.sender != m.SERVER:
            self.receive_error(RemoteProtocolError(ErrorCode.UNKNOWN_COMMAND,
                                                   f"{msg.command} from the server"), now)
            return
        self._last_heard = now
        if msg.command not in _LOGIN_ANSWERS:
            self.hops[:] = self.hops[-1:]       # the server did something: a chain ended
        getattr(self, "_on_" + msg.command)(msg, now)

    def _unexpected(self, msg: m.Message) -> None:
        self._actions.append(ev.SessionEvent(m.Error(
            code=ErrorCode.OUT_OF_ORDER, text=f"server sent {msg.command} in "
            f"{self.state.value}", re=msg.command)))

    def _on_challenge(self, msg: m.Challenge, now: float) -> None:
        lg = self._login
        if self.state is not ClientState.AWAIT_CHALLENGE or not msg.nonce.startswith(
                lg["client_nonce"]) or len(msg.nonce) < len(lg["client_nonce"]) + 16:
            self._unexpected(msg)
            return
        lg.update(nonce=msg.nonce, salt=msg.salt, n=msg.n, r=msg.r, p=msg.p)
        self.state = ClientState.DERIVING
        if self.following and self._salted is not None and self._salted[0] == (
                lg["user"], msg.salt, msg.n, msg.r, msg.p):
            self.key_derived(self._salted[1], now)     # derived before: a redirect's login
            return
        self._actions.append(ev.DeriveKey(msg.salt, msg.n, msg.r, msg.p))

    def _on_welcome(self, msg: m.Welcome, now: float) -> None:
        if self.state is not ClientState.AWAIT_WELCOME:
            self._unexpected(msg)
            return
        expected = self._login.get("expected")
        if expected is not None and (msg.signature is None or not hmac.compare_digest(
                expected, msg.signature)):
            self._actions.append(ev.LoginFailed(AuthCode.BAD_CREDENTIALS,
                                                "the server did not prove it knows the "
                                                "password: not our server"))
            self._close(AuthCode.BAD_CREDENTIALS, "server signature wrong")
            return
        self._login = {}
        self.welcome = msg
        self.token, self.expires = msg.token, msg.expires
        self.state = ClientState.AUTHENTICATED
        if self._keys is not None:       # UDP: seal from now on, and accept only sealed
            self._actions.append(ev.SealDatagrams(self._keys.client, self._keys.server, True))
        self._actions.append(ev.Welcomed(msg))
        if self.following:               # after a redirect: take the carried calls back
            self.following = False
            for call_id, call in self.calls.items():
                if call.get("carried"):
                    call["carried"] = False
                    self._send(m.Attach(call=call_id, key=call["attach"]), now)

    def _on_unauthorized(self, msg: m.Unauthorized, now: float) -> None:
        if msg.call is not None:
            if self.calls.pop(msg.call, None) is not None:
                self._actions.append(ev.CallEvent(msg.call, msg))
            return
        if self.state is ClientState.AUTHENTICATED:
            # the server withdrew the login (the account was disabled): the session ends
            self._actions.append(ev.SessionEvent(msg))
            self._close(msg.code, msg.text or "unauthorized")
            return
        if self.state not in (ClientState.AWAIT_CHALLENGE, ClientState.DERIVING,
                              ClientState.AWAIT_WELCOME):
            self._unexpected(msg)
            return
        self._login_ended()
        self._actions.append(ev.LoginFailed(msg.code, msg.text or "", msg.retry))
        if self.following:                      # the new server refused us: nothing to carry
            self.following = False
            for call_id in [c for c, call in self.calls.items() if call.get("carried")]:
                del self.calls[call_id]
                self._actions.append(ev.CallEvent(call_id, m.Disconnected(
                    call=call_id, cause="network-error",
                    text="the server redirected to refused the login")))

    def _expect_sealed(self, keys: sealing.DatagramKeys) -> None:
        """A login answer is due: a welcome comes sealed with these keys (UDP), anything
        else plain. A second login on a logged-in session keeps the session's keys."""
        if self.welcome is None:
            self._keys = keys
            self._actions.append(ev.SealDatagrams(None, keys.server, False))

    def _login_ended(self) -> None:
        """A refused login: back to ``connected``, or to ``authenticated`` when it was a
        second login (``local_checks=False``) on a session the server still has."""
        self._login = {}
        self._salted = None                     # refused: that key proves nothing
        self.state = (ClientState.AUTHENTICATED if self.welcome is not None
                      else ClientState.CONNECTED)

    def _on_redirect(self, msg: m.Redirect, now: float) -> None:
        """docs/protocol.md, "Redirect": in answer to a login (in place of ``welcome``) or
        once logged in. Calls being taken back (``attach``) or up with a media key are carried
        to the new server (``attach`` again there); calls still being set up end here with
        ``network-error``, unanswered requests are lost."""
        if self.state not in (ClientState.AWAIT_WELCOME, ClientState.AUTHENTICATED):
            self._unexpected(msg)
            return
        target = _host_port(msg.address, msg.port)
        problem = _bad_target(msg.address, msg.port)
        if problem is not None:
            self._refuse_redirect(ErrorCode.BAD_FIELD, f"redirect to {target}: {problem}")
            return
        self.hops.append(target)
        if len(self.hops) - 1 > MAX_REDIRECTS:
            self._refuse_redirect(ErrorCode.OUT_OF_ORDER,
                                  "too many redirects: " + " -> ".join(self.hops))
            return
        for call_id, call in list(self.calls.items()):
            key = call.get("attach") if call["state"] == "attaching" else \
                call.get("key") if call["state"] == "active" else None
            if key is None:
                del self.calls[call_id]
                self._actions.append(ev.CallEvent(call_id, m.Disconnected(
                    call=call_id, cause="network-error", text="redirected to another server")))
            else:
                self.calls[call_id] = {"state": "attaching", "key": None, "attach": key,
                                       "carried": True}
        if self.requests:
            self._actions.append(ev.RequestsLost(tuple(self.requests)))
            self.requests.clear()
        self.state = ClientState.REDIRECTED
        self.following = True
        self.welcome, self._keys, self._login = None, None, {}
        self._actions.append(ev.Redirected(msg.address, msg.port, msg.text,
                                           len(self.hops) - 1))

    def _refuse_redirect(self, code: ErrorCode, text: str) -> None:
        self._actions.append(ev.RedirectRefused(text))
        self._close(code, text)

    def reconnected(self, now: float) -> None:
        """The library's answer to ``Redirected``: the link to the new server is open. The
        session logs in again the way it did before (``login`` / ``login_token``)."""
        self._need(ClientState.REDIRECTED)
        assert self._how is not None
        self.state = ClientState.CONNECTED
        nonce = m.b64e(self._random(18))
        if self._how[0] == "password":
            self._send(m.Login(user=self._how[1], nonce=nonce), now)
            self._login = {"user": self._how[1], "client_nonce": nonce}
            self.state = ClientState.AWAIT_CHALLENGE
        else:
            token = self.token or self._how[1]
            self._expect_sealed(sealing.token_keys(token, nonce))
            self._send(m.Login(token=token, nonce=nonce), now)
            self.state = ClientState.AWAIT_WELCOME

    def _on_error(self, msg: m.Error, now: float) -> None:
        if msg.req is not None and self.requests.pop(msg.req, None) is not None:
            self._actions.append(ev.RequestAnswered(msg.req, msg))
            return
        if (msg.re == "login" and self.welcome is not None and self.state in (
                ClientState.AWAIT_CHALLENGE, ClientState.DERIVING, ClientState.AWAIT_WELCOME)):
            self._login_ended()
        if msg.call is not None and msg.call in self.calls:
            if msg.re == "call" and self.calls[msg.call]["state"] == "requested":
                del self.calls[msg.call]         # refused (limit, id in use): never existed
            self._actions.append(ev.CallEvent(msg.call, msg))
        else:
            self._actions.append(ev.SessionEvent(msg))
        if not self._local_checks:
            return                               # the server closes when it is fatal
        if msg.code in _FATAL_ERRORS or (self.state is not ClientState.AUTHENTICATED
                                         and msg.code in (ErrorCode.OUT_OF_ORDER,
                                                          ErrorCode.NOT_AUTHENTICATED)):
            self._close(msg.code, msg.text or "closed by the server")

    def _on_status(self, msg: m.Status, now: float) -> None:
        if msg.call is not None:
            if msg.call in self.calls:
                self._actions.append(ev.CallEvent(msg.call, msg))
        else:
            self._actions.append(ev.SessionEvent(msg))

    def _answered(self, msg: Any) -> bool:
        if self.requests.pop(msg.req, None) is None:
            self._unexpected(msg)
            return False
        self._actions.append(ev.RequestAnswered(msg.req, msg))
        return True

    def _on_book(self, msg: m.Book, now: float) -> None:
        self._answered(msg)

    def _on_done(self, msg: m.Done, now: float) -> None:
        self._answered(msg)

    def _on_records(self, msg: m.Records, now: float) -> None:
        self._answered(msg)

    def _on_token(self, msg: m.Token, now: float) -> None:
        if self._answered(msg):
            self.token, self.expires = msg.token, msg.expires

    def _on_pong(self, msg: m.Pong, now: float) -> None:
        """Liveness (``_last_heard`` was updated); the library answers its ``ping``."""
        self._actions.append(ev.SessionEvent(msg))

    def _call_event(self, msg: Any, state: str | None) -> None:
        call = self.calls.get(msg.call)
        if call is None:
            return                              # a call we already ended: a crossing message
        if state is None:
            del self.calls[msg.call]
        else:
            call["state"] = state
        self._actions.append(ev.CallEvent(msg.call, msg))

    def _on_trying(self, msg: m.Trying, now: float) -> None:
        self._call_event(msg, "proceeding")

    def _on_ringing(self, msg: m.Ringing, now: float) -> None:
        self._call_event(msg, "ringing")

    def _on_connected(self, msg: m.Connected, now: float) -> None:
        call = self.calls.get(msg.call)
        if call is not None:
            call["key"] = msg.key
        self._call_event(msg, "active")

    def _on_disconnected(self, msg: m.Disconnected, now: float) -> None:
        self._call_event(msg, None)

    def _on_incoming(self, msg: m.Incoming, now: float) -> None:
        if self.state is not ClientState.AUTHENTICATED or msg.call in self.calls:
            self._unexpected(msg)
            return
        self.calls[msg.call] = {"state": "offered", "key": None}
        self._actions.append(ev.CallEvent(msg.call, msg))

    def _on_media(self, frame: MediaFrame) -> None:
        for call_id, call in self.calls.items():
            if call.get("key") == frame.key:
                self._actions.append(ev.MediaReceived(call_id, frame))
                return
        self.dropped_media += 1

    # ------------------------------------------------------------ commands
    def call(self, now: float, *, number: str | None = None, contact: str | None = None,
             mode: str = "relay", address: str | None = None, port: int | None = None,
             codecs: tuple[str, ...] | None = None) -> str:
        """Place a call; returns its call id (``c1``, ``c2``...)."""
        self._need_for_command(ClientState.AUTHENTICATED)
        call = f"c{self._next_call}"
        self._send(m.Call(call=call, number=number, contact=contact, mode=mode,
                          address=address, port=port, codecs=codecs), now)
        self._next_call += 1
        self.calls[call] = {"state": "requested", "key": None}
        return call

    def attach(self, now: float, key: bytes) -> str:
        """Take back a call this user's earlier session lost (docs/protocol.md, "Re-attach"):
        ``key`` is the call's current media key. Returns the call id in this session; the
        server answers ``connected`` (a new key) or ``disconnected``."""
        self._need_for_command(ClientState.AUTHENTICATED)
        call = f"c{self._next_call}"
        self._send(m.Attach(call=call, key=key), now)
        self._next_call += 1
        self.calls[call] = {"state": "attaching", "key": None, "attach": key}
        return call

    def _call_command(self, message: m.Message, now: float) -> None:
        self._need_for_command(ClientState.AUTHENTICATED)
        if message.call not in self.calls:  # type: ignore[attr-defined]
            raise LocalProtocolError(f"no call {message.call}")  # type: ignore[attr-defined]
        self._send(message, now)

    def _offered(self, call: str) -> None:
        if self.calls.get(call, {}).get("state") != "offered":
            raise LocalProtocolError(f"{call} is not an incoming call waiting for an answer")

    def answer(self, call: str, now: float, *, mode: str = "relay", address: str | None = None,
               port: int | None = None, codecs: tuple[str, ...] | None = None) -> None:
        """Answer an incoming call; on an active call, change its media mode (the server
        confirms with a second ``connected``, which brings the new key)."""
        if self.calls.get(call, {}).get("state") != "active":
            self._offered(call)
        self._call_command(m.Answer(call=call, mode=mode, address=address, port=port,
                                    codecs=codecs), now)
        if self.calls[call]["state"] == "offered":
            self.calls[call]["state"] = "answering"

    def reject(self, call: str, now: float, cause: str | None = None) -> None:
        self._offered(call)
        self._call_command(m.Reject(call=call, cause=cause), now)

    def hangup(self, call: str, now: float) -> None:
        """Hang up; the call ends when the server's ``disconnected`` arrives."""
        self._call_command(m.Hangup(call=call), now)

    def dtmf(self, call: str, digits: str, now: float, duration: int | None = None) -> None:
        self._call_command(m.Dtmf(call=call, digits=digits, duration=duration), now)

    def hold(self, call: str, now: float) -> None:
        self._call_command(m.Hold(call=call), now)

    def resume(self, call: str, now: float) -> None:
        self._call_command(m.Resume(call=call), now)

    # ------------------------------------------------------------ requests
    def _request(self, make: Callable[[int], m.Message], now: float) -> int:
        self._need_for_command(ClientState.AUTHENTICATED)
        req = self._next_req
        message = make(req)
        self._send(message, now)
        self._next_req += 1
        self.requests[req] = message.command
        return req

    def book_list(self, now: float, after: str | None = None) -> int:
        """Ask for a page of the address book; returns the request id (``book`` answers)."""
        return self._request(lambda req: m.BookList(req=req, after=after), now)

    def book_put(self, now: float, name: str, number: str, was: str | None = None) -> int:
        """Save an entry (``was``: the name of the entry being changed); ``done`` answers."""
        return self._request(lambda req: m.BookPut(req=req, name=name, number=number,
                                                   was=was), now)

    def book_delete(self, now: float, name: str) -> int:
        return self._request(lambda req: m.BookDelete(req=req, name=name), now)

    def history(self, now: float, after: str | None = None) -> int:
        """Ask for a page of the user's call records (``records`` answers)."""
        return self._request(lambda req: m.History(req=req, after=after), now)

    def refresh(self, now: float) -> int:
        """Ask for a fresh token (``token`` answers; ``self.token`` follows it)."""
        return self._request(lambda req: m.Refresh(req=req), now)

    def ping(self, now: float) -> None:
        if self.state is not ClientState.CLOSED:
            self._send(m.Ping(), now)

    def logout(self, now: float) -> None:
        """End the session (the server hangs up every call, and sends each one's
        ``disconnected`` before it closes: those still reach the library as call events)."""
        if self.state is ClientState.CLOSED:
            return
        self._send(m.Logout(), now)
        ending = set(self.calls)
        self._close(0, "logout")
        self._ending = ending

    def send_media(self, call: str, *, payload_type: int, sequence: int, timestamp: int,
                   payload: bytes) -> bool:
        """Queue one media frame of a connected relay-mode call (False without a key)."""
        key = self.calls.get(call, {}).get("key")
        if key is None:
            return False
        self._actions.append(ev.SendMedia(encode_media(
            MediaFrame(key, payload_type, sequence, timestamp, payload))))
        return True

    def _close(self, code: int, text: str) -> None:
        self.state = ClientState.CLOSED
        self.following = False
        self._salted = None
        self.calls.clear()
        if self.requests:
            self._actions.append(ev.RequestsLost(tuple(self.requests)))
            self.requests.clear()
        self._actions.append(ev.Close(int(code), text))

    def close(self, now: float, code: int = 0, text: str = "closed") -> None:
        """The transport is gone (or the library gives up): end without a message."""
        if self.state is not ClientState.CLOSED:
            self._close(code, text)

    # ------------------------------------------------------------ time
    def _interval(self) -> float | None:
        return float(self.welcome.ping) if self.welcome is not None else None

    def get_timer(self) -> float | None:
        """Next ping (or silence check), absolute; None before login and once closed."""
        interval = self._interval()
        if self.state is not ClientState.AUTHENTICATED or interval is None:
            return None
        return min(self._last_sent + interval, self._last_heard + self._silence * interval)

    def handle_timer(self, now: float) -> None:
        """Ping when due; end the session when the server has been silent too long."""
        interval = self._interval()
        if self.state is not ClientState.AUTHENTICATED or interval is None:
            return
        if now >= self._last_heard + self._silence * interval:
            self._close(ErrorCode.IDLE_TIMEOUT, "the server stopped answering")
        elif now >= self._last_sent + interval:
            self.ping(now)


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _bad_target(address: str, port: int) -> str | None:
    """Why a redirect's address and port cannot be connected to (None: they can). The
    message's own check (canonical IP, port 1..65535) ran when it was decoded; a message made
    in memory is checked again here."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        return "not a port"
    if ip.is_unspecified or ip.is_multicast or str(ip) == "255.255.255.255":
        return "not an address of one host"
    return None
