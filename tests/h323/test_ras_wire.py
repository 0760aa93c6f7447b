"""RAS on real loopback UDP, judged by tshark: our RasClient (through adapter.RasProtocol)
against the scripted gatekeeper fixture (tests/h323/gatekeeper.py): GRQ/GCF, RRQ/RCF, keep-alive
RRQ, ARQ/ACF and ARJ, DRQ/DCF, IRQ/IRR, URQ/UCF both ways. dumpcap captures both sides; tshark,
told the gatekeeper's port is RAS (``-d udp.port==P,h225``; 1719 is its only default), must decode
every datagram as H.225.0 RAS with no "Malformed" and no expert warning."""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor

from protocols.h323 import ras
from protocols.h323.adapter import RasProtocol
from tests.h323 import wire
from tests.h323.gatekeeper import ScriptedGatekeeper
from tests.h323.test_wire import sleep, within

CID = bytes(range(16))


class Listener:
    def __init__(self):
        self.events = []
        self.waiters = []

    def rasEvent(self, event):
        self.events.append(event)
        for kind, d in list(self.waiters):
            if isinstance(event, kind):
                self.waiters.remove((kind, d))
                d.callback(event)

    def wait(self, kind, after=0):
        seen = [e for e in self.events if isinstance(e, kind)]
        if len(seen) > after:
            return defer.succeed(seen[after])
        d = defer.Deferred()
        self.waiters.append((kind, d))
        return within(d, 10)


def start_client(gk_port):
    listener = Listener()
    proto = RasProtocol(None, ("127.0.0.1", gk_port), clock=reactor, listener=listener)
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    proto.client = ras.RasClient(("127.0.0.1", port.getHost().port), ("127.0.0.1", 1720),
                                 alias="callgw-test", ttl=60)
    return proto, port, listener


@pytest_twisted.inlineCallbacks
def test_registration_keep_alive_admission_disengage_irr_unregistration():
    wire.require_tshark()
    gk = ScriptedGatekeeper(route_to=("127.0.0.1", 1820), ttl=2)
    gk_port = gk.start(reactor)
    proto, port, listener = start_client(gk_port)
    try:
        with wire.capture([gk_port], ras_ports=[gk_port]) as cap:
            proto.apply(proto.client.discover())
            found = yield listener.wait(ras.GatekeeperFound)
            proto.apply(proto.client.register())
            reg = yield listener.wait(ras.Registered)
            keep = yield listener.wait(ras.Registered, after=1)    # TTL 2 s: keep-alive at 1 s
            proto.apply(proto.client.admit("call-1", dest_number="4930123", call_id=CID,
                                           conference_id=CID, call_reference=5))
            admitted = yield listener.wait(ras.Admitted)
            gk.send_irq(call_id=CID)
            yield within(gk.wait_for("infoRequestResponse"), 10)
            proto.apply(proto.client.disengage("call-1", call_id=CID, conference_id=CID,
                                               call_reference=5, answered=True))
            yield listener.wait(ras.Disengaged)
            proto.apply(proto.client.unregister())
            yield listener.wait(ras.Unregistered)
            proto.apply(proto.client.register())
            yield listener.wait(ras.Registered, after=2)
            gk.send_urq()
            by_gk = yield listener.wait(ras.Unregistered, after=1)
            yield sleep(0.2)
        assert cap.problems() == []
        layers = cap.layers()
    finally:
        yield port.stopListening()
        yield gk.stop()
    assert found.gatekeeper_id == "ScriptedGK"
    assert (reg.endpoint_id, reg.keep_alive, keep.keep_alive) == ("ep-0001", False, True)
    assert admitted.dest_call_signal_address == ("127.0.0.1", 1820)
    assert by_gk.by_gatekeeper
    kinds = [k for k, _ in gk.received]
    assert kinds[:3] == ["gatekeeperRequest", "registrationRequest", "registrationRequest"]
    assert gk.received[2][1]["keepAlive"] is True
    for kind in ("admissionRequest", "infoRequestResponse", "disengageRequest",
                 "unregistrationRequest", "unregistrationConfirm"):
        assert kind in kinds
    # every datagram both ways is a RAS message tshark decoded
    assert layers["H.225.0 RAS"] >= 2 * len(kinds) - 1


@pytest_twisted.inlineCallbacks
def test_admission_reject_and_registration_reject_reasons_on_the_wire():
    wire.require_tshark()
    gk = ScriptedGatekeeper(arj_reason="calledPartyNotRegistered")
    gk_port = gk.start(reactor)
    proto, port, listener = start_client(gk_port)
    try:
        with wire.capture([gk_port], ras_ports=[gk_port]) as cap:
            proto.apply(proto.client.register())
            yield listener.wait(ras.Registered)
            proto.apply(proto.client.admit("c", dest_number="999", call_id=CID,
                                           conference_id=CID, call_reference=6))
            rejected = yield listener.wait(ras.AdmissionRejected)
            gk.rrj_reason = "securityDenial"
            proto.apply(proto.client.register())
            rrj = yield listener.wait(ras.RegistrationRejected)
            yield sleep(0.2)
        assert cap.problems() == []
        assert cap.layers()["H.225.0 RAS"] == 6
    finally:
        yield port.stopListening()
        yield gk.stop()
    assert (rejected.reason, rejected.cause) == ("calledPartyNotRegistered", 20)
    assert rrj.reason == "securityDenial"


@pytest_twisted.inlineCallbacks
def test_silent_gatekeeper_times_out_after_retries():
    gk = ScriptedGatekeeper(silent=True)
    gk_port = gk.start(reactor)
    proto, port, listener = start_client(gk_port)
    from twisted.internet.task import Clock
    clock = Clock()
    proto.clock = clock
    try:
        proto.apply(proto.client.register())
        for _ in range(ras.RETRIES + 1):
            clock.advance(ras.RETRY)
        timeout = yield listener.wait(ras.RasTimeout)
        yield sleep(0.1)
    finally:
        yield port.stopListening()
        yield gk.stop()
    assert timeout.request == "registrationRequest"
    assert [k for k, _ in gk.received] == ["registrationRequest"] * (ras.RETRIES + 1)
