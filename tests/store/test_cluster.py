"""The cluster in the database (callgw/store/cluster.py), on SQLite and on a real PostgreSQL
server: unique node names, heartbeats and the operator's drain order, dead nodes, the calls of a
dead node closed once whoever closes them, and a re-attaching client's call found by key."""
import hashlib

import pytest

from callgw.store.db import Database
from callgw.store.errors import StoreError

NOW = 1_700_000_000.0
LISTENERS = {"udp": ["127.0.0.1", 7060], "wss": ["127.0.0.1", 8443]}


@pytest.fixture
def db(db_target):
    db = Database(db_target)
    db.migrate()
    db.ensure_default_tenant(NOW)
    yield db
    db.close()


def join(db, name="cs-a", instance="i1", now=NOW):
    return db.join_cluster(name, instance, "callserver", "127.0.0.1:7710", LISTENERS, 500, 100,
                           now, now - 6.0)


def active(call_id, node, username="alice", key=None):
    return {"call_id": call_id, "username": username, "target": "+4930123", "gateway": "gw",
            "call_server": node + "/cs1", "node": node, "state": "answered",
            "media_mode": "relay", "started": NOW, "updated": NOW, "tenant": "default",
            "answered": NOW + 1, "recovery": [{"protocol": "sip", "gateway": "gw"}],
            "attach_key": key}


def cdr(call_id):
    return {"call_id": call_id, "username": "alice", "tenant": "default", "target": "+4930123",
            "gateway": "gw", "call_server": "cs-a/cs1", "requested": NOW, "ringing": None,
            "answered": NOW + 1, "ended": NOW + 9, "duration": 8.0, "cause": 41,
            "cause_text": "call server cs-a died", "media_mode": "relay", "stats": {}}


def test_a_live_name_is_refused_a_dead_one_taken_and_the_drain_order_kept(db):
    row = join(db)
    assert row["listeners"] == LISTENERS and row["link"] == "127.0.0.1:7710"
    with pytest.raises(StoreError, match="'cs-a' is in use by a running process"):
        join(db, instance="i2", now=NOW + 1)
    db.set_draining("cs-a", True)
    assert db.heartbeat_node("cs-a", "i1", NOW + 2, 3, 500, True)["draining"] == 1
    # the process died: after dead_after beats its name may be taken, the drain order stays
    row = join(db, instance="i2", now=NOW + 9)
    assert row["instance"] == "i2" and row["draining"] == 1
    with pytest.raises(StoreError, match="no longer registered by this process"):
        db.heartbeat_node("cs-a", "i1", NOW + 10, 0, 500, True)
    db.set_draining("cs-a", False)
    db.leave_cluster("cs-a", "i2")
    [node] = db.cluster_nodes()
    assert node["instance"] == "" and node["draining"] == 0
    with pytest.raises(StoreError, match="no call server 'cs-x'"):
        db.set_draining("cs-x", True)
    db.upsert_call_server("one/cs1", "in-process", NOW)
    with pytest.raises(StoreError, match="role all: only call servers of the role callserver"):
        db.set_draining("one/cs1", True)


def test_a_dead_nodes_calls_are_closed_once(db):
    join(db, "cs-a", "ia")
    join(db, "cs-b", "ib")
    db.call_log_batch([active("c1", "cs-a"), active("c2", "cs-a"), active("c3", "cs-b")],
                      [], [], [], [])
    db.admit_call("c1", "alice", "default", "cs-a", NOW, lambda *counts: None)
    db.heartbeat_node("cs-b", "ib", NOW + 10, 1, 500, True)
    # cs-a's last heartbeat was at NOW: dead when the limit is later than that
    assert db.dead_nodes(NOW + 10 - 6.0, "cs-b") == ["cs-a"]
    assert db.dead_nodes(NOW - 1, "cs-b") == []
    assert [r["call_id"] for r in db.node_calls("cs-a")] == ["c1", "c2"]
    events = [{"call_id": c, "kind": "recovered", "at": NOW + 10, "data": {}}
              for c in ("c1", "c2")]
    # another survivor closed c1 first
    assert db.close_calls("cs-a", [cdr("c1")], events[:1], NOW + 4) == ["c1"]
    assert db.close_calls("cs-a", [cdr("c1"), cdr("c2")], events, NOW + 4) == ["c2"]
    assert sorted(c["call_id"] for c in db.cdrs(10, "alice")) == ["c1", "c2"]
    assert [e["kind"] for e in db.call_events("c1")] == ["recovered"]
    assert [r["call_id"] for r in db.active_calls()] == ["c3"]
    assert db.admitted_calls() == []
    # a node that came back is no longer dead: nothing of it is closed
    db.call_log_batch([active("c4", "cs-a")], [], [], [], [])
    join(db, "cs-a", "ia2", now=NOW + 20)
    assert db.close_calls("cs-a", [cdr("c4")], [], NOW + 14) == []
    assert db.dead_nodes(NOW + 20 - 6.0, "cs-b") == []


def test_a_call_is_found_by_its_users_key_digest(db):
    join(db, "cs-b", "ib")
    key = hashlib.sha256(b"k" * 16).hexdigest()
    db.call_log_batch([active("c1", "cs-b", key=key)], [], [], [], [])
    assert db.locate_call("alice", key)["name"] == "cs-b"
    assert db.locate_call("alice", key)["listeners"] == LISTENERS
    assert db.locate_call("mallory", key) is None
    assert db.locate_call("alice", "0" * 64) is None
    assert "attach_key" not in db.active_calls()[0]


def test_a_call_admitted_but_not_yet_recorded_gets_its_cdr_too(db):
    join(db, "cs-a", "ia")
    db.call_log_batch([active("c1", "cs-a")], [], [], [], [])
    for call_id, at in (("c2", NOW + 1), ("c3", NOW + 2)):     # admitted, never flushed
        db.admit_call(call_id, "alice", "default", "cs-a", at, lambda *counts: None,
                      target="+4930999")
    db.admit_call("c4", "alice", "default", "cs-a", NOW + 3, lambda *counts: None)
    db.release_call("c4", NOW + 4)                              # ended: not in progress
    assert db.dead_nodes(NOW + 10, "cs-b") == ["cs-a"]
    closed = db.close_calls("cs-a", [cdr("c1")], [], NOW + 4, now=NOW + 10,
                            text="call server cs-a died", admitted_before=NOW + 1.5)
    assert closed == ["c1", "c2"]                 # c3 came after admitted_before: not closed
    c2 = db.get_cdr("c2")
    assert c2["cause"] == 41 and c2["answered"] is None and c2["target"] == "+4930999"
    assert c2["cause_text"] == "call server cs-a died" and c2["requested"] == NOW + 1
    assert [a["call_id"] for a in db.admitted_calls()] == ["c3"]
    assert db.get_cdr("c4") is None

