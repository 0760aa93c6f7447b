"""Tests for protocols.sip.message, headers and uri: parsing, serializing, framing, responses."""
import pytest

from protocols.sip.message import (Headers, Request, Response, SipParseError, StreamFramer,
                                   make_response, parse_cseq, parse_message, parse_name_addr,
                                   parse_via)
from protocols.sip.uri import AbsoluteURI, SipURI, TelURI, parse_uri
from tests.sip import builders


def test_invite_parses_and_round_trips():
    data = builders.invite()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:+12125551212@gw.example.net"
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.cseq == (1, "INVITE")
    assert msg.branch == "z9hG4bK776asdhds"
    assert msg.from_tag == "1928301774"
    assert msg.to_tag is None
    assert msg.top_via.wants_rport and msg.top_via.rport is None
    assert msg.body == builders.SDP_OFFER
    assert msg.to_bytes() == data
    assert parse_message(msg.to_bytes()) == msg


def test_response_parses():
    msg = parse_message(builders.ok_200())
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.to_tag == "a6c85cf"
    assert msg.top_via.rport == 5060 and msg.top_via.received == "192.0.2.10"


def test_headers_multidict():
    h = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
                 ("Via", "SIP/2.0/TCP c;branch=z9hG4bK3"), ("i", "x@y")])
    assert h.items()[0][0] == "Via"
    assert h.get("VIA") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_all("via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b;branch=z9hG4bK2",
                                "SIP/2.0/TCP c;branch=z9hG4bK3"]
    assert "call-id" in h and h.get("Call-Id") == "x@y"
    h.add("Via", "SIP/2.0/UDP top;branch=z9hG4bK0", first=True)
    assert h.get("Via") == "SIP/2.0/UDP top;branch=z9hG4bK0"
    h.set("Via", "SIP/2.0/UDP only")
    assert h.get_all("Via") == ["SIP/2.0/UDP only"]
    h.remove("i")
    assert "Call-ID" not in h and h.get("Call-ID", "none") == "none"


def test_get_all_respects_quotes_and_brackets():
    h = Headers([("Contact", '"Doe, John" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>')])
    assert h.get_all("m") == ['"Doe, John" <sip:a@b;x=1,2>;q=0.5', "<sip:c@d>"]


def test_make_response_copies_headers():
    req = parse_message(builders.invite(extra=(("Timestamp", "54"),)))
    resp = make_response(req, 486, to_tag="x1")
    assert resp.reason == "Busy Here"
    assert resp.to_tag == "x1"
    assert resp.branch == req.branch and resp.cseq == req.cseq and resp.call_id == req.call_id
    assert resp.from_tag == req.from_tag
    assert "Timestamp" not in resp.headers
    trying = make_response(req, 100)
    assert trying.headers.get("Timestamp") == "54" and trying.to_tag is None
    assert parse_message(resp.to_bytes()) == resp


def test_via_and_name_addr():
    via = parse_via("SIP / 2.0 / tcp [2001:db8::9:1]:5061 ; branch = z9hG4bKx ;received=2001:db8::9:255;rport=9")
    assert (via.transport, via.host, via.port, via.branch, via.rport) == ("TCP", "[2001:db8::9:1]", 5061, "z9hG4bKx", 9)
    assert str(via) == "SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKx;received=2001:db8::9:255;rport=9"
    na = parse_name_addr('"A \\"B\\"" <sip:a@b.example>;tag=1')
    assert na.display == 'A "B"' and na.tag == "1" and na.uri.host == "b.example"
    assert parse_name_addr(str(na)) == na
    na = parse_name_addr("sip:a@b.example;tag=2")
    assert na.display is None and na.uri.params == {} and na.tag == "2"
    assert parse_cseq("0009 INVITE") == (9, "INVITE")


@pytest.mark.parametrize("text", [
    "sip:alice@atlanta.com", "sips:alice:secret@atlanta.com:5061;transport=tcp",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone", "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com", "sip:[2001:db8::10]:5070;lr",
    "tel:+1-201-555-0123;phone-context=example.com", "im:user@example.com",
])
def test_uri_round_trip(text):
    assert str(parse_uri(text)) == text


def test_uri_fields():
    u = parse_uri("sips:alice:pw@[2001:db8::10]:5061;transport=TCP;lr?subject=x")
    assert isinstance(u, SipURI)
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sips", "alice", "pw", "[2001:db8::10]", 5061)
    assert u.params == {"transport": "TCP", "lr": None} and u.transport == "tcp" and u.lr
    assert u.headers == {"subject": "x"}
    assert isinstance(parse_uri("tel:+4930123"), TelURI)
    assert isinstance(parse_uri("urn:service:sos"), AbsoluteURI)


@pytest.mark.parametrize("text", [
    "", "sip:", "sip:user@", "sip:a@b:99999", "sip:a b@c", "<sip:a@b>", "sip:a@[2001:db8::1",
    "sip:a@b;;x", "sip:a%zz@b", "1abc:x",
])
def test_bad_uris(text):
    with pytest.raises(SipParseError) as err:
        parse_uri(text)
    assert err.value.status == 400


def test_stream_framer_byte_at_a_time():
    data = b"\r\n\r\n" + builders.invite() + b"\r\n" + builders.ok_200() + builders.request("BYE", cseq=2)
    whole = StreamFramer().feed(data)
    assert [type(m) for m in whole] == [Request, Response, Request]
    framer = StreamFramer()
    pieces = []
    for i in range(len(data)):
        pieces.extend(framer.feed(data[i:i + 1]))
    assert pieces == whole
    assert framer.pings == 1


def test_stream_framer_errors():
    with pytest.raises(SipParseError):
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n")
    bad = builders.request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    out = StreamFramer().feed(bad + builders.request("OPTIONS"))
    assert isinstance(out[0], SipParseError) and isinstance(out[1], Request)


def test_parse_errors():
    good = builders.request("OPTIONS")
    with pytest.raises(SipParseError) as err:
        parse_message(good.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert err.value.status == 505
    with pytest.raises(SipParseError) as err:
        parse_message(good.replace(b"Max-Forwards: 70\r\n", b""))
    assert "Max-Forwards" in err.value.reason
    assert parse_message(good.replace(b"Max-Forwards: 70\r\n", b""), strict=False).method == "OPTIONS"
    with pytest.raises(SipParseError) as err:
        parse_message(b"x" * 70000)
    assert err.value.status == 413
