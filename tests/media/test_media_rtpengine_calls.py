"""rtpengine-anchored calls while they are up: live figures, inactivity, hold/resume, and an
rtpengine that does not answer. callgw with ``[media] backend = "rtpengine"``, a real
userspace rtpengine started by the test (tests/media/rtpengine_peer.py), sipp as the gateway,
``callgw-dial --media direct`` or the client library as the client:

- the admin API's active calls (HTTP/2) show rtpengine's per-direction figures from its ng
  ``query`` while the call is up;
- a call whose media stopped both ways is reaped after ``[media] inactivity_timeout``;
- hold and resume re-INVITEs carry rtpengine's address (sendonly, then sendrecv), rtpengine got
  an offer and an answer for each, and relays the client's RTP after the resume;
- an rtpengine that never answers: the client is told ``media backend unavailable``
  (congestion), nothing reaches the gateway, one log line names rtpengine's address.
"""
from __future__ import annotations

import re
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import formatEvent, globalLogPublisher

from rtpengine_peer import RtpengineDaemon
from test_media_calls import PASSWORD, dial, settled_cdr, start, url, within, write_tone
from test_media_calls_quality import api_calls
from tests.callpath.callgw_env import Sipp, prepare_db
from tests.ports import free_port
from tests.web.admins import add_admin

pytestmark = pytest.mark.peers("rtpengine", "sipp")
DIRECTIONS = ("client_to_gateway", "gateway_to_client")


def sipp_gateway(tmp_path, scenario="uas_answer.xml", echo=True):
    """sipp (tests/sip/scenarios) answering and (``echo``) echoing RTP, with a minute before
    it gives up on a call (a loaded machine starts callgw-dial slowly)."""
    return Sipp(scenario, tmp_path, timeout=60, extra=["-rtp_echo"] if echo else []).start()


@pytest.fixture
def rtpengine(tmp_path):
    daemon = RtpengineDaemon(tmp_path).start()
    yield daemon
    daemon.stop()


@defer.inlineCallbacks
def until(condition, limit=30.0, what="the condition"):
    """Poll ``condition()`` (it may return a Deferred) every 0.1 s, at most ``limit`` s."""
    waited = 0.0
    while True:
        value = yield defer.maybeDeferred(condition)
        if value:
            return value
        if waited >= limit:
            raise AssertionError(f"no {what} in {limit:g} s")
        yield task.deferLater(reactor, 0.1, lambda: None)
        waited += 0.1


class RtpPeer(DatagramProtocol):
    """The client's RTP socket (a fixture: counts what comes back, sends bursts)."""

    def __init__(self):
        self.received = 0
        self.sources = set()

    def datagramReceived(self, data, addr):
        self.received += 1
        self.sources.add(addr)

    def burst(self, to, count, first=0):
        for i in range(first, first + count):
            header = bytes([0x80, 0]) + (i & 0xFFFF).to_bytes(2, "big") + \
                (i * 160).to_bytes(4, "big") + (0x1234).to_bytes(4, "big")
            self.transport.write(header + b"\xff" * 160, to)


@defer.inlineCallbacks
def direct_call(gw, rtp_port):
    from callgw.client.links import connect
    session = yield connect(url(gw, "udp"), reactor)
    yield session.login("alice", PASSWORD)
    call = session.call("+4930123456", mode="direct", codecs=("PCMU",), address="127.0.0.1",
                        port=rtp_port)
    return session, call


@pytest_twisted.inlineCallbacks
def test_live_figures_from_rtpengine_in_the_api(tmp_path, rtpengine):
    source = tmp_path / "tone.wav"
    write_tone(source, seconds=8.0)
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    add_admin(tmp_path / "callgw.sqlite3")
    gw = yield start(tmp_path, web=True, media={"backend": "rtpengine",
                                                "rtpengine": rtpengine.address,
                                                "inactivity_timeout": 8.0})   # a query every 2 s
    try:
        call = dial("--server", url(gw, "udp"), "--user", "alice", "--media", "direct",
                    "--no-media-after", "0", "--duration", "9", "--play", str(source),
                    "+4930123456")

        @defer.inlineCallbacks
        def row_with_media():
            for row in (yield api_calls(gw))["active"]:
                media = row.get("media") or {}
                if all(media.get(d, {}).get("packets", 0) >= 50 for d in DIRECTIONS):
                    return row
        row = yield until(row_with_media, 30, "active call with rtpengine's figures")
        media = row["media"]
        print("live media:", {d: media[d] for d in DIRECTIONS})
        assert row["media_mode"] == "direct" and media["mode"] == "rtpengine"
        assert media["rtpengine"] == rtpengine.address
        assert media["gateway"] == f"127.0.0.1:{sipp.media_port}"
        for direction in DIRECTIONS:
            figures = media[direction]
            assert figures["octets"] >= 172 * figures["packets"]       # RTP header + 160
            assert figures["errors"] == 0
            # rtpengine 10.5 forwarding in userspace reports no loss/jitter/MOS (no RTCP here)
            assert {"loss", "jitter_ms", "mos"} <= set(figures)
        code, out = yield call
        assert code == 0, out
        assert (yield within(sipp.wait(reactor), 60)) == 0, sipp.log()
        assert "Received command 'query'" in rtpengine.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        final = cdr["stats"]["media"]
        assert final["mode"] == "rtpengine"
        assert final["client_to_gateway"]["packets"] >= media["client_to_gateway"]["packets"]
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_media_silent_both_ways_is_reaped(tmp_path, rtpengine):
    sipp = sipp_gateway(tmp_path, echo=False)            # answers, never sends RTP
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, media={"backend": "rtpengine", "rtpengine": rtpengine.address,
                                      "inactivity_timeout": 2.0})
    rtp = RtpPeer()
    port = reactor.listenUDP(0, rtp, interface="127.0.0.1")
    session = None
    try:
        session, call = yield direct_call(gw, port.getHost().port)
        yield within(call.connected, 30)
        end = yield within(call.disconnected, 40)         # the client sends no RTP either
        assert end.command == "disconnected", end
        assert (yield within(sipp.wait(reactor), 60)) == 0, sipp.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        print("CDR:", cdr["cause"], cdr["cause_text"], cdr["duration"])
        assert cdr["cause_text"].startswith(
            "reaped: media inactive: nothing from either side for"), cdr["cause_text"]
        assert cdr["answered"] and cdr["stats"]["media"]["mode"] == "rtpengine"
        assert "Received command 'query'" in rtpengine.log()
    finally:
        if session is not None:
            session.close()
        yield port.stopListening()
        yield gw.stopService()
        sipp.stop()


def _invite_bodies(tmp_path):
    """The SDP bodies of the INVITEs sipp received, in order (its message log: one message
    after each line of dashes)."""
    log = (tmp_path / "sipp_messages.log").read_text(errors="replace").replace("\r", "")
    messages = re.split(r"^-{20,}.*$", log, flags=re.M)
    return [m.split("\n\n", 2)[-1] for m in messages
            if "message received" in m and "\nINVITE sip:" in m]


@defer.inlineCallbacks
def echoed(rtp, anchor, first, count=20):
    """Send bursts of ``count`` RTP packets to rtpengine's ``anchor`` (one a second) until
    ``count // 2`` more came back through sipp's echo; at most 30 s."""
    before, waited = rtp.received, 0.0
    while rtp.received < before + count // 2:
        if waited >= 30:
            raise AssertionError(f"no echo through rtpengine at {anchor}")
        if waited % 1.0 < 0.05:
            rtp.burst(anchor, count, first=first)
            first += count
        yield task.deferLater(reactor, 0.1, lambda: None)
        waited = round(waited + 0.1, 1)


@pytest_twisted.inlineCallbacks
def test_hold_and_resume_go_through_rtpengine(tmp_path, rtpengine):
    sipp = sipp_gateway(tmp_path, "uas_hold.xml")         # echoes RTP, takes two re-INVITEs
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, media={"backend": "rtpengine", "rtpengine": rtpengine.address})
    rtp = RtpPeer()
    port = reactor.listenUDP(0, rtp, interface="127.0.0.1")
    client_port = port.getHost().port
    low, high = rtpengine.ports
    session = None
    try:
        session, call = yield direct_call(gw, client_port)
        connected = yield within(call.connected, 30)
        anchor = (connected.address, connected.port)
        assert connected.address == "127.0.0.1" and low <= connected.port <= high, connected
        yield echoed(rtp, anchor, 0)
        offers = lambda: rtpengine.log().count("Received command 'offer'")     # noqa: E731
        answers = lambda: rtpengine.log().count("Received command 'answer'")   # noqa: E731
        call.hold()
        yield until(lambda: answers() >= 2, what="hold answered through rtpengine")
        call.resume()
        yield until(lambda: answers() >= 3, what="resume answered through rtpengine")
        yield echoed(rtp, anchor, 1000)                    # relayed after the resume
        assert rtp.sources == {anchor}          # everything came from rtpengine's address
        call.hangup()
        end = yield within(call.disconnected, 30)
        assert end.cause == "normal", end
        assert (yield within(sipp.wait(reactor), 60)) == 0, sipp.log()
        assert (offers(), answers()) == (3, 3)
        bodies = _invite_bodies(tmp_path)
        assert len(bodies) == 3, bodies
        directions = []
        for body in bodies:
            m = re.search(r"^m=audio (\d+) ", body, re.M)
            assert "c=IN IP4 127.0.0.1" in body and m, body
            assert low <= int(m.group(1)) <= high and int(m.group(1)) != client_port, body
            direction = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)$", body, re.M)
            directions.append(direction.group(1) if direction else "sendrecv")
        print("INVITE directions:", directions, "anchor:", anchor)
        assert directions == ["sendrecv", "sendonly", "sendrecv"]
    finally:
        if session is not None:
            session.close()
        yield port.stopListening()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_rtpengine_that_does_not_answer_fails_the_call_before_the_gateway(tmp_path):
    silent = free_port(socket.SOCK_DGRAM)                  # nothing listens there
    gateway = RtpPeer()                                    # a "gateway" that only counts
    gw_port = reactor.listenUDP(0, gateway, interface="127.0.0.1")
    prepare_db(tmp_path, gateways=[("gw1", gw_port.getHost().port, ["+49"], {})])
    gw = yield start(tmp_path, media={"backend": "rtpengine",
                                      "rtpengine": f"127.0.0.1:{silent}"})
    lines: list[str] = []

    def observe(event):
        if "log_format" in event:
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    rtp = RtpPeer()
    port = reactor.listenUDP(0, rtp, interface="127.0.0.1")
    session = None
    try:
        session, call = yield direct_call(gw, port.getHost().port)
        end = yield within(call.disconnected, 30)          # four tries, one second apart
        print("disconnected:", end)
        assert end.cause == "congestion" and end.q850 == 34, end
        assert end.text == "media backend unavailable", end
        assert gateway.received == 0                        # no INVITE reached the gateway
        logged = [line for line in lines if "media backend unavailable" in line]
        assert len(logged) == 1 and f"127.0.0.1:{silent}" in logged[0], logged
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 34 and cdr["cause_text"] == "media backend unavailable"
    finally:
        globalLogPublisher.removeObserver(observe)
        if session is not None:
            session.close()
        yield port.stopListening()
        yield gw_port.stopListening()
        yield gw.stopService()
