"""A scripted H.323 gateway: a test FIXTURE, not a real peer.

It answers one call per connection the way deployed H.323 PSTN gateways do, from a fixed script:
CallProceeding, Alerting (with a Progress indicator "in-band information available"), then Connect;
H.245 either tunnelled in the H.225.0 messages or on a separate TCP connection it listens for at
the ``h245Address`` it gives in Connect. Modes (``Script``):

- ``fast_start=True``: it accepts our fastStart proposals (the answer rides in Alerting);
- ``fast_start=False``: it refuses them (``fastConnectRefused`` for v4, nothing for v2/v3) and the
  audio channels are opened with H.245 OpenLogicalChannel both ways once capabilities and msd are
  done;
- ``version`` 2, 3 or 4: the protocolIdentifier it speaks, leaving out the extension additions
  that version did not have (as an encoder of that version does);
- ``tunnelling``: whether it accepts H.245 tunnelling;
- ``reject_cause``: answer the Setup with ReleaseComplete and this cause instead;
- ``answer``: False to ring forever (timer tests).

A Status Enquiry outside a call (a health probe) is answered with Status (cause 30, call state
Null). With ``ScriptedGateway(echo=True)`` it also has an RTP socket (its ``rtp`` address in the
script) and sends every packet it receives back to the address the call gave it for its own audio
(the fastStart reverse channel or our OpenLogicalChannelAck), the way ``sipp -rtp_echo`` does.

Its H.245 side is a script too: it answers TerminalCapabilitySet with an Ack and its own set,
answers MasterSlaveDetermination by the H.245 8.2.2 rule (terminal type 60, a fixed number), acks
our OpenLogicalChannel with its RTP address, records UserInputIndications, and answers
EndSessionCommand. Every byte it sends goes through the same tshark judgement as ours.

It uses the project's codec modules to build and read PDUs; tshark, not this fixture, is the
judge of the encoding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import defer, protocol

from protocols.h323 import h225, h245, q931, tpkt
from protocols.h323.q931 import IE

GW_NUMBER = 0x345678
GW_TYPE = 60
VENDOR = {"vendor": {"t35CountryCode": 181, "t35Extension": 0, "manufacturerCode": 0x7447},
          "productId": b"ScriptedGW", "versionId": b"1.0"}


@dataclass
class Script:
    fast_start: bool = True
    tunnelling: bool = True
    version: int = 4
    answer: bool = True
    reject_cause: int | None = None
    rtp: tuple = ("127.0.0.1", 40000)
    rtcp: tuple = ("127.0.0.1", 40001)
    codecs: tuple = ("PCMU", "PCMA")
    h245_port: int = 0
    hangup_after: float | None = None    # the gateway hangs up this long after Connect


@dataclass
class CallRecord:
    """What the fixture saw of one call."""
    setup: object = None
    messages: list = field(default_factory=list)      # Q.931 message names received
    h245: list = field(default_factory=list)          # H.245 PDU names received
    digits: str = ""
    send_to: tuple | None = None                      # where the fixture would send its audio
    receive_codec: str | None = None
    released: defer.Deferred = field(default_factory=defer.Deferred)
    connected: defer.Deferred = field(default_factory=defer.Deferred)
    h245_ready: defer.Deferred = field(default_factory=defer.Deferred)


def _msd_decision(local_number, remote_type, remote_number):
    if remote_type != GW_TYPE:
        return "master" if GW_TYPE > remote_type else "slave"
    diff = (remote_number - local_number) % (1 << 24)
    return "master" if diff < 0x800000 else "slave"


class GatewayCall(protocol.Protocol):
    """One call-signalling connection of the fixture."""

    def __init__(self, factory):
        self.factory = factory
        self.script = factory.script
        self.record = CallRecord()
        self.framer = tpkt.Framer()
        self.crv = None
        self.call_id = None
        self.tunnel = False
        self.h245_conn = None
        self.h245_listener = None
        self.tcs_sent = self.tcs_acked = self.remote_tcs = False
        self.msd_done = False
        self.olc_sent = False
        self.esc_sent = False
        self.closed = False

    @property
    def pid(self):
        return f"0.0.8.2250.0.{self.script.version}"

    # -- sending -----------------------------------------------------------------------------
    def send(self, body_name, body, ies=(), control=()):
        if self.closed:
            return
        body = dict(body) if isinstance(body, dict) else body
        if isinstance(body, dict) and self.script.version < 4:
            for key in ("multipleCalls", "maintainConnection", "fastConnectRefused"):
                body.pop(key, None)
        if isinstance(body, dict):
            body["protocolIdentifier"] = self.pid
            if "destinationInfo" in body:
                body["destinationInfo"]["vendor"] = VENDOR
        data = h225.encode_message(body_name, body, self.crv, True, ies=ies,
                                   tunnelling=self.tunnel, h245_control=list(control),
                                   require_additions=self.script.version >= 4)
        self.transport.write(tpkt.frame(data))

    def send_h245(self, *messages):
        pdus = [h245.encode(m) for m in messages]
        if self.tunnel:
            if self.script.version >= 4:
                self.send("empty", None, control=pdus)
            else:
                self.send("facility", h225.facility_body(self.call_id, "undefinedReason"),
                          control=pdus)
        elif self.h245_conn is not None:
            for pdu in pdus:
                self.h245_conn.transport.write(tpkt.frame(pdu))

    def _response(self, name, **kw):
        return h225.response_body(name, self.call_id, gateway=True, **kw)

    # -- receiving ---------------------------------------------------------------------------
    def dataReceived(self, data):
        for payload in self.framer.feed(data):
            if not payload:
                continue
            signal = h225.decode_message(payload)
            self.record.messages.append(signal.body_name or signal.q931.name)
            if signal.q931.type == q931.MessageType.STATUS_ENQUIRY and self.crv is None:
                self.factory.enquiries += 1
                crv = signal.q931.call_reference
                data = h225.encode_message("status", h225.status_body(h225.new_guid()), crv, True,
                                           ies=[(IE.CAUSE, q931.cause(30)),
                                                (IE.CALL_STATE, q931.call_state(0))])
                self.transport.write(tpkt.frame(data))
            elif signal.q931.type == q931.MessageType.SETUP:
                self.on_setup(signal)
            elif signal.q931.type == q931.MessageType.RELEASE_COMPLETE:
                self.finish(signal)
                return
            elif self.tunnel:
                for pdu in signal.h245_control:
                    self.on_h245(pdu)

    def on_setup(self, signal):
        self.crv = signal.q931.call_reference
        self.factory.call_started(self)
        self.record.setup = signal
        body = signal.body
        self.call_id = body["callIdentifier"]["guid"]
        self.conference_id = body["conferenceID"]
        self.tunnel = self.script.tunnelling and signal.tunnelling
        if self.script.reject_cause is not None:
            self.send("releaseComplete", h225.release_complete_body(self.call_id, "inConf"),
                      ies=[(IE.CAUSE, q931.cause(self.script.reject_cause))])
            self.close()
            return
        self.send("callProceeding", self._response("callProceeding"))
        fast = []
        if self.script.fast_start and "fastStart" in body:
            proposals = [h245.decode_olc(x) for x in body["fastStart"]]
            fast, codec = h245.fast_start_answer(proposals, self.script.codecs,
                                                 self.script.rtp, self.script.rtcp)
            for olc in proposals:
                media = h245.channel_media(olc)
                if media.direction == "reverse" and media.codec == codec:
                    self.record.send_to = media.rtp
                    self.record.receive_codec = codec
        self.send("alerting", self._response("alerting", fast_start=fast),
                  ies=[(IE.PROGRESS_INDICATOR, q931.progress(q931.Progress.INBAND_AVAILABLE))])
        if self.script.answer:
            self.answer(refused=not fast)

    def answer(self, refused):
        kw = {"conference_id": self.conference_id}
        if refused and self.script.version >= 4:
            kw["fast_connect_refused"] = True
        if not self.tunnel:
            self.h245_listener = self.factory.reactor.listenTCP(
                self.script.h245_port, _H245Factory(self), interface="127.0.0.1")
            kw["h245_address"] = ("127.0.0.1", self.h245_listener.getHost().port)
        self.send("connect", self._response("connect", **kw))
        self.record.connected.callback(None)
        if self.script.hangup_after is not None:
            self.factory.reactor.callLater(self.script.hangup_after,
                                           lambda: None if self.closed else self.hangup(16))
        if self.tunnel:
            self.start_h245()

    def start_h245(self):
        self.tcs_sent = True
        self.send_h245(h245.terminal_capability_set(1, self.script.codecs),
                       h245.msd_request(GW_TYPE, GW_NUMBER))

    def on_h245(self, data):
        kind, (name, value) = h245.decode(data)
        self.record.h245.append(name)
        if name == "terminalCapabilitySet":
            self.remote_tcs = True
            self.send_h245(h245.tcs_ack(value["sequenceNumber"]))
        elif name == "terminalCapabilitySetAck":
            self.tcs_acked = True
        elif name == "masterSlaveDetermination":
            decision = _msd_decision(GW_NUMBER, value["terminalType"],
                                     value["statusDeterminationNumber"])
            self.send_h245(h245.msd_ack("slave" if decision == "master" else "master"))
        elif name == "masterSlaveDeterminationAck":
            self.msd_done = True
        elif name == "openLogicalChannel":
            media = h245.channel_media(value)
            self.record.receive_codec = media.codec
            self.send_h245(h245.olc_ack(value["forwardLogicalChannelNumber"],
                                        self.script.rtp, self.script.rtcp))
        elif name == "openLogicalChannelAck":
            rtp, _rtcp = h245.ack_media(value)
            self.record.send_to = rtp
        elif name == "userInput":
            self.record.digits += h245.uii_digits(value)
        elif name == "endSessionCommand":
            if not self.esc_sent:
                self.esc_sent = True
                self.send_h245(h245.end_session())
        elif name == "closeLogicalChannel":
            self.send_h245(h245.clc_ack(value["forwardLogicalChannelNumber"]))
        if self.tcs_acked and self.remote_tcs and self.msd_done and not self.record.h245_ready.called:
            self.record.h245_ready.callback(None)
            if not self.script.fast_start and not self.olc_sent:
                self.olc_sent = True
                codec = self.script.codecs[0]
                self.send_h245(h245.open_logical_channel(
                    h245.olc_transmit(7, codec, self.script.rtcp)))

    # -- ending ------------------------------------------------------------------------------------
    def hangup(self, cause=16):
        """The gateway clears the call: EndSessionCommand (when H.245 runs), ReleaseComplete."""
        if self.tcs_sent and not self.esc_sent:
            self.esc_sent = True
            self.send_h245(h245.end_session())
        self.send("releaseComplete", h225.release_complete_body(self.call_id),
                  ies=[(IE.CAUSE, q931.cause(cause))])
        self.close()

    def finish(self, signal):
        cause = signal.q931.get(IE.CAUSE)
        self.close()
        if not self.record.released.called:
            self.record.released.callback(q931.parse_cause(cause)["value"] if cause else None)

    def close(self):
        self.closed = True
        if self.h245_conn is not None:
            self.h245_conn.transport.loseConnection()
        if self.h245_listener is not None:
            self.h245_listener.stopListening()
            self.h245_listener = None
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.close_listener()
        if not self.record.released.called:
            self.record.released.callback("connection lost")

    def close_listener(self):
        if self.h245_listener is not None:
            self.h245_listener.stopListening()
            self.h245_listener = None


class _H245Conn(protocol.Protocol):
    def __init__(self, call):
        self.call = call
        self.framer = tpkt.Framer()

    def connectionMade(self):
        self.call.h245_conn = self
        self.call.close_listener()
        self.call.start_h245()

    def dataReceived(self, data):
        for payload in self.framer.feed(data):
            if payload:
                self.call.on_h245(payload)


class _H245Factory(protocol.Factory):
    def __init__(self, call):
        self.call = call

    def buildProtocol(self, addr):
        return _H245Conn(self.call)


class ScriptedGateway(protocol.Factory):
    """The fixture's listener: ``start()`` listens on 127.0.0.1 (port 0), ``calls`` holds each
    call's ``GatewayCall``; ``stop()`` closes everything (a Deferred)."""

    def __init__(self, reactor, script: Script | None = None, echo=False):
        self.reactor = reactor
        self.script = script or Script()
        self.calls = []
        self.connections = []
        self.enquiries = 0
        self.port = None
        self.call_arrived = defer.Deferred()
        self.echo = _Echo(self) if echo else None
        self.rtp_port = None

    def buildProtocol(self, addr):
        conn = GatewayCall(self)
        self.connections.append(conn)
        return conn

    def call_started(self, call):
        self.calls.append(call)
        if not self.call_arrived.called:
            self.call_arrived.callback(call)

    def start(self):
        if self.echo is not None:
            self.rtp_port = self.reactor.listenUDP(0, self.echo, interface="127.0.0.1")
            port = self.rtp_port.getHost().port
            self.script.rtp = ("127.0.0.1", port)
            self.script.rtcp = ("127.0.0.1", port + 1)
        self.port = self.reactor.listenTCP(0, self, interface="127.0.0.1")
        return self.port.getHost().port

    def stop(self):
        for conn in self.connections:
            if not conn.closed and conn.transport is not None:
                conn.close()
            conn.close_listener()
        ds = [defer.maybeDeferred(self.port.stopListening)] if self.port else []
        if self.rtp_port is not None:
            ds.append(defer.maybeDeferred(self.rtp_port.stopListening))
        self.port = self.rtp_port = None
        return defer.gatherResults(ds)


class _Echo(protocol.DatagramProtocol):
    """The fixture's RTP: every packet goes back to where the current call says to send."""

    def __init__(self, factory):
        self.factory = factory
        self.received = 0
        self.sent = 0

    def datagramReceived(self, data, addr):
        self.received += 1
        calls = self.factory.calls
        target = calls[-1].record.send_to if calls else None
        if target is not None:
            self.transport.write(data, target)
            self.sent += 1
