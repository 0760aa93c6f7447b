"""The operator dashboard's read queries: call records by filter, refused attempts, a call's
whole story (events, message trace, record), gateways' recent failures, counters per minute.

Owned by the store (the dashboard, callgw/web/dashboard.py, reads through
``ThreadedStore.run``; every method here is in its ``READS``, so it runs on the reader thread).
``CallReports`` is a part of ``Database`` (a base class, like ``AdminAccounts``): the SQL stays
in the store. Filters are bound parameters, never pasted into SQL; a target prefix is matched
with ``substr`` (no ``LIKE`` wildcards to escape); the time range ``since``..``until`` is on
when the call was placed (``requested``, seconds since the epoch).

``call_stats(since, until)`` reads the records placed in the window (and the refused attempts,
which live in the events table) and groups them by minute: calls by outcome, the answer-seizure
ratio (answered / calls that reached a gateway) and set-up latency (request to ringing, or to
answer without ringing: what ``callgw_call_setup_seconds`` measures). The grouping is done on the
rows read (their outcome is in the record's JSON ``stats``, which the two engines read
differently); the window is bounded by the caller (the admin API: at most a day).

Tests: tests/store/test_reports.py.
"""
from __future__ import annotations

import json

#: What ``cdr_search`` filters on, and the query parameter of each in the admin API.
CDR_FILTERS = ("user", "tenant", "prefix", "gateway", "cause", "since", "until")
#: The outcomes ``call_stats`` counts, in the order the dashboard stacks them.
STAT_OUTCOMES = ("answered", "busy", "no-answer", "cancelled", "failed", "refused")
MINUTE = 60


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

    def call_stats(self, since: float, until: float) -> list[dict]:
        """One entry per minute from ``since``'s minute to ``until``'s (every minute, empty ones
        too), oldest first: ``{"minute": start (epoch seconds), "calls": n, "outcomes":
        {outcome: n}, "seized": n, "answered": n, "asr": answered/seized (None without
        seizures), "setup_avg", "setup_max": seconds (None without a set-up)}``."""
        first = int(since // MINUTE) * MINUTE
        last = int(until // MINUTE) * MINUTE
        buckets = {}
        for minute in range(first, last + MINUTE, MINUTE):
            buckets[minute] = {"minute": minute, "calls": 0,
                               "outcomes": dict.fromkeys(STAT_OUTCOMES, 0), "seized": 0,
                               "answered": 0, "asr": None, "setup_avg": None,
                               "setup_max": None, "_setups": []}
        rows = self._rows("SELECT requested, ringing, answered, gateway, stats FROM cdrs "
                          "WHERE requested >= ? AND requested < ?",
                          [float(first), float(last + MINUTE)])
        for r in rows:
            b = buckets[int(r["requested"] // MINUTE) * MINUTE]
            outcome = json.loads(r["stats"]).get("outcome") or "failed"
            b["calls"] += 1
            b["outcomes"][outcome] = b["outcomes"].get(outcome, 0) + 1
            if r["gateway"]:
                b["seized"] += 1
            if r["answered"] is not None:
                b["answered"] += 1
            reached = r["ringing"] if r["ringing"] is not None else r["answered"]
            if reached is not None:
                b["_setups"].append(max(0.0, reached - r["requested"]))
        refused = self._rows("SELECT at FROM call_events WHERE kind = 'refused' AND at >= ? "
                             "AND at < ?", [float(first), float(last + MINUTE)])
        for r in refused:
            b = buckets[int(r["at"] // MINUTE) * MINUTE]
            b["calls"] += 1
            b["outcomes"]["refused"] += 1
        out = []
        for b in buckets.values():
            setups = b.pop("_setups")
            if b["seized"]:
                b["asr"] = b["answered"] / b["seized"]
            if setups:
                b["setup_avg"] = sum(setups) / len(setups)
                b["setup_max"] = max(setups)
            out.append(b)
        return out
