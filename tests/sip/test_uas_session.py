"""The UAS INVITE session core, read like RFC 3261's call flows (13.3, 9.2, 15)."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sip import session as s
from protocols.sip.message import parse_message
from protocols.sip.transaction import LocalProtocolError, RemoteProtocolError, StartTimer, \
    StopTimer, TimerConfig
from protocols.sip.uas_session import UasSession
from tests.sip import builders

SDP = builders.SDP_OFFER
ANSWER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
         b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"


def tokens():
    counter = itertools.count(1)
    return lambda: f"u{next(counter):04d}"


def incoming(body=SDP, transport="udp", **kw):
    invite = parse_message(builders.invite(body=body, extra=[
        ("Record-Route", "<sip:p1.example;lr>"), ("Record-Route", "<sip:p2.example;lr>")], **kw))
    profile = s.Profile("127.0.0.1", 5070, transport=transport, timers=TimerConfig())
    session = UasSession(profile, invite, token=tokens())
    return session, invite


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def responses(effects):
    return [e.response for e in of(effects, s.Respond)]


def wire(message):
    return parse_message(message.to_bytes())


def from_caller(session, method, cseq, body=b"", branch=None):
    ctype = b"Content-Type: application/sdp\r\n" if body else b""
    return parse_message(
        method.encode() + b" sip:callgw@127.0.0.1:5070 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK" +
        (branch or f"c{method}{cseq}").encode() + b"\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: \"Alice\" <sip:+4930123456@callgw.example.com>;tag=1928301774\r\n"
        b"To: <sip:+12125551212@gw.example.net>;tag=" + session.local_tag.encode() + b"\r\n"
        b"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: " + str(cseq).encode() + b" " +
        method.encode() + b"\r\n" + ctype +
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def answered(**kw):
    session, invite = incoming(**kw)
    session.start()
    session.ring()
    out = session.answer(ANSWER)
    return session, invite, out


def test_trying_ringing_and_the_dialog_fields_of_12_1_1():
    session, invite = incoming()
    assert session.offer == SDP and session.caller == "+4930123456"
    assert session.target == "+12125551212"
    trying = responses(session.start())[0]
    assert trying.status == 100 and trying.to_tag is None and "Contact" not in trying.headers
    ringing = wire(responses(session.ring())[0])
    assert ringing.status == 180 and ringing.to_tag == session.local_tag
    assert ringing.headers.get("Contact") == "<sip:callgw@127.0.0.1:5070>"
    assert ringing.headers.get_all("Record-Route") == ["<sip:p1.example;lr>",
                                                        "<sip:p2.example;lr>"]
    progress = wire(responses(session.ring(183, ANSWER))[0])
    assert progress.status == 183 and progress.body == ANSWER
    assert session.state is s.State.EARLY


def test_answer_retransmits_the_2xx_until_the_ack():
    session, invite, out = answered()
    ok = wire(responses(out)[0])
    assert ok.status == 200 and ok.body == ANSWER and ok.to_tag == session.local_tag
    assert [(t.name, t.delay) for t in of(out, StartTimer)] == [("2xx-stop", 32.0), ("2xx", 0.5)]
    again = session.timer_fired("2xx")
    assert responses(again)[0] is responses(out)[0]
    assert of(again, StartTimer) == [StartTimer("2xx", 1.0)]
    for _ in range(5):
        last = session.timer_fired("2xx")
    assert of(last, StartTimer) == [StartTimer("2xx", 4.0)]          # capped at T2
    out = session.receive_request(from_caller(session, "ACK", 1))
    assert of(out, s.Confirmed) == [s.Confirmed(None)]
    assert session.state is s.State.CONFIRMED


def test_no_2xx_retransmission_on_tcp():
    out = answered(transport="tcp")[2]
    assert [t.name for t in of(out, StartTimer)] == ["2xx-stop"]


def test_no_ack_in_64_t1_ends_with_bye():
    session, invite, out = answered()
    out = session.timer_fired("2xx-stop")
    assert of(out, s.Ended)[0].by == "local"
    bye = of(out, s.SendRequest)[0]
    assert bye.request.method == "BYE" and bye.request.cseq == (1, "BYE")
    # the caller's URI from Contact, the route set in Record-Route order (12.1.1)
    assert bye.request.uri == "sip:callgw@192.0.2.10:5060;transport=udp"
    assert bye.request.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert bye.hop == s.Hop("udp", "p1.example", 5060)
    assert bye.request.to_tag == "1928301774" and bye.request.from_tag == session.local_tag


def test_cancel_before_answer_is_487_and_cancelled():
    session, invite = incoming()
    session.start()
    session.ring()
    cancel = parse_message(builders.request("CANCEL", extra=[("Reason", "Q.850;cause=16")]))
    out = session.receive_cancel(cancel)
    final = responses(out)[0]
    assert final.status == 487 and final.cseq == (1, "INVITE")
    assert of(out, s.Cancelled) == [s.Cancelled(16)] and of(out, s.Closed)
    assert session.receive_cancel(cancel) == []                      # absorbed


def test_cancel_after_answer_changes_nothing():
    session, invite, out = answered()
    assert session.receive_cancel(parse_message(builders.request("CANCEL"))) == []
    assert session.state is s.State.ACCEPTED


def test_reject_and_hangup_before_answer():
    session, invite = incoming()
    session.start()
    out = session.reject(486, q850=17)
    assert responses(out)[0].status == 486
    assert responses(out)[0].headers.get("Reason") == "Q.850;cause=17"
    assert of(out, s.Closed)
    session, invite = incoming()
    session.start()
    out = session.hangup(21)
    assert responses(out)[0].status == 480 and of(out, s.Closed)


def test_bye_on_the_early_dialog_is_200_and_487():
    session, invite = incoming()
    session.start()
    session.ring()
    out = session.receive_request(from_caller(session, "BYE", 2))
    assert [r.status for r in responses(out)] == [200, 487]
    assert of(out, s.Cancelled) and of(out, s.Closed)


def test_hangup_before_the_ack_waits_for_it():
    session, invite, out = answered()
    assert session.hangup(16) == []                                  # 15: not before the ACK
    out = session.receive_request(from_caller(session, "ACK", 1))
    assert of(out, s.SendRequest)[0].request.method == "BYE"
    assert not of(out, s.Confirmed)
    assert session.state is s.State.TERMINATING


def test_bye_either_way_after_confirmation():
    session, invite, out = answered()
    session.receive_request(from_caller(session, "ACK", 1))
    out = session.receive_request(from_caller(session, "BYE", 2))
    assert responses(out)[0].status == 200 and of(out, s.Ended)[0].by == "remote"
    session, invite, out = answered()
    session.receive_request(from_caller(session, "ACK", 1))
    bye = of(session.hangup(16), s.SendRequest)[0].request
    assert bye.headers.get("Reason") == "Q.850;cause=16"
    ok = parse_message(b"SIP/2.0 200 OK\r\n" + b"".join(
        f"{n}: {v}\r\n".encode() for n, v in [
            ("Via", bye.headers.get("Via")), ("From", bye.headers.get("From")),
            ("To", bye.headers.get("To")), ("Call-ID", bye.call_id), ("CSeq", "1 BYE")]) +
        b"Content-Length: 0\r\n\r\n")
    assert of(session.receive_response(ok), s.Closed)


def test_delayed_offer_answer_comes_in_the_ack():
    session, invite = incoming(body=b"")
    assert session.offer is None
    session.start()
    session.answer(ANSWER)                                           # our offer in the 2xx
    out = session.receive_request(from_caller(session, "ACK", 1, SDP))
    assert of(out, s.Confirmed) == [s.Confirmed(SDP)]


def test_hold_and_resume_from_the_caller():
    session, invite, out = answered()
    session.receive_request(from_caller(session, "ACK", 1))
    hold = from_caller(session, "INVITE", 2, SDP.replace(b"sendrecv", b"sendonly"))
    out = session.receive_request(hold)
    assert of(out, s.RemoteModify)[0].request is hold
    out = session.answer_modify(hold, ANSWER + b"a=recvonly\r\n")
    assert responses(out)[0].status == 200
    session.receive_request(from_caller(session, "ACK", 2))
    assert session.offer_state is s.State.STABLE
    resume = from_caller(session, "INVITE", 3, SDP)
    assert of(session.receive_request(resume), s.RemoteModify)
    # a second re-INVITE before we answered the first: 500 with Retry-After (14.2)
    second = session.receive_request(from_caller(session, "INVITE", 4, SDP))
    assert responses(second)[0].status == 500
    assert responses(second)[0].headers.get("Retry-After") == "1"


def test_our_hold_491_waits_up_to_2_s_as_the_callee():
    session, invite, out = answered()
    session.receive_request(from_caller(session, "ACK", 1))
    reinvite = of(session.modify(ANSWER), s.SendRequest)[0].request
    glare = parse_message(b"SIP/2.0 491 Request Pending\r\n" + b"".join(
        f"{n}: {v}\r\n".encode() for n, v in [
            ("Via", reinvite.headers.get("Via")), ("From", reinvite.headers.get("From")),
            ("To", reinvite.headers.get("To")), ("Call-ID", reinvite.call_id),
            ("CSeq", f"{reinvite.cseq[0]} INVITE")]) + b"Content-Length: 0\r\n\r\n")
    wait = of(session.receive_response(glare), StartTimer)[0]
    assert wait.name == "491" and 0 <= wait.delay <= 2.0


def test_in_dialog_cseq_must_grow():
    session, invite, out = answered()
    session.receive_request(from_caller(session, "ACK", 1))
    session.receive_request(from_caller(session, "OPTIONS", 5))
    with pytest.raises(RemoteProtocolError):
        session.receive_request(from_caller(session, "OPTIONS", 5, branch="other"))


def test_local_misuse_raises():
    session, invite, out = answered()
    with pytest.raises(LocalProtocolError):
        session.ring()
    with pytest.raises(LocalProtocolError):
        session.start()


_STEPS = ["ring", "ring183", "answer", "reject", "hangup", "cancel", "ack", "bye", "reinvite",
          "options", "t_2xx", "t_stop", "t_re2xx", "t_restop", "t_491", "modify", "transport"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_STEPS), max_size=25), st.booleans())
def test_uas_survives_any_sequence(steps, offerless):
    session, invite = incoming(body=b"" if offerless else SDP)
    session.start()
    closed = 0
    cseq = 1
    for step in steps:
        out = []
        try:
            if step in ("ring", "ring183"):
                out = session.ring(183, ANSWER) if step == "ring183" else session.ring()
            elif step == "answer":
                out = session.answer(ANSWER)
            elif step == "reject":
                out = session.reject(486)
            elif step == "hangup":
                out = session.hangup(16)
            elif step == "cancel":
                out = session.receive_cancel(parse_message(builders.request("CANCEL")))
            elif step == "ack":
                out = session.receive_request(from_caller(session, "ACK", 1))
            elif step in ("bye", "reinvite", "options"):
                cseq += 1
                method = {"bye": "BYE", "reinvite": "INVITE", "options": "OPTIONS"}[step]
                out = session.receive_request(from_caller(session, method, cseq, SDP))
                for e in of(out, s.RemoteModify):
                    out += session.answer_modify(e.request, ANSWER)
            elif step.startswith("t_"):
                out = session.timer_fired({"t_2xx": "2xx", "t_stop": "2xx-stop",
                                           "t_re2xx": "re-2xx", "t_restop": "re-2xx-stop",
                                           "t_491": "491"}[step])
            elif step == "modify":
                out = session.modify(ANSWER)
            elif step == "transport":
                out = session.transport_failed(invite)
        except (LocalProtocolError, RemoteProtocolError):
            continue
        closed += len(of(out, s.Closed))
        for e in of(out, StopTimer):
            assert e.name in ("2xx", "2xx-stop", "re-2xx", "re-2xx-stop", "491")
    assert closed <= 1
