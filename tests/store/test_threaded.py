"""The threaded store: round-trips from the reactor, on its own thread, CLI changes noticed;
on SQLite and on a real PostgreSQL server (``db_target``) except the SQLite lock case."""
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from callgw import passwords
from callgw.store.db import Database
from callgw.store.threaded import ThreadedStore


@pytest_twisted.inlineCallbacks
def test_round_trip_from_the_reactor_on_a_dedicated_thread(db_target):
    store = ThreadedStore(db_target, reactor, reload_interval=0.1)
    yield store.startService()
    try:
        yield store.run("ensure_default_tenant", 1.0)
        cred = passwords.hash_password("pw", n=1024)
        yield store.run("add_user", "alice", cred, 1.0, number="+15550001")
        user = yield store.run("get_user", "alice")
        assert user["number"] == "+15550001"
        names = yield defer.gatherResults([store._call(lambda: threading.current_thread().name)
                                           for _ in range(5)])
        assert set(names) == {names[0]} and "callgw-store" in names[0]
        assert names[0] != threading.main_thread().name
        assert reactor.getThreadPool() is not store.pool
    finally:
        yield store.stopService()
    assert not store.pool.started


@pytest_twisted.inlineCallbacks
def test_the_reactor_keeps_running_while_the_store_thread_works(db_target):
    store = ThreadedStore(db_target, reactor)
    yield store.startService()
    release = threading.Event()
    try:
        busy = store._call(lambda: release.wait(5.0))  # a slow query holding the store thread
        # the reactor still runs timers; a timer releases the store thread
        yield task.deferLater(reactor, 0.05, release.set)
        assert (yield busy) is True
    finally:
        release.set()
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_admin_changes_from_another_connection_are_noticed(db_target):
    path = db_target
    store = ThreadedStore(path, reactor, reload_interval=0.05)
    yield store.startService()
    noticed = defer.Deferred()
    store.watch(lambda: noticed.called or noticed.callback(True))
    try:
        other = Database(path)  # what the admin CLI does from its own process
        other.add_gateway("gw1", "sip", "127.0.0.1", 25060, ["+1"], 1.0)
        other.close()
        assert (yield noticed.addTimeout(5, reactor)) is True
        gws = yield store.run("list_gateways")
        assert [g["name"] for g in gws] == ["gw1"]
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_errors_reach_the_caller(db_target):
    store = ThreadedStore(db_target, reactor)
    yield store.startService()
    try:
        with pytest.raises(Exception, match="no gateway 'nope'"):
            yield store.run("remove_gateway", "nope")
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_a_lookup_is_not_held_behind_a_write_waiting_on_another_process_lock(tmp_path):
    """Another connection holds SQLite's write lock: a write waits for it (then fails as
    StoreUnavailable naming the fault), and a lookup made after the write is answered first,
    from the reader thread."""
    import sqlite3

    from callgw.store.errors import StoreUnavailable
    path = str(tmp_path / "s.sqlite3")
    store = ThreadedStore(path, reactor, busy_timeout=1.0)
    yield store.startService()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        yield store.run("ensure_default_tenant", 1.0)
        other.execute("BEGIN EXCLUSIVE")
        order = []
        write = store.run("add_user", "bob", "x", 1.0)
        write.addBoth(lambda r: order.append("write") or r)
        read = store.run("get_tenant", "default")
        read.addBoth(lambda r: order.append("read") or r)
        tenant = yield read
        assert tenant["name"] == "default"
        with pytest.raises(StoreUnavailable, match="locked"):
            yield write
        assert order == ["read", "write"]
    finally:
        other.execute("ROLLBACK")
        other.close()
        yield store.stopService()
    assert not store.pool.started and not store.read_pool.started


@pytest_twisted.inlineCallbacks
def test_postgresql_a_lookup_is_not_held_behind_a_write_waiting_on_a_lock(pg_url):
    """The same on PostgreSQL: another session locks the users table against writes; the
    write waits ``busy_timeout`` (lock_timeout) and fails as StoreUnavailable ``locked``,
    the lookup made after it is answered first."""
    import psycopg

    from callgw.store.errors import StoreUnavailable
    store = ThreadedStore(pg_url, reactor, busy_timeout=1.0)
    yield store.startService()
    other = psycopg.connect(pg_url, autocommit=True)
    try:
        assert store.shared
        yield store.run("ensure_default_tenant", 1.0)
        other.execute("BEGIN")
        other.execute("LOCK TABLE users IN EXCLUSIVE MODE")
        order = []
        write = store.run("add_user", "bob", "x", 1.0)
        write.addBoth(lambda r: order.append("write") or r)
        read = store.run("get_tenant", "default")
        read.addBoth(lambda r: order.append("read") or r)
        tenant = yield read
        assert tenant["name"] == "default"
        with pytest.raises(StoreUnavailable, match="locked"):
            yield write
        assert order == ["read", "write"]
        other.execute("ROLLBACK")
        yield store.run("add_user", "bob", "x", 1.0)      # the next write goes through
    finally:
        other.close()
        yield store.stopService()
    assert not store.pool.started and not store.read_pool.started


@pytest_twisted.inlineCallbacks
def test_postgresql_a_dropped_connection_is_a_passing_fault_then_reopened(pg_url, pg_cluster):
    """The server ends the store's sessions (a restart, a failover): the next call on each
    connection (writer, reader) fails as StoreUnavailable, the ones after it run on new
    connections."""
    from callgw.store.errors import StoreUnavailable
    store = ThreadedStore(pg_url, reactor)
    yield store.startService()
    try:
        yield store.run("ensure_default_tenant", 1.0)
        dbname = pg_url.rsplit("/", 1)[1]
        pg_cluster.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         f"WHERE datname = '{dbname}'")
        with pytest.raises(StoreUnavailable):
            yield store.run("add_user", "bob", "x", 1.0)
        with pytest.raises(StoreUnavailable):
            yield store.run("get_user", "alice")
        yield store.run("add_user", "bob", "x", 1.0)
        assert (yield store.run("get_user", "bob"))["username"] == "bob"
    finally:
        yield store.stopService()
