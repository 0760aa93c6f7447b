"""Relayed mode of one relay session: the client's media over the client protocol.

``ClientMedia`` stands in for the client's RTP side of a ``RelaySession``. Frames from the
client (``frame``) go through ``callgw.media.playout`` and leave toward the gateway as paced
RTP out of the gateway socket; gateway RTP reaches ``to_client`` (the fast path of
``callgw.media.endpoint`` calls it directly, and counts into this object like an endpoint),
which converts the codec if needed and calls the ``deliver`` callback (with the gateway's
sequence numbers less the packets not delivered, RFC 4733 events and comfort noise, so that
the client sees a gap only where a packet was lost; it returns False when the client's
transport did not take the frame: counted as ``discarded``); ``send_dtmf`` adds
RFC 4733 events to the stream toward the gateway, sharing its sequence numbers.

Tests: tests/media/test_media_relayed.py, tests/media/test_media_timers.py.
"""
from __future__ import annotations

import random
from dataclasses import replace

from twisted.internet import defer
from twisted.logger import Logger

from callgw.media.playout import Playout
from protocols.rtp import g711
from protocols.rtp.dtmf import DtmfError, DtmfSender
from protocols.rtp.packet import RtpParseError, parse_rtp
from protocols.rtp.stats import ReceiverStats

log = Logger()


class ClientMedia:
    """The client side of a session in relayed mode; see the module docstring."""

    def __init__(self, session, deliver, codec: str, ptime: int):
        self.session = session
        self.deliver = deliver
        self.codec = codec
        self.ptime = ptime
        self.stats = ReceiverStats(probation=0)
        self.last_rx = None
        self.frames_dropped = 0
        self.skipped = 0            # gateway packets not for the client (events, CN)
        self.playout = None
        self.translate = None       # gateway codec -> client codec, or None
        self._pump_call = None
        self._filler = None         # while the client is detached: silence toward the gateway
        self._filler_ts = 0
        # counted by the endpoint fast path like an RTP endpoint's sends
        self.sent_packets = 0       # gateway packets handed to the client's transport
        self.sent_octets = 0
        self.send_errors = 0
        self.discarded = 0          # gateway packets the client's transport did not take
        self.audio_out = 0          # audio packets sent toward the gateway (the playout's)
        self.audio_unsent = 0       # pulled from the playout, but the gateway socket refused
                                    # them or the gateway had no address / did not receive

    def wire(self, gateway):
        """The gateway side is (re)connected: set conversion, playout and the fast path."""
        gateway.fast = gateway.fast_ready = False
        if gateway.codec is None:
            return
        self.translate = g711.translation(gateway.codec, self.codec)
        if gateway.latched is not None:
            gateway.out_send = self.to_client
            gateway.out_counter = self
            gateway.fast_ready = True
            gateway.fast = gateway.transit is not None and gateway.base_seq is not None
        if self.playout is None:
            self.playout = Playout(
                self.codec, gateway.codec, gateway.payload_type, random.getrandbits(32),
                ptime_ms=gateway.ptime, sequence=random.getrandbits(16),
                timestamp_offset=random.getrandbits(32),
                depth=self.session.relay.jitter_depth)

    # --- client -> gateway ---------------------------------------------------------------

    def frame(self, payload: bytes, sequence: int, timestamp: int):
        """One media frame from the client."""
        session = self.session
        now = session.clock.seconds()
        self.last_rx = now
        self.stats.receive(sequence & 0xFFFF, timestamp & 0xFFFFFFFF, now, len(payload))
        playout = self.playout
        if playout is None:
            self.frames_dropped += 1
            return
        packet = playout.push_in_order(payload, timestamp, now)
        if packet is None:      # out of order, a gap, early, or another length: the timeline
            playout.push(payload, sequence, timestamp, now)
            self._pump()
            return
        # in order and due: straight out (what _pump would do, with no timer left to set)
        gateway = session.endpoints.get("gateway")
        if gateway is not None and gateway.send_allowed and gateway.destination is not None \
                and session.send(gateway, packet):
            self.audio_out += 1
        else:
            self.audio_unsent += 1

    def detach(self):
        """The client's session is gone for now (it may re-attach): the gateway hears
        silence, one ptime at a time, on the same RTP stream."""
        if self._filler is not None or self.playout is None:
            return
        from twisted.internet.task import LoopingCall
        self.playout.resync()
        silence = bytes((g711.SILENCE[self.codec],)) * (8 * self.ptime)
        self._filler_ts = 0

        def fill():
            if self.session.closed or self.playout is None:
                return
            self.playout.push(silence, 0, self._filler_ts, self.session.clock.seconds())
            self._filler_ts = (self._filler_ts + len(silence)) & 0xFFFFFFFF
            self._pump()
        self._filler = LoopingCall(fill)
        self._filler.clock = self.session.clock
        self._filler.start(self.ptime / 1000.0, now=True).addErrback(
            lambda f: log.failure("media {call_id}: silence filler", f,
                                  call_id=self.session.call_id))

    def reattach(self):
        """The client is back: its own frames again, on a timeline that starts over."""
        self.stop_filler()
        if self.playout is not None:
            self.playout.resync()

    def stop_filler(self):
        if self._filler is not None and self._filler.running:
            self._filler.stop()
        self._filler = None

    def _pump(self):
        session = self.session
        now = session.clock.seconds()
        gateway = session.endpoints.get("gateway")
        packets = self.playout.pull(now)
        if gateway is not None and gateway.destination is not None and gateway.send_allowed:
            for data in packets:
                if session.send(gateway, data):
                    self.audio_out += 1
                else:
                    self.audio_unsent += 1
        else:
            self.audio_unsent += len(packets)
        wake = self.playout.next_wakeup()
        if wake is None or session.closed:
            return
        delay = max(0.0, wake - now)
        call = self._pump_call
        if call is not None and call.active():
            if call.getTime() <= now + delay + 1e-4:
                return
            call.cancel()
        self._pump_call = session.clock.callLater(delay, self._pump)

    def send_dtmf(self, gateway, digit: str, duration_ms: int):
        """RFC 4733 packets for ``digit`` toward ``gateway`` (connected, with an event type);
        see ``RelaySession.send_dtmf``."""
        clock = self.session.clock
        sender = DtmfSender(gateway.event_type, self.playout.ssrc, ptime=gateway.ptime)
        try:
            plan = sender.packets(digit, duration_ms, 0,
                                  self.playout.event_timestamp(clock.seconds()))
        except DtmfError:
            return defer.fail()
        done = defer.Deferred()
        for index, (offset, packet) in enumerate(plan):
            last = index == len(plan) - 1
            clock.callLater(offset, self._send_event, packet, done if last else None, len(plan))
        return done

    def _send_event(self, packet, done, count):
        session = self.session
        gateway = session.endpoints.get("gateway")
        if not session.closed and gateway is not None and gateway.destination is not None:
            data = replace(packet, sequence=self.playout.take_sequence()).to_bytes()
            session.send(gateway, data)
        if done is not None:
            done.callback(count)

    # --- gateway -> client ---------------------------------------------------------------

    def to_client(self, data: bytes) -> bool:
        """One gateway RTP packet to the ``deliver`` callback; False when it did not reach the
        client's transport (the callback said so, failed, or the packet is malformed)."""
        if data[0] == 0x80:  # no padding, extension or CSRCs: the usual case, read in place
            payload = data[12:]
            sequence = data[2] << 8 | data[3]
            timestamp = int.from_bytes(data[4:8], "big")
        else:
            try:
                packet = parse_rtp(data)
            except RtpParseError:
                return False
            payload, sequence, timestamp = packet.payload, packet.sequence, packet.timestamp
        if self.translate is not None:
            payload = payload.translate(self.translate)
        try:
            return self.deliver(payload, (sequence - self.skipped) & 0xFFFF,
                                timestamp) is not False
        except Exception:
            log.failure("media {call_id}: client delivery failed",
                        call_id=self.session.call_id)
            return False

    def stop(self):
        """Cancel the pacing timer and the filler (the session closes)."""
        self.stop_filler()
        if self._pump_call is not None and self._pump_call.active():
            self._pump_call.cancel()
        self._pump_call = None
