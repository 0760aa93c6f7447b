"""The UAS INVITE session against a real caller: sipp as the UAC toward ``SipEndpoint``.

The endpoint's ``inbound`` hook takes each INVITE and a small driver (below) plays the callee:
it rings, sends early media, answers with SDP made by ``protocols.sip.sdp``, answers hold and
resume re-INVITEs, hangs up when told to. sipp's exit code (0 when its scenario ran to the end,
with every ``check_it`` regexp matched) is the peer's verdict; the session events are ours.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from protocols.sip import sdp as sdplib
from protocols.sip import session as s
from protocols.sip.adapter import SipEndpoint
from tests.sip.sipp import Sipp

pytestmark = pytest.mark.peers("sipp")


class Callee:
    """The layer above one ``UasSession``: rings, answers, records events and messages."""

    def __init__(self, endpoint, session, answer=True, early=True):
        self.endpoint = endpoint
        self.session = session
        self.events = []
        self.traces = []
        self.done = defer.Deferred()
        self.confirmed = defer.Deferred()
        reactor.callLater(0, self._ring, answer, early)

    def _sdp(self, offer):
        return sdplib.make_answer(offer, "127.0.0.1", 26990, ["PCMU"], 101, 20, "sendrecv",
                                  4242, len(self.events) + 1)

    def _ring(self, answer, early):
        ep, session = self.endpoint, self.session
        ep.execute(session, session.ring())
        if early:
            ep.execute(session, session.ring(183, self._sdp(session.offer)))
        if answer:
            ep.execute(session, session.answer(self._sdp(session.offer)))

    def session_event(self, session, event):
        self.events.append(event)
        if isinstance(event, s.RemoteModify):
            self.endpoint.execute(session, session.answer_modify(event.request,
                                                                 self._sdp(event.sdp)))
        elif isinstance(event, s.Confirmed) and not self.confirmed.called:
            self.confirmed.callback(event)
        elif isinstance(event, s.Closed) and not self.done.called:
            self.done.callback(event)

    def sip_message(self, direction, message):
        self.traces.append((direction, message))

    def kinds(self):
        return [type(e).__name__ for e in self.events]


class Callees:
    """What the inbound hook made: ``options`` for the next callee, ``arrived`` fires with it."""

    def __init__(self):
        self.options = {}
        self.made = []
        self.arrived = defer.Deferred()

    def make(self, endpoint, session):
        callee = Callee(endpoint, session, **self.options)
        self.made.append(callee)
        if not self.arrived.called:
            self.arrived.callback(callee)
        return callee


@pytest.fixture
def callees():
    return Callees()


@pytest.fixture
def endpoint(callees):
    ep = SipEndpoint(reactor, "127.0.0.1", 0)
    ep.inbound = lambda session: callees.make(ep, session)
    ep.start()
    yield ep
    pytest_twisted.blockon(ep.stop())


@defer.inlineCallbacks
def finish(sipp):
    code = yield sipp.wait(reactor)
    sipp.stop()
    assert code == 0, sipp.log()


@pytest_twisted.inlineCallbacks
def test_inbound_call_rings_answers_holds_resumes_and_caller_hangs_up(endpoint, callees,
                                                                      tmp_path):
    sipp = Sipp("uac_call.xml", tmp_path, remote=endpoint.port).start()
    try:
        yield finish(sipp)
        callee = callees.made[-1]
        yield callee.done.addTimeout(5, reactor)
        assert callee.kinds() == ["Confirmed", "RemoteModify", "RemoteModify", "Ended", "Closed"]
        assert b"a=sendonly" in callee.events[1].sdp
        assert callee.events[3] == s.Ended("remote", None, "BYE")
        sent = [m.status for d, m in callee.traces if d == "out" and not hasattr(m, "method")]
        assert sent[:4] == [100, 180, 183, 200]
        assert not endpoint.listeners
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_inbound_call_we_hang_up(endpoint, callees, tmp_path):
    callees.options = {"early": False}
    sipp = Sipp("uac_called_bye.xml", tmp_path, remote=endpoint.port).start()
    try:
        callee = yield callees.arrived.addTimeout(10, reactor)
        yield callee.confirmed.addTimeout(10, reactor)
        endpoint.execute(callee.session, callee.session.hangup(16))
        yield finish(sipp)
        yield callee.done.addTimeout(5, reactor)
        assert callee.kinds() == ["Confirmed", "Closed"]
        bye = [m for d, m in callee.traces if d == "out" and getattr(m, "method", "") == "BYE"]
        assert bye and bye[0].headers.get("Reason") == "Q.850;cause=16"
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_inbound_call_cancelled_before_answer(endpoint, callees, tmp_path):
    callees.options = {"answer": False, "early": False}
    sipp = Sipp("uac_cancel.xml", tmp_path, remote=endpoint.port).start()
    try:
        yield finish(sipp)
        callee = callees.made[-1]
        yield callee.done.addTimeout(5, reactor)
        assert callee.kinds() == ["Cancelled", "Closed"]
        assert callee.events[0] == s.Cancelled(16)
    finally:
        sipp.stop()

