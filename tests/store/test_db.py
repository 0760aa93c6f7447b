"""The synchronous database: migrations, round-trips, validation, the change serial; every test
on SQLite and on a real PostgreSQL server (``db_target``, tests/pgserver.py)."""
import pytest

from callgw import passwords
from callgw.store.db import DEFAULT_RULES, Database, StoreError

NOW = 1_700_000_000.0


@pytest.fixture
def db(db_target):
    d = Database(db_target)
    d.migrate()
    d.ensure_default_tenant(NOW)
    yield d
    d.close()


def test_migrate_is_idempotent_and_wal(db):
    version = db.schema_version()
    assert version >= 1
    assert db.migrate() == version
    if db.conn.engine == "sqlite":
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_user_round_trip_keeps_no_clear_password(db):
    cred = passwords.hash_password("s3cret!", n=1024)
    db.add_user("alice", cred, NOW, number="+4930123456", country="49")
    user = db.get_user("alice")
    assert user["tenant"] == "default" and user["number"] == "+4930123456"
    assert "s3cret!" not in repr(user)
    assert passwords.verify_password(user["password"], "s3cret!")
    db.set_enabled("alice", False)
    assert db.get_user("alice")["enabled"] == 0
    with pytest.raises(StoreError, match="exists"):
        db.add_user("alice", cred, NOW)
    with pytest.raises(StoreError, match="not E.164"):
        db.add_user("bob", cred, NOW, number="030123")
    with pytest.raises(StoreError, match="tenant 'nope' does not exist"):
        db.add_user("bob", cred, NOW, tenant="nope")


def test_tenant_ships_default_rules_and_users_inherit_them(db):
    cred = passwords.hash_password("pw", n=1024)
    db.add_user("alice", cred, NOW)
    rules = db.rules_for("alice")
    assert [(r["kind"], r["value"]) for r in rules] == [(k, v) for k, v, _ in DEFAULT_RULES]
    assert ("block", "+1900") in [(r["kind"], r["value"]) for r in rules]
    own = db.add_rule("allow", "+49", NOW, username="alice")
    assert [r["id"] for r in db.rules_for("alice")] == [own]
    db.remove_rule(own)
    assert len(db.rules_for("alice")) == len(DEFAULT_RULES)


@pytest.mark.parametrize("kind, value, message", [
    ("block", "1900", "prefix '1900'"),
    ("max_concurrent", "0", "whole number"),
    ("hours", "25:00-26:00", "hours"),
    ("hours", "xyz 08:00-10:00", "hours"),
    ("teleport", "+1", "rule kind"),
])
def test_bad_rules_are_refused(db, kind, value, message):
    with pytest.raises(StoreError, match=message):
        db.add_rule(kind, value, NOW, tenant="default")


def test_gateway_round_trip(db):
    db.add_gateway("gw1", "sip", "127.0.0.1", 25060, ["+1", "+4930"], NOW, capacity=30,
                   strip_digits=1, prepend="00", keep_plus=False, caller_id="withhold",
                   options={"transport": "tcp", "auth_user": "u", "auth_password": "p"})
    gw = db.get_gateway("gw1")
    assert gw["prefixes"] == ["+1", "+4930"] and gw["capacity"] == 30
    assert gw["options"] == {"transport": "tcp", "auth_user": "u", "auth_password": "p"}
    assert gw["keep_plus"] is False and gw["status"] == "unknown"
    db.set_gateway_status("gw1", "up", 1.5)
    assert db.get_gateway("gw1")["rtt_ms"] == 1.5
    with pytest.raises(StoreError, match="protocol 'i a x'"):
        db.add_gateway("gw2", "i a x", "127.0.0.1", 1, ["+1"], NOW)
    with pytest.raises(StoreError, match="prefix '1'"):
        db.add_gateway("gw2", "sip", "127.0.0.1", 1, ["1"], NOW)
    db.remove_gateway("gw1")
    assert db.list_gateways() == []


def test_address_book(db):
    db.add_user("alice", passwords.hash_password("pw", n=1024), NOW)
    db.book_add("alice", "mum", "+441234567890")
    assert db.book_list("alice") == [{"name": "mum", "number": "+441234567890"}]
    with pytest.raises(StoreError, match="already has"):
        db.book_add("alice", "mum", "+441234567891")
    db.book_remove("alice", "mum")
    assert db.book_list("alice") == []


def test_config_writes_bump_the_change_serial_and_call_records_do_not(db):
    before = db.change_serial()
    db.add_gateway("gw1", "sip", "127.0.0.1", 25060, ["+"], NOW)
    after = db.change_serial()
    assert after == before + 1
    db.write_call_log([{"call_id": "c1", "kind": "launched", "at": NOW, "data": {"x": 1}}],
                      [{"call_id": "c1", "leg": "sip", "direction": "out",
                        "summary": "INVITE", "at": NOW}], [], [])
    db.set_gateway_status("gw1", "up", 2.0)
    assert db.change_serial() == after


def test_call_log_batch_and_cdr(db):
    db.call_started({"call_id": "c1", "username": "alice", "target": "+15551234",
                     "gateway": "gw1", "call_server": "cs1", "node": "n1", "state": "setup",
                     "media_mode": "relay", "started": NOW, "updated": NOW})
    assert [c["call_id"] for c in db.active_calls()] == ["c1"]
    cdr = {"call_id": "c1", "username": "alice", "tenant": "default", "target": "+15551234",
           "gateway": "gw1", "call_server": "cs1", "requested": NOW, "ringing": NOW + 1,
           "answered": NOW + 2, "ended": NOW + 12, "duration": 10.0, "cause": 16,
           "cause_text": "normal clearing", "media_mode": "relay", "stats": {"mos": 4.3}}
    db.write_call_log([{"call_id": "c1", "kind": "disconnected", "at": NOW + 12,
                        "data": {"cause": 16}}], [], [cdr], ["c1"])
    assert db.active_calls() == []
    assert db.get_cdr("c1")["stats"] == {"mos": 4.3}
    assert db.call_events("c1")[0]["data"] == {"cause": 16}


def test_a_failed_batch_writes_nothing(db):
    bad_cdr = {"call_id": "c2"}  # missing NOT NULL columns
    with pytest.raises(Exception):
        db.write_call_log([{"call_id": "c2", "kind": "launched", "at": NOW, "data": {}}],
                          [], [bad_cdr], [])
    assert db.call_events("c2") == []


def test_registrations_expire(db):
    db.register("alice", "127.0.0.1:4000", "udp", "n1", expires=NOW + 60)
    assert len(db.registrations("alice", NOW)) == 1
    assert db.registrations("alice", NOW + 61) == []
    assert db.expire_registrations(NOW + 61) == 1


def test_tenant_wide_limits_belong_to_tenants(db):
    db.add_user("alice", passwords.hash_password("pw", n=1024), NOW)
    db.add_rule("tenant_max_concurrent", "40", NOW, tenant="default")
    with pytest.raises(StoreError, match="give --tenant"):
        db.add_rule("tenant_max_per_minute", "100", NOW, username="alice")


def test_gateway_and_tenant_changes_bump_the_serial(db):
    db.add_gateway("gw1", "sip", "127.0.0.1", 5060, ["+49"], NOW)
    serial = db.change_serial()
    row = db.change_gateway("gw1", protocol="sip", host="127.0.0.2", port=5070,
                            prefixes=["+33"], capacity=5)
    assert (row["host"], row["port"], row["prefixes"], row["capacity"]) == (
        "127.0.0.2", 5070, ["+33"], 5)
    assert row["status"] == "unknown" and row["enabled"] is True
    assert db.set_gateway_enabled("gw1", False)["enabled"] is False
    with pytest.raises(StoreError, match="prefix"):
        db.change_gateway("gw1", protocol="sip", host="h", port=1, prefixes=["33"])
    with pytest.raises(StoreError, match="no gateway"):
        db.set_gateway_enabled("nope", True)
    tenant = db.change_tenant("default", "Europe/Berlin", "49", {"greeting": "Hallo"})
    assert (tenant["timezone"], tenant["country"], tenant["branding"]) == (
        "Europe/Berlin", "49", {"greeting": "Hallo"})
    with pytest.raises(StoreError, match="no tenant"):
        db.change_tenant("nope", "UTC", "1", {})
    assert db.change_serial() == serial + 3
