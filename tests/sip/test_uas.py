"""The UAS core for requests outside our dialogs: RFC 3261 8.2's answers in the RFC's order."""
from __future__ import annotations

from protocols.sip.message import SipParseError, parse_message
from protocols.sip.uas import RateLimiter, UasCore, bad_request_response
from tests.sip import builders


def req(method="INVITE", **kw):
    if method == "INVITE":
        return parse_message(builders.invite(**kw))
    return parse_message(builders.request(method, **kw))


def handle(request, core=None, source="192.0.2.10", now=0.0):
    return (core or UasCore()).handle(request, source, now)


def test_unknown_method_gets_405_with_allow():
    resp = handle(req("REGISTER"))
    assert resp.status == 405
    assert set(resp.headers.get_all("Allow")) == {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"}
    assert resp.to_tag is not None


def test_405_comes_before_416_and_420():
    # a request failing several checks gets the first one in 8.2's order
    r = req("SUBSCRIBE", uri="mailto:x@example.com", extra=[("Require", "foo")])
    assert handle(r).status == 405
    r = req("OPTIONS", uri="mailto:x@example.com", extra=[("Require", "foo")])
    assert handle(r).status == 416
    r = req("OPTIONS", extra=[("Require", "foo, 100rel")], body=b"x",
            )
    resp = handle(r)
    assert resp.status == 420
    assert resp.headers.get_all("Unsupported") == ["foo", "100rel"]


def test_415_with_accept():
    r = parse_message(builders.request("OPTIONS", body=b"<xml/>",
                                       extra=[("Content-Type", "application/xml")])
                      .replace(b"Content-Type: application/sdp\r\n", b""))
    resp = handle(r)
    assert resp.status == 415 and resp.headers.get("Accept") == "application/sdp"


def test_415_for_unknown_content_encoding():
    r = req("INVITE", extra=[("Content-Encoding", "gzip")])
    assert handle(r).status == 415


def test_require_is_ignored_on_cancel():
    assert handle(req("CANCEL", extra=[("Require", "foo")])).status == 481


def test_options_gets_200_with_allow_accept_supported():
    resp = handle(req("OPTIONS"))
    assert resp.status == 200
    assert "INVITE" in resp.headers.get_all("Allow")
    assert resp.headers.get("Accept") == "application/sdp"
    assert "Supported" in resp.headers


def test_invite_outside_our_dialogs_gets_403():
    resp = handle(req("INVITE"))
    assert resp.status == 403


def test_unknown_dialog_gets_481():
    assert handle(req("INVITE", to_tag="nodialog")).status == 481
    assert handle(req("BYE", to_tag="nodialog")).status == 481


def test_ack_is_never_answered():
    assert handle(req("ACK")) is None


def test_rate_limit_per_source():
    core = UasCore(limiter=RateLimiter(rate=1.0, burst=3.0))
    got = [handle(req("OPTIONS"), core, now=0.0) for _ in range(5)]
    assert [r is not None for r in got] == [True, True, True, False, False]
    assert handle(req("OPTIONS"), core, source="192.0.2.11", now=0.0) is not None
    assert handle(req("OPTIONS"), core, now=1.0) is not None     # one token back per second


def test_rate_limiter_table_is_bounded():
    limiter = RateLimiter(rate=1.0, burst=2.0, max_sources=10)
    for i in range(100):
        assert limiter.allow(f"10.0.0.{i}", float(i))
    assert len(limiter._buckets) <= 10


def test_malformed_request_gets_400_naming_the_fault():
    data = builders.invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    try:
        parse_message(data)
    except SipParseError as exc:
        error = exc
    resp = bad_request_response(data, error, to_tag="x1")
    assert resp.status == 400 and resp.reason == error.reason
    again = parse_message(resp.to_bytes())
    assert again.call_id == "a84b4c76e66710@pc33.example.com"
    assert again.to_tag == "x1"


def test_bad_version_gets_505_and_responses_are_not_answered():
    data = builders.invite().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    try:
        parse_message(data)
    except SipParseError as exc:
        assert bad_request_response(data, exc).status == 505
    assert bad_request_response(builders.ok_200(), SipParseError(400, "x")) is None
    assert bad_request_response(b"garbage\r\n\r\n", SipParseError(400, "x")) is None
