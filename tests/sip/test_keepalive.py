"""Liveness of a confirmed dialog: in-dialog OPTIONS and RFC 4028 session timers, through the
SIP leg and the endpoint (fake UDP, MemoryReactorClock: timers by advancing the clock)."""
from __future__ import annotations

from callgw.callserver.events import Connect, Hold, MediaAnswer, Release, Setup
from protocols.sip import keepalive as ka
from protocols.sip import session as s
from protocols.sip.message import parse_message
from protocols.sip.transaction import StartTimer, TimerConfig
from protocols.sip.uas_session import UasSession
from tests.sip import builders
from tests.sip.test_sip_leg import ANSWER, MEDIA, make_leg, respond


def answered(extra=(), **gw):
    leg, sink, udp, reactor, ep = make_leg(**gw)
    leg.send(Setup("c1", "+4930123456", caller="+4940555", media=MEDIA))
    invite = udp.messages()[0]
    respond(ep, invite, 200, ANSWER, extra=extra)
    assert isinstance(sink.events[-1], Connect)
    return leg, sink, udp, reactor, ep, invite


def sent(udp, method):
    return [m for m in udp.messages() if getattr(m, "method", None) == method]


def test_off_sends_nothing_and_asks_for_nothing():
    leg, sink, udp, reactor, ep, invite = answered()
    assert "Session-Expires" not in invite.headers and "Supported" not in invite.headers
    assert "UPDATE" not in invite.headers.get_all("Allow")
    before = len(udp.sent)
    reactor.advance(3600)
    assert len(udp.sent) == before and leg.liveness() is None


def test_options_every_interval_any_answer_is_alive():
    leg, sink, udp, reactor, ep, invite = answered(keepalive="options", keepalive_interval=20)
    assert "Session-Expires" not in invite.headers             # OPTIONS mode asks nothing
    reactor.advance(19.9)
    assert sent(udp, "OPTIONS") == []
    reactor.advance(0.1)
    options = sent(udp, "OPTIONS")[0]
    assert options.to_tag == "gw1" and options.cseq == (2, "OPTIONS")
    respond(ep, options, 405)                                   # refused, but there
    reactor.advance(20)
    respond(ep, sent(udp, "OPTIONS")[1], 200)
    assert leg.liveness() is None and len(sink.events) == 1


def test_options_481_means_the_far_end_is_gone():
    leg, sink, udp, reactor, ep, invite = answered(keepalive="options", keepalive_interval=20)
    reactor.advance(20)
    respond(ep, sent(udp, "OPTIONS")[0], 481)
    bye = sent(udp, "BYE")[0]
    assert bye.headers.get("Reason") == "Q.850;cause=41"
    assert sink.events[-1] == Release(41, "local 481 to our keepalive")
    assert leg.liveness() == "481 to our keepalive"


def test_options_without_any_answer_timer_f():
    leg, sink, udp, reactor, ep, invite = answered(keepalive="options", keepalive_interval=20)
    reactor.advance(20)
    reactor.advance(32)                                         # Timer F of the OPTIONS
    assert sink.events[-1].cause == 41 and sent(udp, "BYE")
    assert "no answer to our keepalive" in leg.liveness()


def test_session_timer_asks_and_runs_only_when_the_2xx_carries_session_expires():
    leg, sink, udp, reactor, ep, invite = answered(keepalive="session-timer")
    assert invite.headers.get("Supported") == "timer"
    assert invite.headers.get("Session-Expires") == "1800"
    assert "UPDATE" in invite.headers.get_all("Allow")
    before = len(udp.sent)
    reactor.advance(7200)                                       # the 2xx had none: no timer
    assert len(udp.sent) == before and sink.events == [Connect(sink.events[0].media)]


def test_we_refresh_with_update_when_the_gateway_allows_it():
    leg, sink, udp, reactor, ep, invite = answered(
        keepalive="session-timer",
        extra=[("Session-Expires", "120;refresher=uac"), ("Allow", "INVITE, ACK, BYE, UPDATE")])
    reactor.advance(59.9)
    assert sent(udp, "UPDATE") == []
    reactor.advance(0.1)                                        # half the interval
    update = sent(udp, "UPDATE")[0]
    assert update.headers.get("Session-Expires") == "120;refresher=uac" and not update.body
    respond(ep, update, 200, extra=[("Session-Expires", "120;refresher=uac")])
    reactor.advance(60)
    respond(ep, sent(udp, "UPDATE")[1], 200, extra=[("Session-Expires", "120;refresher=uac")])
    assert len(sink.events) == 1 and leg.liveness() is None


def test_we_refresh_with_a_reinvite_otherwise_and_the_leg_sees_nothing():
    leg, sink, udp, reactor, ep, invite = answered(
        keepalive="session-timer", extra=[("Session-Expires", "100;refresher=uac")])
    reactor.advance(50)
    reinvite = sent(udp, "INVITE")[-1]
    assert reinvite.cseq[0] == 2 and reinvite.body == invite.body       # the unchanged SDP
    assert reinvite.headers.get("Session-Expires") == "100;refresher=uac"
    respond(ep, reinvite, 200, ANSWER, extra=[("Session-Expires", "100;refresher=uac")])
    assert sent(udp, "ACK")[-1].cseq == (2, "ACK")
    assert len(sink.events) == 1                                # no MediaAnswer for a refresh


def test_a_refresh_due_during_a_hold_waits_and_the_hold_refreshes():
    leg, sink, udp, reactor, ep, invite = answered(
        keepalive="session-timer", extra=[("Session-Expires", "100;refresher=uac")])
    reactor.advance(49)
    leg.send(Hold(True))
    hold = sent(udp, "INVITE")[-1]
    assert hold.headers.get("Session-Expires") == "100;refresher=uac"   # any re-INVITE
    reactor.advance(1)
    assert sent(udp, "INVITE")[-1].cseq == hold.cseq            # the refresh waited
    respond(ep, hold, 200, ANSWER + b"a=recvonly\r\n",
            extra=[("Session-Expires", "100;refresher=uac")])
    assert isinstance(sink.events[-1], MediaAnswer)
    reactor.advance(49)
    assert sent(udp, "INVITE")[-1].cseq == hold.cseq            # re-armed by the hold's 2xx
    reactor.advance(1.1)
    assert sent(udp, "INVITE")[-1].cseq[0] == hold.cseq[0] + 1


def test_the_gateway_refreshes_or_the_session_expires():
    leg, sink, udp, reactor, ep, invite = answered(
        keepalive="session-timer", extra=[("Session-Expires", "120;refresher=uas")])
    reactor.advance(80)
    assert not sent(udp, "UPDATE") and len(sent(udp, "INVITE")) == 1    # not ours to refresh
    update = (f"UPDATE sip:callgw@127.0.0.1:5070 SIP/2.0\r\n"
              f"Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKup1\r\nMax-Forwards: 70\r\n"
              f"From: <sip:gw@192.0.2.5>;tag=gw1\r\n"
              f"To: <sip:x@127.0.0.1>;tag={leg.session.local_tag}\r\n"
              f"Call-ID: {leg.session.call_id}\r\nCSeq: 5 UPDATE\r\nSupported: timer\r\n"
              f"Session-Expires: 120;refresher=uac\r\nContent-Length: 0\r\n\r\n").encode()
    ep.data_received(update, "udp", "192.0.2.5", 5060, None)
    ok = udp.messages()[-1]
    assert ok.status == 200 and ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    reactor.advance(87.9)                                       # 120 - 32 after the refresh
    assert not sent(udp, "BYE")
    reactor.advance(0.2)
    bye = sent(udp, "BYE")[0]
    assert bye.headers.get("Reason") == "Q.850;cause=102"
    assert sink.events[-1].cause == 102
    assert leg.liveness() == "session not refreshed in 120 s"


def test_422_is_retried_with_its_min_se():
    leg, sink, udp, reactor, ep = make_leg(keepalive="session-timer")
    leg.send(Setup("c1", "+4930123456", media=MEDIA))
    invite = udp.messages()[0]
    respond(ep, invite, 422, extra=[("Min-SE", "3600")])
    retry = udp.messages()[-1]
    assert retry.method == "INVITE" and retry.cseq == (2, "INVITE")
    assert retry.headers.get("Session-Expires") == "3600" and retry.branch != invite.branch
    respond(ep, retry, 422, extra=[("Min-SE", "7200")])         # once only
    assert sink.events[-1].cause is not None and isinstance(sink.events[-1], Release)


def test_uas_answers_session_expires_and_watches():
    profile = s.Profile("127.0.0.1", 5070, timers=TimerConfig(),
                        keepalive=s.KeepaliveConfig("session-timer", min_se=90))
    invite = parse_message(builders.invite(extra=[("Supported", "timer"),
                                                   ("Session-Expires", "60")]))
    session = UasSession(profile, invite)
    session.start()
    out = session.answer(ANSWER)
    ok = [e.response for e in out if isinstance(e, s.Respond)][0]
    assert ok.headers.get("Session-Expires") == "90;refresher=uac"     # raised to our Min-SE
    assert ok.headers.get("Require") == "timer"
    ack = parse_message(builders.request("ACK", to_tag=session.local_tag, branch="z9hG4bKa"))
    out = session.receive_request(ack)
    assert session.keepalive.state is s.State.WATCHING
    assert [(t.name, t.delay) for t in out if isinstance(t, StartTimer)] == [
        ("session-expiry", 60.0)]                               # 90 - 90/3


def test_headers_parsing():
    msg = parse_message(builders.ok_200().replace(
        b"Content-Type", b"x: 300 ; refresher = UAS\r\nk: 100rel, timer\r\nContent-Type"))
    assert ka.session_expires(msg) == (300, "uas") and ka.supports_timer(msg)
