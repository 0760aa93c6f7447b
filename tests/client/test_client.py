"""The client library's session and call objects over a fake link; URL parsing."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from callgw.client import LoginRefused, SessionLost
from callgw.client.links import parse_url
from callgw.client.session import ClientSession
from callgw.frontend.connection import auth_message
from protocols.client import messages as m
from protocols.client import scram


class Link:
    deliver = media = lost = None
    sealed = None

    def seal_datagrams(self, action):
        self.sealed = action

    def __init__(self):
        self.sent = []
        self.closed = False
        self.waiting = None

    def send(self, message):
        self.sent.append(message)
        if self.waiting is not None:
            d, self.waiting = self.waiting, None
            d.callback(message)

    def next(self):
        """Fires with the next message sent (the login proof is computed in a thread)."""
        from twisted.internet import reactor
        self.waiting = defer.Deferred()
        return self.waiting.addTimeout(10, reactor)

    def close(self):
        self.closed = True
        self.lost("closed")


@pytest.mark.parametrize("text, parsed", [
    ("udp://127.0.0.1:7060", ("udp", "127.0.0.1", 7060, "")),
    ("wss://[::1]:8443", ("wss", "::1", 8443, "")),
    ("https://example.net:8443/", ("https", "example.net", 8443, "/")),
])
def test_parse_url(text, parsed):
    assert parse_url(text) == parsed


@pytest.mark.parametrize("text", ["http://a:1", "tcp://host", "tcp://:5", "tcp://h:99999"])
def test_parse_url_refuses(text):
    with pytest.raises(ValueError):
        parse_url(text)


def test_call_events_and_deferreds():
    link = Link()
    session = ClientSession(link)
    call = session.call("+4930123")
    assert link.sent[-1] == m.Call(call="c1", number="+4930123", mode="relay",
                                   codecs=("PCMU", "PCMA"))
    seen = []
    call.on_event = seen.append
    link.deliver(m.Trying(call="c1"))
    link.deliver(m.Connected(call="c1", key=b"k" * 16))
    assert call.trying.called and call.connected.called and not call.ringing.called
    call.dtmf("1")
    call.hold()
    call.resume()
    call.hangup()
    assert [x.command for x in link.sent[-4:]] == ["dtmf", "hold", "resume", "hangup"]
    link.deliver(m.Disconnected(call="c1", cause="normal"))
    ends = []
    call.disconnected.addCallback(ends.append)
    assert ends[0].cause == "normal" and [x.command for x in seen] == [
        "trying", "connected", "disconnected"]
    assert session.calls == {}


def test_lost_link_ends_calls_and_fails_requests():
    link = Link()
    session = ClientSession(link)
    call = session.call("+4930123")
    login = session.login_token("v1.x.y.z")
    ping = session.ping()
    failures = []
    login.addErrback(failures.append)
    ping.addErrback(failures.append)
    link.lost("gone")
    assert [f.type for f in failures] == [SessionLost, SessionLost]
    assert call.disconnected.result.cause == "network-error"
    assert session.closed.called


@pytest_twisted.inlineCallbacks
def test_login_refuses_a_server_without_the_key():
    link = Link()
    session = ClientSession(link)
    d = session.login("alice", "pw")
    first = link.sent[-1]
    salt = b"s" * 16
    proved = link.next()
    link.deliver(m.Challenge(nonce=first.nonce + "X" * 24, salt=salt, n=1024, r=8, p=1))
    proof = yield proved
    assert proof.proof is not None and proof.nonce == first.nonce + "X" * 24
    link.deliver(m.Welcome(user="alice", token="t", expires=1, address="127.0.0.1", port=1,
                           ping=30, signature=b"\0" * 32))
    with pytest.raises(ValueError):
        yield d
    assert link.closed


@pytest_twisted.inlineCallbacks
def test_login_accepts_the_right_signature_and_reports_refusals():
    link = Link()
    session = ClientSession(link)
    d = session.login("alice", "pw")
    first = link.sent[-1]
    salt, nonce = b"s" * 16, first.nonce + "Y" * 24
    proved = link.next()
    link.deliver(m.Challenge(nonce=nonce, salt=salt, n=1024, r=8, p=1))
    yield proved
    salted = scram.salted_password("pw", salt, 1024, 8, 1)
    auth = auth_message("alice", first.nonce, nonce, salt, 1024, 8, 1)
    link.deliver(m.Welcome(user="alice", token="t", expires=1, address="127.0.0.1", port=1,
                           ping=30, signature=scram.server_signature(scram.server_key(salted),
                                                                     auth)))
    welcome = yield d
    assert welcome.user == "alice" and session.welcome is welcome
    again = session.login_token("t")
    link.deliver(m.Unauthorized(code=429, text="slow down", retry=8))
    with pytest.raises(LoginRefused) as refused:
        yield again
    assert (refused.value.code, refused.value.retry) == (429, 8)


def test_keepalive_pings_and_gives_up_on_a_silent_server():
    from twisted.internet import task
    clock = task.Clock()
    link = Link()
    session = ClientSession(link, clock=clock)
    session.login_token("v1.x.y.z")
    link.deliver(m.Welcome(user="alice", token="t", expires=1, address="127.0.0.1", port=1,
                           ping=30))
    clock.advance(30)
    assert link.sent[-1] == m.Ping()
    link.deliver(m.Pong())
    clock.advance(30)
    assert [x for x in link.sent if x == m.Ping()] == [m.Ping(), m.Ping()] and not link.closed
    for _ in range(3):
        clock.advance(30)
    assert link.closed and session.closed.called


def test_a_redirect_the_library_cannot_follow_fails_the_login_in_one_line():
    from callgw.client import RedirectFailed
    link = Link()
    tried = []

    def reopen(address, port):
        tried.append((address, port))
        return defer.fail(ConnectionRefusedError("connection refused"))

    session = ClientSession(link, "tcp://127.0.0.1:7060", reopen=reopen)
    d = session.login_token("v1.x.y.z")
    link.deliver(m.Redirect(address="127.0.0.9", port=7070, text="go"))
    assert link.deliver is not session._deliver        # the old link is left
    failures = []
    d.addErrback(failures.append)
    assert tried == [("127.0.0.9", 7070)] and session.closed.called
    assert failures[0].type is RedirectFailed
    assert str(failures[0].value).startswith("redirected to 127.0.0.9:7070: ")
    assert link.closed


def test_a_second_link_takes_the_login_and_a_carried_attach():
    first, second = Link(), Link()
    session = ClientSession(first, "tcp://127.0.0.1:7060",
                            reopen=lambda address, port: defer.succeed(second))
    d = session.login_token("v1.x.y.z")
    first.deliver(m.Welcome(user="alice", token="t2", expires=1, address="127.0.0.1", port=1,
                            ping=30))
    call = session.attach(b"K" * 16)
    first.deliver(m.Redirect(address="127.0.0.9", port=7070))     # in answer to attach
    assert session.moving and d.called
    early = session.attach(b"E" * 16)                # between the servers: ended at once
    assert early.disconnected.result.text == "moving to another server (redirect): try again"
    assert [x.command for x in second.sent] == ["login"] and second.sent[0].token == "t2"
    second.deliver(m.Welcome(user="alice", token="t3", expires=1, address="127.0.0.1", port=1,
                             ping=30))
    assert second.sent[-1] == m.Attach(call=call.id, key=b"K" * 16) and not session.moving
    second.deliver(m.Connected(call=call.id, key=b"N" * 16))
    assert call.connected.called and call.key == b"N" * 16
