"""The call media glue (callgw/callserver/media.py) with fake legs and connections: frames
routed by key and session, payload types checked, gateway audio to the client with the key,
DTMF one digit after another, inactivity reported to the reaper, hold, closing. The relay's
sockets are real (127.0.0.1) but nothing is sent to them."""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor

from callgw.callserver import events as ev
from callgw.callserver.media import CallMedia
from protocols.client.framing import MediaFrame
from test_media_calls import rtp_range


class Conn:
    peer = ("127.0.0.1", 40000)

    def __init__(self):
        self.frames = []

    def send_media(self, frame):
        self.frames.append(frame)


class Leg:
    def __init__(self, conn, key=b"k" * 16, codec=None):
        self.conn, self.key, self.codec, self.media = conn, key, codec, None
        self.sent = []

    def send(self, event):
        self.sent.append(event)

    def use_media(self, session):
        self.media = session


class Handler:
    class logger:
        events = []

        @classmethod
        def event(cls, call_id, kind, **data):
            cls.events.append(kind)


def glue(**media):
    config = {"address": "127.0.0.1", "rtp_ports": rtp_range(), "inactivity_timeout": 30.0}
    config.update(media)
    return CallMedia(reactor, config)


@pytest_twisted.inlineCallbacks
def test_frames_are_routed_by_key_session_and_codec():
    owner = glue()
    conn, stranger = Conn(), Conn()
    session = owner.session("call-1")
    leg = Leg(conn)
    session.bind(leg, Handler())
    assert leg.media is session
    yield session.allocate("b")
    session.connect("b", ev.MediaDescription("127.0.0.1", 9, ("PCMA",)))
    session.client_connected(leg)
    got = []
    session.relay_session.client_frame = lambda *a: got.append(a)
    assert owner.client_frame(conn, MediaFrame(leg.key, 0, 1, 160, b"\xff" * 160))
    assert not owner.client_frame(stranger, MediaFrame(leg.key, 0, 2, 320, b"\xff" * 160))
    assert not owner.client_frame(conn, MediaFrame(b"x" * 16, 0, 3, 480, b"\xff" * 160))
    assert not owner.client_frame(conn, MediaFrame(leg.key, 8, 4, 640, b"\xd5" * 160))
    assert got == [(b"\xff" * 160, 1, 160)]
    assert (owner.frames_in, owner.frames_dropped) == (1, 3)
    # gateway audio reaches the client with the key, in the client's codec (PCMU)
    session._deliver(b"\x7f" * 160, 77, 12345)
    assert conn.frames == [MediaFrame(leg.key, 0, 77, 12345, b"\x7f" * 160)]
    final = yield session.close()
    assert final["frames_to_client"] == 1 and final["mode"] == "relayed"
    assert leg.key not in owner.keys
    assert not owner.client_frame(conn, MediaFrame(leg.key, 0, 5, 800, b"\xff" * 160))
    yield owner.close()


@pytest_twisted.inlineCallbacks
def test_dtmf_digits_go_one_after_another():
    owner = glue()
    session = owner.session("call-2")
    session.bind(Leg(Conn()), Handler())
    calls, pending = [], []

    def send_dtmf(digit, duration):
        calls.append(digit)
        d = defer.Deferred()
        pending.append(d)
        return d
    session.relay_session.send_dtmf = send_dtmf
    for digit in "159":
        session.dtmf(digit, 100)
    assert calls == ["1"]                   # the next waits for the last one's end packets
    pending[0].callback(6)
    yield until(lambda: len(calls) >= 2)
    assert calls == ["1", "5"]
    pending[1].callback(6)
    yield until(lambda: len(calls) >= 3)
    assert calls == ["1", "5", "9"]
    yield owner.close()


@defer.inlineCallbacks
def until(condition, limit=2.0):
    """Wait (on the reactor, at most ``limit`` seconds) until ``condition()`` holds."""
    from twisted.internet.task import deferLater
    waited = 0.0
    while not condition():
        assert waited < limit, "condition not met in time"
        yield deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


def test_inactivity_is_the_reapers_reason_unless_held():
    owner = glue()
    session = owner.session("call-3")
    leg = Leg(Conn())
    session.bind(leg, Handler())
    session.hold(True)
    session._inactive(session.relay_session, "gateway", 31.0)
    assert session.liveness() is None       # silence on hold is expected
    session.hold(False)
    session._inactive(session.relay_session, "gateway", 31.0)
    assert session.liveness() is None       # and just after the resume
    session.resumed_at = -1000.0
    session._inactive(session.relay_session, "gateway", 31.0)
    assert session.liveness() == "media inactive: nothing from the gateway for 31.0 s"
    assert "media-inactive" in Handler.logger.events
    session._dtmf("gateway", ev.Dtmf("7", 120))
    assert leg.sent == [ev.Dtmf("7", 120)]
    owner.close()


def test_a_hold_from_the_gateway_also_pauses_the_inactivity_watch():
    owner = glue()
    session = owner.session("call-4")
    leg = Leg(Conn())
    session.bind(leg, Handler())
    session.hold(True, by="gateway")
    session.hold(True)                          # both sides hold
    session.hold(False)                         # the client resumes; the gateway still holds
    session._inactive(session.relay_session, "gateway", 31.0)
    assert session.liveness() is None
    session.hold(False, by="gateway")
    session.resumed_at = -1000.0                # long after the last resume
    session._inactive(session.relay_session, "gateway", 31.0)
    assert session.liveness() == "media inactive: nothing from the gateway for 31.0 s"
    owner.close()
