"""Clients follow ``redirect`` between two real callgw gateways on 127.0.0.1: the first one's
client listeners verify the login, and its front end (a fixture, tests/client/redirector.py)
answers ``redirect`` to the second gateway's listener of the same kind; the client logs in
there with the key it derived once, calls the echo number, hears it connected and hangs up.
Over UDP, TCP, TLS, WebSocket and HTTP with the library; ``callgw-dial --verbose`` says where
it went; a re-attach through the front end lands on the gateway that holds the call; a front
end redirecting to itself ends with "too many redirects"."""
from __future__ import annotations

import os
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from callgw.client import RedirectFailed
from callgw.client.links import connect
from protocols.client import scram
from tests.callpath.callgw_env import settled_cdr
from tests.client.redirector import (ECHO, PASSWORD, WAIT, redirect_session, stop,
                                     two_gateways, until, url, within)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "tcp", "tls", "wss", "https"])
def test_login_is_redirected_and_the_call_runs_on_the_second_gateway(tmp_path, scheme,
                                                                       monkeypatch):
    derived = []
    real = scram.salted_password
    monkeypatch.setattr(scram, "salted_password",
                        lambda *a: derived.append(a[2:]) or real(*a))
    front, gw2, fixture = yield two_gateways(tmp_path)
    del derived[:]                                    # the stored credential's own
    session = None
    try:
        session = yield within(connect(url(front, scheme), reactor,
                                       cacert=front.client.cert.cert_path))
        seen = []
        session.on_redirect = lambda *a: seen.append(a)
        welcome = yield within(session.login("alice", PASSWORD))
        assert welcome.user == "alice" and welcome.signature is not None
        host, port = fixture.targets[scheme]
        assert seen == [(host, port, "fixture: use gateway 2")]
        assert fixture.redirected == [(scheme, "alice")]
        assert session.core.hops[-1] == f"{host}:{port}"
        assert len(derived) == 1                      # one scrypt for both gateways
        call = session.call(ECHO)
        connected = yield within(call.connected)
        assert connected.key is not None
        call.hangup()
        end = yield within(call.disconnected)
        assert end.cause == "normal"
        cdrs = yield settled_cdr(gw2, "alice", limit=WAIT)
        assert cdrs[0]["gateway"] == "echo" and cdrs[0]["answered"]
        assert (yield front.store.run("cdrs", 5, "alice")) == []
        yield within(session.logout())
    finally:
        if session is not None:
            session.close()
        yield stop(gw2, front)


@pytest_twisted.inlineCallbacks
def test_reattach_through_the_front_end_lands_where_the_call_is(tmp_path):
    """The socket to gw2 drops mid-call; the client logs in again at the front end with its
    token, is redirected to gw2 and attaches to the call there."""
    front, gw2, fixture = yield two_gateways(tmp_path)
    sessions = []
    try:
        first = yield within(connect(url(front, "tcp"), reactor))
        sessions.append(first)
        yield within(first.login("alice", PASSWORD))
        call = first.call(ECHO)
        yield within(call.connected)
        token, key = first.token, call.key
        first.link.transport.abortConnection()        # the socket drops; gw2 keeps the call
        yield within(first.closed)
        second = yield within(connect(url(front, "tcp"), reactor))
        sessions.append(second)
        yield within(second.login_token(token))
        assert fixture.redirected == [("tcp", "alice"), ("tcp", "alice")]
        again = second.attach(key)
        connected = yield within(again.connected)
        assert connected.key not in (None, key)       # gw2 took it back with a new key
        again.hangup()
        end = yield within(again.disconnected)
        assert end.cause == "normal"
        cdrs = yield settled_cdr(gw2, "alice", limit=WAIT)
        assert len(cdrs) == 1 and cdrs[0]["answered"]
    finally:
        for session in sessions:
            session.close()
        yield stop(gw2, front)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "tcp"])
def test_an_attach_the_front_end_redirects_is_sent_again_where_the_call_is(tmp_path, scheme):
    """The front end welcomes the token login and answers the ``attach`` with a redirect (the
    call is held by gw2): the library logs in at gw2 and sends the attach again there."""
    front, gw2, fixture = yield two_gateways(tmp_path)
    sessions = []
    try:
        first = yield within(connect(url(front, scheme), reactor))
        sessions.append(first)
        yield within(first.login("alice", PASSWORD))
        call = first.call(ECHO)
        yield within(call.connected)
        token, key = first.token, call.key
        fixture.redirect_on("attach")
        if scheme == "tcp":
            first.link.transport.abortConnection()    # the socket drops; gw2 keeps the call
            yield within(first.closed)
        else:
            first.close()                             # UDP: gw2 notices by the pings
        second = yield within(connect(url(front, scheme), reactor))
        sessions.append(second)
        welcome = yield within(second.login_token(token))
        assert second.core.hops == [second.core.hops[0]] and welcome.user == "alice"
        again = second.attach(key)                   # at the front end: redirected
        connected = yield within(again.connected)
        assert connected.key not in (None, key) and second.core.hops[-1] == "%s:%d" % (
            fixture.targets[scheme])
        assert len(fixture.redirected) == 2
        again.hangup()
        end = yield within(again.disconnected)
        assert end.cause == "normal"
        cdrs = yield settled_cdr(gw2, "alice", limit=WAIT)
        assert len(cdrs) == 1 and cdrs[0]["answered"]
    finally:
        for session in sessions:
            session.close()
        yield stop(gw2, front)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "wss"])
def test_a_logged_in_session_is_redirected_and_carries_on(tmp_path, scheme):
    """gw2 redirects alice's logged-in session back to the front end (a drain); the library
    follows with the key it holds, is sent on to gw2 again, and the next call works."""
    front, gw2, fixture = yield two_gateways(tmp_path)
    session = None
    try:
        session = yield within(connect(url(front, scheme), reactor,
                                       cacert=front.client.cert.cert_path))
        seen = []
        session.on_redirect = lambda *a: seen.append(a[:2])
        yield within(session.login("alice", PASSWORD))
        welcomed = session.welcome
        redirect_session(gw2, "alice", *front.client.address(
            "https" if scheme == "wss" else scheme))
        yield until(lambda: session.welcome not in (None, welcomed))
        assert not session.is_closed and not session.moving
        assert [x[0] for x in fixture.redirected] == [scheme] * 2
        assert seen[1:] == [front.client.address("https" if scheme == "wss" else scheme),
                            fixture.targets[scheme]]
        call = session.call(ECHO)
        yield within(call.connected)
        call.hangup()
        end = yield within(call.disconnected)
        assert end.cause == "normal"
    finally:
        if session is not None:
            session.close()
        yield stop(gw2, front)


@pytest_twisted.inlineCallbacks
def test_tls_keeps_its_verification_across_the_redirect(tmp_path):
    """A configured server name is checked at every hop (the one certificate names
    ``localhost``); a name it does not carry is refused at the first."""
    from callgw.client import ConnectError
    front, gw2, fixture = yield two_gateways(tmp_path)
    session = None
    try:
        cacert = front.client.cert.cert_path
        session = yield within(connect(url(front, "tls"), reactor, cacert=cacert,
                                       server_name="localhost"))
        yield within(session.login("alice", PASSWORD))
        assert session.core.hops[-1] == "%s:%d" % fixture.targets["tls"]
        with pytest.raises(ConnectError) as refused:
            yield within(connect(url(front, "tls"), reactor, cacert=cacert,
                                 server_name="nobody.example"))
        assert "certificate" in str(refused.value).lower() or "verif" in str(
            refused.value).lower(), str(refused.value)
    finally:
        if session is not None:
            session.close()
        yield stop(gw2, front)


@pytest_twisted.inlineCallbacks
def test_a_front_end_redirecting_to_itself_ends_after_three(tmp_path):
    front, gw2, fixture = yield two_gateways(tmp_path)
    session = None
    try:
        fixture.targets["tcp"] = own = front.client.address("tcp")
        session = yield within(connect(url(front, "tcp"), reactor))
        with pytest.raises(RedirectFailed) as failed:
            yield within(session.login("alice", PASSWORD))
        where = f"{own[0]}:{own[1]}"
        assert str(failed.value) == "too many redirects: " + " -> ".join([where] * 5)
        assert len(fixture.redirected) == 4
        yield within(session.closed)
    finally:
        if session is not None:
            session.close()
        yield stop(gw2, front)


def dial(*args):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT,
           "CALLGW_PASSWORD": PASSWORD}
    d = getProcessOutputAndValue(sys.executable, ["-m", "callgw.client.dial", *args],
                                 env=env, path=ROOT, reactor=reactor)
    d.addCallback(lambda r: (r[2], (r[0] + r[1]).decode("utf-8", "replace")))
    return d.addTimeout(90, reactor)


@pytest_twisted.inlineCallbacks
def test_callgw_dial_verbose_says_where_it_was_sent(tmp_path):
    front, gw2, fixture = yield two_gateways(tmp_path)
    try:
        code, out = yield dial("--server", url(front, "udp"), "--user", "alice", "--verbose",
                               "--duration", "1", ECHO)
        host, port = fixture.targets["udp"]
        assert code == 0, out
        assert f"redirected to {host}:{port} (fixture: use gateway 2)\n" in out
        assert "connected\n" in out and "disconnected: normal" in out
        fixture.targets["tcp"] = own = front.client.address("tcp")
        code, out = yield dial("--server", url(front, "tcp"), "--user", "alice", ECHO)
        assert code == 4, out
        assert out.strip().splitlines()[-1] == (
            "error: login failed: too many redirects: "
            + " -> ".join([f"{own[0]}:{own[1]}"] * 5))
    finally:
        yield stop(gw2, front)
