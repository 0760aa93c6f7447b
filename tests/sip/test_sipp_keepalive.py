"""Keepalives of an answered call against a real gateway: sipp answering in-dialog OPTIONS,
taking RFC 4028 refreshes by UPDATE or re-INVITE, letting a session expire, going silent.

Each scenario ends only when sipp got what it expects (its exit code 0 is the peer's verdict);
the SIP leg's events and ``liveness()`` are ours. Short intervals (1 s OPTIONS, 3-4 s
sessions, T1 = 50 ms for Timer F) keep the tests short; nothing asserts how long a step took.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from callgw.callserver.events import Connect, Release, Trace
from protocols.sip.adapter import SipEndpoint
from protocols.sip.transaction import TimerConfig
from tests.sip.test_sipp import finish, place_call, run

pytestmark = pytest.mark.peers("sipp")


@pytest.fixture
def endpoint():
    ep = SipEndpoint(reactor, "127.0.0.1", 0, timers=TimerConfig(t1=0.05))
    ep.start()
    yield ep
    pytest_twisted.blockon(ep.stop())


@defer.inlineCallbacks
def until(check, limit=15.0):
    waited = 0.0
    while not check():
        assert waited < limit, "condition not met in time"
        d = defer.Deferred()
        reactor.callLater(0.05, d.callback, None)
        yield d
        waited += 0.05


def summaries(sink):
    return [t.summary for t in sink.traces if isinstance(t, Trace)]


@pytest_twisted.inlineCallbacks
def test_options_keepalive_answered(endpoint, tmp_path):
    sipp = run("uas_keepalive_options.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path, keepalive="options",
                                     keepalive_interval=1)
        yield sink.wait_for(Connect)
        yield until(lambda: summaries(sink).count("200 OK (OPTIONS)") == 2)
        assert leg.liveness() is None
        leg.send(Release(16))
        yield finish(sipp)
        assert sink.kinds() == ["Proceeding", "Connect"]
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_a_gateway_that_stops_answering_is_found_gone(endpoint, tmp_path):
    sipp = run("uas_keepalive_silent.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path, keepalive="options",
                                     keepalive_interval=1)
        release = yield sink.wait_for(Release)
        assert release.cause == 41 and "no answer to our keepalive" in leg.liveness()
        yield finish(sipp)                          # it got the OPTIONS, then our BYE
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_session_timer_refreshed_by_update(endpoint, tmp_path):
    sipp = run("uas_session_timer_update.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path, keepalive="session-timer")
        yield sink.wait_for(Connect)
        yield until(lambda: summaries(sink).count("200 OK (UPDATE)") == 2)
        leg.send(Release(16))
        yield finish(sipp)
        assert sink.kinds() == ["Proceeding", "Connect"] and leg.liveness() is None
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_session_timer_refreshed_by_reinvite(endpoint, tmp_path):
    sipp = run("uas_session_timer_reinvite.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path, keepalive="session-timer")
        yield sink.wait_for(Connect)
        yield until(lambda: summaries(sink).count("200 OK (INVITE)") == 2)
        leg.send(Release(16))
        yield finish(sipp)
        assert sink.kinds() == ["Proceeding", "Connect"]       # the refresh is no media change
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_a_session_the_gateway_does_not_refresh_expires(endpoint, tmp_path):
    sipp = run("uas_session_timer_expire.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path, keepalive="session-timer")
        release = yield sink.wait_for(Release)
        assert release.cause == 102 and leg.liveness() == "session not refreshed in 3 s"
        yield finish(sipp)                          # our BYE carried Reason cause 102
    finally:
        sipp.stop()
