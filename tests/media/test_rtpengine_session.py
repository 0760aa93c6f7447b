"""An rtpengine-anchored call's session without rtpengine: the live ``query`` polling, the
statistics in the relay's keys, the inactivity watch on rtpengine's counters and hold, over a
fake UDP transport and a ``task.Clock`` (callgw/media/rtpengine.py ``RtpengineSession``). The
same against a real rtpengine: tests/media/test_media_rtpengine.py."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import formatEvent, globalLogPublisher

from callgw.callserver import events as ev
from callgw.media.rtpengine import Rtpengine
from protocols.ng import codec as ng
from protocols.sip import sdp as sdplib

CLIENT = ev.MediaDescription("192.0.2.1", 4000, ("PCMU",))
GATEWAY = ev.MediaDescription("10.0.0.1", 5000, ("PCMU",))


def backend(inactivity_timeout=8.0, poll_interval=5.0):
    clock = Clock()
    clock.advance(1000)
    rtpe = Rtpengine(None, ("127.0.0.1", 2223), clock=clock,
                     inactivity_timeout=inactivity_timeout, poll_interval=poll_interval)
    rtpe.client.port = object()                 # listening: the fake transport below
    rtpe.client.makeConnection(FakeDatagramTransport())
    return rtpe, clock


def requests(rtpe):
    """``[(cookie, message)]`` of every datagram sent to rtpengine (retransmissions too)."""
    out = []
    for datagram, _ in rtpe.client.transport.written:
        cookie, _, body = datagram.partition(b" ")
        out.append((cookie, ng.bdecode(body)))
    return out


def reply(rtpe, message: dict, cookie=None):
    """rtpengine answers the last request (or the one with ``cookie``)."""
    cookie = cookie or requests(rtpe)[-1][0]
    rtpe.client.datagramReceived(cookie + b" " + ng.bencode(message), ("127.0.0.1", 2223))


def sdp(port):
    return sdplib.make_offer("127.0.0.1", port, ["PCMU"], 101, 20, "sendrecv")


def query_reply(a_packets, b_packets, ssrc=None):
    def side(tag, packets, ssrc_value, port):
        stream = {"local port": port, "local address": "127.0.0.1", "flags": ["RTP", "filled"],
                  "endpoint": {"address": "127.0.0.1", "port": port + 10000},
                  "stats": {"packets": packets, "bytes": 172 * packets, "errors": 0}}
        if ssrc_value is not None:
            stream["SSRC"] = ssrc_value
        return {"tag": tag, "medias": [{"streams": [stream]}]}
    message = {"result": "ok", "SSRC": ssrc or {},
               "totals": {"RTP": {"packets": a_packets + b_packets, "bytes": 0, "errors": 0}},
               "tags": {"a": side("a", a_packets, 1234, 30002),
                        "b": side("b", b_packets, 5678, 30000)}}
    return message


def answered(rtpe):
    """A session whose offer and answer rtpengine took."""
    session = rtpe.session("call-1")
    got = []
    session.anchor("a", CLIENT).addCallback(got.append)
    reply(rtpe, {"result": "ok", "sdp": sdp(30000)})
    session.anchor("b", GATEWAY).addCallback(got.append)
    reply(rtpe, {"result": "ok", "sdp": sdp(30002)})
    assert [m.port for m in got] == [30000, 30002]
    return session


@pytest.fixture
def log_lines():
    lines: list[str] = []

    def observe(event):
        if "log_format" in event:
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def queries(rtpe):
    return [(c, m) for c, m in requests(rtpe) if m["command"] == b"query"]


def test_queries_one_at_a_time_while_up_and_none_after_close():
    rtpe, clock = backend()                     # polls every min(5, 8 / 4) = 2 s
    assert rtpe.poll_interval == 2.0
    session = rtpe.session("call-1")
    session.anchor("a", CLIENT)
    reply(rtpe, {"result": "ok", "sdp": sdp(30000)})
    clock.advance(10)
    assert not queries(rtpe)                    # no polling before the gateway answered
    session.anchor("b", GATEWAY)
    reply(rtpe, {"result": "ok", "sdp": sdp(30002)})
    assert session.statistics() == {}
    clock.advance(2)
    assert queries(rtpe)[-1][1] == {"command": b"query", "call-id": b"call-1"}
    clock.advance(1)                            # unanswered: retransmitted, no second query
    clock.advance(1)
    assert len({c for c, _ in queries(rtpe)}) == 1 and len(queries(rtpe)) == 3
    reply(rtpe, query_reply(100, 98), cookie=queries(rtpe)[0][0])
    stats = session.statistics()
    up, down = stats["client_to_gateway"], stats["gateway_to_client"]
    assert stats["mode"] == "rtpengine" and stats["rtpengine"] == "127.0.0.1:2223"
    assert (up["packets"], up["octets"], down["packets"]) == (100, 17200, 98)
    assert up["loss"] is None and up["jitter_ms"] is None and up["mos"] is None
    assert up["ssrc"] == 1234 and stats["latched"]["client"] == "127.0.0.1:40002"
    clock.advance(2)
    assert len({c for c, _ in queries(rtpe)}) == 2
    reply(rtpe, query_reply(200, 198))
    assert session.statistics()["client_to_gateway"]["packets"] == 200
    assert session.queries == 2 and session.liveness() is None
    final = []
    session.close().addCallback(final.append)
    assert requests(rtpe)[-1][1]["command"] == b"delete"
    reply(rtpe, query_reply(250, 248))
    assert final[0]["client_to_gateway"]["packets"] == 250
    sent = len(requests(rtpe))
    clock.advance(60)
    assert len(requests(rtpe)) == sent and not clock.getDelayedCalls()
    assert session.statistics()["gateway_to_client"]["packets"] == 248


def test_a_failed_query_is_one_log_line_and_the_figures_stay(log_lines):
    rtpe, clock = backend(inactivity_timeout=0, poll_interval=5)   # no inactivity watch
    session = answered(rtpe)
    clock.advance(5)
    reply(rtpe, query_reply(100, 100))
    clock.advance(5)
    first = queries(rtpe)[-1][0]
    for _ in range(4):                          # 1 s apart, three retransmissions: fails
        clock.advance(1)
    assert all(c == first for c, _ in queries(rtpe)[1:]) and len(queries(rtpe)) == 5
    lines = [line for line in log_lines if "rtpengine query failed" in line]
    assert len(lines) == 1 and "call-1" in lines[0] and "127.0.0.1:2223" in lines[0], lines
    assert session.statistics()["client_to_gateway"]["packets"] == 100
    assert session.queries_failed == 1 and session.liveness() is None
    clock.advance(5)                            # polling goes on after a failure
    reply(rtpe, {"result": "error", "error-reason": "Unknown call-id"})
    assert session.queries_failed == 2 and session.statistics()["client_to_gateway"][
        "packets"] == 100
    clock.advance(5)
    reply(rtpe, query_reply(150, 150))
    assert session.statistics()["client_to_gateway"]["packets"] == 150


def test_counters_standing_still_for_the_timeout_is_media_inactive(log_lines):
    rtpe, clock = backend(inactivity_timeout=8.0)       # polls every 2 s
    session = answered(rtpe)
    counts = iter([(50, 50), (100, 100), (100, 100), (100, 100), (100, 100), (100, 100)])

    def poll():
        clock.advance(2)
        reply(rtpe, query_reply(*next(counts)))
    poll()
    poll()                                      # t=4: the counters last grew
    for _ in range(3):
        poll()
        assert session.liveness() is None       # 2, 4, 6 s still
    poll()                                      # t=12: 8 s without growth
    assert session.liveness() == "media inactive: nothing from either side for 8.0 s"
    assert [line for line in log_lines if "media inactive" in line]


def test_one_direction_alone_keeps_the_call_alive():
    rtpe, clock = backend(inactivity_timeout=4.0)       # polls every 1 s
    session = answered(rtpe)
    for n in range(1, 20):
        clock.advance(1)
        reply(rtpe, query_reply(50 * n, 0))     # the gateway is silent, the client talks
    assert session.liveness() is None


def test_silence_on_hold_and_just_after_resume_is_not_inactivity():
    rtpe, clock = backend(inactivity_timeout=4.0)       # polls every 1 s
    session = answered(rtpe)
    clock.advance(1)
    reply(rtpe, query_reply(50, 50))
    session.hold(True, "client")
    for _ in range(10):
        clock.advance(1)
        reply(rtpe, query_reply(50, 50))
    assert session.liveness() is None
    session.hold(False, "client")               # resumed: silence for 4 s more is expected
    for _ in range(3):
        clock.advance(1)
        reply(rtpe, query_reply(50, 50))
        assert session.liveness() is None
    clock.advance(1)
    reply(rtpe, query_reply(50, 50))
    assert session.liveness() == "media inactive: nothing from either side for 4.0 s"


def test_rtcp_derived_quality_when_rtpengine_reports_it():
    """rtpengine's SSRC section (its RTCP-derived figures; MOS x 10, jitter ms, loss %,
    round-trip us) gives each direction's loss, jitter and MOS."""
    rtpe, clock = backend()
    session = answered(rtpe)
    clock.advance(2)
    reply(rtpe, query_reply(100, 100, ssrc={
        "1234": {"average MOS": {"MOS": 43, "jitter": 3, "packet loss": 2,
                                 "round-trip time": 20000, "samples": 2}},
        "5678": {}}))
    stats = session.statistics()
    assert stats["client_to_gateway"]["mos"] == 4.3
    assert stats["client_to_gateway"]["loss"] == 0.02
    assert stats["client_to_gateway"]["jitter_ms"] == 3.0
    assert stats["client_to_gateway"]["rtt_ms"] == 20.0
    assert stats["gateway_to_client"]["mos"] is None


def test_a_failed_delete_keeps_the_last_figures_for_the_cdr(expect_logged_failure):
    expect_logged_failure(ng.NgError, match="rtpengine delete")
    rtpe, clock = backend()
    session = answered(rtpe)
    clock.advance(2)
    reply(rtpe, query_reply(120, 118))
    final = []
    session.close().addCallback(final.append)
    for _ in range(4):                          # the delete is never answered
        clock.advance(1)
    assert final[0]["client_to_gateway"]["packets"] == 120
    assert "no answer from rtpengine at 127.0.0.1:2223" in final[0]["error"]
    assert not rtpe.sessions and not clock.getDelayedCalls()
