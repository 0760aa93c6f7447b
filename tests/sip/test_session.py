"""The UAC INVITE session core, read like RFC 3261's call flows (and RFC 3325's, RFC 6026's)."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sip import session as s
from protocols.sip.uac_session import UacSession
from protocols.sip.message import make_response, parse_message
from protocols.sip.transaction import RemoteProtocolError, StartTimer, TimerConfig

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
      b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"


def tokens():
    counter = itertools.count(1)
    return lambda: f"t{next(counter):04d}"


def profile(**kw):
    values = dict(local_host="127.0.0.1", local_port=5070, gateway_host="192.0.2.5",
                  gateway_port=5060)
    values.update(kw)
    return s.Profile(**values)


def new_session(**kw):
    target = kw.pop("target", "+4930123")
    caller = kw.pop("caller", "+4940555")
    privacy = kw.pop("privacy", False)
    return UacSession(profile(**kw), target, caller, privacy, token=tokens())


def wire(message):
    """Serialize and parse again: what the far end sees."""
    return parse_message(message.to_bytes())


def answer(request, status, body=b"", to_tag="gwtag", extra=()):
    headers = [("Contact", "<sip:gw@192.0.2.5:5062>")] + list(extra)
    if body:
        headers.append(("Content-Type", "application/sdp"))
    resp = make_response(wire(request), status, to_tag=to_tag, headers=headers)
    resp.body = body
    return wire(resp)


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def started(**kw):
    session = new_session(**kw)
    out = session.start(SDP)
    return session, out[0].request


def test_invite_headers_identity_and_rewritten_number():
    session, invite = started()
    assert invite.method == "INVITE"
    assert invite.uri == "sip:+4930123@192.0.2.5;user=phone"
    assert invite.to.uri.user == "+4930123" and invite.to_tag is None
    assert invite.from_tag == session.local_tag
    assert invite.headers.get("P-Asserted-Identity") == "<sip:+4940555@127.0.0.1:5070;user=phone>"
    assert "Privacy" not in invite.headers
    assert invite.branch.startswith("z9hG4bK")
    assert invite.top_via.params.get("rport", "x") is None
    assert invite.body == SDP
    assert wire(invite).cseq == (1, "INVITE")


def test_the_invite_names_the_configured_user_agent():
    assert started()[1].headers.get("User-Agent") == "callgw"
    _, invite = started(user_agent="ExampleTel Gateway/2.1")
    assert wire(invite).headers.get("User-Agent") == "ExampleTel Gateway/2.1"


def test_privacy_hides_the_caller_in_from_but_asserts_it():
    _, invite = started(privacy=True)
    assert invite.from_.uri.user == "anonymous"
    assert invite.headers.get("Privacy") == "id"
    assert "+4940555" in invite.headers.get("P-Asserted-Identity")


def test_rewrite_number():
    assert s.rewrite_number("+4930123", 2, "0", False) == "030123"
    assert s.rewrite_number("+4930123") == "+4930123"
    assert s.rewrite_number("+4930123", 0, "", False) == "4930123"
    assert s.rewrite_number("+4930123", 0, "00", True) == "004930123"


def test_outbound_proxy_is_the_first_hop_and_a_loose_route():
    session, _ = started(proxy="192.0.2.99:5080")
    out = new_session(proxy="192.0.2.99:5080").start(SDP)
    assert out[0].hop == s.Hop("udp", "192.0.2.99", 5080)
    assert out[0].request.headers.get("Route") == "<sip:192.0.2.99:5080;lr>"


def test_answer_acks_and_uses_contact_and_route_set():
    session, invite = started()
    assert of(session.receive_response(answer(invite, 100)), s.Progress)[0].status == 100
    ringing = session.receive_response(answer(invite, 180))
    assert of(ringing, s.Progress) == [s.Progress(180, "Ringing", None)]
    ok = answer(invite, 200, SDP, extra=[("Record-Route", "<sip:p2.example;lr>"),
                                         ("Record-Route", "<sip:p1.example;lr>")])
    out = session.receive_response(ok)
    ack = of(out, s.SendAck)[0]
    assert ack.request.method == "ACK" and ack.request.cseq == (1, "ACK")
    assert ack.request.branch != invite.branch            # ACK for 2xx is a new transaction
    assert ack.request.uri == "sip:gw@192.0.2.5:5062"
    assert ack.request.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert ack.hop == s.Hop("udp", "p1.example", 5060)
    assert of(out, s.Answered) == [s.Answered(SDP)]
    assert session.state is s.State.CONFIRMED
    # a retransmitted 2xx (RFC 6026: passed up by the Accepted transaction) gets the same ACK
    again = session.receive_response(ok)
    assert len(again) == 1 and again[0].request is ack.request


def test_early_media_183_with_sdp():
    session, invite = started()
    out = session.receive_response(answer(invite, 183, SDP))
    assert of(out, s.Progress) == [s.Progress(183, "Session Progress", SDP)]


def test_bye_from_us_then_closed():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP))
    out = session.hangup(16)
    bye = out[0].request
    assert bye.method == "BYE" and bye.cseq == (2, "BYE") and bye.to_tag == "gwtag"
    assert bye.headers.get("Reason") == "Q.850;cause=16"
    assert bye.uri == "sip:gw@192.0.2.5:5062"
    assert session.hangup(16) == []
    out = session.receive_response(answer(bye, 200))
    assert of(out, s.Closed)


def test_bye_from_the_gateway():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP))
    bye = parse_message(
        b"BYE sip:callgw@127.0.0.1:5070 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5:5062;branch=z9hG4bKb1\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:+4930123@192.0.2.5>;tag=gwtag\r\n"
        b"To: <sip:+4940555@127.0.0.1>;tag=" + session.local_tag.encode() +
        b"\r\nCall-ID: " + session.call_id.encode() +
        b"\r\nCSeq: 7 BYE\r\nReason: Q.850;cause=17\r\nContent-Length: 0\r\n\r\n")
    out = session.receive_request(bye)
    assert of(out, s.Respond)[0].response.status == 200
    assert of(out, s.Ended) == [s.Ended("remote", 17, "BYE")]
    assert of(out, s.Closed)
    # a late copy in the same dialog is out of order: the adapter answers 500
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_request(bye)
    assert info.value.status == 500


def test_cancel_waits_for_a_provisional_response():
    session, invite = started()
    assert session.hangup(16) == []                      # RFC 3261 9.1: not before a 1xx
    out = session.receive_response(answer(invite, 180))
    cancel = of(out, s.SendRequest)[0].request
    assert cancel.method == "CANCEL"
    assert cancel.branch == invite.branch and cancel.cseq == (1, "CANCEL")
    assert cancel.headers.get("To") == invite.headers.get("To")
    assert not of(out, s.Progress)
    out = session.receive_response(answer(invite, 487))
    assert not of(out, s.Rejected)                       # we asked for it: no report
    assert of(out, s.Closed)


def test_cancel_after_ringing_and_the_cancel_timer():
    session, invite = started()
    session.receive_response(answer(invite, 180))
    out = session.hangup(19)
    assert of(out, s.SendRequest)[0].request.headers.get("Reason") == "Q.850;cause=19"
    assert of(out, StartTimer)[0].delay == 32.0
    assert of(session.timer_fired("cancel"), s.Closed)


def test_2xx_crossing_cancel_is_acked_and_byed():
    session, invite = started()
    session.receive_response(answer(invite, 180))
    session.hangup(16)
    out = session.receive_response(answer(invite, 200, SDP))
    assert of(out, s.SendAck)
    assert of(out, s.SendRequest)[0].request.method == "BYE"
    assert not of(out, s.Answered)


@pytest.mark.parametrize("status,reason", [(486, "Busy Here"), (503, "Service Unavailable")])
def test_failure_is_rejected(status, reason):
    session, invite = started()
    out = session.receive_response(answer(invite, status))
    assert of(out, s.Rejected) == [s.Rejected(status, reason, None)]
    assert of(out, s.Closed)


def test_reason_header_in_a_failure():
    session, invite = started()
    out = session.receive_response(answer(invite, 480, extra=[("Reason", "Q.850;cause=19")]))
    assert of(out, s.Rejected)[0].q850 == 19


def test_timeout_and_transport_failure_of_the_invite():
    session, invite = started()
    assert of(session.request_timeout(invite), s.Rejected)[0].status == 408
    session, invite = started()
    assert of(session.transport_failed(invite), s.Rejected)[0].status == 503


def test_digest_retry_on_401():
    session, invite = started(credentials=("alice", "s3cret"))
    challenge = 'Digest realm="gw.test", nonce="abc", algorithm=MD5, qop="auth"'
    out = session.receive_response(answer(invite, 401, extra=[("WWW-Authenticate", challenge)]))
    retry = of(out, s.SendRequest)[0].request
    assert retry.cseq == (2, "INVITE") and retry.branch != invite.branch
    assert retry.call_id == invite.call_id and retry.from_tag == invite.from_tag
    assert 'username="alice"' in retry.headers.get("Authorization")
    # a second challenge for the same realm is a failure, not a loop
    out = session.receive_response(answer(retry, 401, extra=[("WWW-Authenticate", challenge)]))
    assert of(out, s.Rejected)[0].status == 401


def test_401_without_credentials_is_a_failure():
    session, invite = started()
    out = session.receive_response(answer(invite, 407, extra=[
        ("Proxy-Authenticate", 'Digest realm="x", nonce="y"')]))
    assert of(out, s.Rejected)[0].status == 407


def test_hold_and_resume_reinvite():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP))
    out = session.modify(SDP.replace(b"RTP/AVP 0", b"RTP/AVP 0\r\na=sendonly"))
    reinvite = of(out, s.SendRequest)[0].request
    assert reinvite.method == "INVITE" and reinvite.cseq == (2, "INVITE")
    assert reinvite.to_tag == "gwtag" and b"sendonly" in reinvite.body
    assert session.modify(SDP) == [s.ModifyFailed(491)]     # one at a time
    out = session.receive_response(answer(reinvite, 200, SDP))
    assert of(out, s.SendAck)[0].request.cseq == (2, "ACK")
    assert of(out, s.ModifyAnswered) == [s.ModifyAnswered(SDP)]


def test_reinvite_481_ends_the_dialog():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP))
    reinvite = of(session.modify(SDP), s.SendRequest)[0].request
    out = session.receive_response(answer(reinvite, 481))
    assert of(out, s.Ended) and of(out, s.SendRequest)[0].request.method == "BYE"


def gateway_request(session, method, cseq, body=b""):
    ctype = b"Content-Type: application/sdp\r\n" if body else b""
    return parse_message(
        method.encode() + b" sip:callgw@127.0.0.1:5070 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5:5062;branch=z9hG4bKg" + str(cseq).encode() + b"\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:+4930123@192.0.2.5>;tag=gwtag\r\n"
        b"To: <sip:+4940555@127.0.0.1>;tag=" + session.local_tag.encode() +
        b"\r\nCall-ID: " + session.call_id.encode() + b"\r\nCSeq: " + str(cseq).encode() +
        b" " + method.encode() + b"\r\n" + ctype +
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_remote_reinvite_answered_and_2xx_retransmitted_until_ack():
    session, invite = started(timers=TimerConfig(t1=0.5))
    session.receive_response(answer(invite, 200, SDP))
    reinvite = gateway_request(session, "INVITE", 5, SDP)
    out = session.receive_request(reinvite)
    assert of(out, s.RemoteModify)[0].sdp == SDP
    out = session.answer_modify(reinvite, SDP)
    assert of(out, s.Respond)[0].response.status == 200
    assert [e.delay for e in of(out, StartTimer)] == [32.0, 0.5]
    assert of(session.timer_fired("re-2xx"), StartTimer)[0].delay == 1.0
    ack = gateway_request(session, "ACK", 5)
    assert [type(e).__name__ for e in session.receive_request(ack)] == ["StopTimer", "StopTimer"]
    assert session.timer_fired("re-2xx") == []


def test_crossing_reinvite_gets_491():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP))
    session.modify(SDP)
    out = session.receive_request(gateway_request(session, "INVITE", 3, SDP))
    assert of(out, s.Respond)[0].response.status == 491


def test_in_dialog_options_and_unknown_methods():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP))
    assert of(session.receive_request(gateway_request(session, "OPTIONS", 2)),
              s.Respond)[0].response.status == 200
    resp = of(session.receive_request(gateway_request(session, "INFO", 3)), s.Respond)[0].response
    assert resp.status == 405 and "BYE" in resp.headers.get_all("Allow")


def test_tcp_profile_marks_contact_and_via():
    _, invite = started(transport="tcp")
    assert invite.top_via.transport == "TCP"
    assert "transport=tcp" in invite.headers.get("Contact")
    assert invite.uri.endswith(";transport=tcp")


def _kv(header):
    return dict((k.strip(), v.strip().strip('"'))
                for k, v in (p.split("=", 1) for p in header[len("Digest "):].split(",")))


def test_sha256_challenge_rfc8760_preferred_and_computed():
    import hashlib
    session, invite = started(credentials=("alice", "s3cret"))
    session.token = lambda: "0a4f113b"
    md5 = 'Digest realm="gw.test", nonce="n1", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="gw.test", nonce="n1", algorithm=SHA-256, qop="auth"'
    out = session.receive_response(answer(invite, 407, extra=[
        ("Proxy-Authenticate", md5), ("Proxy-Authenticate", sha)]))
    retry = of(out, s.SendRequest)[0].request
    fields = _kv(retry.headers.get("Proxy-Authorization"))
    assert fields["algorithm"] == "SHA-256" and fields["cnonce"] == "0a4f113b"

    def h(text):
        return hashlib.sha256(text.encode()).hexdigest()
    ha1 = h("alice:gw.test:s3cret")
    ha2 = h(f"INVITE:{invite.uri}")
    assert fields["uri"] == invite.uri
    assert fields["response"] == h(f"{ha1}:n1:00000001:0a4f113b:auth:{ha2}")


def test_rfc7616_worked_example_sha256_and_md5():
    from protocols.sip import digest
    challenge = ('Digest realm="http-auth@example.org", qop="auth, auth-int", '
                 'algorithm={alg}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    expected = {"SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
                "MD5": "8ca523f5e9506fed4657c9700eebdbec"}
    for alg, response in expected.items():
        value = digest.authorization(digest.parse_challenge(challenge.format(alg=alg)), "GET",
                                     "/dir/index.html", "Mufasa", "Circle of Life", cnonce)
        assert _kv(value)["response"] == response


def test_reinvite_491_is_retried_once_after_the_rfc_wait():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP))
    reinvite = of(session.modify(SDP), s.SendRequest)[0].request
    out = session.receive_response(answer(reinvite, 491))
    wait = of(out, StartTimer)[0]
    assert wait.name == "491" and 2.1 <= wait.delay <= 4.0
    assert not of(out, s.ModifyFailed)
    again = of(session.timer_fired("491"), s.SendRequest)[0].request
    assert again.cseq == (3, "INVITE") and again.body == SDP
    assert of(session.receive_response(answer(again, 491)), s.ModifyFailed) == [
        s.ModifyFailed(491)]


def test_2xx_from_another_fork_is_acked_and_byed():
    session, invite = started()
    session.receive_response(answer(invite, 200, SDP, to_tag="fork1"))
    out = session.receive_response(answer(invite, 200, SDP, to_tag="fork2"))
    ack, bye = of(out, s.SendAck)[0].request, of(out, s.SendRequest)[0].request
    assert ack.to_tag == bye.to_tag == "fork2" and ack.cseq == (1, "ACK")
    assert bye.method == "BYE" and session.remote_tag == "fork1"
    assert not of(out, s.Answered)
    assert of(session.receive_response(answer(invite, 200, SDP, to_tag="fork2")), s.SendAck)
    assert session.receive_response(answer(bye, 200, to_tag="fork2")) == []
    assert session.state is s.State.CONFIRMED


_STEPS = ["100", "180", "183sdp", "200", "200b", "486", "401", "hangup", "modify", "bye_in",
          "reinvite_in", "timeout", "transport", "t_cancel", "t_2xx", "t_491", "t_answer",
          "bye_ok", "reinvite_ok", "reinvite_491"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_STEPS), max_size=25), st.booleans())
def test_session_survives_any_sequence(steps, delayed):
    session = new_session(credentials=("alice", "pw"))
    out = session.start(None if delayed else SDP)
    invite = out[0].request
    closed = 0
    cseq = 10
    for step in steps:
        last_out = []
        try:
            if step in ("100", "180", "486"):
                last_out = session.receive_response(answer(session.invite, int(step)))
            elif step == "183sdp":
                last_out = session.receive_response(answer(session.invite, 183, SDP))
            elif step in ("200", "200b"):
                tag = "gwtag" if step == "200" else "other"
                last_out = session.receive_response(answer(session.invite, 200, SDP, tag))
            elif step == "401":
                last_out = session.receive_response(answer(session.invite, 401, extra=[
                    ("WWW-Authenticate", 'Digest realm="r", nonce="n"')]))
            elif step == "hangup":
                last_out = session.hangup(16)
            elif step == "modify":
                last_out = session.modify(SDP)
            elif step in ("bye_in", "reinvite_in"):
                cseq += 1
                method = "BYE" if step == "bye_in" else "INVITE"
                last_out = session.receive_request(gateway_request(session, method, cseq, SDP))
                for e in of(last_out, s.RemoteModify):
                    last_out += session.answer_modify(e.request, SDP)
            elif step == "timeout":
                last_out = session.request_timeout(invite)
            elif step == "transport":
                last_out = session.transport_failed(session.invite)
            elif step.startswith("t_"):
                last_out = session.timer_fired({"t_cancel": "cancel", "t_2xx": "re-2xx",
                                                "t_491": "491", "t_answer": "answer"}[step])
            elif step == "bye_ok" and session.bye is not None:
                last_out = session.receive_response(answer(session.bye, 200))
            elif step.startswith("reinvite_") and session.reinvite is not None:
                status = 200 if step == "reinvite_ok" else 491
                last_out = session.receive_response(answer(session.reinvite, status, SDP))
        except RemoteProtocolError:
            continue
        closed += len(of(last_out, s.Closed))
    assert closed <= 1


def test_bye_before_the_dialog_exists_gets_481():
    session, invite = started()
    session.receive_response(answer(invite, 180))
    out = session.receive_request(gateway_request(session, "BYE", 3))
    assert of(out, s.Respond)[0].response.status == 481 and not of(out, s.Closed)
