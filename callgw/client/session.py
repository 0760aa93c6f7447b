"""The client library's session and call objects, over any link (see ``links.py``).

Owned by the client library. ``ClientSession`` logs in (SCRAM-style proof computed in a
thread, the server's signature checked; or a token), pings, places calls and logs out;
``ClientCall`` is one call with its events and Deferreds. A session never raises into the
reactor: server input it cannot decode is logged and dropped.

    session = yield connect("tls://127.0.0.1:7061", cacert="callgw-cert.pem")
    welcome = yield session.login("alice", "secret")      # fails with LoginRefused
    call = session.call("+4930123456")
    yield call.connected                                   # fires with the Connected message
    call.dtmf("123"); call.hangup()
    end = yield call.disconnected                          # Disconnected (or Unauthorized)
    yield session.logout()

Tests: tests/client/test_client.py.
"""
from __future__ import annotations

import os
from typing import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from protocols.client import messages as m
from protocols.client import scram

try:
    auth_message = scram.auth_message
except AttributeError:      # before the protocol core grows it: the same bytes
    from callgw.frontend.connection import auth_message


class LoginRefused(Exception):
    """The server answered ``unauthorized`` (``code``, ``text``, ``retry``) or ``error``."""

    def __init__(self, code: int, text: str, retry: int | None = None):
        super().__init__(f"{code} {text}")
        self.code, self.text, self.retry = code, text, retry


class SessionLost(Exception):
    """The link closed before the answer came."""


class ClientCall:
    """One call. ``events`` lists every server message about it in order; ``on_event(msg)``
    is called for each. ``trying``, ``ringing`` and ``connected`` fire with their message
    (and never fail; they stay unfired if the call ends first); ``disconnected`` always fires
    once, with ``Disconnected``, with ``Unauthorized`` (the call was refused), with ``Error``
    about the call, or with a ``Disconnected`` of cause ``network-error`` if the session ends."""

    def __init__(self, session: "ClientSession", call_id: str):
        self.session = session
        self.id = call_id
        self.events: list[m.Message] = []
        self.on_event: Callable[[m.Message], None] | None = None
        self.trying, self.ringing = Deferred(), Deferred()
        self.connected, self.disconnected = Deferred(), Deferred()
        self.key: bytes | None = None
        self.ended = False

    def _event(self, message: m.Message) -> None:
        if self.ended:
            return
        self.events.append(message)
        if self.on_event is not None:
            self.on_event(message)
        target = {m.Trying: self.trying, m.Ringing: self.ringing,
                  m.Connected: self.connected}.get(type(message))
        if isinstance(message, m.Connected):
            self.key = message.key
        if target is not None:
            if not target.called:
                target.callback(message)
            return
        if isinstance(message, (m.Disconnected, m.Unauthorized, m.Error)):
            self.ended = True
            self.session.calls.pop(self.id, None)
            self.disconnected.callback(message)

    def hangup(self) -> None:
        """End the call (the server answers with ``disconnected``)."""
        if not self.ended:
            self.session.send(m.Hangup(call=self.id))

    def dtmf(self, digits: str, duration: int | None = None) -> None:
        self.session.send(m.Dtmf(call=self.id, digits=digits, duration=duration))

    def relay(self) -> None:
        """Direct mode: no media arrived; ask callgw to carry the media (relay mode). The
        server answers with a second ``connected`` carrying the media key."""
        self.session.send(m.Answer(call=self.id, mode="relay"))

    def hold(self) -> None:
        self.session.send(m.Hold(call=self.id))

    def resume(self) -> None:
        self.session.send(m.Resume(call=self.id))


class ClientSession:
    """A client protocol session over ``link`` (``send``/``send_media``/``close``; it calls
    our ``deliver``, ``media`` and ``lost``). ``closed`` fires with the reason when the link
    ends. ``on_message(msg)`` sees every server message not consumed by a pending request.
    Once logged in, it pings every ``welcome.ping`` seconds on ``clock`` and closes the link
    when the server stays silent for ``SILENCE`` ping intervals."""

    log = Logger()
    SILENCE = 3

    def __init__(self, link, url: str = "", clock=None):
        self.link = link
        self.url = url
        self.clock = clock
        self._keepalive: LoopingCall | None = None
        self._heard = 0.0
        link.deliver, link.media, link.lost = self._deliver, self._media, self._lost
        self.welcome: m.Welcome | None = None
        self.calls: dict[str, ClientCall] = {}
        self.closed: Deferred = Deferred()
        self.on_message: Callable[[m.Message], None] | None = None
        self.on_media: Callable[[bytes], None] | None = None
        self._login: Deferred | None = None
        self._login_state: dict | None = None
        self._pings: list[Deferred] = []
        self._next_call = 0
        self.is_closed = False

    # -- requests -------------------------------------------------------------------------------
    def send(self, message: m.Message) -> None:
        if not self.is_closed:
            self.link.send(message)

    def login(self, user: str, password: str) -> Deferred:
        """Password login. Fires with ``Welcome``; fails with ``LoginRefused`` or
        ``SessionLost`` (or ValueError if the server's signature is wrong)."""
        nonce = m.b64e(os.urandom(18))
        self._login_state = {"user": user, "password": password, "nonce": nonce}
        d = self._start_login()
        self.send(m.Login(user=user, nonce=nonce))
        return d

    def login_token(self, token: str) -> Deferred:
        """Resume with a token from an earlier ``welcome``; fires with ``Welcome``."""
        self._login_state = None
        d = self._start_login()
        self.send(m.Login(token=token))
        return d

    def _start_login(self) -> Deferred:
        if self._login is not None:
            raise RuntimeError("a login is already in progress")
        self._login = Deferred()
        return self._login

    def ping(self) -> Deferred:
        """Fires with ``Pong``."""
        d = Deferred()
        self._pings.append(d)
        self.send(m.Ping())
        return d

    def call(self, number: str | None = None, contact: str | None = None,
             mode: str = "relay", codecs: tuple[str, ...] | None = ("PCMU", "PCMA"),
             address: str | None = None, port: int | None = None) -> ClientCall:
        """Place a call to ``number`` (E.164) or ``contact`` (address-book entry); direct
        mode names where the client receives RTP (``address``, ``port``)."""
        self._next_call += 1
        call = ClientCall(self, f"c{self._next_call}")
        self.calls[call.id] = call
        self.send(m.Call(call=call.id, number=number, contact=contact, mode=mode,
                         codecs=codecs, address=address, port=port))
        return call

    def logout(self) -> Deferred:
        """Send ``logout``; fires (with None) when the link has closed."""
        if self.is_closed:
            return succeed(None)
        self.send(m.Logout())
        if hasattr(self.link, "finish"):
            self.link.finish()
        d = Deferred()
        self.closed.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def close(self) -> None:
        """Drop the link without logging out."""
        if not self.is_closed:
            self.link.close()

    # -- what arrives ---------------------------------------------------------------------------
    def _deliver(self, message: m.Message) -> None:
        if self.clock is not None:
            self._heard = self.clock.seconds()
        try:
            self._dispatch(message)
        except Exception:
            self.log.failure("client: handling {command}", command=message.command)

    def _dispatch(self, message: m.Message) -> None:
        call_id = getattr(message, "call", None)
        if call_id is not None and call_id in self.calls:
            self.calls[call_id]._event(message)
        elif isinstance(message, m.Pong) and self._pings:
            self._pings.pop(0).callback(message)
        elif isinstance(message, m.Challenge) and self._login is not None:
            self._challenged(message)
        elif isinstance(message, m.Welcome) and self._login is not None:
            self._welcomed(message)
        elif isinstance(message, m.Unauthorized) and self._login is not None:
            self._end_login(LoginRefused(message.code, message.text or "", message.retry))
        elif (isinstance(message, m.Error) and self._login is not None
              and message.re in (None, "login")):
            self._end_login(LoginRefused(message.code, message.text or ""))
        elif self.on_message is not None:
            self.on_message(message)
        else:
            self.log.debug("client: unsolicited {command}", command=message.command)

    def _challenged(self, challenge: m.Challenge) -> None:
        state = self._login_state
        if (state is None or not challenge.nonce.startswith(state["nonce"])
                or len(challenge.nonce) < len(state["nonce"]) + 16):
            self._end_login(LoginRefused(0, "challenge does not continue our nonce"))
            return
        d = deferToThread(scram.salted_password, state["password"], challenge.salt,
                          challenge.n, challenge.r, challenge.p)
        d.addCallback(self._prove, challenge, state)
        d.addErrback(lambda f: (self.log.failure("client: computing the login proof", f),
                                self._end_login(f.value)))

    def _prove(self, salted: bytes, challenge: m.Challenge, state: dict) -> None:
        auth = auth_message(state["user"], state["nonce"], challenge.nonce, challenge.salt,
                            challenge.n, challenge.r, challenge.p)
        state["expect"] = scram.server_signature(scram.server_key(salted), auth)
        self.send(m.Login(user=state["user"], nonce=challenge.nonce,
                          proof=scram.client_proof(salted, auth)))

    def _welcomed(self, welcome: m.Welcome) -> None:
        state = self._login_state
        if state is not None and welcome.signature != state.get("expect"):
            self._end_login(ValueError("the server's signature is wrong: not the real server"))
            self.close()
            return
        self.welcome = welcome
        self._start_keepalive(welcome.ping)
        self._end_login(None, welcome)

    def _start_keepalive(self, interval: int) -> None:
        if self.clock is None or self._keepalive is not None:
            return
        self._keepalive = LoopingCall(self._ping_or_give_up, interval)
        self._keepalive.clock = self.clock
        self._keepalive.start(interval, now=False).addErrback(
            lambda f: self.log.failure("client: keepalive for {url}", f, url=self.url))

    def _ping_or_give_up(self, interval: int) -> None:
        if self.clock.seconds() - self._heard > self.SILENCE * interval:
            self.log.warn("client: {url} silent for {n} ping intervals", url=self.url,
                          n=self.SILENCE)
            self.close()
            return
        self.ping().addErrback(lambda f: None)       # the answer only refreshes _heard

    def _end_login(self, error: Exception | None, welcome: m.Welcome | None = None) -> None:
        d, self._login, self._login_state = self._login, None, None
        if d is None:
            return
        if error is None:
            d.callback(welcome)
        else:
            d.errback(error)

    def _media(self, data: bytes) -> None:
        if self.on_media is not None:
            self.on_media(data)

    def _lost(self, reason: str) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        if self._login is not None:
            self._end_login(SessionLost(reason))
        for d in self._pings:
            d.errback(SessionLost(reason))
        self._pings = []
        for call in list(self.calls.values()):
            call._event(m.Disconnected(call=call.id, cause="network-error",
                                       text="session lost"))
        self.closed.callback(reason)
