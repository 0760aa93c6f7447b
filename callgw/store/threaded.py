"""The store as the running gateway sees it: every database call on one dedicated thread.

Owned by the store. ``ThreadedStore`` is a Twisted service providing ``IStore``: it starts a
one-thread pool of its own (never the reactor's shared pool), opens the database on that thread,
applies migrations, and runs each ``run(name, ...)`` there with ``deferToThreadPool``. Calls are
executed in the order they were made. ``stopService`` waits for the queued work, closes the
connection and stops the pool. It also watches the change serial that the admin CLI bumps and
tells subscribers, so CLI edits reach a running node within ``reload_interval`` seconds.

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
from callgw.store.schema import MIGRATIONS


@implementer(IStore)
class ThreadedStore(Service):
    """A ``Database`` behind one thread. ``run`` fires with the method's result."""

    log = Logger()
    name = "store"

    def __init__(self, path: str, reactor, reload_interval: float = 2.0, clock=None):
        self.path = path
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.reload_interval = reload_interval
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="callgw-store")
        self.db: Database | None = None
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
        d.addCallback(self._opened)
        d.addErrback(self._failed_open)
        return d

    def _open(self) -> int:
        self.db = Database(self.path)
        self.db.migrate()
        return self.db.change_serial()

    def _opened(self, serial: int) -> None:
        self._serial = serial
        self.log.info("store open: {path} (schema {version})", path=self.path,
                      version=len(MIGRATIONS))
        self._poll = LoopingCall(self._check_changes)
        self._poll.clock = self.clock
        self._poll.start(self.reload_interval, now=False).addErrback(
            lambda f: self.log.failure("change poll stopped", f))

    def _failed_open(self, failure):
        self.log.failure("cannot open the database {path}", failure, path=self.path)
        return failure

    def stopService(self) -> Deferred:
        """Fires when queued work is done, the connection closed and the thread stopped."""
        super().stopService()
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        d = self._call(self._close) if self.pool.started else succeed(None)

        def stop_pool(result):
            self.pool.stop()
            return result
        d.addBoth(stop_pool)
        d.addErrback(lambda f: self.log.failure("closing the store", f))
        return d

    def _close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    # -- IStore -------------------------------------------------------------------------------
    def run(self, method_name: str, *args, **kwargs) -> Deferred:
        """Run ``Database.<method_name>`` on the store thread; fires with its result."""
        method = getattr(Database, method_name)
        return self._call(lambda: method(self.db, *args, **kwargs))

    def _call(self, fn: Callable[[], Any]) -> Deferred:
        return deferToThreadPool(self.reactor, self.pool, fn)

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
