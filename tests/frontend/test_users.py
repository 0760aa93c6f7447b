"""Login lookups during a database fault (callgw/frontend/users.py): recent users from memory,
others refused at once with the cause; a slow store does not hold a login past the deadline."""
from __future__ import annotations

import sqlite3

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from callgw.frontend.users import RecentUsers
from callgw.store.errors import StoreUnavailable, unavailable

ALICE = {"username": "alice", "password": "scrypt$...", "enabled": 1, "tenant": "default"}


class Store:
    def __init__(self):
        self.rows = {"alice": ALICE}
        self.mode = "ok"        # ok | fault | silent | bug
        self.pending = []

    def run(self, name, username):
        assert name == "get_user"
        if self.mode == "fault":
            return fail(unavailable(sqlite3.OperationalError("database is locked")))
        if self.mode == "bug":
            return fail(KeyError("bug"))
        if self.mode == "silent":
            d = Deferred()
            self.pending.append((d, self.rows.get(username)))
            return d
        return succeed(self.rows.get(username))


def result_of(d):
    """What ``d`` fired with so far (a Failure is consumed), or None."""
    from twisted.python.failure import Failure
    out = []

    def seen(r):
        out.append(r)
        return None if isinstance(r, Failure) else r
    d.addBoth(seen)
    return out[0] if out else None


def test_from_the_store_when_it_answers():
    store, clock = Store(), Clock()
    users = RecentUsers(store, clock)
    assert result_of(users.get("alice")) == ALICE
    assert result_of(users.get("nobody")) is None


def test_recent_users_are_served_from_memory_during_a_fault_and_others_fail_fast():
    store, clock = Store(), Clock()
    users = RecentUsers(store, clock)
    users.get("alice")
    store.rows["bob"] = dict(ALICE, username="bob")
    store.mode = "fault"
    assert result_of(users.get("alice")) == ALICE and users.fault == "locked"
    refused = result_of(users.get("bob"))           # never logged in: no copy
    assert refused.check(StoreUnavailable)
    assert "locked" in str(refused.value)
    store.mode = "ok"
    assert result_of(users.get("bob"))["username"] == "bob" and users.fault is None


def test_a_store_that_does_not_answer_is_waited_for_only_until_the_deadline():
    store, clock = Store(), Clock()
    users = RecentUsers(store, clock, deadline=2.5)
    users.get("alice")
    store.mode = "silent"
    d, other = users.get("alice"), users.get("carol")
    assert result_of(d) is None
    clock.advance(2.5)
    assert result_of(d) == ALICE
    assert result_of(other).check(StoreUnavailable)
    store.pending[0][0].callback(ALICE)              # the late answer refreshes the copy
    assert users.fault is None


def test_a_removed_user_is_forgotten_and_old_copies_expire():
    store, clock = Store(), Clock()
    users = RecentUsers(store, clock, max_age=60)
    users.get("alice")
    clock.advance(61)
    store.mode = "fault"
    assert result_of(users.get("alice")).check(StoreUnavailable)
    store.mode = "ok"
    users.get("alice")
    del store.rows["alice"]
    users.get("alice")
    store.mode = "fault"
    assert result_of(users.get("alice")).check(StoreUnavailable)


def test_a_bug_is_not_hidden_behind_the_copy():
    store, clock = Store(), Clock()
    users = RecentUsers(store, clock)
    users.get("alice")
    store.mode = "bug"
    assert result_of(users.get("alice")).check(KeyError)


def test_capacity_keeps_the_most_recent():
    store, clock = Store(), Clock()
    users = RecentUsers(store, clock, capacity=2)
    for name in ("a", "b", "c"):
        store.rows[name] = dict(ALICE, username=name)
        users.get(name)
    store.mode = "fault"
    assert result_of(users.get("a")).check(StoreUnavailable)
    assert result_of(users.get("c"))["username"] == "c"
