"""The call handler's transition table, timers and failover, with fake legs and task.Clock."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from callgw.callserver import events as ev
from callgw.callserver.handler import TRANSITIONS, CallContext, CallHandler, State, Timers
from callgw.callserver.logger import CallLogger
from callgw.proxy.gateways import GatewayDirectory
from protocols.client import messages as m
from tests.callpath.fakes import FakeLeg, SlaveFactory, SyncStore, gateway


def make(gateways=("gw1", "gw2"), scripts=None, timers=Timers(setup=2, no_answer=10,
                                                               max_attempts=3),
         media=None, max_duration=100.0):
    clock = Clock()
    clock.advance(1000)
    store = SyncStore()
    logger = CallLogger(store, clock, "node-1")
    directory = GatewayDirectory()
    gws = [gateway(n) for n in gateways]
    directory.load(gws)
    a = FakeLeg("client")
    slaves = SlaveFactory(scripts)
    ctx = CallContext("call-1", "alice", "default", "+15551234", "+15550001",
                      requested=clock.seconds(), max_duration=max_duration,
                      call_server="cs1")
    h = CallHandler(ctx, a, slaves, gws, clock, logger, timers, media, directory=directory)
    return h, a, slaves, clock, logger, store, directory


def start(h):
    h.start(ev.Setup("call-1", "+15551234", "+15550001"))


@pytest.fixture
def log_lines():
    """The text of every event logged during the test."""
    lines: list[str] = []

    def observe(event):
        if "log_format" in event:
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def test_answered_then_client_hangs_up():
    h, a, slaves, clock, logger, store, directory = make()
    start(h)
    b = slaves.legs[0]
    assert a.kinds() == ["Proceeding"]
    assert b.kinds() == ["Setup"]
    assert b.sent[0].target == "+15551234" and b.sent[0].caller == "+15550001"
    assert directory.active == {"gw1": 1}
    b.emit(ev.Proceeding())
    b.emit(ev.Alerting())
    clock.advance(3)
    b.emit(ev.Connect(ev.MediaDescription("127.0.0.1", 4000)))
    assert h.state is State.ACTIVE
    assert a.kinds() == ["Proceeding", "Alerting", "Connect"]
    clock.advance(5)
    a.emit(ev.Dtmf("5"))
    a.emit(ev.Release(16, "client hung up"))
    assert b.kinds() == ["Setup", "Dtmf", "Release"]
    assert h.state is State.RELEASED
    assert directory.active == {}
    cdr = logger.recent_cdrs()[0]
    assert cdr["gateway"] == "gw1" and cdr["cause"] == 16 and cdr["duration"] == 5.0
    assert cdr["stats"]["outcome"] == "answered" and cdr["stats"]["released_by"] == "a"
    logger.flush()
    kinds = [e["kind"] for e in store.db.call_events("call-1")]
    assert kinds == ["launched", "attempt", "proceeding", "ringing", "established",
                     "disconnected"]
    assert store.db.get_cdr("call-1")["cause"] == 16


def test_gateway_hangs_up():
    h, a, slaves, clock, logger, *_ = make(scripts={"gw1": {"Setup": (ev.Connect(),)}})
    start(h)
    slaves.legs[0].emit(ev.Release(16, "bye"))
    assert a.kinds()[-1] == "Release" and h.released_by == "b"


def test_busy_is_not_failed_over():
    h, a, slaves, clock, logger, *_ = make(scripts={"gw1": {"Setup": (ev.Release(17),)}})
    start(h)
    assert len(slaves.legs) == 1
    assert a.sent[-1].cause == 17
    assert h.outcome == "busy"


def test_5xx_fails_over_to_next_gateway():
    h, a, slaves, clock, logger, store, directory = make(
        scripts={"gw1": {"Setup": (ev.Proceeding(), ev.Release(41, "503"))},
                 "gw2": {"Setup": (ev.Alerting(), ev.Connect())}})
    start(h)
    assert [leg.gateway["name"] for leg in slaves.legs] == ["gw1", "gw2"]
    assert h.state is State.ACTIVE and h.gateway["name"] == "gw2"
    assert directory.active == {"gw2": 1}
    logger.flush()
    kinds = [e["kind"] for e in store.db.call_events("call-1")]
    assert "failover" in kinds and kinds.count("attempt") == 2


def test_setup_timeout_fails_over_then_gives_up():
    h, a, slaves, clock, *_ = make()
    start(h)
    clock.advance(2.1)
    assert slaves.legs[0].kinds() == ["Setup", "Release"]
    assert not slaves.legs[0].closed      # released, left to finish its own signalling
    assert len(slaves.legs) == 2
    clock.advance(2.1)
    assert a.sent[-1].cause == 102
    assert h.state is State.RELEASED and h.attempt == 2


def test_events_from_abandoned_leg_are_ignored():
    h, a, slaves, clock, *_ = make()
    start(h)
    clock.advance(2.1)
    slaves.legs[0].emit(ev.Connect())
    assert h.state is State.CALL_INITIATED


def test_no_answer_timer():
    h, a, slaves, clock, *_ = make(scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    start(h)
    clock.advance(9)
    assert h.state is State.DELIVERED
    clock.advance(1.1)
    assert a.sent[-1].cause == 19 and slaves.legs[0].sent[-1].cause == 19
    assert h.outcome == "no-answer"


def test_max_duration():
    h, a, slaves, clock, *_ = make(scripts={"gw1": {"Setup": (ev.Connect(),)}},
                                   max_duration=30)
    start(h)
    clock.advance(30.5)
    assert h.state is State.RELEASED and "maximum" in h.cause_text


def test_cancel_before_answer():
    h, a, slaves, clock, *_ = make(scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    start(h)
    a.emit(ev.Release(16, "client hung up"))
    assert slaves.legs[0].sent[-1] == ev.Release(16, "client hung up")
    assert h.outcome == "cancelled"
    assert clock.getDelayedCalls() == []


def test_no_gateway():
    h, a, slaves, clock, *_ = make(gateways=())
    start(h)
    assert a.sent[-1].cause == 34 and not slaves.legs


def test_undefined_pair_is_a_protocol_error():
    h, a, slaves, clock, *_ = make()
    start(h)
    slaves.legs[0].emit(ev.Dtmf("1"))      # defined: ignored before answer
    assert h.state is State.CALL_INITIATED
    slaves.legs[0].emit(ev.Setup("x", "+1555"))
    assert h.state is State.RELEASED and h.cause == 111


def test_stop_releases_both_legs():
    h, a, slaves, clock, *_ = make(scripts={"gw1": {"Setup": (ev.Connect(),)}})
    start(h)
    h.stop(41, "callgw shutting down")
    assert a.sent[-1].text == "callgw shutting down"
    assert slaves.legs[0].sent[-1].text == "callgw shutting down"


def test_relay_media_allocates_offer():
    from tests.callpath.fakes import AddressOnlyMediaSession, PortPool
    media = AddressOnlyMediaSession(PortPool("127.0.0.1", 30000, 30010))
    h, a, slaves, *_ = make(media=media, scripts={"gw1": {"Setup": (ev.Connect(
        ev.MediaDescription("10.0.0.1", 5000)),)}})
    start(h)
    offer = slaves.legs[0].sent[0].media
    assert (offer.address, offer.port) == ("127.0.0.1", 30000)
    assert a.sent[-1] == ev.Connect(None)
    a.emit(ev.Release())
    assert media.pool.used == set()


def test_table_names_only_known_actions():
    for (state, name), (action, _) in TRANSITIONS.items():
        assert hasattr(CallHandler, "_do_" + action), action


def test_inbound_roles_swapped_client_leg_is_b():
    """A gateway's call to a user (leg a: the native side) rings the user's client (leg b: a
    real ClientLeg on a fake session): the handler runs the same table with the roles swapped,
    and each side sees its own protocol's view of the call."""
    from callgw.callserver.legs.client import ClientLeg
    from tests.callpath.fakes import FakeConn
    clock = Clock()
    clock.advance(1000)
    logger = CallLogger(SyncStore(), clock, "node-1")
    gw_side = FakeLeg("sip")
    conn = FakeConn("alice")
    client_legs = []

    def ring_client(gateway_row, call_id):
        leg = ClientLeg(conn, "in-1", mode="direct")
        client_legs.append(leg)
        return leg
    ctx = CallContext("call-in", "alice", "default", "+4930100000", "+15557654321",
                      media_mode="direct", requested=clock.seconds(), call_server="cs1")
    h = CallHandler(ctx, gw_side, ring_client, [gateway("alice-devices")], clock, logger,
                    Timers(2, 10, 3))
    offer = ev.MediaDescription("192.0.2.10", 40000, ("PCMA",))
    h.start(ev.Setup("call-in", "+4930100000", "+15557654321", False, offer))
    assert conn.sent == [m.Incoming(call="in-1", caller="+15557654321", number="+4930100000",
                                    codecs=("PCMA",))]
    client = client_legs[0]
    client.from_client(m.Answer(call="in-1", mode="direct", address="198.51.100.7",
                                port=5004, codecs=("PCMA",)))
    assert h.state.value == "active"
    assert gw_side.kinds() == ["Proceeding", "Connect"]
    assert gw_side.sent[1].media == ev.MediaDescription("198.51.100.7", 5004, ("PCMA",))
    client.from_client(m.Hangup(call="in-1"))
    assert gw_side.sent[-1] == ev.Release(16, "client hung up")
    assert conn.commands() == ["incoming", "disconnected"]
    assert h.state.value == "released" and h.released_by == "b" and h.cause == 16
    assert h.outcome == "answered"


def test_direct_media_through_an_anchor():
    """``[media] backend = "rtpengine"``: the gateway is offered the anchor's address for the
    client's media, and the client gets the anchor's address for the gateway's; a release
    while the anchor is answering sends the client nothing more."""
    from twisted.internet.defer import Deferred, succeed
    from zope.interface import implementer

    from callgw.interfaces import IAnchoredMedia

    @implementer(IAnchoredMedia)
    class Anchor:
        def __init__(self):
            self.asked, self.closed = [], False

        def anchor(self, side, media):
            d = Deferred()
            self.asked.append((side, media, d))
            return d

        def close(self):
            self.closed = True
            return succeed({"mode": "rtpengine"})

        def liveness(self):
            return None

    client_media = ev.MediaDescription("192.0.2.1", 4000)
    gw_media = ev.MediaDescription("10.0.0.1", 5000, ("PCMA",))
    anchor = Anchor()
    h, a, slaves, *_ = make(media=anchor, scripts={"gw1": {"Setup": (
        ev.Alerting(), ev.Connect(gw_media))}})
    h.start(ev.Setup("call-1", "+15551234", "+15550001", media=client_media))
    assert anchor.asked[0][:2] == ("a", client_media) and not slaves.legs
    anchor.asked[0][2].callback(ev.MediaDescription("127.0.0.1", 30000))
    assert slaves.legs[0].sent[0].media == ev.MediaDescription("127.0.0.1", 30000)
    assert h.state is State.ACTIVE and anchor.asked[1][:2] == ("b", gw_media)
    assert a.kinds() == ["Proceeding", "Alerting"]      # connected waits for the anchor
    anchor.asked[1][2].callback(ev.MediaDescription("127.0.0.1", 30002, ("PCMA",)))
    assert a.sent[-1] == ev.Connect(ev.MediaDescription("127.0.0.1", 30002, ("PCMA",)))
    a.emit(ev.Release())
    assert anchor.closed


def test_anchor_failure_releases_the_call(log_lines):
    """rtpengine does not answer the offer: the client is released with cause 34 and
    "media backend unavailable", no gateway is called, and one log line names rtpengine."""
    from twisted.internet.defer import fail, succeed
    from zope.interface import implementer

    from callgw.interfaces import IAnchoredMedia
    from protocols.ng.codec import NgError

    @implementer(IAnchoredMedia)
    class Down:
        def anchor(self, side, media):
            return fail(NgError("no answer from rtpengine at 127.0.0.1:2223 after 4 tries"))

        def close(self):
            return succeed({})

    h, a, slaves, *_ = make(media=Down())
    h.start(ev.Setup("call-1", "+15551234", "+15550001",
                     media=ev.MediaDescription("192.0.2.1", 4000)))
    assert a.sent[-1] == ev.Release(34, "media backend unavailable") and not slaves.legs
    assert h.state is State.RELEASED
    lines = [line for line in log_lines if "media backend unavailable" in line]
    assert len(lines) == 1 and "rtpengine at 127.0.0.1:2223" in lines[0], lines


def anchored_call(gw_media=ev.MediaDescription("10.0.0.1", 5000, ("PCMU",))):
    """An answered direct-mode call anchored in a fake anchor that answers at once (its address
    127.0.0.1:30000 for the client's media, 30002 for the gateway's)."""
    from twisted.internet.defer import fail, succeed
    from zope.interface import implementer

    from callgw.interfaces import IAnchoredMedia
    from protocols.ng.codec import NgError

    @implementer(IAnchoredMedia)
    class Anchor:
        def __init__(self):
            self.asked, self.holds, self.down = [], [], False
            self.port_a = 30000         # rtpengine's port for the client's media

        def anchor(self, side, media):
            self.asked.append((side, media))
            if self.down:
                return fail(NgError("no answer from rtpengine at 127.0.0.1:2223 after 4 tries"))
            port = self.port_a if side == "a" else 30002
            return succeed(ev.MediaDescription("127.0.0.1", port, media.codecs, None, 20,
                                               media.direction))

        def hold(self, on, by):
            self.holds.append((on, by))

        def close(self):
            return succeed({"mode": "rtpengine"})

        def liveness(self):
            return None

    anchor = Anchor()
    h, a, slaves, *_ = make(media=anchor, scripts={"gw1": {"Setup": (ev.Connect(gw_media),)}})
    client = ev.MediaDescription("192.0.2.1", 4000, ("PCMU",))
    h.start(ev.Setup("call-1", "+15551234", "+15550001", media=client))
    assert h.state is State.ACTIVE
    return h, a, slaves.legs[0], anchor, client


def test_hold_and_resume_of_an_anchored_call_go_through_the_anchor():
    """The client holds: the anchor is offered the client's media sendonly, the gateway gets the
    hold (the anchor's address unchanged), its answer goes through the anchor as b's answer;
    resume likewise with sendrecv."""
    h, a, b, anchor, client = anchored_call()
    del anchor.asked[:]
    a.emit(ev.Hold(True))
    assert anchor.holds == [(True, "client")]
    assert anchor.asked == [("a", ev.MediaDescription("192.0.2.1", 4000, ("PCMU",),
                                                      direction="sendonly"))]
    assert b.sent[-1] == ev.Hold(True)
    b.emit(ev.MediaAnswer(ev.MediaDescription("10.0.0.1", 5000, ("PCMU",),
                                              direction="recvonly")))
    assert anchor.asked[-1][0] == "b" and anchor.asked[-1][1].direction == "recvonly"
    assert a.sent[-1] == ev.MediaAnswer(ev.MediaDescription("127.0.0.1", 30002, ("PCMU",),
                                                            None, 20, "recvonly"))
    a.emit(ev.Hold(False))
    assert anchor.holds[-1] == (False, "client")
    assert anchor.asked[-1] == ("a", ev.MediaDescription("192.0.2.1", 4000, ("PCMU",)))
    assert b.sent[-1] == ev.Hold(False) and h.state is State.ACTIVE


def test_an_anchor_that_moves_is_offered_to_the_gateway():
    """rtpengine answers a re-offer with another address: the gateway gets a MediaOffer with
    it, never the client's own address."""
    h, a, b, anchor, client = anchored_call()
    anchor.port_a = 31000
    a.emit(ev.Hold(True))
    moved = ev.MediaDescription("127.0.0.1", 31000, ("PCMU",), None, 20, "sendonly")
    assert b.sent[-1] == ev.MediaOffer(moved) and h.offer == moved


def test_a_failed_reanchoring_is_logged_and_the_call_goes_on(log_lines):
    h, a, b, anchor, client = anchored_call()
    anchor.down = True
    a.emit(ev.Hold(True))
    assert b.sent[-1] == ev.Hold(True) and h.state is State.ACTIVE
    b.emit(ev.MediaAnswer(ev.MediaDescription("10.0.0.1", 5000, direction="recvonly")))
    assert h.state is State.ACTIVE
    lines = [line for line in log_lines if "media backend" in line]
    assert len(lines) == 2 and all("127.0.0.1:2223" in line for line in lines), lines


def test_a_gateway_hold_tells_the_anchor_and_the_client():
    h, a, b, anchor, client = anchored_call()
    b.emit(ev.Hold(True))
    assert anchor.holds == [(True, "gateway")] and a.sent[-1] == ev.Hold(True)


def test_hold_without_an_anchor_passes_through():
    h, a, slaves, *_ = make(scripts={"gw1": {"Setup": (ev.Connect(None),)}})
    h.start(ev.Setup("call-1", "+15551234", "+15550001",
                     media=ev.MediaDescription("192.0.2.1", 4000)))
    a.emit(ev.Hold(True))
    assert slaves.legs[0].sent[-1] == ev.Hold(True)
    answer = ev.MediaAnswer(ev.MediaDescription("10.0.0.1", 5000))
    slaves.legs[0].emit(answer)
    assert a.sent[-1] == answer
