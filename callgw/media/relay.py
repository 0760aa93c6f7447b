"""The built-in RTP relay: one ``RelaySession`` per call, implementing ``IMediaSession``.

A session has two sides, ``"client"`` and ``"gateway"``. Each side that speaks RTP gets an
even/odd port pair (``allocate``) and a far end from its SDP (``connect``). Symmetric RTP with
latching: the first packet of the side's negotiated payload type (audio or telephone-event)
fixes the side's real source address and SSRC, which then win over the SDP address; the
side's socket is then ``connect()``ed to it, so the kernel drops packets from elsewhere, until
the latched source has been silent for ``relatch_after`` seconds (a NAT rebinding: the socket
is disconnected and the next sender of the negotiated payload type latches). Media from one side goes out of the other side's socket to that
side's latched (else SDP) address: untouched when both use the same codec (the fast path in
``callgw.media.endpoint``), with the payload type rewritten and the payload converted
mu-law <-> A-law when they differ. RFC 4733 events are forwarded with the peer's event payload
type and reported to ``on_dtmf``.

Relayed mode (``attach_client``; the work is in ``callgw.media.relayed``): the client side
sends no RTP; its media frames come in through ``client_frame`` and leave toward the gateway as
paced RTP (``callgw.media.playout``); RTP from the gateway goes to the ``deliver`` callback;
``send_dtmf`` adds RFC 4733 events to the stream; an RTCP SR goes to the gateway every
``rtcp_interval`` seconds so its RR yields a round-trip time.

``on_inactive(session, side, idle_seconds)`` fires once per side when a side that should send
has sent nothing for ``inactivity_timeout`` seconds. Sides whose SDP direction says they do not
send (hold) are not watched.

Tests: tests/media/test_media_relay.py, tests/media/test_media_relayed.py.
"""
from __future__ import annotations

from dataclasses import replace

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver.events import Dtmf, MediaDescription
from callgw.interfaces import IMediaSession
from callgw.media.endpoint import Poller, RtcpEndpoint, RtpEndpoint, open_udp
from callgw.media.ports import PortRange, PortsExhausted
from callgw.media.quality import SessionQuality
from callgw.media.relayed import ClientMedia
from protocols.rtp import g711
from protocols.rtp.dtmf import DtmfError, DtmfReceiver
from protocols.rtp.packet import RtpParseError, parse_rtp

log = Logger()

SIDES = ("client", "gateway")
STATIC_TYPES = {"PCMU": 0, "PCMA": 8}
_OTHER = {"client": "gateway", "gateway": "client"}


class MediaError(Exception):
    """The media session cannot do what was asked (no ports, unknown side, wrong mode)."""


class MediaRelay:
    """The relay of one process: ports, the shared poller, and the sessions.

    ``address`` is where sockets bind and what ``allocate`` reports (``advertised_address``
    overrides the report, e.g. when binding 0.0.0.0). Nothing is opened until a session
    allocates. ``reactor`` watches the sockets; ``clock`` (default: the reactor) gives the
    time and runs the timers (inactivity, pacing, DTMF, RTCP), so tests can pass a
    ``task.Clock``.
    """

    def __init__(self, reactor, ports: PortRange, address: str = "127.0.0.1",
                 advertised_address: str | None = None, inactivity_timeout: float = 30.0,
                 jitter_depth: int = 2, relatch_after: float = 2.0, rtcp_interval: float = 5.0,
                 clock=None):
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.ports = ports
        self.address = address
        self.advertised_address = advertised_address or address
        self.inactivity_timeout = inactivity_timeout
        self.jitter_depth = jitter_depth
        self.relatch_after = relatch_after
        self.rtcp_interval = rtcp_interval
        self.poller = Poller(reactor, self.clock.seconds)
        self.sessions = {}

    def session(self, call_id: str, on_inactive=None, on_dtmf=None) -> "RelaySession":
        """A new session for ``call_id``; see ``RelaySession`` for the callbacks."""
        session = RelaySession(self, call_id, on_inactive=on_inactive, on_dtmf=on_dtmf)
        self.sessions[call_id] = session
        return session

    def bind_pair(self):
        """Bind an RTP/RTCP pair; returns ``(port, rtp_socket, rtcp_socket)``.

        Pairs another program holds are skipped. Raises ``MediaError`` when none is free.
        """
        for _ in range(min(64, max(1, self.ports.capacity))):
            try:
                port = self.ports.allocate()
            except PortsExhausted as e:
                raise MediaError(str(e)) from e
            try:
                rtp = open_udp(self.address, port)
            except OSError:
                self.ports.release(port)
                continue
            try:
                rtcp = open_udp(self.address, port + 1)
            except OSError:
                rtp.close()
                self.ports.release(port)
                continue
            return port, rtp, rtcp
        raise MediaError("no bindable RTP port pair in %d-%d" % (self.ports.low, self.ports.high))

    def forget(self, session: "RelaySession"):
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]

    def close(self):
        """Close every session; fires with ``{call_id: final statistics}``.

        Never fails: a failure is logged and the Deferred fires with ``{}``.
        """
        calls = list(self.sessions.values())
        d = defer.gatherResults([s.close() for s in calls])
        d.addCallback(lambda results: {s.call_id: r for s, r in zip(calls, results)})

        def failed(failure):
            log.failure("closing {count} media sessions", failure=failure, count=len(calls))
            return {}
        d.addErrback(failed)
        return d


@implementer(IMediaSession)
class RelaySession:
    """The media of one call through the built-in relay (see the module docstring).

    ``on_dtmf(side, Dtmf)`` reports RFC 4733 digits a side sent (once per event);
    ``on_inactive(session, side, idle_seconds)`` reports media inactivity.
    """

    def __init__(self, relay: MediaRelay, call_id: str, on_inactive=None, on_dtmf=None):
        self.relay = relay
        self.call_id = call_id
        self.clock = relay.clock
        self.on_inactive = on_inactive
        self.on_dtmf = on_dtmf
        self.endpoints = {}
        self.rtcp = {}
        self.media = {}
        self.closed = False
        self.final = None
        self._dtmf_receivers = {}
        self._translate = {}
        self._inactive_reported = set()
        self._connected_at = {}
        self._check_call = None
        self.client = None  # ClientMedia in relayed mode
        self.quality = SessionQuality(self)

    # --- IMediaSession ------------------------------------------------------------------

    def allocate(self, side: str):
        """Reserve and bind ``side``'s RTP/RTCP pair.

        Fires with ``(address, rtp_port)``; fails with ``MediaError`` (no free pair, unknown
        side, closed session). Allocating a side twice gives the same pair.
        """
        try:
            self._check_side(side)
            if side not in self.endpoints:
                port, rtp, rtcp = self.relay.bind_pair()
                endpoint = RtpEndpoint(self, side, rtp, port)
                self.endpoints[side] = endpoint
                self.rtcp[side] = RtcpEndpoint(self, side, rtcp, port + 1)
                self.relay.poller.add(rtp, endpoint.readable)
                self.relay.poller.add(rtcp, self.rtcp[side].readable)
        except MediaError:
            return defer.fail()
        return defer.succeed((self.relay.advertised_address, self.endpoints[side].port))

    def connect(self, side: str, media: MediaDescription):
        """Point ``side`` at the far end in ``media`` (its SDP); again for re-INVITE / hold.

        Raises ``MediaError`` when ``side`` has no allocated port or no G.711 codec is offered.
        """
        self._check_side(side)
        endpoint = self.endpoints.get(side)
        if endpoint is None:
            raise MediaError("allocate(%r) before connect" % (side,))
        codec = next((c for c in media.codecs if c in STATIC_TYPES), None)
        if codec is None:
            raise MediaError("no G.711 codec in %r" % (media.codecs,))
        previous = self.media.get(side)
        self.media[side] = media
        endpoint.codec = codec
        endpoint.payload_type = STATIC_TYPES[codec]
        endpoint.event_type = media.telephone_event
        endpoint.ptime = media.ptime or 20
        endpoint.send_allowed = media.direction in ("sendrecv", "recvonly")
        endpoint.expect_media = media.direction in ("sendrecv", "sendonly")
        address = (media.address, media.port) if media.port else None
        if previous is not None and address != endpoint.sdp_address:
            endpoint.unlatch()  # a new far end: latch afresh
        endpoint.sdp_address = address
        rtcp = self.rtcp[side]
        rtcp.sdp_address = (media.address, media.port + 1) if media.port else None
        if previous is not None and rtcp.sdp_address != (previous.address, previous.port + 1):
            rtcp.latched = None
        self._connected_at.setdefault(side, self.clock.seconds())
        self._inactive_reported.discard(side)
        self._rewire()
        self._start_watch()

    def statistics(self) -> dict:
        """Per-direction packets, octets, loss, jitter and MOS (see ``SessionQuality``)."""
        if self.final is not None:
            return self.final
        return self.quality.statistics(self.clock.seconds())

    def close(self):
        """Release the ports; fires with the final statistics. Closing twice is harmless.

        The session then lets go of its parts and callbacks (its endpoints, RTCP and
        relayed-mode parts point back at it, and the callbacks at the call's media session):
        no reference cycle is left, so a finished call's media is freed by reference counts,
        not by the cyclic collector. What may still come for it (a late digit, frame or
        ``connect``) is refused or ignored as for any closed session."""
        if not self.closed:
            now = self.clock.seconds()
            for endpoint in self.endpoints.values():
                endpoint.drain(now)
            self.final = self.quality.statistics(now)
            self.closed = True
            if self._check_call is not None and self._check_call.active():
                self._check_call.cancel()
            if self.client is not None:
                self.client.stop()
                self.client = None      # it points back at the session (late DTMF timers)
            self.quality.close()
            for side, endpoint in self.endpoints.items():
                for ep in (endpoint, self.rtcp[side]):
                    self.relay.poller.remove(ep.sock)
                    ep.close()          # drops its session and its fast-path target
                self.relay.ports.release(endpoint.port)
            self.on_inactive = self.on_dtmf = None      # the call's media session's methods
            self.relay.forget(self)
        return defer.succeed(self.final)

    # --- relayed mode ---------------------------------------------------------------------

    @property
    def playout(self):
        """The client-to-gateway ``Playout`` in relayed mode, else None."""
        return self.client.playout if self.client is not None else None

    def attach_client(self, deliver, codec: str = "PCMU", ptime: int = 20):
        """Relayed mode: the client's media rides the client protocol.

        ``deliver(payload, sequence, timestamp)`` receives the gateway's audio converted to
        ``codec``, one call per RTP packet, with the gateway's sequence and timestamp.
        Frames from the client go to ``client_frame``. Raises ``MediaError`` for a codec
        other than PCMU or PCMA.
        """
        if codec not in STATIC_TYPES:
            raise MediaError("client codec must be PCMU or PCMA, not %r" % (codec,))
        if self.closed:
            return              # the call is over: nothing to deliver any more
        if self.client is None:
            self.client = ClientMedia(self, deliver, codec, ptime)
        else:
            self.client.deliver, self.client.codec, self.client.ptime = deliver, codec, ptime
        self._connected_at.setdefault("client", self.clock.seconds())
        self._rewire()
        self._start_watch()

    def client_frame(self, payload: bytes, sequence: int, timestamp: int):
        """One media frame from the client (G.711 in the attached codec, 8 kHz timestamp).

        Frames before ``attach_client`` or after ``close`` are ignored.
        """
        if self.client is not None and not self.closed:
            self.client.frame(payload, sequence, timestamp)

    def client_detached(self):
        """Relayed mode: the client's session is lost for now; silence goes to the gateway
        until ``client_reattached`` (or close)."""
        if self.client is not None and not self.closed:
            self.client.detach()

    def client_reattached(self):
        """Relayed mode: the client is back; its frames start a new timeline."""
        if self.client is not None and not self.closed:
            self.client.reattach()

    def send_dtmf(self, digit: str, duration_ms: int = 100):
        """Send ``digit`` toward the gateway as RFC 4733 events (relayed mode only).

        Fires with the number of packets sent once the last (third end) packet left.
        Fails with ``MediaError`` when not in relayed mode or the gateway took no
        telephone-event, or ``DtmfError`` for an unknown digit.
        """
        if self.closed:
            return defer.fail(MediaError("media session %s is closed" % (self.call_id,)))
        gateway = self.endpoints.get("gateway")
        if self.playout is None or gateway is None:
            return defer.fail(MediaError("DTMF injection needs relayed mode"))
        if gateway.event_type is None:
            return defer.fail(MediaError("the gateway did not negotiate telephone-event"))
        return self.client.send_dtmf(gateway, digit, duration_ms)

    # --- packets (slow path) -----------------------------------------------------------------

    def slow_packet(self, endpoint: RtpEndpoint, data: bytes, addr, now: float):
        """Every RTP-port datagram the fast path did not forward."""
        if len(data) < 12 or data[0] >> 6 != 2:
            endpoint.dropped += 1
            return
        pt = data[1] & 0x7F
        if 72 <= pt <= 76:  # RTCP multiplexed on the RTP port (RFC 5761 4)
            self.quality.rtcp_packet(self.rtcp[endpoint.side], data, addr, now)
            return
        if addr != endpoint.latched:
            stale = endpoint.last_rx is None or now - endpoint.last_rx > self.relay.relatch_after
            if endpoint.latched is not None and not stale:
                endpoint.dropped += 1
                return
            wanted = (endpoint.payload_type, endpoint.event_type) \
                if endpoint.payload_type is not None else (0, 8)
            if pt not in wanted:
                endpoint.dropped += 1
                return
            log.info("media {call_id} {side} latched to {addr} (SDP said {sdp})",
                     call_id=self.call_id, side=endpoint.side, addr=addr,
                     sdp=endpoint.sdp_address)
            endpoint.latch(addr)
            endpoint.ssrc = None
            self._rewire()
        ssrc = int.from_bytes(data[8:12], "big")
        if ssrc != endpoint.ssrc:
            endpoint.ssrc = ssrc
            endpoint.restart_counting()
        audio = pt == endpoint.payload_type
        endpoint.count(data, now, audio)
        if endpoint.fast_ready and not endpoint.fast and endpoint.transit is not None:
            endpoint.fast = True
        if endpoint.event_type is not None and pt == endpoint.event_type:
            self._dtmf_in(endpoint, data)
        self._forward(endpoint, data, pt, audio)

    def _forward(self, endpoint: RtpEndpoint, data: bytes, pt: int, audio: bool):
        """Send a counted packet on; one that cannot go is counted as ``discarded`` (or as
        ``events``: RFC 4733 packets the far side does not take, reported via on_dtmf)."""
        event = not audio and endpoint.event_type is not None and pt == endpoint.event_type
        if endpoint.side == "gateway" and self.client is not None:
            if audio:
                if self.client.to_client(data) is False:
                    self.client.discarded += 1
                else:
                    self.client.sent_packets += 1
                    self.client.sent_octets += len(data)
            else:
                self.client.skipped += 1    # RFC 4733, comfort noise: not a gap for the client
                if event:
                    endpoint.events += 1    # the client hears them as dtmf messages
                else:
                    endpoint.discarded += 1     # comfort noise, another codec: not forwarded
            return
        other = self.endpoints.get(_OTHER[endpoint.side])
        if other is None or other.destination is None or not other.send_allowed:
            if event:
                endpoint.events += 1
            else:
                endpoint.discarded += 1     # nowhere to send it (no far end yet, on hold)
            return
        if audio:
            table = self._translate.get(endpoint.side)
            if table is not None:
                data = self._rewrite(data, other.payload_type, table)
                if data is None:
                    endpoint.discarded += 1
                    return
        elif event:
            if other.event_type is None:
                endpoint.events += 1
                return  # the far side took no telephone-event: reported via on_dtmf only
            if other.event_type != pt:
                data = self._rewrite(data, other.event_type, None)
        else:
            endpoint.discarded += 1         # neither the audio nor the event payload type
            return
        self.send(other, data)

    @staticmethod
    def _rewrite(data: bytes, pt: int, table):
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            return None
        payload = packet.payload.translate(table) if table is not None else packet.payload
        return replace(packet, payload_type=pt, payload=payload, padding=0).to_bytes()

    def send(self, endpoint: RtpEndpoint, data: bytes) -> bool:
        """Send ``data`` out of ``endpoint``'s socket to its destination, counting it; False
        (counted in ``send_errors``) when the socket refused it."""
        try:
            if endpoint.connected:      # latched: no address to pass, no route lookup
                endpoint.sock.send(data)
            else:
                endpoint.sendto(data, endpoint.destination)
        except OSError:
            endpoint.send_errors += 1
            return False
        endpoint.sent_packets += 1
        endpoint.sent_octets += len(data)
        return True

    def _dtmf_in(self, endpoint: RtpEndpoint, data: bytes):
        receiver = self._dtmf_receivers.get(endpoint.side)
        if receiver is None:
            receiver = self._dtmf_receivers[endpoint.side] = DtmfReceiver()
        try:
            events = receiver.receive(parse_rtp(data))
        except (RtpParseError, DtmfError):
            return
        for event in events:
            log.info("media {call_id}: DTMF {digit} from {side}", call_id=self.call_id,
                     digit=event.digit, side=endpoint.side)
            if self.on_dtmf is not None:
                try:
                    self.on_dtmf(endpoint.side, Dtmf(event.digit, event.duration_ms))
                except Exception:
                    log.failure("media {call_id}: on_dtmf failed", call_id=self.call_id)

    # --- wiring and watching -----------------------------------------------------------------

    def _rewire(self):
        """Recompute the fast path and conversions after any change of state."""
        client, gateway = self.endpoints.get("client"), self.endpoints.get("gateway")
        self._translate = {}
        if self.client is not None:
            if gateway is not None:
                self.client.wire(gateway)
            if client is not None:
                client.fast = client.fast_ready = False
            return
        for source, target in ((client, gateway), (gateway, client)):
            if source is None:
                continue
            source.fast = source.fast_ready = False
            if target is None or source.codec is None or target.codec is None:
                continue
            if source.codec != target.codec:
                self._translate[source.side] = g711.translation(source.codec, target.codec)
                continue
            if source.latched is not None and target.destination is not None and \
                    target.send_allowed:
                source.out_send = target.sender()
                source.out_counter = target
                source.fast_ready = True
                source.fast = source.transit is not None and source.base_seq is not None

    def _start_watch(self):
        if self.closed:
            return
        if self._check_call is None:
            intervals = [5.0, self.relay.relatch_after / 2.0]
            if self.relay.inactivity_timeout:
                intervals.append(self.relay.inactivity_timeout / 4.0)
            interval = max(0.05, min(intervals))
            self._check_call = self.clock.callLater(interval, self._watch, interval)
        self.quality.start()

    def _filters(self, now: float):
        """Open a silent latched side's socket to new sources (a NAT may have rebound), and
        close it again once its source is back."""
        changed = False
        for endpoint in self.endpoints.values():
            if endpoint.latched is None:
                continue
            silent = endpoint.last_rx is None or now - endpoint.last_rx > self.relay.relatch_after
            if endpoint.connected and silent:
                endpoint.open_filter()
                changed = True
            elif not endpoint.connected and not silent:
                endpoint.latch(endpoint.latched)
                changed = changed or endpoint.connected
        if changed:
            self._rewire()

    def _watch(self, interval: float):
        self._check_call = None
        if self.closed:
            return
        now = self.clock.seconds()
        self._filters(now)
        timeout = self.relay.inactivity_timeout
        if not timeout:
            self._check_call = self.clock.callLater(interval, self._watch, interval)
            return
        watched = []
        for side, endpoint in self.endpoints.items():
            if side == "client" and self.client is not None:
                continue
            if endpoint.expect_media and side in self.media:
                watched.append((side, endpoint.last_rx))
        if self.client is not None:
            watched.append(("client", self.client.last_rx))
        for side, last in watched:
            idle = now - (last if last is not None else self._connected_at.get(side, now))
            if idle >= timeout and side not in self._inactive_reported:
                self._inactive_reported.add(side)
                log.info("media {call_id}: no media from {side} for {idle:.1f} s",
                         call_id=self.call_id, side=side, idle=idle)
                if self.on_inactive is not None:
                    try:
                        self.on_inactive(self, side, idle)
                    except Exception:
                        log.failure("media {call_id}: on_inactive failed", call_id=self.call_id)
        if not self.closed:
            self._check_call = self.clock.callLater(interval, self._watch, interval)

    def _check_side(self, side: str):
        if side not in SIDES:
            raise MediaError("unknown side %r" % (side,))
        if self.closed:
            raise MediaError("media session %s is closed" % (self.call_id,))
