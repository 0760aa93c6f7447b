"""callgw/callserver/legs/h323.py and h323_provider.py: the H.323 leg and its provider on real
loopback sockets against the scripted gateway and gatekeeper FIXTURES (tests/h323/gateway.py,
gatekeeper.py): neutral events in and out in both modes, DTMF, release both ways, number
rewriting, admission through a gatekeeper (ACF address used; ARJ reason -> cause), health by
keep-alive RRQ and by Status Enquiry, and tshark's verdict on the probe and the RAS."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface.verify import verifyObject

from callgw import config
from callgw.callserver.events import (Alerting, Connect, Dtmf, MediaDescription, Proceeding,
                                      Release, Setup, Trace)
from callgw.callserver.legs import h323_provider, registry
from callgw.interfaces import ICallLeg, ILegProvider
from protocols.h323 import q931
from protocols.h323.adapter import ProbeFailed
from tests.h323 import wire
from tests.h323.gatekeeper import ScriptedGatekeeper
from tests.h323.gateway import Script, ScriptedGateway
from tests.h323.test_wire import wait_until, within
from tests.helpers import free_port

MEDIA = MediaDescription("127.0.0.1", 31000, ("PCMU", "PCMA"))


class Sink:
    def __init__(self):
        self.events = []

    def __call__(self, leg, event):
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def wait(self, kind, timeout=10):
        return wait_until(lambda: self.of(kind), timeout)


@pytest.fixture
def provider():
    p = h323_provider.build(config.defaults(), reactor)
    pytest_twisted.blockon(p.start())
    yield p
    pytest_twisted.blockon(p.stop())


def row(port, **options):
    return {"name": "gw", "protocol": "h323", "host": "127.0.0.1", "port": port,
            "strip_digits": 0, "prepend": "", "keep_plus": True, "caller_id": "pass",
            "options": h323_provider.PROTOCOL.check_options(options)}


def test_h323_cause_tables_are_registered_in_the_one_cause_table():
    from callgw import causes
    assert causes.from_protocol("h323", "inConf") == 17
    assert causes.to_protocol("h323", 17) == "inConf"
    assert causes.to_protocol("h323", 16) == "undefinedReason"
    assert causes.from_protocol("h323-ras", "calledPartyNotRegistered") == 20
    assert causes.cause_text(101) == "Message not compatible with call state"


def test_registry_entry_and_interfaces(provider):
    assert registry.protocol("h323") is h323_provider.PROTOCOL
    assert h323_provider.PROTOCOL.default_port == 1720
    verifyObject(ILegProvider, provider)
    verifyObject(ICallLeg, provider.make_leg(row(1720), "c0"))


@pytest.mark.parametrize("fast_start,tunnelling", [("on", "on"), ("off", "off")])
@pytest_twisted.inlineCallbacks
def test_call_answered_dtmf_and_release_by_us(provider, fast_start, tunnelling):
    gw = ScriptedGateway(reactor, Script(fast_start=fast_start == "on",
                                         tunnelling=tunnelling == "on", h245_port=free_port()))
    port = gw.start()
    sink = Sink()
    try:
        leg = provider.make_leg(row(port, fast_start=fast_start, tunnelling=tunnelling), "c1")
        leg.attach(sink)
        leg.send(Setup("c1", "+4930123456", "+4930100000", media=MEDIA))
        yield sink.wait(Connect)
        gw_call = gw.calls[0]
        leg.send(Dtmf("7"))
        yield wait_until(lambda: gw_call.record.digits == "7")
        leg.send(Release(16, "client hung up"))
        cause = yield within(gw_call.record.released, 10)
    finally:
        yield gw.stop()
    (connect,) = sink.of(Connect)
    assert (connect.media.address, connect.media.port) == gw.script.rtp
    assert connect.media.codecs == ("PCMU",) and connect.media.telephone_event is None
    assert sink.of(Proceeding) and sink.of(Alerting)
    assert gw_call.record.send_to == ("127.0.0.1", 31000)
    assert cause == 16 and not sink.of(Release)
    setup = gw_call.record.setup
    called = q931.parse_party_number(setup.q931.get(q931.IE.CALLED_PARTY_NUMBER))
    assert (called["digits"], called["type"]) == ("4930123456", 1)       # international
    calling = q931.parse_party_number(setup.q931.get(q931.IE.CALLING_PARTY_NUMBER))
    assert calling["digits"] == "4930100000" and calling["presentation"] == 0
    assert ("fastStart" in setup.body) is (fast_start == "on")
    stats = leg.statistics()
    assert stats == {"fast_start": fast_start == "on",
                     "h245": "tunnelled" if tunnelling == "on" else "separate",
                     "h225_version": 4, "codec": "PCMU", "gatekeeper": False}
    assert any(t.direction == "out" and t.summary.startswith("setup") for t in sink.of(Trace))


@pytest_twisted.inlineCallbacks
def test_gateway_hangs_up_and_sends_dtmf(provider):
    gw = ScriptedGateway(reactor, Script())
    port = gw.start()
    sink = Sink()
    try:
        leg = provider.make_leg(row(port), "c2")
        leg.attach(sink)
        leg.send(Setup("c2", "+4930123", None, privacy=True, media=MEDIA))
        yield sink.wait(Connect)
        gw_call = gw.calls[0]
        yield within(gw_call.record.h245_ready, 10)
        from protocols.h323 import h245
        gw_call.send_h245(h245.uii_signal("9"), h245.uii_alphanumeric("#"))
        yield sink.wait(Dtmf)
        yield wait_until(lambda: len(sink.of(Dtmf)) == 2)
        gw_call.hangup(17)
        yield sink.wait(Release)
    finally:
        yield gw.stop()
    assert [d.digit for d in sink.of(Dtmf)] == ["9", "#"]
    assert sink.of(Release)[0].cause == 17


@pytest_twisted.inlineCallbacks
def test_number_rewriting_and_undiallable_numbers(provider):
    gw = ScriptedGateway(reactor, Script(reject_cause=17))
    port = gw.start()
    sink = Sink()
    try:
        gateway = dict(row(port), strip_digits=2, prepend="0")
        leg = provider.make_leg(gateway, "c3")
        leg.attach(sink)
        leg.send(Setup("c3", "+4930123", media=MEDIA))
        yield sink.wait(Release)
        bad = provider.make_leg(dict(row(port), prepend="9,"), "c4")
        bad_sink = Sink()
        bad.attach(bad_sink)
        bad.send(Setup("c4", "+4930123", media=MEDIA))
    finally:
        yield gw.stop()
    setup = gw.calls[0].record.setup
    called = q931.parse_party_number(setup.q931.get(q931.IE.CALLED_PARTY_NUMBER))
    assert (called["digits"], called["type"]) == ("030123", 0)
    assert sink.of(Release)[0].cause == 17
    assert bad_sink.of(Release)[0].cause == 28


@pytest_twisted.inlineCallbacks
def test_gatekeeper_admits_and_the_setup_goes_to_the_acf_address(provider):
    gw = ScriptedGateway(reactor, Script())
    gw_port = gw.start()
    gk = ScriptedGatekeeper(route_to=("127.0.0.1", gw_port))
    gk_port = gk.start(reactor)
    sink = Sink()
    try:
        # the row's own address is wrong on purpose: only the ACF knows where the gateway is
        leg = provider.make_leg(row(free_port(), gatekeeper=f"127.0.0.1:{gk_port}"), "c5")
        leg.attach(sink)
        with wire.capture([gk_port], ras_ports=[gk_port]) as cap:
            leg.send(Setup("c5", "+4930123", media=MEDIA))
            yield sink.wait(Connect)
            leg.send(Release(16))
            yield within(gk.wait_for("disengageRequest"), 10)
        assert cap.problems() == []
    finally:
        yield gw.stop()
        yield gk.stop()
    kinds = [k for k, _ in gk.received]
    assert kinds[:2] == ["registrationRequest", "admissionRequest"]
    assert "disengageRequest" in kinds
    assert any(t.summary.startswith("ACF") for t in sink.of(Trace))


@pytest_twisted.inlineCallbacks
def test_admission_reject_releases_with_the_mapped_cause(provider):
    gk = ScriptedGatekeeper(arj_reason="calledPartyNotRegistered")
    gk_port = gk.start(reactor)
    sink = Sink()
    try:
        leg = provider.make_leg(row(1720, gatekeeper=f"127.0.0.1:{gk_port}"), "c6")
        leg.attach(sink)
        leg.send(Setup("c6", "+4930123", media=MEDIA))
        yield sink.wait(Release)
    finally:
        yield gk.stop()
    release = sink.of(Release)[0]
    assert release.cause == 20 and "calledPartyNotRegistered" in release.text


@pytest_twisted.inlineCallbacks
def test_health_with_a_gatekeeper_is_the_keep_alive_rrq(provider):
    gk = ScriptedGatekeeper()
    gk_port = gk.start(reactor)
    try:
        gateway = row(1720, gatekeeper=f"127.0.0.1:{gk_port}")
        first = yield within(provider.ping(gateway), 10)
        second = yield within(provider.ping(gateway), 10)
        gk.rrj_reason = "securityDenial"
        with pytest.raises(h323_provider.RasFailure, match="securityDenial"):
            yield within(provider.ping(gateway), 10)
    finally:
        yield gk.stop()
    assert first >= 0 and second >= 0
    rrqs = [body for kind, body in gk.received if kind == "registrationRequest"]
    assert [b["keepAlive"] for b in rrqs] == [False, True, True]


@pytest_twisted.inlineCallbacks
def test_health_without_a_gatekeeper_is_tcp_and_status_enquiry(provider):
    gw = ScriptedGateway(reactor, Script())
    port = gw.start()
    try:
        with wire.capture([port]) as cap:
            rtt = yield within(provider.ping(row(port)), 10)
        with pytest.raises(ProbeFailed, match="cannot connect"):
            yield within(provider.ping(row(free_port())), 10)
        assert cap.problems() == []
        layers = cap.layers()
    finally:
        yield gw.stop()
    assert rtt >= 0 and gw.enquiries == 1 and gw.calls == []
    assert layers["Q.931"] == layers["H.225.0 CS"] == 2      # Status Enquiry and its Status


@pytest_twisted.inlineCallbacks
def test_recovery_and_release_of_an_orphan_call(provider):
    gw = ScriptedGateway(reactor, Script())
    port = gw.start()
    sink = Sink()
    try:
        leg = provider.make_leg(row(port), "c7")
        leg.attach(sink)
        assert leg.recovery() is None
        leg.send(Setup("c7", "+4930123", media=MEDIA))
        yield sink.wait(Connect)
        recovery = leg.recovery()
        import json
        recovery = json.loads(json.dumps(recovery))          # it is stored as JSON
        assert recovery["protocol"] == "h323" and recovery["port"] == port
        with wire.capture([port]) as cap:
            rtt = yield within(provider.release_orphan(row(port), recovery), 10)
        assert cap.problems() == []
    finally:
        yield gw.stop()
    orphan = gw.connections[-1]
    assert orphan.record.messages == ["releaseComplete"] and rtt >= 0
    assert recovery["call_reference"] == gw.calls[0].crv
