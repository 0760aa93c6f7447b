"""The echo test number: a leg answered by callgw itself, so a user can test microphone and
speaker without a gateway (issue "The web site and the browser call client", item 5).

Owned by the call path. ``[calls] echo_number`` (E.164; empty: off) routes to this leg instead
of a gateway: the call server gives the handler the one pseudo-gateway ``ECHO_GATEWAY``, whose
protocol ``echo`` only ``EchoLegProvider`` serves. The director's rules apply to it as to any
number, and it shows in the CDRs like any call (gateway ``echo``).

``EchoLeg`` (an ``ICallLeg``): on ``Setup`` it opens an RTP socket of its own on the media
address, answers at once (``Proceeding``, ``Connect`` with its address and the first G.711 codec
of the offer), plays ``PROMPT_SECONDS`` of a 440 Hz prompt tone, then sends back every RTP packet
it receives as its own stream (its SSRC, sequence and timestamps; the caller's payload). The far
end is the relay in relayed mode, the client's own RTP address in direct mode. ``Release``
closes the socket; DTMF is shown back to the caller as a ``Dtmf`` event. Each step is a
``Trace`` for the ladder.

Tests: tests/media/test_echo_number.py.
"""
from __future__ import annotations

import math
import os
import sys
from array import array

from twisted.internet.defer import succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver import events as ev
from callgw.interfaces import ICallLeg, ILegProvider
from protocols.rtp import g711
from protocols.rtp.packet import RtpPacket, RtpParseError, is_rtcp, parse_rtp

PROMPT_SECONDS = 0.6
PROMPT_HZ = 440.0
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}

#: The pseudo-gateway the call server routes the echo number to.
ECHO_GATEWAY = {"name": "echo", "protocol": "echo", "host": "callgw", "port": 0,
                "prefixes": [], "capacity": 1000, "priority": 0, "weight": 0,
                "options": {}, "strip_digits": 0, "prepend": "", "keep_plus": True,
                "caller_id": "pass", "enabled": True}


def prompt_frames(codec: str, seconds: float = PROMPT_SECONDS) -> list[bytes]:
    """The prompt tone as 20 ms G.711 frames in ``codec``."""
    n = int(8000 * seconds)
    samples = array("h", (int(6000 * math.sin(2 * math.pi * PROMPT_HZ * i / 8000))
                          for i in range(n)))
    if sys.byteorder != "little":
        samples.byteswap()
    data = g711.encode(codec, samples.tobytes())
    return [data[i:i + 160] for i in range(0, len(data) - 159, 160)]


class _Socket(DatagramProtocol):
    def __init__(self, leg):
        self.leg = leg

    def datagramReceived(self, data, addr):
        self.leg.rtp_received(data, addr)


@implementer(ICallLeg)
class EchoLeg:
    """callgw answering a call itself: prompt tone, then the caller's own audio back."""

    log = Logger()
    name = "echo"

    def __init__(self, reactor, address: str, call_id: str):
        self.reactor = reactor
        self.address = address
        self.call_id = call_id
        self.sink = None
        self.port = None
        self.far = None                 # where the caller's RTP comes from / goes to
        self.codec = "PCMU"
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.sequence = int.from_bytes(os.urandom(2), "big")
        self.timestamp = int.from_bytes(os.urandom(4), "big")
        self.prompt: list[bytes] = []
        self._pacer = None
        self.echoed = 0
        self.released = False

    # -- ICallLeg -----------------------------------------------------------------------------
    def attach(self, sink) -> None:
        self.sink = sink

    def send(self, event) -> None:
        kind = type(event)
        if kind is ev.Setup:
            self._answer(event)
        elif kind is ev.Release:
            self._trace("in", f"release ({event.cause})")
            self.close()
        elif kind is ev.Dtmf:
            self._emit(ev.Dtmf(event.digit, event.duration_ms))     # heard back, like audio
        elif kind is ev.MediaOffer:
            self.far = (event.media.address, event.media.port)
            self._emit(ev.MediaAnswer(self._media()))

    def close(self) -> None:
        self.released = True
        if self._pacer is not None and self._pacer.running:
            self._pacer.stop()
        self._pacer = None      # it calls our method: no cycle outlives the call
        if self.port is not None:
            self.port.stopListening()
            self.port = None

    def liveness(self):
        return None

    def recovery(self):
        return None

    def statistics(self):
        """For the CDR: how many of the caller's packets were sent back."""
        return {"echoed_packets": self.echoed}

    # -- the call -----------------------------------------------------------------------------
    def _answer(self, setup) -> None:
        offer = setup.media
        if offer is not None:
            self.codec = next((c for c in offer.codecs if c in PAYLOAD_TYPES), "PCMU")
            self.far = (offer.address, offer.port)
        self.port = self.reactor.listenUDP(0, _Socket(self), interface=self.address)
        self._trace("in", f"setup {setup.target}")
        self._emit(ev.Proceeding())
        self._trace("out", f"answered: prompt {PROMPT_SECONDS:g} s then echo ({self.codec})")
        self._emit(ev.Connect(self._media()))
        self.prompt = prompt_frames(self.codec)
        self._pacer = LoopingCall(self._play)
        self._pacer.clock = self.reactor
        self._pacer.start(0.02, now=True).addErrback(
            lambda f: self.log.failure("echo {call_id}: prompt", f, call_id=self.call_id))

    def _media(self) -> ev.MediaDescription:
        return ev.MediaDescription(self.address, self.port.getHost().port, (self.codec,),
                                   telephone_event=None)

    def _play(self) -> None:
        if not self.prompt or self.released:
            if self._pacer is not None and self._pacer.running:
                self._pacer.stop()
            return
        self._send(self.prompt.pop(0), PAYLOAD_TYPES[self.codec])

    def rtp_received(self, data: bytes, addr) -> None:
        """A caller packet: latch its source, echo its payload once the prompt is over."""
        if self.released or is_rtcp(data):
            return
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            return
        self.far = addr
        if not self.prompt and packet.payload_type in PAYLOAD_TYPES.values():
            self.echoed += 1
            self._send(packet.payload, packet.payload_type)

    def _send(self, payload: bytes, payload_type: int) -> None:
        if self.port is None or self.far is None:
            return
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        self.port.write(RtpPacket(payload_type, self.sequence, self.timestamp, self.ssrc,
                                  payload).to_bytes(), self.far)

    def _emit(self, event) -> None:
        if self.sink is not None and not self.released:
            self.sink(self, event)

    def _trace(self, direction: str, summary: str) -> None:
        if self.sink is not None:
            self.sink(self, ev.Trace("echo", direction, summary))


@implementer(ILegProvider)
class EchoLegProvider:
    """The echo number's legs: no sockets until a call, no health to probe."""

    name = "echo"
    shutdown_grace = 0.0

    def __init__(self, reactor, number: str, media_address: str):
        self.reactor = reactor
        self.number = number
        self.media_address = media_address

    def start(self):
        return succeed(None)

    def stop(self):
        return succeed(None)

    def make_leg(self, gateway, call_id):
        return EchoLeg(self.reactor, self.media_address, call_id)

    def ping(self, gateway):
        return succeed(0.0)

    def capacity(self, gateway):
        return None

    def release_orphan(self, gateway, recovery):
        return succeed(None)
