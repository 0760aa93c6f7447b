"""Whole H.323 calls on real loopback sockets, judged by tshark: our ``OutgoingCall`` (through
``adapter.CallRunner``) against the scripted gateway fixture (tests/h323/gateway.py) in both
modes, fastStart accepted and fastStart refused with a separate H.245 channel, and in the shapes
deployed gateways have (H.225.0 v2-v4, tunnelling on or off). dumpcap captures everything both
sides send; tshark must decode every TPKT as Q.931/H.225.0 or H.245 with no "Malformed" and no
expert warning or error."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from protocols.h323 import call as callcore
from protocols.h323.adapter import CallRunner
from tests.h323 import wire
from tests.helpers import free_port
from tests.h323.gateway import Script, ScriptedGateway


class Listener:
    def __init__(self):
        self.events = []
        self.trace_log = []
        self._waiters = []

    def callEvent(self, event):
        self.events.append(event)
        for waiter in list(self._waiters):
            kind, d = waiter
            if isinstance(event, kind):
                self._waiters.remove(waiter)
                d.callback(event)

    def trace(self, direction, summary):
        self.trace_log.append((direction, summary))

    def wait(self, kind, timeout=10):
        for e in self.events:
            if isinstance(e, kind):
                return defer.succeed(e)
        d = defer.Deferred()
        self._waiters.append((kind, d))
        return within(d, timeout)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def within(d, seconds):
    timeout = reactor.callLater(seconds, d.cancel)

    def done(result):
        if timeout.active():
            timeout.cancel()
        return result
    return d.addBoth(done)


def sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@defer.inlineCallbacks
def wait_until(predicate, timeout=10.0, step=0.02):
    """Poll ``predicate`` on the reactor until it holds (AssertionError after ``timeout``)."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met in time")
        yield sleep(step)


def options(**kw):
    values = dict(dest_number="4930123456", rtp=("127.0.0.1", 30000), rtcp=("127.0.0.1", 30001),
                  calling_number="1001", display="callgw test")
    values.update(kw)
    return callcore.CallOptions(**values)


@pytest.fixture
def h323_capture():
    wire.require_tshark()


def _assert_clean(cap, q931_at_least):
    """No malformed packet or expert warning; every TPKT is Q.931 (each carrying H.225.0) or
    H.245. Returns the number of Q.931 and of separate-channel H.245 messages."""
    assert cap.problems() == []
    layers = cap.layers()
    assert layers["TPKT"] == layers["Q.931"] + layers["H.245"], layers
    assert layers["Q.931"] == layers["H.225.0 CS"], layers
    assert layers["Q.931"] >= q931_at_least, layers
    return layers["Q.931"], layers["H.245"]


def _gw_port_and_start(script):
    gw = ScriptedGateway(reactor, script)
    port = gw.start()
    return gw, port


@pytest_twisted.inlineCallbacks
def test_fast_start_accepted_tunnelled_v4_dtmf_after_tcs_and_msd_then_we_hang_up(h323_capture):
    gw, port = _gw_port_and_start(Script(fast_start=True, tunnelling=True, version=4))
    listener = Listener()
    try:
        with wire.capture([port]) as cap:
            runner = CallRunner(callcore.OutgoingCall(11, options()), ("127.0.0.1", port),
                                reactor=reactor, clock=reactor, listener=listener)
            yield runner.start()
            yield listener.wait(callcore.Connected)
            runner.send_dtmf("5")          # before TCS/msd are done: held back
            gw_call = gw.calls[0]
            yield within(gw_call.record.h245_ready, 10)
            yield wait_until(lambda: gw_call.record.digits == "5")
            runner.release(16)
            cause = yield within(gw_call.record.released, 10)
            yield sleep(0.2)
        h225, h245 = _assert_clean(cap, 5)
    finally:
        yield gw.stop()
    tx = listener.of(callcore.MediaTransmit)
    assert tx == [callcore.MediaTransmit("PCMU", ("127.0.0.1", 40000), ("127.0.0.1", 40001), True)]
    assert listener.of(callcore.MediaReceive)[0].fast_start
    assert listener.of(callcore.Alerting) == [callcore.Alerting(inband=True)]
    assert gw_call.record.send_to == ("127.0.0.1", 30000)
    assert gw_call.record.digits == "5"
    names = gw_call.record.h245
    assert names.index("userInput") > names.index("terminalCapabilitySetAck")
    assert names.index("userInput") > names.index("masterSlaveDeterminationAck")
    assert "openLogicalChannel" not in names            # fastStart opened the media
    assert names[-1] == "endSessionCommand"
    assert cause == 16
    released = listener.of(callcore.Released)
    assert released and not released[0].by_peer
    assert "h245" in " ".join(cap.protocols()), "tunnelled H.245 must be dissected as H.245"


@pytest_twisted.inlineCallbacks
def test_fast_start_refused_separate_h245_channels_both_ways_gateway_hangs_up(h323_capture):
    h245_port = free_port()
    gw, port = _gw_port_and_start(Script(fast_start=False, tunnelling=False, version=4,
                                         h245_port=h245_port))
    listener = Listener()
    try:
        with wire.capture([port, h245_port]) as cap:
            runner = CallRunner(callcore.OutgoingCall(12, options(tunnelling=False)),
                                ("127.0.0.1", port), reactor=reactor, clock=reactor,
                                listener=listener)
            yield runner.start()
            tx = yield listener.wait(callcore.MediaTransmit)
            rx = yield listener.wait(callcore.MediaReceive)
            gw_call = gw.calls[0]
            runner.send_dtmf("#")
            yield wait_until(lambda: gw_call.record.digits == "#")
            gw_call.hangup(16)
            released = yield listener.wait(callcore.Released)
            yield sleep(0.2)
        _h225, h245 = _assert_clean(cap, 4)
    finally:
        yield gw.stop()
    assert (tx.codec, tx.rtp, tx.fast_start) == ("PCMU", ("127.0.0.1", 40000), False)
    assert (rx.codec, rx.fast_start) == ("PCMU", False)
    assert gw_call.record.send_to == ("127.0.0.1", 30000)
    assert gw_call.record.digits == "#"
    assert "openLogicalChannel" in gw_call.record.h245
    assert "openLogicalChannelAck" in gw_call.record.h245
    assert released.by_peer and released.cause == 16
    assert h245 >= 10, "the separate H.245 connection must be dissected as H.245"


SHAPES = [
    # (H.225.0 version, tunnelling, fastStart accepted)
    (2, False, True), (2, True, True), (3, True, False), (3, False, False), (4, False, True),
    (4, True, False),
]


@pytest.mark.parametrize("version,tunnelling,fast_start", SHAPES)
@pytest_twisted.inlineCallbacks
def test_deployed_gateway_shapes(h323_capture, version, tunnelling, fast_start):
    h245_port = free_port()
    gw, port = _gw_port_and_start(Script(fast_start=fast_start, tunnelling=tunnelling,
                                         version=version, h245_port=h245_port))
    listener = Listener()
    try:
        with wire.capture([port, h245_port]) as cap:
            runner = CallRunner(callcore.OutgoingCall(100 + version, options()),
                                ("127.0.0.1", port), reactor=reactor, clock=reactor,
                                listener=listener)
            yield runner.start()
            tx = yield listener.wait(callcore.MediaTransmit)
            yield listener.wait(callcore.MediaReceive)
            yield listener.wait(callcore.Connected)
            runner.send_dtmf("1")
            runner.send_dtmf("*")
            gw_call = gw.calls[0]
            yield within(gw_call.record.h245_ready, 10)
            yield wait_until(lambda: gw_call.record.digits == "1*")
            runner.release(16)
            yield within(gw_call.record.released, 10)
            yield sleep(0.2)
        _h225, h245 = _assert_clean(cap, 4)
    finally:
        yield gw.stop()
    assert tx.fast_start is fast_start and tx.rtp == ("127.0.0.1", 40000)
    assert gw_call.record.digits == "1*"
    assert "h245" in " ".join(cap.protocols())
    assert runner.core.remote_version == version


@pytest_twisted.inlineCallbacks
def test_busy_gateway_releases_with_cause_17(h323_capture):
    gw, port = _gw_port_and_start(Script(reject_cause=17))
    listener = Listener()
    try:
        with wire.capture([port]) as cap:
            runner = CallRunner(callcore.OutgoingCall(13, options()), ("127.0.0.1", port),
                                reactor=reactor, clock=reactor, listener=listener)
            yield runner.start()
            released = yield listener.wait(callcore.Released)
            yield sleep(0.2)
        _assert_clean(cap, 2)
    finally:
        yield gw.stop()
    assert released.cause == 17 and released.by_peer
    assert not listener.of(callcore.Connected)


@pytest_twisted.inlineCallbacks
def test_unreachable_gateway_is_a_release_not_a_crash():
    listener = Listener()
    runner = CallRunner(callcore.OutgoingCall(14, options()), ("127.0.0.1", free_port()),
                        reactor=reactor, clock=reactor, listener=listener)
    yield runner.start()
    released = listener.of(callcore.Released)
    assert released and released[0].cause == 27
