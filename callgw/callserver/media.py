"""The media of calls: the process's ``MediaRelay`` wired into the call path.

Owned by the media issue (issue 6, "media in calls"; docs/media.md, "Media in calls"). One
``CallMedia`` per ``CallPathService`` holds the relay built from ``[media]`` (``address``,
``rtp_ports``, ``inactivity_timeout``) and the per-call media keys. The call server makes one
``CallMediaSession`` per relay-mode call through ``CallMedia.session(call_id)``; it is the
call's ``IMediaSession`` (the handler allocates the gateway side and connects the gateway's
SDP through it) and it joins the relay to the call's client leg:

- ``bind(leg, handler)``: the call server tells the session whose call it is;
- ``client_connected(leg)``: the client leg made the per-call key for ``connected``: the key is
  registered, and the relay delivers the gateway's audio to the client as media frames with it
  (``conn.send_media``), in the client's codec (PCMU unless the leg says otherwise);
- ``CallMedia.client_frame(conn, frame)``: the front end's ``client_media`` hook; a frame
  whose key belongs to no call of that session, or whose payload type is not the call's codec,
  is dropped and counted (``frames_dropped``), the rest go to ``RelaySession.client_frame``;
- ``dtmf(digit, duration)``: the client's ``dtmf`` as RFC 4733 events toward the gateway
  (when it negotiated telephone-event, ``carries_dtmf()``; else the native leg signals it);
  digits the gateway sends as RFC 4733 come to the client leg as ``Dtmf`` events;
- ``standby(leg, handler, factory)``: a direct-mode call keeps no media session, but when the
  client reports that no media reached it (``answer`` with ``mode: relay`` on its active call)
  the call gets one: the gateway side is allocated, a ``MediaOffer`` with the relay's address
  goes to the native leg (a SIP re-INVITE), and the gateway's ``MediaAnswer`` connects it; the
  client leg then sends ``connected`` again with a key, and media rides the client protocol;
- ``hold(on)``: the client held (resumed) the call: silence is not reaped while held and for
  ``inactivity_timeout`` seconds after; ``gateway_answered`` re-connects the gateway side with
  the answer to each re-INVITE;
- ``anchor_factory``: with ``[media] backend = "rtpengine"`` (callgw/media/rtpengine.py, built
  by the composition root and handed in as ``anchor``), direct-mode calls get an rtpengine
  session instead of passing their media untouched; ``close`` deletes what it still holds;
- ``liveness()``: the logger's reaper asks it like a leg; after the relay reported a silent
  side for ``inactivity_timeout`` seconds it answers with the reason, and the reaper releases
  the call (the CDR's ``cause_text`` says ``reaped: media inactive ...``).

Tests: tests/media/test_media_calls.py (sipp as the gateway, callgw-dial as the client).
"""
from __future__ import annotations

import random

from twisted.internet.defer import succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver import events as ev
from callgw.interfaces import IMediaSession
from callgw.media import MediaRelay, PortRange
from protocols.client.framing import MediaFrame

PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
#: The call's roles (``a`` sent the Setup, ``b`` places it) as the relay's sides: ``a`` is the
#: client leg whose media rides the client protocol (relay side "client"), ``b`` the native
#: leg's RTP (relay side "gateway"). An inbound call keeps the client on side ``a`` of the media
#: session and swaps only which handler leg is which.
RELAY_SIDE = {"a": "client", "b": "gateway"}
DTMF_GAP = 0.05     # seconds between two digits' events


class CallMedia:
    """The relay of one call path and the routing of client media frames by key."""

    log = Logger()

    def __init__(self, reactor, media_config: dict, clock=None, anchor=None):
        low, high = (int(x) for x in str(media_config["rtp_ports"]).split("-"))
        ports = PortRange(low, high, start=random.randrange(1 << 16))   # see PortRange
        self.relay = MediaRelay(reactor, ports, address=media_config["address"],
                                inactivity_timeout=float(media_config["inactivity_timeout"]),
                                clock=clock)
        self.keys: dict[bytes, CallMediaSession] = {}
        self.anchor = anchor        # the backend anchoring direct-mode calls (rtpengine), or None
        self.frames_in = 0
        self.frames_dropped = 0

    def session(self, call_id: str) -> "CallMediaSession":
        """The media session of a new relay-mode call (the call server's ``media_factory``)."""
        return CallMediaSession(self, call_id)

    @property
    def anchor_factory(self):
        """``call_id -> IMediaSession`` for direct-mode calls when a backend anchors them
        (``[media] backend = "rtpengine"``); None: their media passes untouched."""
        return self.anchor.session if self.anchor is not None else None

    def client_frame(self, conn, frame) -> bool:
        """One media frame from a client session; True when it reached a call's relay."""
        session = self.keys.get(bytes(frame.key))
        if session is None or session.conn is not conn or \
                frame.payload_type != session.payload_type:
            self.frames_dropped += 1
            return False
        self.frames_in += 1
        session.relay_session.client_frame(frame.payload, frame.sequence, frame.timestamp)
        return True

    def close(self):
        """Close every call's media; fires with ``{call_id: final statistics}``."""
        self.keys.clear()
        d = self.relay.close()
        if self.anchor is not None:
            d.addCallback(lambda finals: self.anchor.close().addCallback(
                lambda anchored: dict(finals, **anchored)))
        return d


@implementer(IMediaSession)
class CallMediaSession:
    """One call's ``IMediaSession``: a ``RelaySession`` plus its client leg (see the module
    docstring)."""

    log = Logger()

    def __init__(self, owner: CallMedia, call_id: str):
        self.owner = owner
        self.call_id = call_id
        self.relay_session = owner.relay.session(call_id, on_inactive=self._inactive,
                                                 on_dtmf=self._dtmf)
        self.leg = None
        self.handler = None
        self.conn = None
        self.key: bytes | None = None
        self.codec = "PCMU"
        self.payload_type = PAYLOAD_TYPES["PCMU"]
        self.inactive: str | None = None
        self.holders: set[str] = set()      # who holds the call: "client", "gateway"
        self.resumed_at: float | None = None
        self.frames_out = 0
        self._dtmf_queue = succeed(None)

    # -- IMediaSession --------------------------------------------------------------------------
    def allocate(self, side):
        return self.relay_session.allocate(RELAY_SIDE[side])

    def connect(self, side, media):
        self.relay_session.connect(RELAY_SIDE[side], media)

    def statistics(self) -> dict:
        stats = dict(self.relay_session.statistics())
        stats["frames_to_client"] = self.frames_out
        stats["client_codec"] = self.codec
        return stats

    def close(self):
        """Close the call's relay session; fires with its final statistics. The session lets
        go of its call (leg, handler, client session: the references that would make the
        call's objects a cycle), so they are freed as soon as the call is done; late frames,
        digits or hold for the call find no key and no leg and are dropped."""
        self._forget_key()
        self.leg = self.handler = self.conn = None
        if self.relay_session.closed:
            return succeed(self.statistics())
        d = self.relay_session.close()
        d.addCallback(lambda final: dict(final, frames_to_client=self.frames_out,
                                         client_codec=self.codec, inactive=self.inactive))
        return d

    def attach_client(self, deliver, codec="PCMU", ptime=20):
        self.relay_session.attach_client(deliver, codec, ptime)

    def client_frame(self, payload, sequence, timestamp):
        self.relay_session.client_frame(payload, sequence, timestamp)

    def send_dtmf(self, digit, duration_ms=100):
        return self.relay_session.send_dtmf(digit, duration_ms)

    # -- the call path's hooks ------------------------------------------------------------------
    def bind(self, leg, handler=None) -> None:
        """This session belongs to the call of client leg ``leg`` (a ``ClientLeg``) and
        ``handler``; the leg routes its media commands here from now on."""
        self.leg = leg
        self.handler = handler
        self.conn = leg.conn
        leg.use_media(self)

    def client_connected(self, leg) -> None:
        """``leg`` is about to send ``connected`` with its new key: route frames with it and
        send the gateway's audio to the client (nothing once the session is closed)."""
        if self.relay_session.closed:
            return
        self._forget_key()
        self.leg = leg
        self.conn = leg.conn
        self.key = bytes(leg.key)
        codec = leg.codec
        if codec in PAYLOAD_TYPES:
            self.codec = codec
        self.payload_type = PAYLOAD_TYPES[self.codec]
        self.owner.keys[self.key] = self
        self.relay_session.attach_client(self._deliver, self.codec)

    def _deliver(self, payload: bytes, sequence: int, timestamp: int) -> bool:
        """One frame of the gateway's audio to the client; False when it did not go (no
        client session, or its transport did not take it: the relay counts it discarded)."""
        conn = self.conn
        if conn is None or self.key is None:
            return False
        if conn.send_media(MediaFrame(self.key, self.payload_type, sequence, timestamp,
                                      payload)) is False:
            return False
        self.frames_out += 1
        return True

    def carries_dtmf(self) -> bool:
        """Whether the gateway took RFC 4733 telephone-event: otherwise the client leg hands
        its digits to the native leg to signal (an MGCP line's D package)."""
        gateway = self.relay_session.endpoints.get("gateway")
        return gateway is not None and gateway.event_type is not None

    def dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Send ``digit`` toward the gateway as RFC 4733 events, after the digits before it
        (one event at a time, ``DTMF_GAP`` seconds apart)."""
        def send(_):
            d = self.relay_session.send_dtmf(digit, duration_ms)
            d.addErrback(self._dtmf_failed, digit)
            d.addCallback(lambda _: deferLater(self.owner.relay.clock, DTMF_GAP, lambda: None))
            return d
        self._dtmf_queue = self._dtmf_queue.addCallback(send)

    def _dtmf_failed(self, failure, digit) -> None:
        self.log.failure("call {call_id} peer {peer}: DTMF {digit} toward the gateway",
                         failure, call_id=self.call_id, peer=self._peer(), digit=digit)

    def _dtmf(self, side: str, dtmf) -> None:
        if side == "gateway" and self.leg is not None:
            self.leg.send(ev.Dtmf(dtmf.digit, dtmf.duration_ms))

    def _inactive(self, session, side: str, idle: float) -> None:
        resumed = self.resumed_at
        if self.holders or (resumed is not None and self.owner.relay.clock.seconds() - resumed
                         < self.owner.relay.inactivity_timeout):
            session._inactive_reported.discard(side)    # silence on hold: watch again later
            return
        if self.inactive is None:
            self.inactive = f"media inactive: nothing from the {side} for {idle:.1f} s"
            self.log.info("call {call_id} peer {peer}: {reason}", call_id=self.call_id,
                          peer=self._peer(), reason=self.inactive)
            if self.handler is not None:
                self.handler.logger.event(self.call_id, "media-inactive", side=side,
                                          idle=round(idle, 1))

    def gateway_answered(self, media, moved: bool = False) -> None:
        """The gateway answered a re-INVITE: hold, resume, or (``moved``) the one that moved a
        direct call to the relay."""
        self.relay_session.connect("gateway", media)
        if moved and self.handler is not None:
            self.handler.logger.event(self.call_id, "media-relayed",
                                      gateway=f"{media.address}:{media.port}")

    def hold(self, on: bool, by: str = "client") -> None:
        """``by`` (the client or the gateway) put the call on hold, or resumed it: silence is
        expected while either side holds it, and for ``inactivity_timeout`` seconds after the
        last resume."""
        if on:
            self.holders.add(by)
            return
        self.holders.discard(by)
        if not self.holders:
            self.resumed_at = self.owner.relay.clock.seconds()

    def client_detached(self) -> None:
        """The client's session was lost (it may re-attach): the gateway hears silence, the
        silence from the client is expected (the inactivity watch pauses), and nothing is
        delivered until ``client_connected`` brings the new key."""
        self._forget_key()
        self.conn = None
        self.hold(True, by="detached")
        self.relay_session.client_detached()

    def client_reattached(self, leg) -> None:
        """The client came back on a new session: its frames start a new timeline."""
        self.relay_session.client_reattached()
        self.hold(False, by="detached")

    def liveness(self) -> str | None:
        """None while media flows; the reason once a side went silent (for the reaper)."""
        return self.inactive

    def _forget_key(self) -> None:
        if self.key is not None and self.owner.keys.get(self.key) is self:
            del self.owner.keys[self.key]

    def _peer(self):
        return self.conn.peer if self.conn is not None else None


def standby(leg, handler, factory) -> None:
    """Direct mode: let ``leg`` move its call's media to the relay when its client asks."""
    leg.use_relay(lambda leg: _move_to_relay(leg, handler, factory))


def _move_to_relay(leg, handler, factory) -> None:
    if handler.media is not None or leg.sink is None:
        return
    session = factory(handler.ctx.call_id)
    handler.media = session             # closed, and its statistics in the CDR, at call end
    session.bind(leg, handler)
    handler.logger.event(handler.ctx.call_id, "media-to-relay", reason="client heard nothing")
    offer = handler.offer

    def allocated(address):
        codecs = offer.codecs if offer is not None else ("PCMU", "PCMA")
        media = ev.MediaDescription(address[0], address[1], codecs)
        if leg.sink is not None and not leg.released:
            leg.sink(leg, ev.MediaOffer(media))

    def failed(failure):
        CallMediaSession.log.failure("call {call_id} peer {peer}: moving media to the relay",
                                     failure, call_id=handler.ctx.call_id, peer=handler.ctx.peer)
    session.allocate("b").addCallback(allocated).addErrback(failed)
