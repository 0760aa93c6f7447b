"""Real calls: the client library -> callgw -> sipp as the PSTN gateway (127.0.0.1).

Each test checks what sipp saw (its exit code and message log), what the client got, and the
CDR and events callgw wrote.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from callgw.client.links import connect
from protocols.client import messages as m
from tests.callpath.callgw_env import (within, PASSWORD, Sipp, client_url, events_of,
                                       free_port, prepare_db, settled_cdr, sleep, start)

pytestmark = pytest.mark.peers("sipp")


@defer.inlineCallbacks
def login(gw, user="alice", framing="tcp"):
    session = yield connect(client_url(gw, framing))
    yield session.login(user, PASSWORD)
    return session


@defer.inlineCallbacks
def finish(gw, *sipps):
    yield gw.stopService()
    for s in sipps:
        s.stop()


@pytest_twisted.inlineCallbacks
def test_answered_then_client_hangs_up(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        yield within(call.trying)
        yield within(call.ringing)
        connected = yield within(call.connected)
        assert connected.key is not None
        yield sleep(0.5)
        call.hangup()
        end = yield within(call.disconnected)
        assert isinstance(end, m.Disconnected) and end.cause == "normal"
        code = yield sipp.wait(gw.reactor)
        assert code == 0, sipp.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "gw1" and cdr["cause"] == 16 and cdr["target"] == "+4930123456"
        assert cdr["answered"] and cdr["ringing"] and cdr["duration"] >= 0.4
        assert cdr["stats"]["released_by"] == "a"
        kinds = yield events_of(gw, cdr["call_id"])
        assert kinds[:2] == ["launched", "attempt"]
        assert {"ringing", "established", "disconnected"} <= set(kinds)
        trace = yield gw.store.run("call_trace", cdr["call_id"])
        summaries = [t["summary"] for t in trace]
        first = trace[0]            # the ladder starts with the client's own request
        assert (first["leg"], first["direction"], first["summary"]) == \
            ("client", "in", "call +4930123456 (relay)")
        assert any(s.startswith("INVITE") for s in summaries)
        assert any(s.startswith("BYE") for s in summaries)
        assert "connected" in summaries
        yield session.logout()
    finally:
        yield finish(gw, sipp)


@pytest_twisted.inlineCallbacks
def test_gateway_hangs_up(tmp_path):
    sipp = Sipp("uas_gateway_bye.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+"], {})])
    gw = yield start(tmp_path, sip={"udp": "127.0.0.1:0", "user_agent": "ExampleTel/2.1"})
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        yield within(call.connected)
        end = yield within(call.disconnected)
        assert end.cause == "normal"
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()
        # [sip] user_agent is what the gateway sees in our INVITE
        seen = (tmp_path / "sipp_messages.log").read_text(errors="replace")
        assert "User-Agent: ExampleTel/2.1" in seen and "User-Agent: callgw" not in seen
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 16 and cdr["stats"]["released_by"] == "b"
        assert cdr["stats"]["outcome"] == "answered"
    finally:
        yield finish(gw, sipp)


@pytest_twisted.inlineCallbacks
def test_busy(tmp_path):
    sipp = Sipp("uas_busy.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+"], {})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        end = yield within(call.disconnected)
        assert end.cause == "busy" and end.q850 == 17
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 17 and cdr["answered"] is None
        assert cdr["stats"]["outcome"] == "busy" and cdr["stats"]["attempts"] == 1
    finally:
        yield finish(gw, sipp)


@pytest_twisted.inlineCallbacks
def test_no_answer(tmp_path):
    sipp = Sipp("uas_no_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+"], {})])
    gw = yield start(tmp_path, calls={"no_answer_timeout": 1.5})
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        yield within(call.ringing)
        end = yield within(call.disconnected)
        assert end.cause == "no-answer" and end.q850 == 19
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()       # it saw our CANCEL
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 19 and cdr["stats"]["outcome"] == "no-answer"
    finally:
        yield finish(gw, sipp)


@pytest_twisted.inlineCallbacks
def test_refused_destination_never_reaches_gateway(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path, timeout=3).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+"], {})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call("+19005551234")
        end = yield within(call.disconnected)
        assert isinstance(end, m.Unauthorized) and end.code == 411
        assert "+1900" in end.text
        yield sleep(0.5)
        log = (tmp_path / "sipp_messages.log")
        assert not log.exists() or "INVITE" not in log.read_text()
        rows = yield gw.store.run("cdrs", 10, "alice")
        assert rows == []
        found = gw.store.db.conn.execute(
            "SELECT kind, data FROM call_events WHERE kind = 'refused'").fetchall()
        assert len(found) == 1 and '"reason": "blocked"' in found[0][1]
    finally:
        yield finish(gw, sipp)


@pytest_twisted.inlineCallbacks
def test_first_gateway_503_then_second_answers(tmp_path):
    bad = Sipp("uas_503.xml", tmp_path / "a").start() if (tmp_path / "a").mkdir() is None \
        else None
    (tmp_path / "b").mkdir()
    good = Sipp("uas_answer.xml", tmp_path / "b").start()
    prepare_db(tmp_path, gateways=[("gw1", bad.port, ["+49"], {"priority": 1}),
                                   ("gw2", good.port, ["+49"], {"priority": 2})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        yield within(call.connected)
        call.hangup()
        yield within(call.disconnected)
        assert (yield bad.wait(gw.reactor)) == 0, bad.log()
        assert (yield good.wait(gw.reactor)) == 0, good.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "gw2" and cdr["stats"]["attempts"] == 2
        kinds = yield events_of(gw, cdr["call_id"])
        assert kinds.count("attempt") == 2 and "failover" in kinds
    finally:
        yield finish(gw, bad, good)


@pytest_twisted.inlineCallbacks
def test_first_gateway_down_then_second_answers(tmp_path):
    silent = free_port()            # nothing listens there: setup timeout, then failover
    good = Sipp("uas_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("dead", silent, ["+49"], {"priority": 1}),
                                   ("gw2", good.port, ["+49"], {"priority": 2})])
    gw = yield start(tmp_path, calls={"setup_timeout": 1.0})
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        yield within(call.connected)
        call.hangup()
        yield within(call.disconnected)
        assert (yield good.wait(gw.reactor)) == 0, good.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "gw2" and cdr["stats"]["attempts"] == 2
        kinds = yield events_of(gw, cdr["call_id"])
        assert "failover" in kinds
    finally:
        yield finish(gw, good)


@pytest_twisted.inlineCallbacks
def test_refused_tcp_connection_fails_over(tmp_path):
    closed = free_port()            # a TCP gateway whose port refuses connections
    good = Sipp("uas_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("tcp-gw", closed, ["+49"], {"priority": 1,
                                                                "options": {"transport": "tcp"}}),
                                   ("gw2", good.port, ["+49"], {"priority": 2})])
    gw = yield start(tmp_path, calls={"setup_timeout": 5.0})
    try:
        session = yield login(gw)
        started = gw.reactor.seconds()
        call = session.call("+4930123456")
        yield within(call.connected)
        assert gw.reactor.seconds() - started < 4.0       # not a setup timeout
        call.hangup()
        yield within(call.disconnected)
        assert (yield good.wait(gw.reactor)) == 0, good.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "gw2" and cdr["stats"]["attempts"] == 2
        events = yield gw.store.run("call_events", cdr["call_id"])
        failover = [e for e in events if e["kind"] == "failover"][0]
        assert failover["data"]["failed"] == "tcp-gw"
    finally:
        yield finish(gw, good)
