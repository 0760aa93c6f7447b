"""The MGCP leg end to end through callgw, against the scripted FIXTURE gateway
(tests/mgcp/fixture_gateway.py: RFC 3435 / RFC 3660 example messages) for what osmo-mgw never
does: a client of callgw calls a number routed to a line gateway (``aaln/$``); the line rings
(CRCX with callgw's SDP, RQNT ``S: L/rg`` ``R: L/hd``: the client hears ``ringing``), the
gateway's ``NTFY O: L/hd`` answers it (``connected``), its ``NTFY O: L/hu`` hangs up
(``disconnected``, DLCX, the DLCX statistics in the CDR); the client hangs up a ringing line and
an answered one; DTMF as the D package signal and hold as MDCX; an unanswered CRCX fails over
to the next gateway; a refused CRCX maps its return code to the client's cause; one call per
specific endpoint; the gateway's own DLCX with its reason code; every RSIP method (forced
releases the call, graceful refuses new ones until cancel-graceful, restart for its delay,
disconnected audits and keeps the call, or releases it when the AUCX finds the connection
gone); AUEP as the health ping, and the health poller marking a silent gateway down and back
up; direct mode (the client's own address in the CRCX) and the move to the relay (MDCX); the
restart clean-up DLCX; every MGCP message of a call in its trace. Real sockets on 127.0.0.1
and the real clock, short RFC timers."""
from __future__ import annotations

import re

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from callgw.store.db import Database
from protocols.client import messages as m
from tests.callpath.callgw_env import PASSWORD, settled_cdr, sleep, within
from tests.helpers import make_config
from tests.mgcp import builders as b
from tests.mgcp.fixture_gateway import FixtureGateway, param
from tests.mgcp.wire import Capture, mgcp_verdict
from tests.peers import require_peer

NUMBER = "+4930123456"


class Sink(DatagramProtocol):
    """Where the fixture's SDP points callgw's RTP: a loopback socket that keeps nothing."""

    def datagramReceived(self, data, addr):
        pass


class Env:
    """callgw (GatewayService, relay mode) with fixture gateways and a logged-in client."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.gateways: dict[str, FixtureGateway] = {}
        self.gw = None
        self.client = None
        self.sink = reactor.listenUDP(0, Sink(), interface="127.0.0.1")
        port = self.sink.getHost().port
        self.sdp = b.SDP_CALLGW.replace(b"26000", str(port).encode())

    def fixture(self, name) -> FixtureGateway:
        fixture = self.gateways[name] = FixtureGateway()
        fixture.sdp = self.sdp
        fixture.listen()
        return fixture

    @defer.inlineCallbacks
    def start(self, rows, calls=None):
        """``rows``: (name, fixture, endpoints, extra row fields)."""
        from callgw.callserver.server import CallPathService  # noqa: F401 - import check
        from callgw.service import GatewayService
        db = Database(str(self.tmp_path / "callgw.sqlite3"))
        db.migrate()
        db.ensure_default_tenant(1.0)
        from callgw import passwords
        db.add_user("alice", passwords.hash_password(PASSWORD, n=1024), 1.0,
                    number="+4930100000")
        for name, fixture, endpoints, extra in rows:
            db.add_gateway(name, "mgcp", "127.0.0.1", fixture.port.getHost().port, ["+49"], 1.0,
                           options={"endpoints": list(endpoints)}, **extra)
        db.close()
        settings = {"setup_timeout": 8.0, "no_answer_timeout": 20.0, "health_interval": 0}
        settings.update(calls or {})
        # only what the test uses listens (SIP binds UDP and TCP on one port: a rare clash)
        config = make_config(self.tmp_path, calls=settings, web={"https": "off"},
                             sip={"udp": "off", "tcp": "off"},
                             client={"udp": "off", "tls": "off"}, manhole={"telnet": "off"},
                             media={"rtp_ports": "27000-27099"},
                             mgcp={"udp": "127.0.0.1:0", "retransmit": 0.05, "t_max": 1.5})
        self.gw = GatewayService(config, reactor)
        self.gw.startService()
        yield self.gw.ready
        ca = ("127.0.0.1", self.provider.endpoint.port)
        for fixture in self.gateways.values():
            fixture.call_agent = ca
        from callgw.client.links import connect
        host, port = self.gw.client.address("tcp")
        self.client = yield connect(f"tcp://{host}:{port}", reactor)
        yield self.client.login("alice", PASSWORD)

    @property
    def provider(self):
        return self.gw.callpath.providers["mgcp"]

    def row(self, name):
        return self.gw.callpath.directory.gateways[name]

    @defer.inlineCallbacks
    def stop(self):
        if self.client is not None:
            self.client.close()
        if self.gw is not None:
            yield self.gw.stopService()
        for fixture in self.gateways.values():
            yield fixture.close()
        yield self.sink.stopListening()


@defer.inlineCallbacks
def commands(fixture, verb, count, limit=5.0):
    """The fixture's received ``verb`` commands once there are ``count`` of them."""
    waited = 0.0
    while len(fixture.commands(verb)) < count and waited < limit:
        yield sleep(0.02)
        waited += 0.02
    found = fixture.commands(verb)
    assert len(found) >= count, (verb, fixture.received)
    return found


def notify(fixture, tid, observed):
    """The gateway's NTFY of ``observed`` for the line, with the request id of its latest
    RQNT; fires with callgw's answer."""
    rqnt = fixture.commands("RQNT")[-1]
    endpoint = rqnt.split()[2]
    return within(fixture.send(b.ntfy(tid=tid, endpoint=endpoint, request_id=param(rqnt, "X"),
                                      observed=observed), tid), 5)


@defer.inlineCallbacks
def ring(env, fixture):
    """Call NUMBER; fires with the call once the client hears it ring."""
    call = env.client.call(NUMBER)
    yield within(call.ringing, 5)
    return call


@pytest_twisted.inlineCallbacks
def test_line_rings_answers_on_offhook_and_the_line_hangs_up(tmp_path):
    """The line flow through callgw; tshark reads every datagram as MGCP, none malformed."""
    require_peer("dumpcap", "tshark")
    env = Env(tmp_path)
    line = env.fixture("line")
    capture = None
    try:
        yield env.start([("line", line, [f"aaln/$@{b.GW}"], {})])
        ports = [env.provider.endpoint.port, line.port.getHost().port]
        capture = Capture(tmp_path / "leg.pcapng", ports)
        yield capture.start()
        call = yield ring(env, line)
        [crcx] = line.commands("CRCX")
        assert crcx.startswith(f"CRCX ") and f" aaln/$@{b.GW} MGCP 1.0" in crcx
        assert param(crcx, "M") == "recvonly" and param(crcx, "L") == "p:20, a:PCMU"
        relay_port = re.search(r"^m=audio (\d+) RTP/AVP", crcx, re.M).group(1)
        assert 27000 <= int(relay_port) <= 27099          # callgw's relay, not the client
        [rqnt] = line.commands("RQNT")
        assert rqnt.split()[2] == b.LINE                  # the Z: name from then on
        assert param(rqnt, "S") == "L/rg" and param(rqnt, "R") == "L/hd(N)"

        answer = yield notify(line, 2002, "L/hd")
        assert answer.startswith("200 2002")
        yield within(call.connected, 5)
        [mdcx] = yield commands(line, "MDCX", 1)
        assert param(mdcx, "M") == "sendrecv" and param(mdcx, "C") == param(crcx, "C")
        assert b"m=audio " + relay_port.encode() in mdcx.encode()      # always with our SDP
        rqnts = yield commands(line, "RQNT", 2)
        assert param(rqnts[1], "R") == "L/hu(N)"

        answer = yield notify(line, 2003, "L/hu")
        assert answer.startswith("200 2003")
        ended = yield within(call.disconnected, 5)
        assert isinstance(ended, m.Disconnected) and ended.cause == "normal"
        [dlcx] = yield commands(line, "DLCX", 1)
        assert param(dlcx, "C") == param(crcx, "C") and param(dlcx, "I") == param(mdcx, "I")

        [cdr] = yield settled_cdr(env.gw, "alice")
        assert cdr["gateway"] == "line" and cdr["answered"] is not None and cdr["cause"] == 16
        stats = cdr["stats"]["legs"]["mgcp"]
        assert stats["endpoint"] == b.LINE and stats["packets_sent"] == 1245
        assert (stats["packets_lost"], stats["jitter_ms"], stats["latency_ms"]) == (10, 27, 48)
        trace = yield env.gw.store.run("call_trace", cdr["call_id"])
        mgcp = [(t["direction"], t["summary"].split()[0]) for t in trace if t["leg"] == "mgcp"]
        assert [s for d, s in mgcp if d == "out" and s.isalpha()] == [
            "CRCX", "RQNT", "MDCX", "RQNT", "DLCX"]
        assert [s for d, s in mgcp if d == "in" and s.isalpha()] == ["NTFY", "NTFY"]
        assert sum(1 for d, s in mgcp if d == "in" and s == "200") >= 4    # our commands' answers
        assert sum(1 for d, s in mgcp if d == "out" and s == "200") == 2   # the NTFYs answered
        yield capture.stop()
        capture = None
        rows, problems = yield mgcp_verdict(tmp_path / "leg.pcapng", ports)
        assert problems == []
        assert [r[2] for r in rows if r[0] == ports[0]] == [
            "CRCX", "RQNT", "200", "MDCX", "RQNT", "200", "DLCX"]
    finally:
        if capture is not None:
            yield capture.stop()
        yield env.stop()


@pytest_twisted.inlineCallbacks
def test_client_hangs_up_a_ringing_line_and_an_answered_one_with_dtmf_and_hold(tmp_path):
    env = Env(tmp_path)
    line = env.fixture("line")
    try:
        yield env.start([("line", line, [f"aaln/$@{b.GW}"], {})])
        call = yield ring(env, line)
        call.hangup()
        yield within(call.disconnected, 5)
        rqnts = yield commands(line, "RQNT", 2)
        assert param(rqnts[1], "S") == "" and param(rqnts[1], "R") == ""  # the ringing stops
        yield commands(line, "DLCX", 1)

        call = yield ring(env, line)
        yield notify(line, 2010, "L/hd")
        yield within(call.connected, 5)
        yield commands(line, "RQNT", 4)
        call.dtmf("5")
        rqnts = yield commands(line, "RQNT", 5)
        assert param(rqnts[4], "S") == "D/5" and param(rqnts[4], "R") == "L/hu(N)"
        call.hold()
        mdcx = yield commands(line, "MDCX", 2)
        assert param(mdcx[1], "M") == "recvonly" and "a=sendonly" in mdcx[1]
        call.resume()
        mdcx = yield commands(line, "MDCX", 3)
        assert param(mdcx[2], "M") == "sendrecv"
        call.hangup()
        yield within(call.disconnected, 5)
        yield commands(line, "DLCX", 2)
        cdrs = yield settled_cdr(env.gw, "alice", 2)
        assert cdrs[0]["stats"]["legs"]["mgcp"]["octets_received"] == 45123
    finally:
        yield env.stop()


@pytest_twisted.inlineCallbacks
def test_an_unanswered_crcx_fails_over_and_a_refused_one_says_why(tmp_path):
    env = Env(tmp_path)
    deaf, line = env.fixture("deaf"), env.fixture("line")
    deaf.silent.add("CRCX")
    try:
        yield env.start([("deaf", deaf, [f"aaln/$@{b.GW}"], {"priority": 1}),
                         ("line", line, [f"aaln/$@{b.GW}"], {"priority": 2})])
        call = yield ring(env, line)
        assert len(deaf.commands("CRCX")) > 1               # retransmitted, then given up
        call.hangup()
        yield within(call.disconnected, 5)
        [cdr] = yield settled_cdr(env.gw, "alice")
        assert cdr["gateway"] == "line" and cdr["stats"]["attempts"] == 2
        events = yield env.gw.store.run("call_events", cdr["call_id"])
        [failover] = [e["data"] for e in events if e["kind"] == "failover"]
        assert failover["failed"] == "deaf" and failover["cause"] == 102

        line.codes["CRCX"] = 401                              # the line's phone is off hook
        deaf.codes["CRCX"] = 401
        call = env.client.call(NUMBER)
        ended = yield within(call.disconnected, 10)
        assert ended.cause == "busy" and ended.q850 == 17
    finally:
        yield env.stop()


@pytest_twisted.inlineCallbacks
def test_one_call_per_specific_endpoint_and_the_gateways_own_dlcx(tmp_path):
    env = Env(tmp_path)
    line = env.fixture("line")
    try:
        yield env.start([("line", line, [b.LINE], {})])
        assert env.provider.capacity(env.row("line")) == 1
        assert env.gw.callpath.directory.limits["line"] == 1      # not the row's 100
        first = yield ring(env, line)
        second = env.client.call(NUMBER)                  # the one endpoint is in a call
        ended = yield within(second.disconnected, 5)
        assert ended.q850 == 34 and "no gateway available" in ended.text
        assert len(line.commands("CRCX")) == 1
        yield notify(line, 2020, "L/hd")
        yield within(first.connected, 5)
        [mdcx] = yield commands(line, "MDCX", 1)
        # what the next start would need had callgw died now: the connection, then its DLCX
        node = env.gw.config["general"]["node"]
        recovery = []
        for _ in range(50):
            rows = yield env.gw.store.run("node_calls", node)
            recovery = [r for row in rows for r in row["recovery"]]
            if recovery:
                break
            yield sleep(0.05)
        assert recovery == [{"protocol": "mgcp", "gateway": "line", "endpoint": b.LINE,
                             "connection_id": param(mdcx, "I"), "call_id": param(mdcx, "C")}]
        gone = yield within(env.provider.release_orphan(env.row("line"), recovery[0]), 5)
        assert gone.response.code == 250
        [orphan_dlcx] = line.commands("DLCX")
        assert param(orphan_dlcx, "I") == param(mdcx, "I")
        dlcx = b.gateway_dlcx(tid=2021, endpoint=b.LINE, call_id=param(mdcx, "C"),
                              connection_id=param(mdcx, "I"),
                              reason="902 loss of lower layer connectivity")
        answer = yield within(line.send(dlcx, 2021), 5)
        assert answer.startswith("200 2021")
        ended = yield within(first.disconnected, 5)
        assert ended.q850 == 38
        [cdr, _] = yield settled_cdr(env.gw, "alice", 2)
        assert cdr["stats"]["legs"]["mgcp"]["packets_received"] == 780
        assert "deleted the connection (reason 902)" in cdr["cause_text"]
    finally:
        yield env.stop()


@pytest_twisted.inlineCallbacks
def test_rsip_methods_and_auep_health(tmp_path):
    env = Env(tmp_path)
    line = env.fixture("line")
    try:
        yield env.start([("line", line, [f"aaln/$@{b.GW}"], {})])
        rtt = yield within(env.provider.ping(env.row("line")), 5)
        [auep] = line.commands("AUEP")
        assert auep.split()[2] == f"aaln/*@{b.GW}" and 0 <= rtt < 5

        call = yield ring(env, line)
        yield notify(line, 2030, "L/hd")
        yield within(call.connected, 5)

        # disconnected: an audit (AUEP, AUCX of our connection), the call is kept
        answer = yield within(line.send(b.rsip(tid=2031, method="disconnected"), 2031), 5)
        assert answer.startswith("200 2031")
        yield commands(line, "AUCX", 1)
        yield commands(line, "AUEP", 2)
        yield sleep(0.2)
        assert not call.ended

        # forced: the call is released at once
        yield within(line.send(b.rsip(tid=2032, method="forced", reason=905), 2032), 5)
        ended = yield within(call.disconnected, 5)
        assert ended.q850 == 38 and "forced" in (ended.text or "")

        # graceful: no new calls; the ping fails; cancel-graceful: calls again
        yield within(line.send(b.rsip(tid=2033, method="graceful"), 2033), 5)
        refused = env.client.call(NUMBER)
        ended = yield within(refused.disconnected, 5)
        assert ended.q850 == 47 and "Draining" in ended.text
        error = yield within(env.provider.ping(env.row("line")), 5).addErrback(lambda f: f.value)
        assert "Draining" in str(error)
        yield within(line.send(b.rsip(tid=2034, method="cancel-graceful"), 2034), 5)
        call = yield ring(env, line)
        call.hangup()
        yield within(call.disconnected, 5)

        # restart with a delay: down for the delay, then back
        yield within(line.send(b.rsip(tid=2035, method="restart", delay=1), 2035), 5)
        refused = env.client.call(NUMBER)
        ended = yield within(refused.disconnected, 5)
        assert "Restarting" in ended.text
        yield sleep(1.2)
        call = yield ring(env, line)
        call.hangup()
        yield within(call.disconnected, 5)
    finally:
        yield env.stop()


@pytest_twisted.inlineCallbacks
def test_direct_mode_sends_the_clients_address_and_the_move_to_the_relay_is_an_mdcx(tmp_path):
    """Direct mode: the CRCX carries the client's own RTP address; when the client reports no
    media, the call moves to the relay: an MDCX with the relay's port, and the client gets a
    second ``connected`` (with a media key)."""
    env = Env(tmp_path)
    line = env.fixture("line")
    try:
        yield env.start([("line", line, [f"aaln/$@{b.GW}"], {})])
        call = env.client.call(NUMBER, mode="direct", address="127.0.0.1", port=24680)
        yield within(call.ringing, 5)
        [crcx] = line.commands("CRCX")
        assert "c=IN IP4 127.0.0.1" in crcx and "m=audio 24680 RTP/AVP" in crcx
        yield notify(line, 2040, "L/hd")
        first = yield within(call.connected, 5)
        assert first.key is None
        yield commands(line, "MDCX", 1)
        call.relay()
        mdcx = yield commands(line, "MDCX", 2)
        port = int(re.search(r"^m=audio (\d+) ", mdcx[1], re.M).group(1))
        assert 27000 <= port <= 27099 and param(mdcx[1], "M") == "sendrecv"
        for _ in range(100):
            if sum(isinstance(e, m.Connected) for e in call.events) == 2:
                break
            yield sleep(0.02)
        second = [e for e in call.events if isinstance(e, m.Connected)][-1]
        assert second is not first and second.key
        call.hangup()
        yield within(call.disconnected, 5)
    finally:
        yield env.stop()


@pytest_twisted.inlineCallbacks
def test_an_audit_that_finds_the_connection_gone_and_a_graceful_drain_release_the_call(
        tmp_path):
    env = Env(tmp_path)
    line = env.fixture("line")
    try:
        yield env.start([("line", line, [f"aaln/$@{b.GW}"], {})])
        call = yield ring(env, line)
        yield notify(line, 2050, "L/hd")
        yield within(call.connected, 5)
        [mdcx] = yield commands(line, "MDCX", 1)
        line.lost.add(param(mdcx, "I"))                  # the AUCX will say 515
        yield within(line.send(b.rsip(tid=2051, method="disconnected"), 2051), 5)
        ended = yield within(call.disconnected, 5)
        assert ended.q850 == 41 and "lost the connection (AUCX 515)" in ended.text

        call = yield ring(env, line)                     # the AUEP brought it back in service
        yield notify(line, 2052, "L/hd")
        yield within(call.connected, 5)
        yield within(line.send(b.rsip(tid=2053, method="graceful", delay=1), 2053), 5)
        yield sleep(0.3)
        assert not call.ended                            # draining: the call goes on
        ended = yield within(call.disconnected, 5)       # RestartDelay: out of service
        assert ended.q850 == 41 and "graceful" in ended.text
    finally:
        yield env.stop()


@pytest_twisted.inlineCallbacks
def test_auep_health_marks_a_silent_gateway_down_and_an_answering_one_up(tmp_path):
    env = Env(tmp_path)
    line = env.fixture("line")
    line.silent.add("AUEP")
    try:
        yield env.start([("line", line, [f"aaln/$@{b.GW}"],
                          {"probe_interval": 1.0, "down_after": 1, "up_after": 1})],
                        calls={"health_interval": 1.0})
        directory = env.gw.callpath.directory
        for _ in range(100):
            if directory.status.get("line") == "down":
                break
            yield sleep(0.05)
        assert directory.status["line"] == "down"        # T-MAX (1.5 s) without an answer
        assert len(line.commands("AUEP")) > 1            # retransmitted first
        line.silent.discard("AUEP")
        for _ in range(100):
            if directory.status.get("line") == "up":
                break
            yield sleep(0.05)
        assert directory.status["line"] == "up" and directory.rtt_ms["line"] is not None
    finally:
        yield env.stop()
