"""The SIP call slave: neutral events in, SIP out, and back (fake UDP, task.Clock)."""
from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from callgw.callserver.events import (Alerting, Connect, Dtmf, DtmfResult, Hold, MediaAnswer,
                                      MediaDescription, Proceeding, Release, Setup, Trace)
from callgw.callserver.legs.sip import SipLeg, gateway_hop, options_ping
from callgw.interfaces import ICallLeg
from protocols.sip.adapter import SipEndpoint
from protocols.sip.message import make_response
from tests.sip.test_adapter import FakeDatagram

MEDIA = MediaDescription("198.51.100.1", 30000, ("PCMU", "PCMA"), 101, 20, "sendrecv")
GW = {"address": "192.0.2.5", "port": 5060, "transport": "udp", "strip_digits": 2,
      "prepend": "0", "keep_plus": False, "no_answer_timeout": 30}
ANSWER = (b"v=0\r\no=gw 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
          b"m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
          b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n")


class Sink:
    def __init__(self):
        self.events = []
        self.traces = []

    def __call__(self, leg, event):
        (self.traces if isinstance(event, Trace) else self.events).append(event)


def make_leg(**gw):
    reactor = MemoryReactorClock()
    ep = SipEndpoint(reactor, "127.0.0.1", 5070)
    udp = FakeDatagram()
    ep.attach_datagram_transport(udp)
    record = dict(GW)
    record.update(gw)
    leg = SipLeg(ep, record, reactor)
    sink = Sink()
    leg.attach(sink)
    return leg, sink, udp, reactor, ep


def respond(ep, request, status, body=b"", to_tag="gw1", extra=()):
    headers = [("Contact", "<sip:gw@192.0.2.5:5060>")] + list(extra)
    if body:
        headers.append(("Content-Type", "application/sdp"))
    resp = make_response(request, status, to_tag=to_tag, headers=headers)
    resp.body = body
    ep.data_received(resp.to_bytes(), "udp", "192.0.2.5", 5060, None)


def placed(**gw):
    leg, sink, udp, reactor, ep = make_leg(**gw)
    leg.send(Setup("c1", "+4930123456", caller="+4940555", media=MEDIA))
    return leg, sink, udp, reactor, ep, udp.messages()[0]


def test_provides_icallleg():
    leg = make_leg()[0]
    assert verifyObject(ICallLeg, leg)
    assert leg.name == "sip"


def test_setup_places_invite_with_rewriting_identity_and_offer():
    leg, sink, udp, reactor, ep, invite = placed()
    assert invite.uri.startswith("sip:030123456@192.0.2.5")
    assert invite.to.uri.user == "030123456"
    assert "+4940555" in invite.headers.get("P-Asserted-Identity")
    assert b"c=IN IP4 198.51.100.1" in invite.body and b"m=audio 30000" in invite.body
    assert sink.traces[0].direction == "out" and sink.traces[0].summary.startswith("INVITE")


def test_privacy_from_the_gateway_record():
    invite = placed(presentation="restricted")[-1]
    assert invite.headers.get("Privacy") == "id"
    assert invite.from_.uri.user == "anonymous"


def test_proceeding_alerting_connect_and_bye():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 100)
    respond(ep, invite, 180)
    respond(ep, invite, 200, ANSWER)
    assert sink.events[:2] == [Proceeding(), Alerting(None)]
    connect = sink.events[2]
    assert isinstance(connect, Connect)
    assert connect.media.address == "192.0.2.5" and connect.media.port == 40000
    assert connect.media.codecs[0] == "PCMA"
    assert udp.messages()[-1].method == "ACK"
    leg.send(Release(16))
    bye = udp.messages()[-1]
    assert bye.method == "BYE" and bye.headers.get("Reason") == "Q.850;cause=16"
    respond(ep, bye, 200)
    assert len(sink.events) == 3                  # our own release is not echoed back
    assert [t.direction for t in sink.traces].count("in") == 4


def test_early_media_183():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 183, ANSWER)
    assert isinstance(sink.events[0], Alerting) and sink.events[0].media.port == 40000


def test_failure_maps_the_cause():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 486)
    assert sink.events == [Release(17, "486 Busy Here")]


def test_reason_header_wins():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 480, extra=[("Reason", "Q.850;cause=20")])
    assert sink.events[0].cause == 20


def test_release_before_answer_cancels():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 180)
    leg.send(Release(16))
    cancel = udp.messages()[-1]
    assert cancel.method == "CANCEL" and cancel.branch == invite.branch
    respond(ep, invite, 487)
    assert sink.events == [Alerting(None)]


def test_no_answer_timeout_cancels_with_cause_19():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 180)
    reactor.advance(30)
    assert udp.messages()[-1].method == "CANCEL"
    assert sink.events[-1] == Release(19, "no answer")


def test_no_response_at_all_is_408_to_102():
    leg, sink, udp, reactor, ep, invite = placed(no_answer_timeout=100)
    reactor.advance(32)
    assert sink.events == [Release(102, "408 Request Timeout")]


def test_hold_sends_sendonly_reinvite_and_reports_the_answer():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 200, ANSWER)
    leg.send(Hold(True))
    reinvite = udp.messages()[-1]
    assert reinvite.method == "INVITE" and b"a=sendonly" in reinvite.body
    respond(ep, reinvite, 200, ANSWER.replace(b"a=ptime:20", b"a=ptime:20\r\na=recvonly"))
    assert isinstance(sink.events[-1], MediaAnswer)
    leg.send(Hold(False))
    assert b"a=sendrecv" in udp.messages()[-1].body


def test_gateway_reinvite_to_hold_is_answered_and_reported():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 200, ANSWER)
    reinvite = make_reinvite(leg, 2, ANSWER + b"a=sendonly\r\n")
    ep.data_received(reinvite, "udp", "192.0.2.5", 5060, None)
    ok = udp.messages()[-1]
    assert ok.status == 200 and b"a=recvonly" in ok.body
    assert sink.events[-1] == Hold(True)
    ep.data_received(make_reinvite(leg, 3, ANSWER, ack=True), "udp", "192.0.2.5", 5060, None)
    reactor.advance(40)                         # the ACK stopped our 2xx retransmissions
    assert sink.events[-1] == Hold(True)


def make_reinvite(leg, cseq, body, ack=False):
    method = "ACK" if ack else "INVITE"
    number = cseq - 1 if ack else cseq
    lines = [f"{method} sip:callgw@127.0.0.1:5070 SIP/2.0",
             f"Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKre{cseq}",
             "Max-Forwards: 70", "From: <sip:gw@192.0.2.5>;tag=gw1",
             f"To: <sip:x@127.0.0.1>;tag={leg.session.local_tag}",
             f"Call-ID: {leg.session.call_id}", f"CSeq: {number} {method}"]
    if not ack:
        lines.append("Content-Type: application/sdp")
    else:
        body = b""
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_dtmf_goes_as_sip_info_and_a_refusal_comes_back():
    leg, sink, udp, reactor, ep, invite = placed()
    leg.send(Dtmf("5"))                         # before answer: not carried, and said so
    assert sink.events[-1] == DtmfResult("5", False, "the call is not connected")
    respond(ep, invite, 200, ANSWER)
    leg.send(Dtmf("9", 160))
    info = udp.messages()[-1]
    assert info.method == "INFO" and info.headers.get("Content-Type") == "application/dtmf-relay"
    assert info.body == b"Signal=9\r\nDuration=160\r\n"
    events = len(sink.events)
    respond(ep, info, 200)
    assert len(sink.events) == events            # delivered: nothing to report
    leg.send(Dtmf("#"))
    respond(ep, udp.messages()[-1], 415)
    assert sink.events[-1] == DtmfResult(
        "#", False, "the gateway refused SIP INFO (415 Unsupported Media Type)")


def test_close_of_a_leg_never_released_drops_everything_silently():
    leg, sink, udp, reactor, ep, invite = placed()
    sent = len(udp.sent)
    leg.close()
    reactor.advance(100)
    assert sink.events == [] and not ep.dialogs
    assert len(udp.sent) == sent and not ep.table.clients     # no INVITE retransmissions


def test_late_2xx_after_setup_timeout_is_acked_and_byed():
    # the handler gave up before any 1xx (setup timeout, failover): Release, then close.
    # RFC 3261 9.1 holds the CANCEL until a 1xx; the 2xx that comes instead is ACKed and BYEd
    leg, sink, udp, reactor, ep, invite = placed(no_answer_timeout=100)
    leg.send(Release(102))
    leg.close()
    reactor.advance(10)
    assert {m.method for m in udp.messages()} == {"INVITE"}   # retransmitted, no CANCEL yet
    traces = len(sink.traces)
    respond(ep, invite, 200, ANSWER)
    ack, bye = udp.messages()[-2:]
    assert ack.method == "ACK" and ack.cseq == (1, "ACK") and ack.to_tag == "gw1"
    assert bye.method == "BYE" and bye.headers.get("Reason") == "Q.850;cause=102"
    respond(ep, invite, 200, ANSWER)                   # retransmitted 2xx: ACKed again
    assert udp.messages()[-1].method == "ACK"
    respond(ep, bye, 200)
    reactor.advance(40)                                # Timer M: nothing is left
    assert not ep.dialogs and not ep.table.clients and not ep._timers
    assert sink.events == [] and len(sink.traces) == traces   # the closed leg hears nothing


def test_2xx_crossing_our_cancel_is_acked_and_byed_even_after_close():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 180)
    leg.send(Release(16))                              # the caller hung up: CANCEL
    leg.close()
    assert udp.messages()[-1].method == "CANCEL"
    respond(ep, udp.messages()[-1], 200)               # the CANCEL's own 200 ...
    respond(ep, invite, 200, ANSWER)                   # ... but the callee answered anyway
    assert [m.method for m in udp.messages()[-2:]] == ["ACK", "BYE"]
    assert sink.events == [Alerting(None)]


def test_no_answer_timeout_then_a_late_2xx_is_acked_and_byed():
    leg, sink, udp, reactor, ep, invite = placed()
    respond(ep, invite, 180)
    reactor.advance(30)                                # CANCEL with cause 19
    respond(ep, invite, 200, ANSWER)
    bye = udp.messages()[-1]
    assert bye.method == "BYE" and bye.headers.get("Reason") == "Q.850;cause=19"
    assert sink.events == [Alerting(None), Release(19, "no answer")]


def test_options_ping_and_outbound_proxy_hop():
    leg, sink, udp, reactor, ep = make_leg()
    got = []
    options_ping(ep, GW).addCallback(got.append)
    respond(ep, udp.messages()[-1], 200)
    assert got == [0.0]
    assert gateway_hop(dict(GW, outbound_proxy="192.0.2.9:5080")).host == "192.0.2.9"


def test_outbound_proxy_routes_the_invite():
    leg, sink, udp, reactor, ep, invite = placed(outbound_proxy="192.0.2.9:5080")
    assert udp.sent[0][1] == ("192.0.2.9", 5080)
    assert invite.headers.get("Route") == "<sip:192.0.2.9:5080;lr>"


def test_delayed_offer_answer_goes_in_the_ack():
    leg, sink, udp, reactor, ep = make_leg()
    leg.send(Setup("c1", "+4930123456", caller="+4940555", media=None))
    invite = udp.messages()[0]
    assert invite.body == b""
    respond(ep, invite, 200, ANSWER)
    connect = sink.events[-1]
    assert isinstance(connect, Connect) and connect.media.port == 40000
    assert udp.messages()[-1].method == "INVITE"           # no ACK before our answer
    respond(ep, invite, 200, ANSWER)                        # a 2xx copy waits too
    assert udp.messages()[-1].method == "INVITE"
    leg.send(MediaAnswer(MEDIA))
    ack = udp.messages()[-1]
    assert ack.method == "ACK" and b"m=audio 30000" in ack.body and b"PCMA" in ack.body
    respond(ep, invite, 200, ANSWER)
    assert udp.messages()[-1] is not ack and udp.messages()[-1].method == "ACK"


def test_delayed_offer_without_an_answer_ends_the_call():
    leg, sink, udp, reactor, ep = make_leg()
    leg.send(Setup("c1", "+4930123456", media=None))
    respond(ep, udp.messages()[0], 200, ANSWER)
    reactor.advance(32)
    assert [m.method for m in udp.messages()[-2:]] == ["ACK", "BYE"]
    assert sink.events[-1].cause == 88
