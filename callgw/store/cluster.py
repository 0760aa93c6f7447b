"""The cluster in the database: call-server nodes joining, heartbeating and draining, and the
calls of a node that died closed by exactly one survivor.

Owned by the store. ``Cluster`` is a part of ``Database`` (a base class, like ``Admission``).
The ``call_servers`` table (migration 8 adds ``role``, ``instance``, ``link``, ``listeners``)
has one row per node of the role ``callserver`` (and one per in-process call server of the role
``all``):

- ``join_cluster``: a node starting under a name whose row another live process still
  heartbeats (another ``instance`` seen after ``dead_before``) is refused: node names are
  unique. The operator's drain order (``draining``) outlives restarts.
- ``heartbeat_node`` writes the node's load and answers the operator's drain order; it fails
  when another process took the name over.
- ``set_draining`` is the operator's order (``callgw server drain NAME``).
- ``dead_nodes`` names the nodes with active calls whose heartbeat stopped;
  ``close_calls`` drops active-call rows one by one and writes the CDR and events of exactly
  the rows it dropped, writes a CDR for each call the dead run admitted but had not yet
  recorded as active, and forgets the dead run's admissions, in one transaction: two survivors (or a survivor and the restarted node)
  closing the same calls at once close each call once.
- ``locate_call`` finds the node holding a user's call by the digest of its re-attach key
  (``active_calls.attach_key``, migration 8), for a client re-attaching on another node.

Tests: tests/store/test_cluster.py (both engines).
"""
from __future__ import annotations

import json

from callgw.store.errors import StoreError


class Cluster:
    """The cluster's rows; needs ``_tx``, ``_rows``, ``conn``, ``call_log_batch`` and
    ``forget_admissions`` of ``Database``."""

    def join_cluster(self, name: str, instance: str, role: str, link: str, listeners: dict,
                     capacity: int, weight: int, now: float, dead_before: float) -> dict:
        """Register node ``name`` (this process: ``instance``); returns its row. Raises
        StoreError when a live process holds the name."""
        with self._tx():
            self.conn.lock("callgw-node:" + name)
            rows = self._rows("SELECT * FROM call_servers WHERE name = ?", [name])
            row = rows[0] if rows else None
            if row is not None and row["instance"] and row["instance"] != instance and \
                    row["updated"] >= dead_before:
                raise StoreError(f"node name {name!r} is in use by a running process "
                                 f"(heartbeat {max(0.0, now - row['updated']):.1f} s ago)")
            draining = int(row["draining"]) if row is not None else 0
            self.conn.upsert("call_servers", {
                "name": name, "address": link or "in-process", "capacity": capacity,
                "weight": weight, "healthy": 1, "draining": draining, "active_calls": 0,
                "updated": now, "role": role, "instance": instance, "link": link,
                "listeners": json.dumps(listeners, sort_keys=True)}, "name")
        return self._node(name)

    def heartbeat_node(self, name: str, instance: str, now: float, active_calls: int,
                       capacity: int, healthy: bool) -> dict:
        """Write the node's load; returns its row (``draining``: the operator's order).
        Raises StoreError when the row is gone or belongs to another process now."""
        cur = self.conn.execute(
            "UPDATE call_servers SET updated = ?, active_calls = ?, capacity = ?, healthy = ? "
            "WHERE name = ? AND instance = ?",
            (now, active_calls, capacity, int(healthy), name, instance))
        if cur.rowcount != 1:
            raise StoreError(f"node {name!r} is no longer registered by this process")
        return self._node(name)

    def leave_cluster(self, name: str, instance: str) -> None:
        """A clean stop: the row stays (with the drain order) but names no live process."""
        self.conn.execute("UPDATE call_servers SET instance = '', healthy = 0, active_calls = 0 "
                          "WHERE name = ? AND instance = ?", (name, instance))

    def set_draining(self, name: str, draining: bool) -> None:
        """The operator's order: ``name`` takes no new calls (or takes them again)."""
        rows = self._rows("SELECT role FROM call_servers WHERE name = ?", [name])
        if not rows:
            raise StoreError(f"no call server {name!r}")
        if rows[0]["role"] != "callserver":
            raise StoreError(f"call server {name!r} runs inside a process of the role "
                             f"{rows[0]['role']}: only call servers of the role callserver "
                             "can be drained")
        self.conn.execute("UPDATE call_servers SET draining = ? WHERE name = ?",
                          (int(draining), name))

    def cluster_nodes(self) -> list[dict]:
        """The call-server nodes (role ``callserver``), with their listeners decoded."""
        rows = self._rows("SELECT * FROM call_servers WHERE role = 'callserver' ORDER BY name")
        for row in rows:
            row["listeners"] = json.loads(row.get("listeners") or "{}")
        return rows

    def _node(self, name: str) -> dict:
        rows = self._rows("SELECT * FROM call_servers WHERE name = ?", [name])
        if not rows:
            raise StoreError(f"no call server {name!r}")
        rows[0]["listeners"] = json.loads(rows[0].get("listeners") or "{}")
        return rows[0]

    def dead_nodes(self, dead_before: float, exclude: str) -> list[str]:
        """Nodes other than ``exclude`` holding active (or admitted) calls whose call-server row
        has not been
        heartbeated since ``dead_before`` (or names no live process). Only nodes of the role
        ``callserver`` count: a node of the role ``all`` closes its own calls when it starts."""
        rows = self._rows(
            "SELECT DISTINCT n.node AS node FROM (SELECT node FROM active_calls UNION "
            "SELECT node FROM call_admissions WHERE ended IS NULL) n JOIN call_servers c "
            "ON c.name = n.node AND c.role = 'callserver' WHERE n.node <> ? AND "
            "(c.updated < ? OR c.instance = '') ORDER BY n.node", [exclude, dead_before])
        return [r["node"] for r in rows]

    def node_calls(self, node: str) -> list[dict]:
        """``node``'s active-call rows (a dead node's calls, or a crashed run's at start)."""
        rows = self._rows("SELECT * FROM active_calls WHERE node = ? ORDER BY started", [node])
        for row in rows:
            row["recovery"] = json.loads(row.get("recovery") or "[]")
        return rows

    def close_calls(self, node: str, cdrs: list[dict], events: list[dict],
                    dead_before: float | None = None, now: float | None = None,
                    text: str = "", admitted_before: float | None = None) -> list[str]:
        """Drop ``node``'s active-call rows named by ``cdrs`` and write the CDR and events of
        each row actually dropped (another process may have closed some first); with
        ``dead_before``, only while ``node`` still counts as dead. With ``now``, a call the
        dead run had admitted (a shared database counts admissions) but not yet recorded as
        active, and that has no CDR, gets one too: cause 41 with ``text``, never answered
        (only one admitted before ``admitted_before`` when given: a restarted node's own new
        calls are not its previous run's). Returns the call ids closed, in one transaction."""
        with self._tx():
            self.conn.lock("callgw-node:" + node)
            if dead_before is not None and node not in self.dead_nodes(dead_before, ""):
                return []
            closed = []
            for cdr in cdrs:
                if self.conn.execute("DELETE FROM active_calls WHERE call_id = ? AND node = ?",
                                     (cdr["call_id"], node)).rowcount == 1:
                    closed.append(cdr["call_id"])
            done = set(closed)
            cdrs = [c for c in cdrs if c["call_id"] in done]
            if now is not None:
                unrecorded = self._unrecorded(node, done, now, text,
                                              now if admitted_before is None
                                              else admitted_before)
                cdrs += unrecorded
                closed += [c["call_id"] for c in unrecorded]
            self.call_log_batch([], [e for e in events if e["call_id"] in done], [], cdrs, [])
            self.conn.execute("DELETE FROM call_admissions WHERE node = ? AND admitted < ?",
                              (node, now if admitted_before is None else admitted_before)
                              if now is not None else (node, float("inf")))
            return closed

    def _unrecorded(self, node: str, closed: set, now: float, text: str,
                    before: float) -> list[dict]:
        """CDRs for ``node``'s calls in progress by admission with neither an active-call row
        nor a CDR (admitted within the logger's last flush before the process died)."""
        rows = self._rows(
            "SELECT a.call_id, a.username, a.tenant, a.target, a.admitted FROM "
            "call_admissions a LEFT JOIN active_calls c ON c.call_id = a.call_id LEFT JOIN "
            "cdrs d ON d.call_id = a.call_id WHERE a.node = ? AND a.ended IS NULL AND "
            "c.call_id IS NULL AND d.call_id IS NULL AND a.admitted < ? ORDER BY a.admitted",
            [node, before])
        return [{"call_id": r["call_id"], "username": r["username"], "tenant": r["tenant"],
                 "target": r["target"] or "", "gateway": None, "call_server": node,
                 "requested": r["admitted"], "ringing": None, "answered": None, "ended": now,
                 "duration": 0.0, "cause": 41, "cause_text": text, "media_mode": "",
                 "stats": {"outcome": "failed", "released_by": "callgw", "recovered": True,
                           "last_state": "admitted"}}
                for r in rows if r["call_id"] not in closed]

    def locate_call(self, username: str, attach_key: str) -> dict | None:
        """The node row holding ``username``'s call whose re-attach key digest is
        ``attach_key``, or None."""
        rows = self._rows(
            "SELECT c.* FROM active_calls a JOIN call_servers c ON c.name = a.node "
            "WHERE a.username = ? AND a.attach_key = ?", [username, attach_key])
        if not rows:
            return None
        rows[0]["listeners"] = json.loads(rows[0].get("listeners") or "{}")
        return rows[0]
