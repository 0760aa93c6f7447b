"""Users' store rows for logins, with the credentials of recent users kept in memory.

Owned by the front-end listeners. ``RecentUsers.get(username)`` fires with the user's store row
(or None when there is no such user): from the store when it answers within ``deadline``
seconds, and -- when the database is unavailable (locked by another process, an I/O error) or
slow -- from the copy kept of a user who logged in recently (the ``capacity`` most recent,
read within ``max_age`` seconds). A user with no copy fails fast with
``callgw.store.errors.StoreUnavailable`` naming the fault, so the client hears why rather than
waiting out a lock. Copies are refreshed by every successful read; what is served is a scrypt-
derived key, as stored (callgw/passwords.py), never a password. The first login served from
memory during a fault is logged, and when the store answers again.

Tests: tests/frontend/test_users.py.
"""
from __future__ import annotations

from collections import OrderedDict

from twisted.internet.defer import Deferred, TimeoutError
from twisted.logger import Logger

from callgw.store.errors import StoreUnavailable, fault_of


class RecentUsers:
    """``get(username)`` through the store, falling back to recent users' rows in memory."""

    log = Logger()

    def __init__(self, store, clock, deadline: float = 2.5, capacity: int = 10_000,
                 max_age: float = 86_400.0):
        self.store = store
        self.clock = clock
        self.deadline = deadline
        self.capacity = capacity
        self.max_age = max_age
        self._rows: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self.fault: str | None = None          # the store's fault while serving from memory
        self.served = 0                        # logins served from memory

    def get(self, username: str) -> Deferred:
        """Fires with the user's row or None; fails with ``StoreUnavailable`` when the store
        cannot answer and no recent copy exists."""
        result = Deferred()
        read = self.store.run("get_user", username)
        timer = self.clock.callLater(self.deadline, self._late, result, username)

        def answered(row):
            self._remember(username, row)
            if self.fault is not None:
                self.log.info("user database answers again (after {fault}); {n} logins were "
                              "served from memory", fault=self.fault, n=self.served)
                self.fault = None
            if not result.called:
                timer.cancel()
                result.callback(row)

        def failed(failure):
            fault = fault_of(failure.value)
            if fault is None:                  # a bug, not a fault: the caller logs it
                if not result.called:
                    timer.cancel()
                    result.errback(failure)
                return None
            if not result.called:
                timer.cancel()
                self._fallback(result, username, fault, failure.value)
            return None
        read.addCallbacks(answered, failed)
        read.addErrback(lambda f: self.log.failure("user lookup of {user}", f, user=username))
        return result

    def _late(self, result: Deferred, username: str) -> None:
        if not result.called:
            self._fallback(result, username, "slow",
                           TimeoutError(f"no answer in {self.deadline:g} s"))

    def _fallback(self, result: Deferred, username: str, fault: str, error) -> None:
        entry = self._rows.get(username)
        now = self.clock.seconds()
        if entry is not None and now - entry[0] <= self.max_age:
            self._rows.move_to_end(username)
            if self.fault is None:
                self.log.warn("user database unavailable ({fault}: {error}); serving recent "
                              "users' credentials from memory", fault=fault, error=str(error))
            self.fault = fault
            self.served += 1
            result.callback(dict(entry[1]))
            return
        result.errback(StoreUnavailable(fault, f"user database unavailable ({error})"))

    def _remember(self, username: str, row: dict | None) -> None:
        if row is None:
            self._rows.pop(username, None)
            return
        self._rows[username] = (self.clock.seconds(), dict(row))
        self._rows.move_to_end(username)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)
