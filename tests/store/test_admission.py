"""Call admission counted in the database (callgw/store/admission.py), on SQLite and on a real
PostgreSQL server: the counts a limit check sees, refusals record nothing, releases and crash
leftovers, and two connections admitting at once never exceed a limit together."""
import threading

import pytest

from callgw.store.db import Database

NOW = 1_700_000_000.0


class Full(Exception):
    pass


def limit(user_max=None, user_rate=None, tenant_max=None):
    seen = []

    def check(user_active, user_recent, tenant_active, tenant_recent):
        seen.append((user_active, user_recent, tenant_active, tenant_recent))
        if user_max is not None and user_active >= user_max:
            raise Full("user")
        if user_rate is not None and user_recent >= user_rate:
            raise Full("rate")
        if tenant_max is not None and tenant_active >= tenant_max:
            raise Full("tenant")
    check.seen = seen
    return check


@pytest.fixture
def db(db_target):
    d = Database(db_target)
    d.migrate()
    yield d
    d.close()


def test_counts_refusals_and_releases(db):
    check = limit(user_max=2, tenant_max=3)
    db.admit_call("c1", "alice", "t", "n1", NOW, check)
    db.admit_call("c2", "alice", "t", "n2", NOW + 1, check)
    with pytest.raises(Full, match="user"):
        db.admit_call("c3", "alice", "t", "n1", NOW + 2, check)
    db.admit_call("b1", "bob", "t", "n1", NOW + 3, check)
    with pytest.raises(Full, match="tenant"):
        db.admit_call("b2", "bob", "t", "n1", NOW + 4, check)
    assert check.seen == [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 0, 2, 2),
                          (1, 1, 3, 3)]
    assert [a["call_id"] for a in db.admitted_calls("t")] == ["c1", "c2", "b1"]
    db.release_call("c1", NOW + 5)
    db.admit_call("c4", "alice", "t", "n1", NOW + 6, check)
    # c1 ended but still counts for the minute's rate
    assert check.seen[-1] == (1, 2, 2, 3)     # refused calls do not count


def test_the_rate_window_is_a_minute_and_old_rows_are_pruned(db):
    check = limit(user_rate=2)
    db.admit_call("c1", "alice", "t", "n1", NOW, check)
    db.release_call("c1", NOW + 1)
    db.admit_call("c2", "alice", "t", "n1", NOW + 1, check)
    db.release_call("c2", NOW + 2)
    with pytest.raises(Full, match="rate"):
        db.admit_call("c3", "alice", "t", "n1", NOW + 30, check)
    db.admit_call("c3", "alice", "t", "n1", NOW + 60.5, check)
    assert check.seen[-1] == (0, 1, 0, 1)
    rows = db._rows("SELECT call_id FROM call_admissions ORDER BY call_id")
    assert [r["call_id"] for r in rows] == ["c2", "c3"]      # c1 pruned


def test_a_restarted_node_forgets_its_own_leftovers_only(db):
    db.admit_call("c1", "alice", "t", "n1", NOW, limit())
    db.admit_call("c2", "alice", "t", "n2", NOW, limit())
    assert db.close_calls("n1", [], []) == []
    assert [a["call_id"] for a in db.admitted_calls()] == ["c2"]


def test_two_connections_admitting_at_once_hold_the_limit_together(db_target, db):
    """Eight threads, each on its own connection (as separate processes would be), try 40
    calls of one user with a limit of 5: exactly 5 are admitted."""
    admitted, refused, errors = [], [], []
    start = threading.Barrier(8)

    def worker(k):
        other = Database(db_target)
        try:
            start.wait(10)
            for i in range(5):
                try:
                    other.admit_call(f"c{k}-{i}", "alice", "t", f"n{k}", NOW, limit(user_max=5))
                    admitted.append(k)
                except Full:
                    refused.append(k)
        except Exception as e:            # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            other.close()
    threads = [threading.Thread(target=worker, args=(k,), name=f"admit-{k}") for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(admitted) == 5 and len(refused) == 35
    assert len(db.admitted_calls("t")) == 5
