"""Call admission counted in the database: the per-user and per-tenant concurrency and rate
limits, held across every callgw process that shares one database.

Owned by the store. ``Admission`` is a part of ``Database`` (a base class, like
``AdminAccounts``). ``admit_call`` runs in one transaction that holds the tenant's lock
(``Connection.lock``: PostgreSQL's advisory lock, SQLite's write lock): it counts the tenant's
and the user's calls in progress (admitted, not ended) and admitted in the last minute, hands
the four counts to the caller's ``check`` (the director's ``RuleSet.check_limits``, which
raises to refuse), and records the call only when ``check`` let it pass. Two processes
admitting calls of one tenant at once therefore take turns and see each other's calls.
``release_call`` marks a call ended (it still counts for the rate for a minute);
``forget_admissions`` drops what a crashed run of a node left (crash recovery at start). Rows
older than a minute that have ended are pruned by later admissions of their tenant. The table is
migration 7 in ``callgw.store.schema``. ``now`` is passed in: the processes' clocks must agree
(NTP) for the rate window.

Tests: tests/store/test_admission.py; across two gateways in tests/callpath/test_shared_store.py.
"""
from __future__ import annotations

from typing import Callable

RATE_WINDOW = 60.0


class Admission:
    """The ``call_admissions`` table; needs ``_tx`` and ``conn`` of ``Database``."""

    def admit_call(self, call_id: str, username: str, tenant: str, node: str, now: float,
                   check: Callable[[int, int, int, int], None],
                   target: str | None = None) -> None:
        """Admit call ``call_id`` of ``username`` (of ``tenant``) to ``target`` on ``node``, or
        raise what ``check(user_active, user_recent, tenant_active, tenant_recent)`` raised
        (nothing is recorded then)."""
        since = now - RATE_WINDOW
        with self._tx():
            self.conn.lock("callgw-admit:" + tenant)
            self.conn.execute("DELETE FROM call_admissions WHERE tenant = ? AND ended IS NOT "
                              "NULL AND admitted <= ?", (tenant, since))
            row = self.conn.execute(
                "SELECT "
                "COALESCE(SUM(CASE WHEN username = ? AND ended IS NULL THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN username = ? AND admitted > ? THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN ended IS NULL THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN admitted > ? THEN 1 ELSE 0 END), 0) "
                "FROM call_admissions WHERE tenant = ?",
                (username, username, since, since, tenant)).fetchone()
            check(*(int(n) for n in row))
            self.conn.upsert("call_admissions", {"call_id": call_id, "username": username,
                                                 "tenant": tenant, "node": node,
                                                 "admitted": now, "ended": None,
                                                 "target": target}, "call_id")

    def release_call(self, call_id: str, now: float) -> None:
        """Call ``call_id`` ended (or never started): it no longer counts as in progress."""
        self.conn.execute("UPDATE call_admissions SET ended = ? WHERE call_id = ? AND ended "
                          "IS NULL", (now, call_id))

    def forget_admissions(self, node: str) -> int:
        """Drop every admission of ``node`` (a previous run's, at start); returns how many."""
        return self.conn.execute("DELETE FROM call_admissions WHERE node = ?",
                                 (node,)).rowcount

    def admitted_calls(self, tenant: str | None = None) -> list[dict]:
        """The calls in progress by admission (all, or ``tenant``'s), oldest first."""
        where, params = ("AND tenant = ?", [tenant]) if tenant is not None else ("", [])
        return self._rows(f"SELECT call_id, username, tenant, node, admitted FROM "
                          f"call_admissions WHERE ended IS NULL {where} ORDER BY admitted",
                          params)
