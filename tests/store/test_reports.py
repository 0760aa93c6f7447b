"""The dashboard's read queries (callgw/store/reports.py) on SQLite and on a real PostgreSQL
server (``db_target``, tests/pgserver.py)."""
from __future__ import annotations

import pytest

from callgw.store.db import Database
from callgw.store.threaded import READS


def cdr(call_id, user="alice", tenant="default", target="+4930123", gateway="gw1", cause=16,
        ended=100.0):
    return {"call_id": call_id, "username": user, "tenant": tenant, "target": target,
            "gateway": gateway, "call_server": "n/cs1", "requested": ended - 10, "ringing": None,
            "answered": ended - 5, "ended": ended, "duration": 5.0, "cause": cause,
            "cause_text": "", "media_mode": "relayed", "stats": {"outcome": "answered"}}


@pytest.fixture
def db(db_target):
    d = Database(db_target)
    d.migrate()
    yield d
    d.close()


def test_cdr_search_filters(db):
    db.call_log_batch([], [], [], [
        cdr("c1", ended=100.0), cdr("c2", user="bob", target="+4989111", ended=200.0),
        cdr("c3", tenant="acme", gateway="gw2", cause=17, ended=300.0),
        cdr("c4", target="+1212555", ended=400.0)], [])
    ids = lambda f: [r["call_id"] for r in db.cdr_search(f)]    # noqa: E731
    assert ids({}) == ["c4", "c3", "c2", "c1"]
    assert ids({"user": "bob"}) == ["c2"]
    assert ids({"tenant": "acme"}) == ["c3"]
    assert ids({"prefix": "+4930"}) == ["c3", "c1"]
    assert ids({"prefix": "+49", "user": "alice"}) == ["c3", "c1"]
    assert ids({"gateway": "gw2"}) == ["c3"]
    assert ids({"cause": "17"}) == ["c3"]
    assert ids({"since": 150, "until": 295}) == ["c3", "c2"]
    assert ids({"since": 150, "until": 285}) == ["c2"]
    assert ids({"user": "", "prefix": None}) == ["c4", "c3", "c2", "c1"]
    assert ids({"prefix": "%"}) == []                           # no wildcard
    assert db.cdr_search({}, limit=1)[0]["stats"] == {"outcome": "answered"}


def test_refused_story_and_failures(db):
    events = [
        {"call_id": "r1", "kind": "refused", "at": 10.0, "data": {
            "user": "alice", "target": "+1900555", "reason": "blocked", "code": 403,
            "text": "destination blocked", "peer": "127.0.0.1:5"}},
        {"call_id": "c1", "kind": "launched", "at": 11.0, "data": {"user": "alice"}},
        {"call_id": "c1", "kind": "attempt", "at": 11.1, "data": {"gateway": "gw1", "n": 1}},
        {"call_id": "c1", "kind": "failover", "at": 11.5, "data": {"failed": "gw1"}},
        {"call_id": "c1", "kind": "attempt", "at": 11.6, "data": {"gateway": "gw2", "n": 2}},
    ]
    traces = [{"call_id": "c1", "leg": "client", "direction": "in", "summary": "CALL +4930",
               "at": 11.0},
              {"call_id": "c1", "leg": "sip", "direction": "out", "summary": "INVITE sip:x",
               "at": 11.1}]
    active = [{"call_id": "c1", "username": "alice", "target": "+4930", "gateway": "gw2",
               "call_server": "n/cs1", "node": "n", "state": "ringing",
               "media_mode": "relayed", "started": 11.0, "updated": 11.6,
               "recovery": [{"secret": 1}]}]
    db.call_log_batch(active, events, traces, [], [])
    refused = db.refused_attempts()
    assert refused == [{"call_id": "r1", "at": 10.0, "user": "alice", "target": "+1900555",
                        "reason": "blocked", "code": 403, "text": "destination blocked",
                        "peer": "127.0.0.1:5"}]
    assert db.refused_attempts(since=10.5) == []
    story = db.call_story("c1")
    assert [e["kind"] for e in story["events"]] == ["launched", "attempt", "failover", "attempt"]
    assert [t["summary"] for t in story["trace"]] == ["CALL +4930", "INVITE sip:x"]
    assert story["cdr"] is None and story["active"]["state"] == "ringing"
    assert "recovery" not in story["active"]
    db.call_log_batch([], [], [], [cdr("c1", gateway="gw2")], ["c1"])
    story = db.call_story("c1")
    assert story["active"] is None and story["cdr"]["gateway"] == "gw2"
    assert db.gateway_failures(0.0) == {"gw1": 1}
    assert db.gateway_failures(12.0) == {}


def test_reports_run_on_the_reader_thread():
    assert {"cdr_search", "refused_attempts", "call_story", "gateway_failures",
            "call_stats"} <= READS


def test_call_stats_group_by_minute(db):
    def rec(call_id, requested, outcome, ringing=None, answered=None, gateway="gw1"):
        r = cdr(call_id, gateway=gateway, ended=requested + 30)
        r.update(requested=requested, ringing=ringing, answered=answered,
                 stats={"outcome": outcome})
        return r
    db.call_log_batch([], [{"call_id": "r1", "kind": "refused", "at": 6065.0, "data": {}}], [], [
        rec("a1", 6001.0, "answered", ringing=6001.5, answered=6003.0),
        rec("a2", 6050.0, "answered", answered=6051.0),               # no ringing
        rec("b1", 6059.0, "busy"),
        rec("f1", 6070.0, "failed", gateway=None),                     # never reached one
        rec("n1", 6130.0, "no-answer", ringing=6132.0),
        rec("x0", 5999.0, "answered", answered=6000.0),                # before the window
    ], [])
    stats = db.call_stats(6000.0, 6179.0)
    assert [s["minute"] for s in stats] == [6000, 6060, 6120]
    first, second, third = stats
    assert first["calls"] == 3 and first["seized"] == 3 and first["answered"] == 2
    assert first["outcomes"]["answered"] == 2 and first["outcomes"]["busy"] == 1
    assert first["asr"] == pytest.approx(2 / 3)
    assert first["setup_avg"] == pytest.approx(0.75) and first["setup_max"] == 1.0
    assert second["calls"] == 2 and second["outcomes"]["refused"] == 1
    assert second["outcomes"]["failed"] == 1 and second["seized"] == 0
    assert second["asr"] is None and second["setup_avg"] is None
    assert third["outcomes"]["no-answer"] == 1 and third["asr"] == 0.0
    assert third["setup_max"] == 2.0
    assert db.call_stats(7000.0, 7000.0)[0]["calls"] == 0
