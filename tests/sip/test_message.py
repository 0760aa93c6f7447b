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
    rr = parse_message(builders.invite(extra=(("Record-Route", "<sip:p1.example;lr>"),
                                              ("Record-Route", "<sip:p2.example;lr>"))))
    assert "Record-Route" not in make_response(rr, 180, to_tag="t").headers
    ringing = make_response(rr, 180, to_tag="t", copy_record_route=True)
    assert ringing.headers.get_all("Record-Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]


def test_via_and_name_addr():
    via = parse_via("SIP / 2.0 / tcp [2001:db8::9:1]:5061 ; branch = z9hG4bKx "
                    ";received=2001:db8::9:255;rport=9")
    assert (via.transport, via.host, via.port, via.branch, via.rport) == (
        "TCP", "[2001:db8::9:1]", 5061, "z9hG4bKx", 9)
    assert str(via) == ("SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKx"
                        ";received=2001:db8::9:255;rport=9")
    na = parse_name_addr('"A \\"B\\"" <sip:a@b.example>;tag=1')
    assert na.display == 'A "B"' and na.tag == "1" and na.uri.host == "b.example"
    assert parse_name_addr(str(na)) == na
    na = parse_name_addr("sip:a@b.example;tag=2")
    assert na.display is None and na.uri.params == {} and na.tag == "2"
    assert parse_cseq("0009 INVITE") == (9, "INVITE")
    jorg = "J\u00f6rg M\u00fcller"
    assert parse_name_addr(jorg + " <sip:j@m.example>").display == jorg
    with pytest.raises(SipParseError):
        parse_name_addr("Doe, John <sip:j@m.example>")


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
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sips", "alice", "pw", "[2001:db8::10]", 5061)
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
    data = (b"\r\n\r\n" + builders.invite() + b"\r\n" + builders.ok_200()
            + builders.request("BYE", cseq=2))
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
    lenient = parse_message(good.replace(b"Max-Forwards: 70\r\n", b""), strict=False)
    assert lenient.method == "OPTIONS"
    with pytest.raises(SipParseError) as err:
        parse_message(b"x" * 70000)
    assert err.value.status == 513
    with pytest.raises(SipParseError) as err:
        parse_message(good.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX: y\r\n"))
    assert "Bare" in err.value.reason
    with pytest.raises(SipParseError) as err:
        StreamFramer().feed(good.replace(b"Content-Length: 0", b"Content-Length: 99999999"))
    assert err.value.status == 413
    with pytest.raises(SipParseError) as err:
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 5000)
    assert err.value.status == 513


# ---- Hypothesis: no input crashes the parser; parse(serialize(x)) == x; framing ---------------

from hypothesis import given, strategies as st  # noqa: E402

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(_TOKEN_CHARS, min_size=1, max_size=12)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.lists(st.sampled_from(["2001", "db8", "0", "ffff", "1"]), min_size=3, max_size=8)
    .map(lambda p: "[" + ":".join(p) + "]"),
)
users = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/", min_size=1, max_size=16)
param_values = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()", min_size=1, max_size=8)
uri_params = st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8),
                             st.one_of(st.none(), param_values), max_size=3)
ports = st.one_of(st.none(), st.integers(1, 65535))


@st.composite
def sip_uris(draw, headers=True):
    return SipURI(scheme=draw(st.sampled_from(["sip", "sips"])),
                  user=draw(st.one_of(st.none(), users)), host=draw(hosts), port=draw(ports),
                  params=draw(uri_params),
                  headers=draw(st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyzABC-",
                                                       min_size=1, max_size=8), param_values,
                                               max_size=2)) if headers else {})


@given(sip_uris())
def test_uri_round_trip_generated(uri):
    assert parse_uri(str(uri)) == uri


header_params = st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
                                .filter(lambda n: n != "tag"), st.one_of(st.none(), tokens),
                                max_size=2)
displays = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                                        max_size=12))


@st.composite
def name_addrs(draw, tag=True):
    from protocols.sip.headers import NameAddr
    params = draw(header_params)
    if tag:
        params = {"tag": draw(tokens), **params}
    return NameAddr(draw(displays), draw(sip_uris(headers=False)), params)


header_values = st.text(st.characters(blacklist_categories=("Cs", "Cc"),
                                      blacklist_characters="\r\n"), max_size=30).map(str.strip)


@st.composite
def common_headers(draw, method):
    from protocols.sip.headers import format_via
    via = st.builds(format_via, st.sampled_from(["UDP", "TCP", "TLS"]), hosts, ports,
                    tokens.map(lambda t: "z9hG4bK" + t))
    vias = draw(st.lists(via, min_size=1, max_size=3))
    items = [("Via", v) for v in vias]
    to = draw(name_addrs(tag=draw(st.booleans())))
    items += [("From", str(draw(name_addrs()))), ("To", str(to)),
              ("Call-ID", draw(tokens) + "@" + draw(labels)),
              ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")]
    extra = draw(st.lists(st.tuples(tokens.map(lambda t: "X-" + t), header_values), max_size=4))
    order = draw(st.permutations(items + extra))
    return list(order)


@st.composite
def requests(draw):
    method = draw(st.one_of(st.sampled_from(["INVITE", "BYE", "OPTIONS", "ACK"]), tokens))
    items = draw(common_headers(method))
    items.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    if draw(st.booleans()):
        items.append(("Contact", str(draw(name_addrs(tag=False)))))
    return Request(method, str(draw(sip_uris(headers=False))), items, draw(st.binary(max_size=40)))


@st.composite
def responses(draw):
    items = draw(common_headers(draw(st.sampled_from(["INVITE", "BYE", "REGISTER"]))))
    reason = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
    return Response(draw(st.integers(100, 699)), reason, items, draw(st.binary(max_size=40)))


@given(st.one_of(requests(), responses()))
def test_round_trip_generated(message):
    data = message.to_bytes()
    again = parse_message(data)
    assert again == message
    assert again.to_bytes() == data


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_errors(data):
    for candidate in (data, b"INVITE sip:a@b SIP/2.0\r\n" + data, data + b"\r\n\r\n"):
        try:
            parse_message(candidate)
        except SipParseError as exc:
            assert 400 <= exc.status < 600 and exc.reason
            assert exc.__cause__ is None, "the parser's safety net caught a bug"


@given(st.data())
def test_mutated_messages_raise_only_parse_errors(data):
    base = bytearray(data.draw(st.sampled_from([builders.invite(), builders.ok_200()])))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(base) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.sampled_from(b"\r\n \t:;,<>\"\\%@=/\x00\xff0aZ"))
        if action == "flip":
            base[pos] = byte
        elif action == "insert":
            base.insert(pos, byte)
        else:
            del base[pos]
    try:
        msg = parse_message(bytes(base))
    except SipParseError as exc:
        assert exc.__cause__ is None, "the parser's safety net caught a bug"
        return
    msg.to_bytes()
    (msg.branch, msg.cseq, msg.call_id, msg.from_tag, msg.to_tag)


@given(st.lists(st.one_of(requests(), responses()), min_size=1, max_size=4), st.data())
def test_stream_framer_chunking_generated(messages, data):
    stream = b"".join(b"\r\n" * data.draw(st.integers(0, 2)) + m.to_bytes() for m in messages)
    whole = StreamFramer().feed(stream)
    assert whole == messages
    framer, got, i = StreamFramer(), [], 0
    while i < len(stream):
        step = data.draw(st.integers(1, 64))
        got.extend(framer.feed(stream[i:i + step]))
        i += step
    assert got == whole
    framer = StreamFramer()
    one = [m for b in stream for m in framer.feed(bytes([b]))]
    assert one == whole


@given(st.binary(max_size=400))
def test_stream_framer_random_bytes(data):
    framer = StreamFramer()
    try:
        for item in framer.feed(data):
            assert isinstance(item, (Request, Response, SipParseError))
    except SipParseError:
        pass


def test_no_header_injection_from_values():
    from protocols.sip.headers import NameAddr
    h = Headers()
    with pytest.raises(ValueError):
        h.add("Subject", "hi\r\nX-Evil: 1")
    with pytest.raises(ValueError):
        h.set("Subject", "hi\nthere")
    with pytest.raises(ValueError):
        Request("INVITE", "sip:a@b\r\nX: y")
    evil = NameAddr('Eve\r\nX-Evil: 1 "q" \\', parse_uri("sip:a@b.example"))
    assert "\r" not in str(evil) and "\n" not in str(evil)
    assert parse_name_addr(str(evil)).display == 'Eve  X-Evil: 1 "q" \\'


@pytest.mark.parametrize("a, b", [
    # RFC 3261 19.1.4's equivalent pairs
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
])
def test_uri_equal_rfc3261_equivalent(a, b):
    from protocols.sip.uri import uri_equal
    assert uri_equal(a, b) and uri_equal(b, a)


@pytest.mark.parametrize("a, b", [
    # RFC 3261 19.1.4's non-equivalent pairs
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:a@b", "sips:a@b"),
])
def test_uri_equal_rfc3261_different(a, b):
    from protocols.sip.uri import uri_equal
    assert not uri_equal(a, b) and not uri_equal(b, a)


def test_contact_checked_in_responses_too():
    bad = builders.ok_200().replace(b"Contact: <sip:gw@198.51.100.7:5060>",
                                    b"Contact: sip:gw@198.51.100.7?x=1")
    with pytest.raises(SipParseError):
        parse_message(bad)
    star = builders.request("REGISTER", extra=(("Contact", "*"), ("Expires", "0")))
    assert parse_message(star).headers.get_all("Contact")[-1] == "*"
