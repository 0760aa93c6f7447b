"""The call agent on real loopback sockets against the scripted FIXTURE gateway
(tests/mgcp/fixture_gateway.py, RFC 3435 / RFC 3660 example messages), for what osmo-mgw never
does: the line flow (CRCX to ``aaln/$``, RQNT ringing ``L/rg`` and asking for ``L/hd``, the
gateway's NTFY of off-hook and on-hook, each answered once, DLCX with statistics), every RSIP
restart method with its effect on service (RD on the real clock, the disconnected audit with
AUEP and AUCX), the gateway's own DLCX, a command the gateway never answers (retransmitted with
back-off, then failed), and a slow gateway's provisional 100 then final with K: (acknowledged
with 000). What the call agent sends in the line flow is judged by tshark too."""
from __future__ import annotations

import re

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from zope.interface import implementer

from protocols.mgcp import events as ev
from protocols.mgcp.adapter import CallAgentEndpoint, IMgcpListener, MgcpCommandError
from protocols.mgcp.endpoint import EndpointName
from protocols.mgcp.message import Command
from protocols.mgcp.params import parse_connection_parameters
from protocols.mgcp.restart import ServiceState
from protocols.mgcp.transaction import Timers
from tests.mgcp import builders as b
from tests.mgcp.fixture_gateway import FixtureGateway
from tests.mgcp.wire import Capture, mgcp_verdict
from tests.peers import require_peer

FAST = Timers(initial=0.05, maximum=0.2, max1=2, max2=3, t_max=5.0, longtran=1.0)


def within(d, seconds=10.0):
    d.addTimeout(seconds, reactor)
    return d


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@implementer(IMgcpListener)
class Listener:
    """Collects events; answers each NTFY with 200, as the MGCP leg will."""

    def __init__(self):
        self.events = []
        self.endpoint = None

    def mgcp_event(self, event):
        self.events.append(event)
        if isinstance(event, ev.Notified):
            self.endpoint.respond(event.key, 200)

    def mgcp_message(self, direction, peer, message):
        pass

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


class Setup:
    def __init__(self):
        self.gw = FixtureGateway()
        self.listener = Listener()
        self.ca = CallAgentEndpoint(reactor, "127.0.0.1", 0, timers=FAST,
                                    listener=self.listener)
        self.listener.endpoint = self.ca

    def start(self):
        ca_port = self.ca.start()
        gw_port = self.gw.listen()
        self.gw.call_agent = ("127.0.0.1", ca_port)
        self.ca.add_gateway(ev.Gateway("line-gw", "127.0.0.1", gw_port,
                                       (EndpointName.parse(f"aaln/$@{b.GW}"),)))
        return ca_port, gw_port

    @defer.inlineCallbacks
    def stop(self):
        yield self.ca.stop()
        yield self.gw.close()

    def send(self, verb, endpoint, *params):
        return within(self.ca.send("line-gw", Command(verb, 0, endpoint, tuple(params))))


@pytest_twisted.inlineCallbacks
def test_line_flow_ring_offhook_onhook(tmp_path):
    require_peer("dumpcap", "tshark")
    s = Setup()
    ca_port, gw_port = s.start()
    capture = Capture(tmp_path / "line.pcapng", [ca_port, gw_port])
    try:
        yield capture.start()
        created = yield s.send("CRCX", f"aaln/$@{b.GW}", ("C", b.CALL_ID), ("L", "p:20, a:PCMU"),
                               ("M", "recvonly"))
        assert created.response.code == 200 and created.endpoint == b.LINE
        line, conn = created.endpoint, created.response.param("I")
        ring = yield s.send("RQNT", line, ("N", f"ca@127.0.0.1:{ca_port}"),
                            ("X", b.REQUEST_ID), ("R", "L/hd(N)"), ("S", "L/rg"))
        assert ring.response.code == 200
        rqnt = s.gw.commands("RQNT")[0]
        assert re.search(r"^S: L/rg\r?$", rqnt, re.M) and "R: L/hd(N)" in rqnt
        assert "K: " in rqnt                        # acknowledges the CRCX's response

        answer = yield within(s.gw.send(b.ntfy(tid=2002, observed="L/hd"), 2002))
        assert answer.startswith("200 2002")
        [offhook] = s.listener.of(ev.Notified)
        assert offhook.endpoint == line and offhook.events[0].is_("L", "hd")
        assert offhook.request_id == b.REQUEST_ID

        yield s.send("MDCX", line, ("C", b.CALL_ID), ("I", conn), ("M", "sendrecv"))
        yield s.send("RQNT", line, ("X", "0123456789AD"), ("R", "L/hu(N)"))
        answer = yield within(s.gw.send(b.ntfy(tid=2003, request_id="0123456789AD",
                                                observed="L/hu"), 2003))
        assert answer.startswith("200 2003")
        assert s.listener.of(ev.Notified)[-1].events[0].is_("L", "hu")

        gone = yield s.send("DLCX", line, ("C", b.CALL_ID), ("I", conn))
        assert gone.response.code == 250
        stats = parse_connection_parameters(gone.response.param("P"))
        assert (stats.packets_sent, stats.packets_lost, stats.jitter_ms) == (1245, 10, 27)
        yield capture.stop()
        capture = None
        rows, problems = yield mgcp_verdict(tmp_path / "line.pcapng", [ca_port, gw_port])
        assert problems == []
        ours = [r for r in rows if r[0] == ca_port]
        assert [r[2] for r in ours] == ["CRCX", "RQNT", "200", "MDCX", "RQNT", "200", "DLCX"]
    finally:
        if capture is not None:
            yield capture.stop()
        yield s.stop()


@pytest_twisted.inlineCallbacks
def test_ntfy_retransmitted_is_executed_once_and_answered_twice():
    s = Setup()
    s.start()
    try:
        first = yield within(s.gw.send(b.ntfy(tid=3001), 3001))
        second = yield within(s.gw.send(b.ntfy(tid=3001), 3001))
        assert first == second and first.startswith("200 3001")
        assert len(s.listener.of(ev.Notified)) == 1
    finally:
        yield s.stop()


@pytest_twisted.inlineCallbacks
def test_every_rsip_method():
    s = Setup()
    s.start()
    try:
        created = yield s.send("CRCX", f"aaln/$@{b.GW}", ("C", b.CALL_ID), ("M", "recvonly"))
        line, conn = created.endpoint, created.response.param("I")

        answer = yield within(s.gw.send(b.rsip(tid=10, endpoint=line, method="graceful"), 10))
        assert answer.startswith("200 10")
        assert not s.ca.accepting("line-gw", line)
        assert s.ca.accepting("line-gw", f"aaln/2@{b.GW}")
        assert not s.listener.of(ev.ReleaseEndpointCalls)           # calls go on

        yield within(s.gw.send(b.rsip(tid=11, endpoint=line, method="cancel-graceful"), 11))
        assert s.ca.accepting("line-gw", line)

        # disconnected: audited with AUEP and AUCX; the connection that survived is kept
        yield within(s.gw.send(b.rsip(tid=12, method="disconnected"), 12))
        for _ in range(100):
            if s.ca.accepting("line-gw", line):
                break
            yield sleep(0.02)
        assert s.ca.accepting("line-gw", line)
        assert [c.split()[0] for c in s.gw.commands()[-2:]] == ["AUEP", "AUCX"]
        assert [c.connection_id for c in s.ca.agent.connections_of("line-gw")] == [conn]
        assert not s.listener.of(ev.ConnectionLost)

        # a second disconnected finds the connection gone (AUCX 515): its call is released
        s.gw.lost.add(conn)
        yield within(s.gw.send(b.rsip(tid=13, method="disconnected"), 13))
        for _ in range(100):
            if s.listener.of(ev.ConnectionLost):
                break
            yield sleep(0.02)
        [lost] = s.listener.of(ev.ConnectionLost)
        assert (lost.connection_id, lost.code, lost.call_id) == (conn, 515, b.CALL_ID)

        # restart with a delay: down now, calls released, back after RD seconds
        yield within(s.gw.send(b.rsip(tid=14, method="restart", delay=1), 14))
        assert not s.ca.accepting("line-gw", line)
        assert s.listener.of(ev.ReleaseEndpointCalls)[-1].endpoint == f"*@{b.GW}"
        for _ in range(100):
            if s.ca.accepting("line-gw", line):
                break
            yield sleep(0.05)
        assert s.ca.agent.service_state("line-gw", line) is ServiceState.IN_SERVICE

        # forced: out of service, calls released with the gateway's reason code
        yield within(s.gw.send(b.rsip(tid=15, method="forced", reason=905), 15))
        assert not s.ca.accepting("line-gw", line)
        assert s.listener.of(ev.ReleaseEndpointCalls)[-1].reason_code == 905

        # an unknown method is refused with 536
        answer = yield within(s.gw.send(b.rsip(tid=16, method="reboot"), 16))
        assert answer.startswith("536 16")
    finally:
        yield s.stop()


@pytest_twisted.inlineCallbacks
def test_gateway_deletes_a_connection_itself():
    s = Setup()
    s.start()
    try:
        created = yield s.send("CRCX", f"aaln/$@{b.GW}", ("C", b.CALL_ID), ("M", "recvonly"))
        conn = created.response.param("I")
        answer = yield within(s.gw.send(b.gateway_dlcx(tid=20, endpoint=created.endpoint,
                                                       connection_id=conn), 20))
        assert answer.startswith("200 20")
        [gone] = s.listener.of(ev.ConnectionDeleted)
        assert (gone.connection_id, gone.reason_code, gone.stats.packets_received) == (
            conn, 900, 780)
    finally:
        yield s.stop()


@pytest_twisted.inlineCallbacks
def test_unanswered_command_is_retransmitted_with_backoff_then_fails():
    s = Setup()
    s.start()
    s.gw.silent.add("AUEP")
    try:
        with pytest.raises(MgcpCommandError) as failure:
            yield s.send("AUEP", b.LINE)
        copies = s.gw.commands("AUEP")
        assert len(copies) == 1 + FAST.max2 and len(set(copies)) == 1
        assert failure.value.event.gateway == "line-gw"
        assert s.listener.of(ev.PeerSlow)                        # Max1 was reached
    finally:
        yield s.stop()


@pytest_twisted.inlineCallbacks
def test_slow_gateway_provisional_then_final_with_k_is_acknowledged():
    s = Setup()
    s.start()
    s.gw.slow["CRCX"] = 0.3
    try:
        created = yield s.send("CRCX", f"aaln/$@{b.GW}", ("C", b.CALL_ID), ("M", "recvonly"))
        assert created.response.code == 200 and created.response.has("K")
        assert s.listener.of(ev.Provisional)
        for _ in range(50):
            if any(t.startswith(f"000 {created.tid}") for t in s.gw.received):
                break
            yield sleep(0.02)
        assert any(t.startswith(f"000 {created.tid}") for t in s.gw.received)
        assert len(s.gw.commands("CRCX")) == 1          # no retransmission after the 100
    finally:
        yield s.stop()
