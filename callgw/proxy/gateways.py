"""The proxy server's gateway database in memory, and gateway selection.

Owned by the call path (ARCHITECTURE.md, "Proxy server"). ``GatewayDirectory`` keeps the
store's gateways in memory (``reload()`` after an admin-CLI change), counts each gateway's
calls in progress (``acquire``/``release``) and records health (``set_status``, from
``callgw.proxy.health``; listeners hear each change, and ``removed`` when a reload drops a
gateway). ``select(target, protocol)`` returns the ordered list of gateways to
try for an E.164 target, by the seed's three criteria and then priority and weight:

1. **location**: the longest prefix of any gateway that matches the target wins; only the
   gateways with that prefix length are candidates (a ``+4930`` gateway beats a ``+49`` one);
   the shorter matches follow as later failover candidates, in the same order;
2. **protocol type**: when ``protocol`` is given, only gateways speaking it;
3. **number of calls**: least used relative to capacity first; full gateways are left out (a
   gateway's capacity is its row's, or less when its protocol knows better: ``capacity(row)``,
   the leg provider's, e.g. an MGCP gateway's specific endpoints, one call each);
4. then lower ``priority`` first, then a weighted random order among equal priorities
   (Efraimidis-Spirakis keys from an injected ``random``).

Disabled gateways, those marked ``down`` and those of a protocol that has no leg provider in
this callgw (``protocols``) are never selected; ``unknown`` ones are.

Tests: tests/callpath/test_gateways.py.
"""
from __future__ import annotations

import random as _random
from collections import defaultdict

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from callgw.interfaces import IGatewayDirectory


@implementer(IGatewayDirectory)
class GatewayDirectory:
    """Gateways in memory with live usage and status."""

    log = Logger()

    def __init__(self, store=None, rng: _random.Random | None = None, protocols=None,
                 capacity=None):
        self.store = store
        self.protocols = protocols      # names with a leg provider (None: every protocol)
        self.capacity = capacity        # row -> calls its protocol allows, or None
        self.limits: dict[str, int] = {}
        self.rng = rng or _random.Random()
        self.gateways: dict[str, dict] = {}
        self.active: dict[str, int] = defaultdict(int)
        self.status: dict[str, str] = {}
        self.rtt_ms: dict[str, float | None] = {}
        self.answered_at: dict[str, float] = {}     # when each last answered a call
        self._by_prefix: list[tuple[str, dict]] = []
        self.listeners: list = []

    # -- loading ------------------------------------------------------------------------------
    def load(self, rows: list[dict]) -> None:
        """Replace the gateway set with ``rows`` (``Database.list_gateways`` records)."""
        self.gateways = {r["name"]: r for r in rows}
        self.limits = {name: self._limit(row) for name, row in self.gateways.items()}
        for name, row in self.gateways.items():
            self.status.setdefault(name, row.get("status") or "unknown")
            self.rtt_ms.setdefault(name, row.get("rtt_ms"))
        for name in list(self.status):
            if name not in self.gateways:
                self.status.pop(name, None)
                self.rtt_ms.pop(name, None)
                for listener in self.listeners:     # e.g. metrics drop its series
                    listener(name, "removed")
        pairs = [(p, r) for r in rows if r.get("enabled", True) for p in r["prefixes"]]
        pairs.sort(key=lambda pr: len(pr[0]), reverse=True)
        self._by_prefix = pairs

    def reload(self) -> Deferred:
        """Fires once the store's gateways are loaded."""
        d = self.store.run("list_gateways")
        d.addCallback(self.load)
        return d

    def _limit(self, row: dict) -> int:
        limit = row["capacity"]
        if self.capacity is not None:
            try:
                known = self.capacity(row)
            except Exception:  # noqa: BLE001 - a provider's fault must not empty the directory
                self.log.failure("capacity of gateway {gateway}", gateway=row.get("name"))
                known = None
            if known is not None:
                limit = min(limit, known)
        return limit

    # -- usage and status ---------------------------------------------------------------------
    def acquire(self, name: str) -> None:
        self.active[name] += 1

    def release(self, name: str) -> None:
        n = self.active.get(name, 0) - 1
        if n > 0:
            self.active[name] = n
        else:
            self.active.pop(name, None)

    def answered(self, name: str, now: float) -> None:
        """Gateway ``name`` just answered a call attempt (any response): it is up."""
        self.answered_at[name] = now
        if self.status.get(name) != "up" and name in self.gateways:
            self.set_status(name, "up")

    def set_status(self, name: str, status: str, rtt_ms: float | None = None) -> None:
        old = self.status.get(name)
        self.status[name] = status
        if rtt_ms is not None:
            self.rtt_ms[name] = rtt_ms
        if old != status:
            for listener in self.listeners:
                listener(name, status)

    # -- selection ----------------------------------------------------------------------------
    def select(self, target: str, protocol: str | None = None) -> list[dict]:
        """The ordered gateway records to try for ``target`` (E.164); empty when none fits."""
        groups: dict[int, list[dict]] = {}
        seen = set()
        for prefix, gw in self._by_prefix:
            name = gw["name"]
            if name in seen or not target.startswith(prefix):
                continue
            if protocol is not None and gw["protocol"] != protocol:
                continue
            if self.protocols is not None and gw["protocol"] not in self.protocols:
                continue
            if self.status.get(name) == "down":
                continue
            if self.active.get(name, 0) >= self.limits.get(name, gw["capacity"]):
                continue
            seen.add(name)
            groups.setdefault(len(prefix), []).append(gw)
        ordered: list[dict] = []
        for length in sorted(groups, reverse=True):
            ordered.extend(sorted(groups[length], key=self._rank))
        return ordered

    def _rank(self, gw: dict):
        load = self.active.get(gw["name"], 0) / self.limits.get(gw["name"], gw["capacity"])
        weight = gw.get("weight") or 0
        # Efraimidis-Spirakis: a larger weight gets a larger key more often; 0 goes last
        key = self.rng.random() ** (1.0 / weight) if weight > 0 else 0.0
        return (load, gw.get("priority", 10), -key)

    def snapshot(self) -> list[dict]:
        """Each gateway with its live status, RTT and calls (for the API and metrics)."""
        return [{"name": n, "protocol": g["protocol"], "host": g["host"], "port": g["port"],
                 "status": self.status.get(n, "unknown"), "rtt_ms": self.rtt_ms.get(n),
                 "active": self.active.get(n, 0),
                 "capacity": self.limits.get(n, g["capacity"]),
                 "enabled": bool(g.get("enabled", True))}
                for n, g in sorted(self.gateways.items())]
