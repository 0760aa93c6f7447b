"""More real calls against sipp: a client killed mid-call, 20 concurrent calls over two call
servers, gateway health by SIP OPTIONS, shutdown with calls up."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import defer

from callgw.client.links import connect
from protocols.client import messages as m
from tests.callpath.callgw_env import (within, PASSWORD, Sipp, client_url, events_of,
                                       prepare_db, settled_cdr, sleep, start)

pytestmark = pytest.mark.peers("sipp")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@defer.inlineCallbacks
def wait_for(predicate, limit=10.0):
    waited = 0.0
    while not predicate():
        if waited >= limit:
            raise AssertionError("condition not reached in time")
        yield sleep(0.05)
        waited += 0.05


@pytest_twisted.inlineCallbacks
def test_client_killed_mid_call_is_released_after_the_re_attach_grace(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path, timeout=30).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+"], {})])
    gw = yield start(tmp_path, client={"idle_timeout": 5.0, "reattach_grace": 2.0})
    dial = None
    try:
        env = dict(os.environ, CALLGW_PASSWORD=PASSWORD, PYTHONPATH=ROOT)
        dial = subprocess.Popen(
            [sys.executable, "-c", "from callgw.client.dial import main; main()",
             "--server", client_url(gw, "udp"), "--user", "alice", "--duration", "60",
             "+4930123456"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        logger = gw.callpath.logger
        yield wait_for(lambda: any(r["state"] == "active" for r in logger.rows.values()), 20)
        os.kill(dial.pid, signal.SIGKILL)          # no hangup, no more pings
        dial.wait(5)
        killed = gw.reactor.seconds()
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()      # the BYE reached sipp
        reaped_after = gw.reactor.seconds() - killed
        assert reaped_after < 5.0 + 2.0 + 3.0  # idle timeout + re-attach grace + slack
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 38 and cdr["cause_text"] == \
            "client did not come back within 2 s"          # it could have re-attached
        assert cdr["stats"]["outcome"] == "answered" and cdr["stats"]["released_by"] == "a"
        kinds = yield events_of(gw, cdr["call_id"])
        assert kinds[-1] == "disconnected"
        assert (yield gw.store.run("active_calls")) == []
    finally:
        if dial is not None and dial.poll() is None:
            os.kill(dial.pid, signal.SIGKILL)
            dial.wait(5)
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_twenty_concurrent_calls_balanced_over_two_servers(tmp_path):
    users = [f"user{i}" for i in range(5)]
    sipp = Sipp("uas_answer.xml", tmp_path, calls=20, timeout=30).start()
    prepare_db(tmp_path, users=users, gateways=[("gw1", sipp.port, ["+49"], {"capacity": 50})])
    gw = yield start(tmp_path, servers=2)
    try:
        sessions = []
        for user in users:
            session = yield connect(client_url(gw, "tcp"))
            yield session.login(user, PASSWORD)
            sessions.append(session)
        calls = [sessions[i % 5].call(f"+49301234{i:03d}") for i in range(20)]
        up = defer.gatherResults([c.connected for c in calls])
        up.addTimeout(15, gw.reactor)
        try:
            yield up
        except defer.TimeoutError:
            raise AssertionError([c.events for c in calls if not c.connected.called])
        servers = gw.callpath.servers
        assert [s.active for s in servers] == [10, 10]
        assert gw.callpath.directory.active == {"gw1": 20}
        api = gw.callpath.logger.active_calls()
        assert len(api) == 20
        yield sleep(0.3)
        rows = yield gw.store.run("active_calls")
        assert len(rows) == 20 and {r["state"] for r in rows} == {"active"}
        for c in calls:
            c.hangup()
        ends = yield defer.gatherResults([c.disconnected for c in calls])
        assert {e.cause for e in ends} == {"normal"}
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()
        cdrs = []
        for user in users:
            cdrs += (yield settled_cdr(gw, user, count=4))
        assert len(cdrs) == 20 and {c["cause"] for c in cdrs} == {16}
        per_server = {}
        for c in cdrs:
            per_server[c["call_server"]] = per_server.get(c["call_server"], 0) + 1
        assert sorted(per_server.values()) == [10, 10]
        published = yield gw.store.run("list_call_servers")
        assert len(published) == 2
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_gateway_health_by_options(tmp_path):
    sipp = Sipp("uas_options.xml", tmp_path, calls=1, timeout=10).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+"], {})])
    gw = yield start(tmp_path, health=0.5)
    try:
        directory = gw.callpath.directory
        yield wait_for(lambda: directory.status.get("gw1") == "up", 5)
        assert directory.rtt_ms["gw1"] is not None and directory.rtt_ms["gw1"] < 1000
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()
        # sipp is gone: polls fail (timeouts) until the gateway is marked down
        yield wait_for(lambda: directory.status.get("gw1") == "down", 20)
        yield sleep(0.3)
        row = yield gw.store.run("get_gateway", "gw1")
        assert row["status"] == "down"
        from prometheus_client import generate_latest
        text = generate_latest(gw.callpath.metrics.registry).decode()
        assert 'callgw_gateway_up{gateway="gw1"} 0.0' in text
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_shutdown_releases_calls_and_writes_cdrs(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+"], {})])
    gw = yield start(tmp_path)
    session = yield connect(client_url(gw, "tcp"))
    yield session.login("alice", PASSWORD)
    call = session.call("+4930123456")
    yield within(call.connected)
    yield gw.stopService()                       # what SIGTERM does under twistd
    end = yield within(call.disconnected)
    assert isinstance(end, m.Disconnected)
    assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()      # BYE reached sipp
    sipp.stop()
    from callgw.store.db import Database
    check = Database(str(tmp_path / "callgw.sqlite3"))
    try:
        cdr = check.cdrs()[0]
        assert cdr["cause"] == 41 and cdr["cause_text"] == "callgw shutting down"
        assert check.active_calls() == []
    finally:
        check.close()
