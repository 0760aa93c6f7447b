"""An outgoing H.323 call toward a gateway: H.225.0 call signalling (H.225.0 clause 7, H.323 clause
8.1), fastStart (H.323 8.1.7), H.245 tunnelled (H.323 8.2.1) or on the separate channel the
gateway names in h245Address (8.1.1/8.2), and call clearing (8.5).

Owns the originating side, sans-I/O: ``OutgoingCall.setup()`` and every input (``receive`` a TPKT
payload from the call-signalling connection, ``h245_connected``/``h245_received``/``h245_lost`` for
the separate channel, ``timer_expired``, ``send_dtmf``, ``release``) return a list of effects:
``Send`` (a Q.931 message for the call-signalling connection), ``SendH245`` (an H.245 PDU for the
separate channel), ``ConnectH245``, ``CloseH245``, ``CloseConnection``, ``StartTimer``,
``StopTimer``, and the call's events: ``Proceeding``, ``Alerting``, ``Progress``, ``Connected``,
``MediaTransmit`` (where our audio goes), ``MediaReceive`` (the peer sends to our RTP address),
``DtmfReceived``, ``Released``. Call states and Q.931 timers come from ``callstate``; H.245 from
``h245session``. A message from the peer that does not decode, or does not fit the call state, is
a protocol error: the call is cleared with the Q.850 cause the error carries (``Released`` says
``protocol_error``), never an exception.

Tests: tests/h323/test_call.py (cores against scripted peers), tests/h323/test_wire.py (tshark).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from protocols.h323 import callstate, h225, h245, h245session, q931
from protocols.h323.causes import CAUSE_TO_REASON, REASON_TO_CAUSE
from protocols.h323.callstate import CallState, Event
from protocols.h323.q931 import IE


# ---- effects -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    data: bytes
    summary: str


@dataclass(frozen=True)
class SendH245:
    data: bytes
    summary: str


@dataclass(frozen=True)
class ConnectH245:
    host: str
    port: int


@dataclass(frozen=True)
class CloseH245:
    pass


@dataclass(frozen=True)
class CloseConnection:
    pass


RELEASE_WAIT = 2.0   # after the gateway's EndSessionCommand, seconds to wait for its ReleaseComplete

StartTimer = h245session.StartTimer
StopTimer = h245session.StopTimer


# ---- events ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proceeding:
    pass


@dataclass(frozen=True)
class Alerting:
    inband: bool


@dataclass(frozen=True)
class Progress:
    inband: bool


@dataclass(frozen=True)
class Connected:
    pass


@dataclass(frozen=True)
class MediaTransmit:
    codec: str
    rtp: tuple
    rtcp: tuple | None
    fast_start: bool


@dataclass(frozen=True)
class MediaReceive:
    codec: str
    rtcp: tuple | None
    fast_start: bool


@dataclass(frozen=True)
class DtmfReceived:
    digits: str


@dataclass(frozen=True)
class Released:
    cause: int
    reason: str
    by_peer: bool
    protocol_error: bool = False




@dataclass
class CallOptions:
    """What the caller decides: addresses, codecs (our receive preference), and the modes."""
    dest_number: str
    rtp: tuple
    rtcp: tuple
    calling_number: str | None = None
    display: str | None = None
    codecs: tuple = ("PCMU", "PCMA")
    fast_start: bool = True
    tunnelling: bool = True
    source_address: tuple | None = None
    dest_address: tuple | None = None
    alias: str = "callgw"
    timers: dict = field(default_factory=dict)
    called_type: int = 0             # Q.931 type of number: 0 unknown, 1 international
    calling_presentation: int = 0    # 0 allowed, 1 restricted


class OutgoingCall:
    """One call on one call-signalling connection; we allocate ``call_reference`` (flag 0)."""

    def __init__(self, call_reference, options: CallOptions, *, call_id=None, conference_id=None,
                 rng=None):
        self.crv = call_reference
        self.options = options
        self.call_id = call_id or h225.new_guid()
        self.conference_id = conference_id or h225.new_guid()
        self.state = CallState.NULL
        self.session = h245session.H245Session(options.codecs, options.rtp, options.rtcp, rng=rng)
        self.tunnelling = None           # None until the gateway's first answer says
        self.h245_channel = "none"       # none | connecting | up
        self.fast_start_numbers = {}
        self.fast_start = None           # None: undecided, True: accepted, False: refused
        self.remote_version = 4
        self._tunnel_queue = []
        self.released = None

    # -- building messages -------------------------------------------------------------------------
    def _message(self, body_name, body, ies=(), summary=None):
        control = []
        if self.tunnelling and self._tunnel_queue:
            control, self._tunnel_queue = self._tunnel_queue, []
        data = h225.encode_message(body_name, body, self.crv, False, ies=ies,
                                   tunnelling=bool(self.options.tunnelling and self.tunnelling
                                                   is not False),
                                   h245_control=[c.data for c in control])
        names = "+".join(c.summary for c in control)
        return Send(data, (summary or body_name) + (f" [{names}]" if names else ""))

    def _transition(self, event):
        nxt, start, stop = callstate.transition(self.state, event)
        self.state = nxt
        return ([StopTimer(t) for t in stop] +
                [StartTimer(t, self.options.timers.get(t, getattr(callstate, t))) for t in start])

    # -- the call's own actions ------------------------------------------------------------------
    def setup(self):
        o = self.options
        fast = []
        if o.fast_start:
            fast, self.fast_start_numbers = h245.fast_start_offer(o.codecs, o.rtp, o.rtcp)
        body = h225.setup_body(
            self.call_id, self.conference_id, source_aliases=[("h323-ID", o.alias)],
            dest_number=o.dest_number, source_address=o.source_address, fast_start=fast,
            dest_call_signal_address=o.dest_address)
        ies = [(IE.SENDING_COMPLETE, b""), (IE.BEARER_CAPABILITY, q931.bearer_capability()),
               (IE.CALLED_PARTY_NUMBER, q931.party_number(o.dest_number, o.called_type))]
        if o.display:
            ies.append((IE.DISPLAY, q931.display(o.display)))
        if o.calling_number:
            ies.append((IE.CALLING_PARTY_NUMBER, q931.party_number(
                o.calling_number, o.called_type, presentation=o.calling_presentation)))
        out = self._transition(Event.SEND_SETUP)
        return [self._message("setup", body, ies)] + out

    def release(self, cause=16):
        """Clear the call (H.323 8.5): EndSessionCommand, then ReleaseComplete with ``cause``."""
        return self._clear(cause, f"released by us (cause {cause})")

    def transport_error(self, reason):
        """The call-signalling stream is not TPKT: clear with cause 100, as a protocol error."""
        return self._clear(100, f"gateway stream: {reason}", protocol_error=True)

    def connection_lost(self, reason="call-signalling connection lost"):
        """The TCP connection went away: the call is over, nothing can be sent (cause 41)."""
        if self.state is CallState.NULL:
            return []
        self.state = CallState.NULL
        self.session.ended = True
        self.released = Released(41, reason, by_peer=True)
        return [StopTimer(t) for t in callstate.ALL_TIMERS] + [CloseH245(), self.released]

    def send_dtmf(self, digit):
        """``digit`` as UserInputIndication, once TCS and msd are done (H.323 8.2)."""
        if self.state is CallState.NULL:
            return []
        return self._h245(self.session.send_dtmf(digit))

    def timer_expired(self, name):
        if name == "release-wait":
            return self._clear(16, "gateway ended the H.245 session but sent no ReleaseComplete",
                               by_peer=True)
        if name.startswith("h245."):
            return self._h245(self.session.timer_expired(name))
        event = {"T303": Event.T303_EXPIRY, "T310": Event.T310_EXPIRY,
                 "T301": Event.T301_EXPIRY}.get(name)
        if event is None or self.state is CallState.NULL:
            return []
        try:
            callstate.transition(self.state, event)
        except callstate.CallStateError:
            return []  # a stale timer
        cause = 19 if name == "T301" else 102
        return self._clear(cause, f"{name} expired in {self.state.name}")

    # -- the separate H.245 channel --------------------------------------------------------------
    def h245_connected(self):
        self.h245_channel = "up"
        return self._h245(self.session.start())

    def h245_received(self, data):
        try:
            return self._h245(self.session.receive(data))
        except h245.H245Error as e:
            return self._clear(100, f"H.245: {e}", protocol_error=True)

    def h245_lost(self, reason="H.245 connection lost"):
        if self.state is CallState.NULL or self.h245_channel != "up":
            return []
        self.h245_channel = "none"
        return self._clear(41, reason)

    # -- H.245 effects, routed tunnelled or on the channel --------------------------------------
    def _h245(self, effects):
        out = []
        for e in effects:
            if isinstance(e, h245session.SendPDU):
                if self.tunnelling:
                    self._tunnel_queue.append(e)
                else:
                    out.append(SendH245(e.data, e.summary))
            elif isinstance(e, (StartTimer, StopTimer)):
                out.append(e)
            elif isinstance(e, h245session.Ready):
                if self.fast_start is False:
                    out += self._h245(self.session.open_audio())
            elif isinstance(e, h245session.TransmitChannelOpen):
                out.append(MediaTransmit(e.codec, e.rtp, e.rtcp, fast_start=False))
            elif isinstance(e, h245session.ReceiveChannelOpen):
                out.append(MediaReceive(e.codec, e.rtcp, fast_start=False))
            elif isinstance(e, h245session.DtmfReceived):
                out.append(DtmfReceived(e.digits))
            elif isinstance(e, h245session.SessionEnded):
                # H.323 8.5: the side that ended the session sends ReleaseComplete (with its
                # cause); we wait for it a little before clearing ourselves
                if self.state is not CallState.NULL:
                    out.append(StartTimer("release-wait", RELEASE_WAIT))
            elif isinstance(e, h245session.H245Failed):
                out += self._clear(47, f"H.245: {e.reason}")
        if self.tunnelling and self._tunnel_queue and self.state is not CallState.NULL:
            out.append(self._tunnel_facility())
        return out

    def _tunnel_facility(self):
        if self.remote_version >= 4:
            return self._message("empty", None, summary="facility")
        body = h225.facility_body(self.call_id, "undefinedReason")
        return self._message("facility", body)

    def _clear(self, cause, reason, *, by_peer=False, protocol_error=False):
        if self.state is CallState.NULL:
            return []
        out = self._h245(self.session.end())
        body = h225.release_complete_body(self.call_id, CAUSE_TO_REASON.get(cause))
        send = self._message("releaseComplete", body, [(IE.CAUSE, q931.cause(cause))])
        out += self._transition(Event.SEND_RELEASE_COMPLETE)
        self.released = Released(cause, reason, by_peer=by_peer, protocol_error=protocol_error)
        return out + [StopTimer("release-wait"), send, CloseH245(), CloseConnection(), self.released]

    # -- input from the gateway --------------------------------------------------------------------
    _EVENTS = {
        "callProceeding": Event.RECV_CALL_PROCEEDING, "alerting": Event.RECV_ALERTING,
        "progress": Event.RECV_PROGRESS, "connect": Event.RECV_CONNECT,
        "releaseComplete": Event.RECV_RELEASE_COMPLETE,
    }
    _NON_STATE = {q931.MessageType.FACILITY, q931.MessageType.INFORMATION,
                  q931.MessageType.STATUS, q931.MessageType.STATUS_ENQUIRY,
                  q931.MessageType.NOTIFY}

    def receive(self, payload):
        """One TPKT payload from the call-signalling connection."""
        if not payload:
            return []  # TPKT keep-alive
        try:
            signal = h225.decode_message(payload)
        except h225.H225Error as e:
            return self._clear(e.cause, f"bad message from gateway: {e.reason}", protocol_error=True)
        message = signal.q931
        if message.call_reference != self.crv or not message.from_destination:
            if message.type == q931.MessageType.RELEASE_COMPLETE:
                return []
            return [Send(q931.Message(q931.MessageType.RELEASE_COMPLETE, message.call_reference,
                                      not message.from_destination,
                                      ((IE.CAUSE, q931.cause(81)),)).encode(),
                         "releaseComplete (invalid call reference)")]
        if message.type == q931.MessageType.RELEASE_COMPLETE:
            return self._on_release_complete(signal)
        if message.type in self._NON_STATE:
            event = Event.RECV_NON_CALL_STATE
        else:
            event = self._EVENTS.get(signal.body_name) if signal.body_name else None
            expected = {q931.MessageType.CALL_PROCEEDING: "callProceeding",
                        q931.MessageType.ALERTING: "alerting", q931.MessageType.PROGRESS: "progress",
                        q931.MessageType.CONNECT: "connect"}.get(message.type)
            if expected is None:
                return self._clear(97, f"{message.name} is not an H.225.0 answer", protocol_error=True)
            if signal.body_name not in (expected, None):
                return self._clear(100, f"{message.name} carries a {signal.body_name} body",
                                   protocol_error=True)
            event = self._EVENTS[expected]
        try:
            out = self._transition(event)
        except callstate.CallStateError as e:
            return self._clear(e.cause, f"gateway: {e}", protocol_error=True)
        out += self._common(signal)
        if self.state is CallState.NULL:
            return out
        handler = {Event.RECV_CALL_PROCEEDING: self._on_proceeding,
                   Event.RECV_ALERTING: self._on_alerting,
                   Event.RECV_PROGRESS: self._on_progress,
                   Event.RECV_CONNECT: self._on_connect,
                   Event.RECV_NON_CALL_STATE: self._on_other}[event]
        return out + handler(signal)

    def _common(self, signal):
        """What any message from the gateway may carry: its version, the tunnelling answer,
        fastStart, an h245Address, tunnelled H.245."""
        out = []
        body = signal.body if isinstance(signal.body, dict) else {}
        pid = body.get("protocolIdentifier")
        if pid:
            try:
                self.remote_version = int(pid.rsplit(".", 1)[1])
            except ValueError:
                pass
        if signal.pdu is not None and self.tunnelling is None and signal.body_name != "empty" \
                and "provisionalRespToH245Tunnelling" not in signal.pdu:
            self.tunnelling = bool(self.options.tunnelling and signal.tunnelling)
            if self.tunnelling:
                out += self._h245(self.session.start())
        if "fastStart" in body and self.fast_start is None:
            out += self._fast_start_answer(body["fastStart"])
        if body.get("fastConnectRefused", 1) is None and self.fast_start is None:
            self.fast_start = False
            if self.session.ready:
                out += self._h245(self.session.open_audio())
        address = body.get("h245Address")
        if address is not None and not self.tunnelling and self.h245_channel == "none":
            try:
                host, port = h225.host_port(address)
            except h225.H225Error as e:
                return out + self._clear(e.cause, e.reason, protocol_error=True)
            self.h245_channel = "connecting"
            out.append(ConnectH245(host, port))
        if self.tunnelling:
            for pdu in signal.h245_control:
                try:
                    out += self._h245(self.session.receive(pdu))
                except h245.H245Error as e:
                    return out + self._clear(100, f"tunnelled H.245: {e}", protocol_error=True)
                if self.state is CallState.NULL:
                    break
        return out

    def _fast_start_answer(self, elements):
        out = []
        for data in elements:
            try:
                media = h245.channel_media(h245.decode_olc(data))
            except (h245.H245Error, KeyError) as e:
                return self._clear(100, f"fastStart answer: {e}", protocol_error=True)
            if media.codec not in self.options.codecs:
                return self._clear(65, f"fastStart answer in codec {media.codec}",
                                   protocol_error=True)
            if media.direction == "forward":
                if media.rtp is None:
                    return self._clear(100, "fastStart answer names no media channel",
                                       protocol_error=True)
                out.append(MediaTransmit(media.codec, media.rtp, media.rtcp, fast_start=True))
            else:
                out.append(MediaReceive(media.codec, media.rtcp, fast_start=True))
        self.fast_start = True
        return out

    def _on_proceeding(self, signal):
        return [Proceeding()]

    def _inband(self, signal):
        octets = signal.q931.get(IE.PROGRESS_INDICATOR)
        if octets is None:
            return False
        try:
            return q931.parse_progress(octets)["description"] in (1, 8)
        except q931.Q931Error:
            return False

    def _on_alerting(self, signal):
        return [Alerting(self._inband(signal))]

    def _on_progress(self, signal):
        return [Progress(self._inband(signal))]

    def _on_connect(self, signal):
        out = [Connected()]
        if self.fast_start is None:
            self.fast_start = False  # H.323 8.1.7.1: no fastStart by Connect means refused
            if self.session.ready:
                out += self._h245(self.session.open_audio())
        return out

    def _on_other(self, signal):
        message = signal.q931
        if message.type == q931.MessageType.STATUS_ENQUIRY:
            body = h225.status_body(self.call_id)
            return [self._message("status", body, [(IE.CAUSE, q931.cause(30)),
                                                   (IE.CALL_STATE, q931.call_state(self.state.value))])]
        if signal.body_name == "facility":
            reason = signal.body["reason"][0]
            if reason in ("callForwarded", "routeCallToGatekeeper", "routeCallToMC"):
                return self._clear(23, f"gateway redirects the call ({reason})", by_peer=True)
        return []

    def _on_release_complete(self, signal):
        cause = None
        octets = signal.q931.get(IE.CAUSE)
        if octets is not None:
            try:
                cause = q931.parse_cause(octets)["value"]
            except q931.Q931Error:
                cause = None
        reason = None
        if isinstance(signal.body, dict) and "reason" in signal.body:
            reason = signal.body["reason"][0]
            if cause is None:
                cause = REASON_TO_CAUSE.get(reason, 16)
        if cause is None:
            cause = 16
        try:
            out = self._transition(Event.RECV_RELEASE_COMPLETE)
        except callstate.CallStateError:
            return []
        self.session.ended = True
        text = f"gateway released (cause {cause}" + (f", {reason})" if reason else ")")
        self.released = Released(cause, text, by_peer=True)
        return out + [StopTimer("release-wait"), CloseH245(), CloseConnection(), self.released]
