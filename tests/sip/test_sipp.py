"""The SIP call slave against a real peer: sipp playing the PSTN gateway on 127.0.0.1.

Each test runs one sipp scenario from tests/sip/scenarios/ (``-m 1``, bounded by ``-timeout``)
against a ``SipLeg`` on a real reactor, and checks both sides: sipp's exit code (0 when its
scenario ran to the end) and the neutral events the leg reported.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from callgw.callserver.events import (Alerting, Connect, Hold, MediaAnswer, MediaDescription,
                                      Release, Setup, Trace)
from protocols.sip.adapter import SipEndpoint
from protocols.sip.session import State
from tests.sip.sipp import Sipp

pytestmark = pytest.mark.peers("sipp")

MEDIA = MediaDescription("127.0.0.1", 26998, ("PCMU", "PCMA"), 101, 20, "sendrecv")


class Recorder:
    """The leg's sink: keeps events, fires waiters when an event of a kind arrives."""

    def __init__(self):
        self.events = []
        self.traces = []
        self.waiters = []

    def __call__(self, leg, event):
        if isinstance(event, Trace):
            self.traces.append(event)
            return
        self.events.append(event)
        for kind, d in list(self.waiters):
            if isinstance(event, kind):
                self.waiters.remove((kind, d))
                reactor.callLater(0, d.callback, event)

    def wait_for(self, kind, timeout=15):
        for event in self.events:
            if isinstance(event, kind):
                return defer.succeed(event)
        d = defer.Deferred()
        self.waiters.append((kind, d))
        return d.addTimeout(timeout, reactor)

    def kinds(self):
        return [type(e).__name__ for e in self.events]


@pytest.fixture
def endpoint():
    ep = SipEndpoint(reactor, "127.0.0.1", 0)
    ep.start()
    yield ep
    pytest_twisted.blockon(ep.stop())


def gateway(sipp, **kw):
    record = {"address": "127.0.0.1", "port": sipp.port,
              "transport": "tcp" if sipp.transport.startswith("t") else "udp",
              "strip_digits": 0, "prepend": "", "keep_plus": True}
    record.update(kw)
    return record


@defer.inlineCallbacks
def place_call(endpoint, sipp, tmp_path, **gw):
    from callgw.callserver.legs.sip import SipLeg
    leg = SipLeg(endpoint, gateway(sipp, **gw), reactor)
    sink = Recorder()
    leg.attach(sink)
    leg.send(Setup("call-1", "+4930123456", caller="+4940555", media=MEDIA))
    yield task.deferLater(reactor, 0, lambda: None)
    return leg, sink


def run(scenario, tmp_path, **kw):
    sipp = Sipp(scenario, tmp_path, **kw)
    sipp.start()
    return sipp


@defer.inlineCallbacks
def finish(sipp):
    code = yield sipp.wait(reactor)
    sipp.stop()
    assert code == 0, sipp.log()


@pytest_twisted.inlineCallbacks
def test_answer_then_bye_from_us(endpoint, tmp_path):
    sipp = run("uas_answer.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        connect = yield sink.wait_for(Connect)
        assert connect.media.port == sipp.media_port and connect.media.codecs[0] == "PCMU"
        assert connect.media.telephone_event == 101
        leg.send(Release(16))
        yield finish(sipp)
        assert sink.kinds() == ["Proceeding", "Alerting", "Connect"]
        summaries = [t.summary.split()[0] for t in sink.traces]
        assert summaries[:2] == ["INVITE", "100"] and "ACK" in summaries and "BYE" in summaries
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_answer_then_bye_from_the_gateway(endpoint, tmp_path):
    sipp = run("uas_gateway_bye.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        release = yield sink.wait_for(Release)
        assert release.cause == 16
        yield finish(sipp)
        assert sink.kinds() == ["Proceeding", "Alerting", "Connect", "Release"]
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_busy_486(endpoint, tmp_path):
    sipp = run("uas_busy.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        release = yield sink.wait_for(Release)
        assert release.cause == 17 and release.text == "486 Busy Here"
        yield finish(sipp)
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_503(endpoint, tmp_path):
    sipp = run("uas_503.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        release = yield sink.wait_for(Release)
        assert release.cause == 41
        yield finish(sipp)
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_ringing_no_answer_we_cancel(endpoint, tmp_path):
    sipp = run("uas_no_answer.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path, no_answer_timeout=1.0)
        yield sink.wait_for(Alerting)
        release = yield sink.wait_for(Release)
        assert release.cause == 19
        yield finish(sipp)
        assert any(t.summary.startswith("CANCEL") for t in sink.traces)
        assert any(t.summary.startswith("487") for t in sink.traces)
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_answer_crossing_our_cancel_is_acked_and_byed(endpoint, tmp_path):
    # the caller hangs up while ringing; the callee answers anyway (RFC 3261 9.1): sipp's
    # scenario ends only once it got the ACK for its 200 and a BYE
    sipp = run("uas_ignore_cancel.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        yield sink.wait_for(Alerting)
        leg.send(Release(16))
        leg.close()                               # as the handler does: the leg is done
        yield finish(sipp)
        assert sink.kinds() == ["Proceeding", "Alerting"]
        log = (tmp_path / "sipp_messages.log").read_text(errors="replace")
        assert "Reason: Q.850;cause=16" in log
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_401_challenge_then_authenticated_invite(endpoint, tmp_path):
    sipp = run("uas_auth.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path, username="alice",
                                     password="s3cret")
        yield sink.wait_for(Connect)
        leg.send(Release(16))
        yield finish(sipp)
        invites = [t for t in sink.traces if t.summary.startswith("INVITE")]
        assert len(invites) == 2
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_gateway_ignores_our_first_invite(endpoint, tmp_path):
    # -nr: sipp then matches our identical retransmission to its second <recv INVITE>
    sipp = run("uas_ignore_first.xml", tmp_path, extra=["-nr"])
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        yield sink.wait_for(Connect)
        leg.send(Release(16))
        yield finish(sipp)
        invites = [t for t in sink.traces if t.direction == "out"
                   and t.summary.startswith("INVITE")]
        assert len(invites) >= 2                     # Timer A carried the call
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_same_call_over_tcp(endpoint, tmp_path):
    sipp = run("uas_answer.xml", tmp_path, transport="t1")
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        yield sink.wait_for(Connect)
        leg.send(Release(16))
        yield finish(sipp)
        assert sink.kinds() == ["Proceeding", "Alerting", "Connect"]
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_early_media_183(endpoint, tmp_path):
    sipp = run("uas_early_media.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        alerting = yield sink.wait_for(Alerting)
        assert alerting.media is not None and alerting.media.port == sipp.media_port
        yield sink.wait_for(Connect)
        leg.send(Release(16))
        yield finish(sipp)
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_hold_and_resume(endpoint, tmp_path):
    sipp = run("uas_hold.xml", tmp_path)
    try:
        leg, sink = yield place_call(endpoint, sipp, tmp_path)
        yield sink.wait_for(Connect)
        leg.send(Hold(True))
        yield sink.wait_for(MediaAnswer)
        sink.events.clear()
        leg.send(Hold(False))
        yield sink.wait_for(MediaAnswer)
        leg.send(Release(16))
        yield finish(sipp)
        invites = [t for t in sink.traces if t.direction == "out"
                   and t.summary.startswith("INVITE")]
        assert len(invites) == 3          # the call, hold, resume
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_options_ping(endpoint, tmp_path):
    from callgw.callserver.legs.sip import options_ping
    sipp = run("uas_options.xml", tmp_path)
    try:
        rtt = yield options_ping(endpoint, gateway(sipp), timeout=5)
        assert 0 <= rtt < 5
        yield finish(sipp)
    finally:
        sipp.stop()



@pytest_twisted.inlineCallbacks
def test_fifty_concurrent_calls(endpoint, tmp_path):
    from callgw.callserver.legs.sip import SipLeg
    sipp = run("uas_answer.xml", tmp_path, calls=50)
    try:
        connected, released = [], []

        def sink(leg, event):
            if isinstance(event, Connect):
                connected.append(leg)
                leg.send(Release(16))
            elif isinstance(event, Release):
                released.append(event)

        for i in range(50):
            leg = SipLeg(endpoint, gateway(sipp), reactor)
            leg.attach(sink)
            leg.send(Setup(f"call-{i}", "+4930123456", media=MEDIA))
        yield finish(sipp)
        assert len(connected) == 50 and released == []
        # every session is over; their entries wait for Timer M of their INVITE transactions
        assert not endpoint.listeners
        assert all(sess.state is State.TERMINATED for sess in endpoint.dialogs.values())
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_uas_core_answers_a_real_peer(endpoint, tmp_path):
    # sipp as a UAC probing our port: OPTIONS gets 200 with Allow, an INVITE gets 403 whose
    # ACK (same branch) confirms our INVITE server transaction
    from protocols.sip.transaction import ServerInvite
    from protocols.sip.transaction import State as TxState
    sipp = run("uac_probe.xml", tmp_path, remote=endpoint.port)
    try:
        yield finish(sipp)
        invites = [tx for tx in endpoint.table.servers.values() if isinstance(tx, ServerInvite)]
        assert [tx.state for tx in invites] == [TxState.CONFIRMED]
        assert invites[0].last_response.status == 403
    finally:
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_tcp_listener_on_its_own_port(tmp_path):
    # [sip] tcp apart from [sip] udp: sipp probes the TCP port over TCP, and a call over TCP
    # tells the gateway that port in its Via and Contact
    ep = SipEndpoint(reactor, "127.0.0.1", 0, tcp_port=0)
    ep.start()
    try:
        assert ep.tcp_port != ep.port
        probe = run("uac_probe.xml", tmp_path / "probe" if (tmp_path / "probe").mkdir() is None
                    else None, transport="t1", remote=ep.tcp_port)
        yield finish(probe)
        (tmp_path / "call").mkdir()
        sipp = run("uas_answer.xml", tmp_path / "call", transport="t1")
        leg, sink = yield place_call(ep, sipp, tmp_path)
        yield sink.wait_for(Connect)
        leg.send(Release(16))
        yield finish(sipp)
        log = (tmp_path / "call" / "sipp_messages.log").read_text(errors="replace")
        assert f"Via: SIP/2.0/TCP 127.0.0.1:{ep.tcp_port};" in log
        assert f"<sip:callgw@127.0.0.1:{ep.tcp_port};transport=tcp>" in log
    finally:
        yield ep.stop()
