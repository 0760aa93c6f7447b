"""rtpengine's ng protocol without rtpengine: the sans-I/O codec (protocols/ng/codec.py) and the
Twisted adapter (callgw/media/rtpengine.py ``NgClient``) over a fake transport and clock. The
same code against a real rtpengine: tests/media/test_media_rtpengine.py."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport

from callgw.media.rtpengine import NgClient, parse_address
from protocols.ng import codec as ng

#: the shape of rtpengine 10.5's reply to ``delete`` (trimmed: one stream per tag)
DELETE_REPLY = ng.bencode({
    "result": "ok",
    "totals": {"RTP": {"packets": 300, "bytes": 51600, "errors": 0},
               "RTCP": {"packets": 2, "bytes": 100, "errors": 0}},
    "tags": {
        "a": {"tag": "a", "medias": [{"streams": [
            {"local port": 26120, "local address": "127.0.0.1", "flags": ["RTP", "filled"],
             "endpoint": {"address": "127.0.0.1", "port": 41000},
             "stats": {"packets": 150, "bytes": 25800, "errors": 0}},
            {"local port": 26121, "local address": "127.0.0.1", "flags": ["RTCP", "filled"],
             "endpoint": {"address": "127.0.0.1", "port": 41001},
             "stats": {"packets": 2, "bytes": 100, "errors": 0}}]}]},
        "b": {"tag": "b", "medias": [{"streams": [
            {"local port": 26100, "local address": "127.0.0.1", "flags": ["RTP"],
             "endpoint": {"address": "127.0.0.1", "port": 25012},
             "stats": {"packets": 150, "bytes": 25800, "errors": 1}}]}]}}})


def test_bencode_round_trip_sorts_keys():
    data = ng.bencode({"sdp": b"v=0\r\n", "command": "offer", "n": -3, "l": [1, "x"]})
    assert data == b"d7:command5:offer1:lli1e1:xe1:ni-3e3:sdp5:v=0\r\ne"
    assert ng.bdecode(data) == {"command": b"offer", "l": [1, b"x"], "n": -3,
                                "sdp": b"v=0\r\n"}


@pytest.mark.parametrize("data", [b"", b"d3:abc", b"i12", b"5:abc", b"l", b"di1ei2ee", b"x",
                                  b"i1ei2e", b"d" * 100 + b"e" * 100])
def test_malformed_bencoding_is_an_ng_error(data):
    with pytest.raises(ng.NgError):
        ng.bdecode(data)


def test_cookies_match_replies_and_errors_carry_rtpengine_reason():
    codec = ng.NgCodec(prefix=b"t")
    cookie, datagram = codec.request(ng.offer("c1", "a", b"v=0\r\n"))
    assert datagram.startswith(cookie + b" d") and b"7:command5:offer" in datagram
    assert codec.request({"command": "ping"})[0] != cookie
    got, reply = codec.reply(cookie + b" d6:result4:ponge")
    assert got == cookie and reply == {"result": b"pong"}
    with pytest.raises(ng.NgError, match="no cookie"):
        codec.reply(b"nocookie")
    with pytest.raises(ng.NgError, match="Unknown call-id"):
        ng.result({"result": b"error", "error-reason": b"Unknown call-id"})


def test_delete_statistics_per_tag():
    stats = ng.media_stats(ng.bdecode(DELETE_REPLY))
    assert stats["totals"]["rtp"] == {"packets": 300, "bytes": 51600, "errors": 0}
    a, b = stats["tags"]["a"], stats["tags"]["b"]
    assert a["rtp"]["packets"] == 150 and a["rtcp"]["packets"] == 2
    assert a["endpoint"] == "127.0.0.1:41000" and a["local"] == "127.0.0.1:26120"
    assert b["rtp"]["errors"] == 1 and b["endpoint"] == "127.0.0.1:25012"
    assert ng.media_stats({"result": b"ok"}) == {"tags": {}, "totals": {}}


def client():
    clock = Clock()
    ngc = NgClient(None, ("127.0.0.1", 2223), timeout=1.0, retries=2, clock=clock)
    ngc.port = object()                     # listening: the fake transport below
    ngc.makeConnection(FakeDatagramTransport())
    return ngc, clock


def test_adapter_retransmits_with_the_same_cookie_then_answers():
    ngc, clock = client()
    d = ngc.command({"command": "ping"})
    first = ngc.transport.written[0]
    clock.advance(1.0)
    assert ngc.transport.written[1] == first            # same cookie: rtpengine dedups
    cookie = first[0].split(b" ")[0]
    ngc.datagramReceived(b"junk", ("127.0.0.1", 2223))    # malformed: dropped, counted
    ngc.datagramReceived(cookie + b" d6:result4:ponge", ("127.0.0.1", 2223))
    assert d.result == {"result": b"pong"} and ngc.dropped == 1 and not clock.getDelayedCalls()
    ngc.datagramReceived(cookie + b" d6:result4:ponge", ("127.0.0.1", 2223))
    assert ngc.dropped == 2                             # a late duplicate


def test_adapter_fails_clearly_when_rtpengine_never_answers():
    ngc, clock = client()
    d = ngc.command({"command": "ping"})
    failures = []
    d.addErrback(failures.append)
    clock.advance(1.0)
    clock.advance(1.0)
    clock.advance(1.0)
    assert len(ngc.transport.written) == 3
    assert "no answer from rtpengine at 127.0.0.1:2223 after 3 tries" in str(failures[0].value)
    assert not ngc.pending


def test_adapter_turns_an_error_result_into_a_failure():
    ngc, _ = client()
    d = ngc.command(ng.delete("nope", "a"))
    cookie = ngc.transport.written[0][0].split(b" ")[0]
    ngc.datagramReceived(cookie + b" " + ng.bencode({"result": "error",
                                                     "error-reason": "Unknown call-id"}),
                         ("127.0.0.1", 2223))
    failures = []
    d.addErrback(failures.append)
    assert "Unknown call-id" in str(failures[0].value)


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:0", ":2223", "host:port",
                                  "127.0.0.1:70000"])
def test_bad_ng_address_is_refused(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)
