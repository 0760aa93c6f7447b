"""The store as the running gateway sees it: every database call off the reactor, on two
dedicated threads.

Owned by the store. ``ThreadedStore`` is a Twisted service providing ``IStore``, over a SQLite
file or a PostgreSQL server (a ``postgresql://`` URL: ``shared`` is then true, several callgw
processes use the same database and the call director counts limits in it). It starts two
one-thread pools of its own (never the reactor's shared pool), each with its own connection: the
*writer* opens the database, applies migrations and runs every call that writes; the *reader*
runs the lookups listed in ``READS`` (users, tenants, rules, gateways, CDRs...). A write waiting
on a lock held by another process (or failing on a read-only file, a full disk) therefore never
holds up a login's credential lookup: SQLite's WAL lets readers read while a writer holds the
lock. Calls on one thread run in the order they were made; a read issued before an earlier write
has finished may not see it (callers that need it wait for the write's Deferred). An in-memory
database (``:memory:``, one connection) runs everything on the writer.

Both connections wait at most ``busy_timeout`` seconds for a lock (the admin CLI waits longer):
a fault fails the call quickly with ``callgw.store.errors.StoreUnavailable`` naming it
(``locked``, ``read-only``, ``disk-full``, ``io-error``...), and the caller decides -- the call
logger keeps its records and retries, the listeners serve recent users from memory.
``stopService`` waits for the queued work, closes the connections and stops the pools. The
store also watches the change serial that the admin CLI bumps and tells subscribers, so CLI
edits reach a running node within ``reload_interval`` seconds.

Tests: tests/store/test_threaded.py.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from callgw.interfaces import IStore
from callgw.store.db import Database
from callgw.store.dialect import is_postgresql, redacted
from callgw.store.errors import unavailable
from callgw.store.schema import MIGRATIONS

#: ``Database`` methods that only read: they run on the reader thread.
READS = frozenset({
    "schema_version", "change_serial", "get_tenant", "list_tenants", "get_user", "list_users",
    "disabled_accounts",
    "list_rules", "rules_for", "book_list", "get_gateway", "list_gateways",
    "list_call_servers", "cluster_nodes", "node_calls", "locate_call", "dead_nodes",
    "registrations", "active_calls", "call_events", "call_trace", "cdrs",
    "cdrs_before", "get_cdr", "director_snapshot", "list_admins", "admin_credentials",
    "cdr_search", "refused_attempts", "call_story", "gateway_failures", "call_stats"})


@implementer(IStore)
class ThreadedStore(Service):
    """A ``Database`` behind one thread. ``run`` fires with the method's result."""

    log = Logger()
    name = "store"

    def __init__(self, path: str, reactor, reload_interval: float = 2.0, clock=None,
                 busy_timeout: float = 2.0):
        self.path = path
        #: several processes may share the database (PostgreSQL): limits count in it
        self.shared = is_postgresql(path)
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.reload_interval = reload_interval
        self.busy_timeout = busy_timeout
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="callgw-store")
        self.read_pool = None if path == ":memory:" else ThreadPool(
            minthreads=1, maxthreads=1, name="callgw-store-read")
        self.db: Database | None = None
        self.read_db: Database | None = None
        self._watchers: list[Callable[[], Any]] = []
        self._serial: int | None = None
        self._poll: LoopingCall | None = None
        self._polling = False

    # -- lifecycle ----------------------------------------------------------------------------
    def startService(self) -> Deferred:
        """Fires once the database is open and migrated on the store thread."""
        super().startService()
        self.pool.start()
        d = self._call(self._open)
        if self.read_pool is not None:
            def open_reader(serial):
                if not self.running:        # stopped while opening: start no thread now
                    return serial
                self.read_pool.start()
                r = self._call(self._open_reader, self.read_pool)
                return r.addCallback(lambda _: serial)
            d.addCallback(open_reader)
        d.addCallback(self._opened)
        d.addErrback(self._failed_open)
        return d

    def _open(self) -> int:
        self.db = Database(self.path, busy_timeout=self.busy_timeout)
        self.db.migrate()
        return self.db.change_serial()

    def _open_reader(self) -> None:
        self.read_db = Database(self.path, busy_timeout=self.busy_timeout)

    def _opened(self, serial: int) -> None:
        self._serial = serial
        if not self.running:                # stopped while opening (a failed start)
            return
        self.log.info("store open: {path} (schema {version})", path=redacted(self.path),
                      version=len(MIGRATIONS))
        self._poll = LoopingCall(self._check_changes)
        self._poll.clock = self.clock
        self._poll.start(self.reload_interval, now=False).addErrback(
            lambda f: self.log.failure("change poll stopped", f))

    def _failed_open(self, failure):
        """A database that cannot be opened (a missing folder, no permission, a locked or
        broken file, a server that refuses) stops start-up with one line naming it; anything
        else keeps its traceback."""
        from callgw.startup import StartupError
        from callgw.store.errors import fault_of
        value = failure.value
        if fault_of(value) is not None or isinstance(value, OSError):
            why = getattr(value, "text", None) or getattr(value, "strerror", None) or value
            raise StartupError(f"[general] database {redacted(self.path)}: cannot open it: "
                               f"{why}")
        self.log.failure("cannot open the database {path}", failure, path=redacted(self.path))
        return failure

    def stopService(self) -> Deferred:
        """Fires when queued work is done, the connection closed and the thread stopped."""
        super().stopService()
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        reader = self.read_pool
        r = self._call(self._close_reader, reader) if reader is not None and reader.started \
            else succeed(None)

        def stop_reader(result):
            if reader is not None and reader.started:
                reader.stop()
            return result
        r.addBoth(stop_reader)
        r.addErrback(lambda f: self.log.failure("closing the store's reader", f))
        r.addCallback(lambda _: self._call(self._close) if self.pool.started else None)

        def stop_pool(result):
            if self.pool.started:
                self.pool.stop()
            return result
        r.addBoth(stop_pool)
        r.addErrback(lambda f: self.log.failure("closing the store", f))
        return r

    def _close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def _close_reader(self) -> None:
        if self.read_db is not None:
            self.read_db.close()
            self.read_db = None

    # -- IStore -------------------------------------------------------------------------------
    def run(self, method_name: str, *args, **kwargs) -> Deferred:
        """Run ``Database.<method_name>`` on the store's reader (``READS``) or writer thread;
        fires with its result; fails with its exception, a passing database fault as
        ``StoreUnavailable``."""
        method = getattr(Database, method_name)
        if method_name in READS and self.read_pool is not None:
            def read():
                return method(self.read_db if self.read_db is not None else self.db,
                              *args, **kwargs)
            return self._call(read, self.read_pool)
        return self._call(lambda: method(self.db, *args, **kwargs))

    def write(self, fn: Callable[..., Any], *args, **kwargs) -> Deferred:
        """Run ``fn(database, *args, **kwargs)`` on the writer thread (the admin service's
        changes); fires with its result, fails like ``run``."""
        return self._call(lambda: fn(self.db, *args, **kwargs))

    def _call(self, fn: Callable[[], Any], pool: ThreadPool | None = None) -> Deferred:
        def work():
            try:
                return fn()
            except Exception as e:
                mapped = unavailable(e)
                if mapped is e:
                    raise
                raise mapped from e
        return deferToThreadPool(self.reactor, pool or self.pool, work)

    # -- changes made by the admin CLI --------------------------------------------------------
    def watch(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` whenever the configuration tables change (possibly a Deferred)."""
        self._watchers.append(callback)

    def _check_changes(self) -> Deferred | None:
        if self._polling:
            return None
        self._polling = True
        d = self.run("change_serial")
        d.addCallback(self._compare)
        d.addErrback(lambda f: self.log.failure("checking for configuration changes", f))

        def done(_):
            self._polling = False
        d.addBoth(done)
        return None

    def _compare(self, serial: int) -> None:
        if serial == self._serial:
            return
        self.log.info("configuration changed (serial {old} -> {new}); reloading",
                      old=self._serial, new=serial)
        self._serial = serial
        for callback in list(self._watchers):
            try:
                result = callback()
            except Exception:
                self.log.failure("reload callback {cb!r} failed", cb=callback)
                continue
            if isinstance(result, Deferred):
                result.addErrback(lambda f, cb=callback: self.log.failure(
                    "reload callback {cb!r} failed", f, cb=cb))
