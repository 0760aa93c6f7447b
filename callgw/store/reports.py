"""The operator dashboard's read queries: call records by filter, refused attempts, a call's
whole story (events, message trace, record), gateways' recent failures.

Owned by the store (the dashboard, callgw/web/dashboard.py, reads through
``ThreadedStore.run``; every method here is in its ``READS``, so it runs on the reader thread).
``CallReports`` is a part of ``Database`` (a base class, like ``AdminAccounts``): the SQL stays
in the store. Filters are bound parameters, never pasted into SQL; a target prefix is matched
with ``substr`` (no ``LIKE`` wildcards to escape); the time range ``since``..``until`` is on
when the call was placed (``requested``, seconds since the epoch).

Tests: tests/store/test_reports.py.
"""
from __future__ import annotations

import json

#: What ``cdr_search`` filters on, and the query parameter of each in the admin API.
CDR_FILTERS = ("user", "tenant", "prefix", "gateway", "cause", "since", "until")


def cdr_where(filters: dict) -> tuple[str, list]:
    """The WHERE clause (possibly empty) and parameters for ``filters`` (keys of
    ``CDR_FILTERS``; empty or None values are ignored)."""
    clauses, params = [], []
    f = {k: v for k, v in filters.items() if v not in (None, "")}
    if "user" in f:
        clauses.append("username = ?")
        params.append(f["user"])
    if "tenant" in f:
        clauses.append("tenant = ?")
        params.append(f["tenant"])
    if "prefix" in f:
        clauses.append("substr(target, 1, ?) = ?")
        params += [len(f["prefix"]), f["prefix"]]
    if "gateway" in f:
        clauses.append("gateway = ?")
        params.append(f["gateway"])
    if "cause" in f:
        clauses.append("cause = ?")
        params.append(int(f["cause"]))
    if "since" in f:
        clauses.append("requested >= ?")
        params.append(float(f["since"]))
    if "until" in f:
        clauses.append("requested <= ?")
        params.append(float(f["until"]))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class CallReports:
    """Read-only reports; needs ``_rows`` of ``Database``."""

    def cdr_search(self, filters: dict, limit: int = 100) -> list[dict]:
        """CDRs matching ``filters`` (see ``cdr_where``), newest first, at most ``limit``."""
        where, params = cdr_where(filters)
        rows = self._rows(f"SELECT * FROM cdrs{where} ORDER BY ended DESC, call_id DESC "
                          "LIMIT ?", [*params, int(limit)])
        for r in rows:
            r["stats"] = json.loads(r["stats"])
        return rows

    def refused_attempts(self, since: float = 0.0, limit: int = 100) -> list[dict]:
        """Calls the director refused (``refused`` events), newest first: call id, time, user,
        target, reason, code, text, peer."""
        rows = self._rows("SELECT call_id, at, data FROM call_events WHERE kind = 'refused' "
                          "AND at >= ? ORDER BY at DESC, id DESC LIMIT ?",
                          [float(since), int(limit)])
        out = []
        for r in rows:
            data = json.loads(r["data"])
            out.append({"call_id": r["call_id"], "at": r["at"], "user": data.get("user"),
                        "target": data.get("target"), "reason": data.get("reason"),
                        "code": data.get("code"), "text": data.get("text"),
                        "peer": data.get("peer")})
        return out

    def call_story(self, call_id: str) -> dict:
        """Everything the store has on one call: ``events`` and ``trace`` in order, ``cdr``
        (None while it lasts), ``active`` (its active-call row, None once ended)."""
        events = self._rows("SELECT kind, at, data FROM call_events WHERE call_id = ? "
                            "ORDER BY id", [call_id])
        for e in events:
            e["data"] = json.loads(e["data"])
        trace = self._rows("SELECT leg, direction, summary, at FROM call_traces "
                           "WHERE call_id = ? ORDER BY id", [call_id])
        cdrs = self._rows("SELECT * FROM cdrs WHERE call_id = ?", [call_id])
        for r in cdrs:
            r["stats"] = json.loads(r["stats"])
        active = self._rows("SELECT * FROM active_calls WHERE call_id = ?", [call_id])
        for r in active:
            r.pop("recovery", None)
        return {"call_id": call_id, "events": events, "trace": trace,
                "cdr": cdrs[0] if cdrs else None, "active": active[0] if active else None}

    def gateway_failures(self, since: float) -> dict[str, int]:
        """``{gateway: attempts that failed over from it}`` since ``since`` (``failover``
        events: the gateway refused, timed out or could not be reached)."""
        rows = self._rows("SELECT data FROM call_events WHERE kind = 'failover' AND at >= ?",
                          [float(since)])
        counts: dict[str, int] = {}
        for r in rows:
            name = json.loads(r["data"]).get("failed")
            if name:
                counts[name] = counts.get(name, 0) + 1
        return counts
