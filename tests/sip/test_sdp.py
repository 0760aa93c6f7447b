"""Tests for protocols.sip.sdp: RFC 4566 parsing/writing and RFC 3264 offer/answer for audio."""
import pytest
from hypothesis import given, strategies as st

from protocols.sip.sdp import (SdpError, make_answer, make_offer, media_from_sdp, parse_sdp)
from tests.sip import builders

# RFC 3264 section 10.1's first offer (audio + video), with CRLF line ends.
RFC3264_OFFER = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\ns=\r\n"
    b"c=IN IP4 host.atlanta.example.com\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:97 iLBC/8000\r\n"
    b"m=video 51372 RTP/AVP 31 32\r\na=rtpmap:31 H261/90000\r\na=rtpmap:32 MPV/90000\r\n")


def test_parse_and_round_trip():
    sdp = parse_sdp(RFC3264_OFFER)
    assert sdp.origin.username == "alice" and sdp.origin.session_id == "2890844526"
    assert sdp.name == ""
    assert [m.kind for m in sdp.media] == ["audio", "video"]
    audio = sdp.media[0]
    assert audio.port == 49170 and audio.formats == ["0", "8", "97"]
    assert audio.rtpmap()[97] == ("iLBC", 8000, None)
    assert sdp.to_bytes() == RFC3264_OFFER
    assert parse_sdp(sdp.to_bytes()) == sdp


def test_lf_line_ends_accepted():
    sdp = parse_sdp(RFC3264_OFFER.replace(b"\r\n", b"\n"))
    assert len(sdp.media) == 2


@pytest.mark.parametrize("body", [
    b"", b"o=- 1 1 IN IP4 a\r\n", b"v=1\r\n", b"v=0\r\ns=-\r\n", b"v=0\r\no=- 1 1 IN IP4 a\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nx=unknown\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio port RTP/AVP 0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP9 x\r\n",
    b"v=0\r\no=- 1 1\r\ns=-\r\n", b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nbad line\r\n",
])
def test_bad_sdp(body):
    with pytest.raises(SdpError):
        parse_sdp(body)


def test_media_from_sdp_offer():
    media = media_from_sdp(builders.SDP_OFFER)
    assert media == dict(address="192.0.2.101", port=49170, codecs=("PCMU", "PCMA"),
                         telephone_event=101, ptime=20, direction="sendrecv")


def test_media_from_sdp_media_level_connection_and_dynamic_pt():
    body = (b"v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nt=0 0\r\n"
            b"m=video 5000 RTP/AVP 31\r\nc=IN IP4 198.51.100.9\r\n"
            b"m=audio 6000 RTP/AVP 96 8 100\r\nc=IN IP4 198.51.100.2\r\n"
            b"a=rtpmap:96 pcmu/8000\r\na=rtpmap:100 telephone-event/8000\r\na=ptime:30\r\n"
            b"a=recvonly\r\n")
    assert media_from_sdp(body) == dict(address="198.51.100.2", port=6000,
                                        codecs=("PCMU", "PCMA"), telephone_event=100, ptime=30,
                                        direction="recvonly")


def test_media_from_sdp_old_hold_and_session_direction():
    body = builders.SDP_OFFER.replace(b"c=IN IP4 192.0.2.101", b"c=IN IP4 0.0.0.0")
    assert media_from_sdp(body)["direction"] == "sendonly"
    body = (b"v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n"
            b"a=inactive\r\nm=audio 7000 RTP/AVP 0\r\n")
    got = media_from_sdp(body)
    assert got["direction"] == "inactive" and got["address"] == "2001:db8::1"
    assert got["telephone_event"] is None


@pytest.mark.parametrize("body", [
    RFC3264_OFFER.replace(b"0 8 97", b"97")
    .replace(b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", b""),
    RFC3264_OFFER.replace(b"m=audio 49170", b"m=audio 0"),
    RFC3264_OFFER.replace(b"RTP/AVP 0 8 97", b"RTP/SAVP 0 8 97"),
    b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\n",   # no c= anywhere
])
def test_media_from_sdp_unacceptable(body):
    with pytest.raises(SdpError) as err:
        media_from_sdp(body)
    assert err.value.status == 488


def test_make_offer_is_parseable_and_complete():
    body = make_offer("192.0.2.10", 20000, ("PCMA",), 101, 20, "sendonly", 42, 2)
    sdp = parse_sdp(body)
    assert str(sdp.origin) == "- 42 2 IN IP4 192.0.2.10"
    assert sdp.media[0].header() == "audio 20000 RTP/AVP 8 101"
    assert media_from_sdp(body) == dict(address="192.0.2.10", port=20000, codecs=("PCMA",),
                                        telephone_event=101, ptime=20, direction="sendonly")
    assert b"a=fmtp:101 0-16\r\n" in body
    six = make_offer("2001:db8::5", 20002, telephone_event=None)
    assert b"c=IN IP6 2001:db8::5\r\n" in six and b"telephone-event" not in six


def test_answer_rfc3264_example():
    # RFC 3264 10.1: Bob accepts PCMU audio and rejects the video with port 0.
    body = make_answer(RFC3264_OFFER, "host.biloxi.example.com", 49174, ("PCMU",),
                       telephone_event=None, ptime=None, session_id=2808844564, version=2808844564)
    sdp = parse_sdp(body)
    assert [m.header() for m in sdp.media] == ["audio 49174 RTP/AVP 0", "video 0 RTP/AVP 31"]
    assert sdp.media[0].attributes("rtpmap") == ["0 PCMU/8000"]
    assert sdp.media[0].direction() == "sendrecv"
    assert [kv for kv in sdp.lines if kv[0] == "t"] == [("t", "0 0")]


def test_answer_keeps_offer_order_payload_types_and_te():
    offer = (b"v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
             b"m=audio 6000 RTP/AVP 8 96 0 98\r\na=rtpmap:96 telephone-event/8000\r\n"
             b"a=fmtp:96 0-15\r\na=rtpmap:98 opus/48000/2\r\na=sendonly\r\n")
    body = make_answer(offer, "192.0.2.10", 20000, ("PCMU", "PCMA"))
    media = media_from_sdp(body)
    assert media == dict(address="192.0.2.10", port=20000, codecs=("PCMA", "PCMU"),
                         telephone_event=96, ptime=20, direction="recvonly")
    assert b"a=fmtp:96 0-15\r\n" in body


@pytest.mark.parametrize("offered, wanted, answered", [
    ("sendrecv", "sendrecv", "sendrecv"), ("sendonly", "sendrecv", "recvonly"),
    ("recvonly", "sendrecv", "sendonly"), ("inactive", "sendrecv", "inactive"),
    ("sendrecv", "sendonly", "sendonly"), ("sendonly", "sendonly", "inactive"),
    ("sendrecv", "inactive", "inactive"), ("recvonly", "recvonly", "inactive"),
])
def test_answer_direction(offered, wanted, answered):
    offer = make_offer("192.0.2.1", 4000, direction=offered)
    answer = make_answer(offer, "192.0.2.2", 4002, direction=wanted)
    assert media_from_sdp(answer)["direction"] == answered


def test_answer_rejects_when_no_common_codec():
    offer = make_offer("192.0.2.1", 4000, ("PCMA",))
    with pytest.raises(SdpError):
        make_answer(offer, "192.0.2.2", 4002, ("PCMU",))


@given(st.binary(max_size=300))
def test_random_bodies_raise_only_sdp_error(data):
    for body in (data, b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n" + data):
        try:
            media_from_sdp(body)
        except SdpError:
            pass


@given(st.lists(st.sampled_from(["PCMU", "PCMA"]), min_size=1, max_size=2, unique=True),
       st.one_of(st.none(), st.integers(96, 127)), st.sampled_from([10, 20, 30, 40]),
       st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
       st.integers(1, 65535), st.sampled_from(["192.0.2.7", "2001:db8::7"]))
def test_offer_round_trips_through_media_from_sdp(codecs, te, ptime, direction, port, address):
    body = make_offer(address, port, tuple(codecs), te, ptime, direction, 7, 7)
    assert media_from_sdp(body) == dict(address=address, port=port, codecs=tuple(codecs),
                                        telephone_event=te, ptime=ptime, direction=direction)
    assert parse_sdp(body).to_bytes() == body
