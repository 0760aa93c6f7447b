"""The client library's session and call objects, over any link (see ``links.py``).

Owned by the client library. ``ClientSession`` is the Twisted adapter around the protocol
core's ``protocols.client.client_session.ClientSession``: the core runs the login (nonce,
challenge check, proof, the server's signature), the keepalive pings and the silence check,
and the call states; this module feeds it what the link delivers, runs its ``DeriveKey``
(scrypt) in a thread, maps its timer to ``clock.callLater`` and turns its actions into link
writes, Deferreds and ``ClientCall`` events. A session never raises into the reactor: server
input it cannot handle is logged and dropped.

A ``redirect`` (docs/protocol.md, "Redirect") is followed here: the session opens a link of
the same kind to the new address (``reopen``, given by ``links.connect``), and the core logs
in there again with the key it already derived (no second scrypt) or the newest token, then
re-sends ``attach`` for the calls it was taking back. ``login()`` fires only with the final
server's welcome; a refused redirect (bad address, more than three in a row) fails it with
``RedirectFailed`` ("too many redirects: A -> B -> C -> D -> E").

    session = yield connect("tls://127.0.0.1:7061", cacert="callgw-cert.pem")
    welcome = yield session.login("alice", "secret")      # fails with LoginRefused
    call = session.call("+4930123456")
    yield call.connected                                   # fires with the Connected message
    call.dtmf("123"); call.hangup()
    end = yield call.disconnected                          # Disconnected (or Unauthorized)
    book = yield session.book()                            # [{"name", "number"}...]
    yield session.book_put("Mum", "+4930123456")           # fails with RequestRefused
    records = yield session.history()                      # the user's CDRs, newest first
    token = yield session.refresh()                        # a Token message
    yield session.logout()

Tests: tests/client/test_client.py, tests/client/test_redirect_live.py.
"""
from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from protocols.client import client_session as core
from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client import scram
from protocols.client.errors import LocalProtocolError


class LoginRefused(Exception):
    """The server answered ``unauthorized`` (``code``, ``text``, ``retry``) or ``error``."""

    def __init__(self, code: int, text: str, retry: int | None = None):
        super().__init__(f"{code} {text}")
        self.code, self.text, self.retry = code, text, retry


class SessionLost(Exception):
    """The link closed before the answer came."""


class RedirectFailed(SessionLost):
    """A ``redirect`` could not be followed: a bad address, too many in a row, or no link to
    the new address (``str()`` says which, in one line)."""


class RequestRefused(Exception):
    """The server refused a request with ``error`` (``code``: ErrorCode, 6xx for what the data
    refuses, e.g. 601 an entry of that name exists)."""

    def __init__(self, code: int, text: str):
        super().__init__(f"{code} {text}")
        self.code, self.text = code, text


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
            self.session._command("hangup", lambda core, now: core.hangup(self.id, now))

    def dtmf(self, digits: str, duration: int | None = None) -> None:
        self.session._command("dtmf", lambda core, now: core.dtmf(self.id, digits, now,
                                                                 duration=duration))

    def relay(self) -> None:
        """Direct mode: no media arrived; ask callgw to carry the media (relay mode). The
        server answers with a second ``connected`` carrying the media key."""
        self.session._command("answer", lambda core, now: core.answer(self.id, now,
                                                                     mode="relay"))

    def hold(self) -> None:
        self.session._command("hold", lambda core, now: core.hold(self.id, now))

    def resume(self) -> None:
        self.session._command("resume", lambda core, now: core.resume(self.id, now))


class ClientSession:
    """A client protocol session over ``link`` (``send``/``send_media``/``close``; it calls
    our ``deliver``, ``media`` and ``lost``). ``closed`` fires with the reason when the link
    ends. ``on_message(msg)`` sees every server message not consumed by a pending request.
    Once logged in, the core pings when nothing was sent for ``welcome.ping`` seconds (its
    timer runs on ``clock``) and the link is closed when the server stays silent for
    ``SILENCE`` ping intervals."""

    log = Logger()
    SILENCE = 3

    def __init__(self, link, url: str = "", clock=None, reopen=None):
        """``reopen(address, port)``: a Deferred firing with a new link of the same kind to
        that address (failing with the reason), for following a ``redirect``; without it a
        redirect ends the session."""
        self.link = link
        self.url = url
        self.clock = clock
        self.reopen = reopen
        self._wire(link)
        self.core = core.ClientSession(now=self._now(), silence_factor=self.SILENCE,
                                       local_checks=False, server=_where(url))
        self.on_redirect: Callable[[str, int, str | None], None] | None = None
        self.moving = False          # between a redirect and the new server's welcome
        self._failure: Exception | None = None   # why the session ends, when we ended it
        self.calls: dict[str, ClientCall] = {}
        self.closed: Deferred = Deferred()
        self.on_message: Callable[[m.Message], None] | None = None
        self.on_media: Callable[[bytes], None] | None = None
        self._login: Deferred | None = None
        self._password: str | None = None
        self._pings: list[Deferred] = []
        self._requests: dict[int, Deferred] = {}
        self._timer = None
        self._logging_out = False
        self.is_closed = False

    @property
    def welcome(self) -> m.Welcome | None:
        return self.core.welcome

    def _wire(self, link) -> None:
        link.deliver, link.media, link.lost = self._deliver, self._media, self._lost

    def _now(self) -> float:
        return self.clock.seconds() if self.clock is not None else 0.0

    # -- requests -------------------------------------------------------------------------------
    def login(self, user: str, password: str) -> Deferred:
        """Password login. Fires with ``Welcome``; fails with ``LoginRefused`` or
        ``SessionLost`` (or ValueError if the server's signature is wrong)."""
        d = self._start_login()
        self._password = password
        self._core_login(lambda now: self.core.login(user, now))
        return d

    def login_token(self, token: str) -> Deferred:
        """Resume with a token from an earlier ``welcome``; fires with ``Welcome``."""
        d = self._start_login()
        self._password = None
        self._core_login(lambda now: self.core.login_token(token, now))
        return d

    def _core_login(self, start: Callable[[float], None]) -> None:
        try:
            start(self._now())
        except LocalProtocolError:               # the session is closed
            self._end_login(SessionLost("the session is closed"))
        self._pump()

    def _start_login(self) -> Deferred:
        if self._login is not None:
            raise RuntimeError("a login is already in progress")
        self._login = Deferred()
        return self._login

    def ping(self) -> Deferred:
        """Fires with ``Pong``."""
        if self.link is None:
            return fail(SessionLost("moving to another server (redirect)"))
        d = Deferred()
        self._pings.append(d)
        self.core.ping(self._now())
        self._pump()
        return d

    def call(self, number: str | None = None, contact: str | None = None,
             mode: str = "relay", codecs: tuple[str, ...] | None = ("PCMU", "PCMA"),
             address: str | None = None, port: int | None = None) -> ClientCall:
        """Place a call to ``number`` (E.164) or ``contact`` (address-book entry); direct
        mode names where the client receives RTP (``address``, ``port``)."""
        if self.core.state is core.ClientState.CLOSED or self.core.following:
            return self._refused_call()
        call_id = self.core.call(self._now(), number=number, contact=contact, mode=mode,
                                 codecs=codecs, address=address, port=port)
        call = self.calls[call_id] = ClientCall(self, call_id)
        self._pump()
        return call

    def attach(self, key: bytes) -> ClientCall:
        """Take back, on this new session, a relayed call an earlier session of the same user
        lost (its socket dropped): ``key`` is the call's last media key. The call's
        ``connected`` fires with the new key; ``disconnected`` when there was nothing to
        attach."""
        if self.core.state is core.ClientState.CLOSED or self.core.following:
            return self._refused_call()
        call_id = self.core.attach(self._now(), key)
        call = self.calls[call_id] = ClientCall(self, call_id)
        self._pump()
        return call

    def _refused_call(self) -> ClientCall:
        """The core refuses a call now (closed, or between two servers): an ended call."""
        call = ClientCall(self, "c0")
        call._event(m.Disconnected(call=call.id, cause="network-error",
                                   text="moving to another server (redirect): try again"
                                   if self.core.following else "session lost"))
        return call

    # -- requests about the user's own data -----------------------------------------------------
    def _request(self, start: Callable) -> Deferred:
        """Send one request (``start(core, now) -> req``); fires with the answer message, fails
        with ``RequestRefused`` or ``SessionLost``."""
        if self.is_closed:
            return fail(SessionLost("the session is closed"))
        try:
            req = start(self.core, self._now())
        except LocalProtocolError as e:
            return fail(SessionLost(str(e)))
        d = self._requests[req] = Deferred()
        self._pump()
        return d

    @inlineCallbacks
    def book(self):
        """Fires with the whole address book: a list of ``{"name", "number"}``, by name."""
        entries, after = [], None
        while True:
            page = yield self._request(lambda core, now: core.book_list(now, after))
            entries.extend(dict(e) for e in page.entries)
            if page.next is None:
                return entries
            after = page.next

    def book_put(self, name: str, number: str, was: str | None = None) -> Deferred:
        """Save an entry (``was``: the name of the entry changed); fires with None."""
        d = self._request(lambda core, now: core.book_put(now, name, number, was))
        return d.addCallback(lambda _: None)

    def book_delete(self, name: str) -> Deferred:
        d = self._request(lambda core, now: core.book_delete(now, name))
        return d.addCallback(lambda _: None)

    @inlineCallbacks
    def history(self, limit: int = 100):
        """Fires with the user's newest call records (at most ``limit``), newest first: dicts
        with ``number``, ``start``, ``duration``, ``cause`` and, when known, ``answered``,
        ``q850``, ``text``."""
        records, after = [], None
        while len(records) < limit:
            page = yield self._request(lambda core, now: core.history(now, after))
            records.extend(dict(r) for r in page.records)
            if page.next is None:
                break
            after = page.next
        return records[:limit]

    def refresh(self) -> Deferred:
        """A fresh token (fires with the ``Token`` message; ``token`` follows it)."""
        return self._request(lambda core, now: core.refresh(now))

    @property
    def token(self) -> str | None:
        """The newest token: welcome's, then each refresh's."""
        return self.core.token

    def _command(self, name: str, command: Callable) -> None:
        """Run ``command(core, now)``, one call command; one the core refuses (the call
        ended, the session closed) is logged, not raised."""
        try:
            command(self.core, self._now())
        except LocalProtocolError as e:
            self.log.warn("client: {command} not sent on {url}: {error}", command=name,
                          url=self.url, error=str(e))
        self._pump()

    def logout(self) -> Deferred:
        """Send ``logout``; fires (with None) when the link has closed."""
        if self.is_closed:
            return succeed(None)
        self._logging_out = True
        self.core.logout(self._now())
        self._pump()
        d = Deferred()
        self.closed.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def close(self) -> None:
        """Drop the link without logging out."""
        if self.is_closed:
            return
        if self.link is None:                    # between two servers
            self._lost("closed")
        else:
            self.link.close()

    # -- the core's actions ---------------------------------------------------------------------
    def _pump(self) -> None:
        actions = self.core.next_actions()
        while actions:                           # a handler may make the core act again
            for action in actions:
                try:
                    getattr(self, "_on_" + type(action).__name__)(action)
                except Exception:
                    self.log.failure("client: handling {action} for {url}", action=action,
                                     url=self.url)
            actions = self.core.next_actions()
        self._arm_timer()

    def _on_Send(self, action: ev.Send) -> None:
        if not self.is_closed and self.link is not None:
            self.link.send(action.message)

    def _on_SendMedia(self, action: ev.SendMedia) -> None:
        if not self.is_closed and self.link is not None:
            self.link.send_media(action.payload)

    def _on_Close(self, action: ev.Close) -> None:
        if self.is_closed:
            return
        if self.link is None:                    # between two servers: no link to close
            self._lost(action.text)
            return
        if self._logging_out:                    # the server closes once it has our logout
            if hasattr(self.link, "finish"):
                self.link.finish()
            return
        if action.code:
            self.log.warn("client: closing {url}: {text}", url=self.url, text=action.text)
        self.link.close()

    def _on_SealDatagrams(self, action: ev.SealDatagrams) -> None:
        """UDP datagram authentication keyed by the login (other links ignore it)."""
        self.link.seal_datagrams(action)

    def _on_DeriveKey(self, action: ev.DeriveKey) -> None:
        if self._password is None:               # after a redirect, the login long done
            self._failure = RedirectFailed(f"{self.core.hops[-1]} asks for a key with other "
                                           "parameters; log in again")
            self.core.close(self._now(), 0, str(self._failure))
            return
        d = deferToThread(scram.salted_password, self._password, action.salt, action.n,
                          action.r, action.p)
        d.addCallback(self._key_derived)
        d.addErrback(self._derive_failed)

    def _key_derived(self, salted: bytes) -> None:
        self.core.key_derived(salted, self._now())
        self._pump()

    def _derive_failed(self, failure) -> None:
        self.log.failure("client: computing the login proof for {url}", failure, url=self.url)
        self._end_login(failure.value)

    def _on_Welcomed(self, action: ev.Welcomed) -> None:
        if self.moving:
            self.moving = False
            self.log.info("client: logged in at {server} after a redirect",
                          server=self.core.hops[-1])
        self._end_login(None, action.welcome)

    def _on_LoginFailed(self, action: ev.LoginFailed) -> None:
        if self.core.state is core.ClientState.CLOSED:
            self._end_login(ValueError(f"the server's signature is wrong: {action.text}"))
        elif self._login is None and self.moving:   # refused where a redirect sent us
            self.moving = False
            self._failure = RedirectFailed(f"{self.core.hops[-1]} (redirected to) refused "
                                           f"the login: {action.code} {action.text}")
            self.core.close(self._now(), 0, str(self._failure))
        else:
            self._end_login(LoginRefused(action.code, action.text, action.retry))

    def _on_Redirected(self, action: ev.Redirected) -> None:
        """Leave this link (the server ends its session) and open one to the new address."""
        old, self.link, self.moving = self.link, None, True
        old.deliver = old.media = old.lost = _ignore
        if self.clock is not None:               # after this delivery (UDP: its ack goes)
            self.clock.callLater(0, old.close)
        else:
            old.close()
        for d in self._pings:
            d.errback(SessionLost("moving to another server (redirect)"))
        self._pings = []
        where = self.core.hops[-1]
        self.log.info("client: redirected from {url} to {where} ({text})", url=self.url,
                      where=where, text=action.text or "")
        if self.on_redirect is not None:
            self.on_redirect(action.address, action.port, action.text)
        if self.reopen is None:
            self._failure = RedirectFailed(f"redirected to {where}: this link cannot follow")
            self.core.close(self._now(), 0, str(self._failure))
            return
        d = self.reopen(action.address, action.port)
        d.addCallbacks(self._relinked, self._relink_failed, errbackArgs=(where,))
        d.addErrback(lambda f: self.log.failure("client: following the redirect to {where}",
                                                f, where=where))

    def _relinked(self, link) -> None:
        if self.is_closed:                       # given up meanwhile
            link.deliver = link.media = link.lost = _ignore
            link.close()
            return
        self.link = link
        self._wire(link)
        self.core.reconnected(self._now())
        self._pump()

    def _relink_failed(self, failure, where: str) -> None:
        if self.is_closed:
            return
        self._failure = RedirectFailed(f"redirected to {where}: {failure.getErrorMessage()}")
        self.core.close(self._now(), 0, str(self._failure))
        self._pump()

    def _on_RedirectRefused(self, action: ev.RedirectRefused) -> None:
        self.log.warn("client: not following a redirect from {url}: {text}", url=self.url,
                      text=action.text)
        self._failure = RedirectFailed(action.text)

    def _on_CallEvent(self, action: ev.CallEvent) -> None:
        call = self.calls.get(action.call)
        if call is not None:
            call._event(action.message)
        else:
            self._unsolicited(action.message)

    def _on_SessionEvent(self, action: ev.SessionEvent) -> None:
        message = action.message
        if isinstance(message, m.Pong):
            if self._pings:
                self._pings.pop(0).callback(message)
        elif (isinstance(message, m.Error) and self._login is not None
              and message.re in (None, "login", "challenge")):
            self._end_login(LoginRefused(message.code, message.text or ""))
        else:
            self._unsolicited(message)

    def _on_RequestAnswered(self, action: ev.RequestAnswered) -> None:
        d = self._requests.pop(action.req, None)
        if d is None:
            return
        if isinstance(action.message, m.Error):
            d.errback(RequestRefused(action.message.code, action.message.text or ""))
        else:
            d.callback(action.message)

    def _on_RequestsLost(self, action: ev.RequestsLost) -> None:
        self._fail_requests("the session closed")

    def _fail_requests(self, reason: str) -> None:
        pending, self._requests = self._requests, {}
        for d in pending.values():
            d.errback(SessionLost(reason))

    def _on_MediaReceived(self, action: ev.MediaReceived) -> None:
        """Media reaches ``on_media`` from the link directly (see ``_media``)."""

    def _unsolicited(self, message: m.Message) -> None:
        if self.on_message is not None:
            self.on_message(message)
        else:
            self.log.debug("client: unsolicited {command}", command=message.command)

    def _end_login(self, error: Exception | None, welcome: m.Welcome | None = None) -> None:
        d, self._login, self._password = self._login, None, None
        if d is None:
            return
        if error is None:
            d.callback(welcome)
        else:
            d.errback(error)

    # -- time -----------------------------------------------------------------------------------
    def _arm_timer(self) -> None:
        if self.clock is None:
            return
        due = None if self.is_closed else self.core.get_timer()
        if self._timer is not None and self._timer.active():
            if due is not None and self._timer.getTime() == due:
                return
            self._timer.cancel()
        self._timer = None
        if due is not None:
            self._timer = self.clock.callLater(max(0.0, due - self._now()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.core.handle_timer(self._now())
        self._pump()

    # -- what arrives ---------------------------------------------------------------------------
    def _deliver(self, message: m.Message) -> None:
        try:
            self.core.receive_message(message, self._now())
        except Exception:
            self.log.failure("client: handling {command}", command=message.command)
        self._pump()

    def _media(self, data: bytes) -> None:
        if self.on_media is not None:
            self.on_media(data)

    def _lost(self, reason: str) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        if self._failure is not None:            # we ended it: say why, not how the link went
            reason = str(self._failure)
        self.core.close(self._now(), 0, reason)
        self.core.next_actions()
        self._arm_timer()
        if self._login is not None:
            self._end_login(self._failure or SessionLost(reason))
        for d in self._pings:
            d.errback(SessionLost(reason))
        self._pings = []
        self._fail_requests(reason)
        for call in list(self.calls.values()):
            call._event(m.Disconnected(call=call.id, cause="network-error",
                                       text="session lost"))
        self.closed.callback(reason)


def _ignore(*args) -> None:
    """What a link left for another (a redirect) still reports goes nowhere."""


def _where(url: str) -> str:
    """``HOST:PORT`` of a link's URL, for the "too many redirects" text."""
    from urllib.parse import urlsplit
    netloc = urlsplit(url).netloc
    return netloc or "the server"
