"""One H.245 control session for an audio call (H.245 clause 8; H.323 clause 8.2-8.5).

Owns, sans-I/O: the capability exchange SE (8.3: outgoing Idle / Awaiting Response with T101;
incoming TCS answered with Ack, or Reject when it offers no G.711), master-slave determination
(``protocols.h323.msd``), logical channel SEs for one audio channel each way (8.4: outgoing
Released / Awaiting Establishment / Established / Awaiting Release with T103; incoming channels
acknowledged with our RTP address), UserInputIndication out (held back until both capability sets
are acknowledged and msd is done, H.323 8.2) and in, and EndSessionCommand (8.5).

The session does not know how its PDUs travel: ``SendPDU`` carries encoded octets that the call
core puts in ``h245Control`` (tunnelling) or the adapter writes on the H.245 TCP connection.

Effects: ``SendPDU``, ``StartTimer``/``StopTimer`` (names prefixed "h245."), and events ``Ready``,
``RemoteCapabilities``, ``TransmitChannelOpen`` (our audio: where to send), ``ReceiveChannelOpen``
(the peer's audio, acknowledged), ``ChannelClosed``, ``DtmfReceived``, ``SessionEnded``,
``H245Failed``.

Tests: tests/h323/test_h245session.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.h323 import h245, msd

T101 = 30.0  # capability exchange (H.245 annex C)
T103 = 30.0  # logical channel signalling


@dataclass(frozen=True)
class SendPDU:
    data: bytes
    summary: str


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay: float


@dataclass(frozen=True)
class StopTimer:
    name: str


@dataclass(frozen=True)
class Ready:
    """Both capability sets acknowledged and msd determined: UII may flow."""
    msd_status: str


@dataclass(frozen=True)
class RemoteCapabilities:
    codecs: tuple
    dtmf: bool
    alphanumeric: bool


@dataclass(frozen=True)
class TransmitChannelOpen:
    number: int
    codec: str
    rtp: tuple
    rtcp: tuple | None


@dataclass(frozen=True)
class ReceiveChannelOpen:
    number: int
    codec: str
    rtcp: tuple | None


@dataclass(frozen=True)
class ChannelClosed:
    number: int
    by_peer: bool


@dataclass(frozen=True)
class DtmfReceived:
    digits: str


@dataclass(frozen=True)
class SessionEnded:
    by_peer: bool


@dataclass(frozen=True)
class H245Failed:
    reason: str


class ChannelState(enum.Enum):
    RELEASED = "Released"
    AWAITING_ESTABLISHMENT = "Awaiting Establishment"
    ESTABLISHED = "Established"
    AWAITING_RELEASE = "Awaiting Release"


class H245Session:
    """``codecs`` we receive, in preference order; ``rtp``/``rtcp`` where we receive."""

    def __init__(self, codecs=("PCMU", "PCMA"), rtp=None, rtcp=None, terminal_type=msd.GATEWAY,
                 rng=None):
        self.codecs = tuple(codecs)
        self.rtp, self.rtcp = rtp, rtcp
        self.msd = msd.MasterSlaveDetermination(terminal_type, rng)
        self.started = False
        self.ended = False
        self._tcs_seq = 0
        self.tcs_acked = False           # our TCS acknowledged
        self.remote_tcs = False          # theirs received and acknowledged
        self.remote_codecs = ()
        self.remote_dtmf = True
        self.ready = False
        self._pending_uii = []
        self.tx = {}                     # our channels: number -> [ChannelState, codec]
        self.rx = {}                     # theirs: number -> codec
        self._next_channel = 101

    # -- helpers ----------------------------------------------------------------------------------
    def _send(self, message):
        return SendPDU(h245.encode(message), message[1][0])

    def _check_ready(self):
        if self.ready or not (self.tcs_acked and self.remote_tcs and self.msd.status):
            return []
        self.ready = True
        out = [Ready(self.msd.status)]
        for digit in self._pending_uii:
            out.append(self._send(self._uii(digit)))
        self._pending_uii = []
        return out

    def _uii(self, digit):
        return h245.uii_signal(digit) if self.remote_dtmf else h245.uii_alphanumeric(digit)

    def _msd_effects(self, effects):
        out = []
        for e in effects:
            if isinstance(e, msd.Send):
                out.append(self._send(e.message))
            elif isinstance(e, msd.StartTimer):
                out.append(StartTimer("h245." + e.name, e.delay))
            elif isinstance(e, msd.StopTimer):
                out.append(StopTimer("h245." + e.name))
            elif isinstance(e, msd.Failed):
                out.append(H245Failed(e.reason))
        return out + self._check_ready()

    # -- inputs from the call -------------------------------------------------------------------
    def start(self):
        """Begin: send our TerminalCapabilitySet and start msd."""
        if self.started:
            return []
        self.started = True
        self._tcs_seq += 1
        out = [self._send(h245.terminal_capability_set(self._tcs_seq, self.codecs)),
               StartTimer("h245.T101", T101)]
        return out + self._msd_effects(self.msd.handle(msd.Input.DETERMINE))

    def open_audio(self, codec=None):
        """Open our transmit channel (when fastStart was refused), in the first of our codecs the
        peer can receive. Effects, or [] when we already have one."""
        if self.tx:
            return []
        choices = [c for c in self.codecs if c in self.remote_codecs] or list(self.remote_codecs)
        codec = codec or (choices[0] if choices else self.codecs[0])
        number = self._next_channel
        self._next_channel += 1
        self.tx[number] = [ChannelState.AWAITING_ESTABLISHMENT, codec]
        olc = h245.olc_transmit(number, codec, self.rtcp)
        return [self._send(h245.open_logical_channel(olc)), StartTimer(f"h245.T103.{number}", T103)]

    def close_audio(self):
        out = []
        for number, entry in self.tx.items():
            if entry[0] is ChannelState.ESTABLISHED:
                entry[0] = ChannelState.AWAITING_RELEASE
                out += [self._send(h245.close_logical_channel(number)),
                        StartTimer(f"h245.T103.{number}", T103)]
        return out

    def send_dtmf(self, digit):
        """A UserInputIndication for ``digit``, now if the session is ready, else once it is."""
        if self.ended:
            return []
        if not self.ready:
            self._pending_uii.append(digit)
            return []
        return [self._send(self._uii(digit))]

    def end(self):
        """EndSessionCommand (8.5): the last PDU of the session."""
        if self.ended or not self.started:
            self.ended = True
            return []
        self.ended = True
        return [self._send(h245.end_session()), StopTimer("h245.T101"), StopTimer("h245.T106")]

    def timer_expired(self, name):
        if name == "h245.T106":
            return self._msd_effects(self.msd.handle(msd.Input.T106_EXPIRY))
        if name == "h245.T101" and not self.tcs_acked:
            return [H245Failed("no answer to TerminalCapabilitySet (T101)")]
        if name.startswith("h245.T103."):
            number = int(name.rsplit(".", 1)[1])
            entry = self.tx.get(number)
            if entry and entry[0] in (ChannelState.AWAITING_ESTABLISHMENT,
                                      ChannelState.AWAITING_RELEASE):
                entry[0] = ChannelState.RELEASED
                return [H245Failed(f"no answer for logical channel {number} (T103)")]
        return []

    # -- input from the peer ------------------------------------------------------------------------
    def receive(self, data):
        """One encoded PDU from the peer; ``h245.H245Error`` if it does not decode."""
        kind, (name, value) = h245.decode(data)
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            if kind == "request":
                # H.245 8.16: answer a request we do not implement, never leave it hanging
                echo = ("indication", ("functionNotUnderstood", (kind, (name, value))))
                return [SendPDU(h245.encode(echo, require_additions=False),
                                "functionNotUnderstood")]
            return []
        return handler(value)

    def _on_terminalCapabilitySet(self, tcs):
        codecs, dtmf, _alnum = h245.capability_codecs(tcs)
        seq = tcs["sequenceNumber"]
        if not codecs:
            return [self._send(h245.tcs_reject(seq)),
                    H245Failed("peer's TerminalCapabilitySet has no G.711")]
        self.remote_codecs, self.remote_dtmf = tuple(codecs), dtmf
        self.remote_tcs = True
        out = [self._send(h245.tcs_ack(seq)), RemoteCapabilities(tuple(codecs), dtmf, _alnum)]
        return out + self._check_ready()

    def _on_terminalCapabilitySetAck(self, ack):
        if ack["sequenceNumber"] != self._tcs_seq:
            return []
        self.tcs_acked = True
        return [StopTimer("h245.T101")] + self._check_ready()

    def _on_terminalCapabilitySetReject(self, _rej):
        return [StopTimer("h245.T101"), H245Failed("peer rejected our TerminalCapabilitySet")]

    def _on_masterSlaveDetermination(self, value):
        return self._msd_effects(self.msd.handle(msd.Input.MSD, value))

    def _on_masterSlaveDeterminationAck(self, value):
        return self._msd_effects(self.msd.handle(msd.Input.ACK, value))

    def _on_masterSlaveDeterminationReject(self, value):
        return self._msd_effects(self.msd.handle(msd.Input.REJECT, value))

    def _on_masterSlaveDeterminationRelease(self, value):
        return self._msd_effects(self.msd.handle(msd.Input.RELEASE, value))

    def _on_openLogicalChannel(self, olc):
        number = olc["forwardLogicalChannelNumber"]
        try:
            media = h245.channel_media(olc)
        except h245.H245Error:
            return [self._send(h245.olc_reject(number, "dataTypeNotSupported"))]
        if media.direction != "forward" or media.codec not in self.codecs:
            return [self._send(h245.olc_reject(number, "dataTypeNotSupported"))]
        if self.rtp is None:
            return [self._send(h245.olc_reject(number, "dataTypeNotAvailable"))]
        self.rx[number] = media.codec
        return [self._send(h245.olc_ack(number, self.rtp, self.rtcp or self.rtp)),
                ReceiveChannelOpen(number, media.codec, media.rtcp)]

    def _on_openLogicalChannelAck(self, ack):
        number = ack["forwardLogicalChannelNumber"]
        entry = self.tx.get(number)
        if not entry or entry[0] is not ChannelState.AWAITING_ESTABLISHMENT:
            return []
        rtp, rtcp = h245.ack_media(ack)
        entry[0] = ChannelState.ESTABLISHED
        out = [StopTimer(f"h245.T103.{number}")]
        if rtp is None:
            return out + [H245Failed(f"OpenLogicalChannelAck {number} names no media channel")]
        return out + [TransmitChannelOpen(number, entry[1], rtp, rtcp)]

    def _on_openLogicalChannelReject(self, rej):
        number = rej["forwardLogicalChannelNumber"]
        if number in self.tx:
            self.tx[number][0] = ChannelState.RELEASED
            return [StopTimer(f"h245.T103.{number}"),
                    H245Failed(f"peer rejected logical channel {number}: {rej['cause'][0]}")]
        return []

    def _on_closeLogicalChannel(self, clc):
        number = clc["forwardLogicalChannelNumber"]
        self.rx.pop(number, None)
        return [self._send(h245.clc_ack(number)), ChannelClosed(number, by_peer=True)]

    def _on_closeLogicalChannelAck(self, ack):
        number = ack["forwardLogicalChannelNumber"]
        entry = self.tx.pop(number, None)
        if entry is None:
            return []
        return [StopTimer(f"h245.T103.{number}"), ChannelClosed(number, by_peer=False)]

    def _on_userInput(self, indication):
        digits = h245.uii_digits(indication)
        return [DtmfReceived(digits)] if digits else []

    def _on_endSessionCommand(self, _value):
        if self.ended:
            return [SessionEnded(by_peer=True)]
        self.ended = True
        return [self._send(h245.end_session()), SessionEnded(by_peer=True)]

    def _on_roundTripDelayRequest(self, value):
        return [self._send(("response", ("roundTripDelayResponse",
                                         {"sequenceNumber": value["sequenceNumber"]})))]
