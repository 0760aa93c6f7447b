"""Who may talk SIP to callgw, and what everybody else gets: at most one stateless answer.

callgw is a gateway toward its configured PSTN gateways and proxies, not a public SIP server.
A request outside every transaction and dialog of ours from any other source (a *stranger*:
scanners, toll-fraud probes, forged sources used for reflection) must never make callgw
retransmit (RFC 3261 17.2.1's Timer G resends an INVITE's final response until its ACK), so it
gets one stateless answer (``mode="answer"``) or none (``mode="drop"``), never a server
transaction. An ACK is never answered. Strangers are rate-limited per source (a token bucket,
``uas.RateLimiter``) and tallied so that the adapter logs one line per source and minute.

A source is a *peer* when it is in ``trusted`` (addresses or networks from the configuration)
or when callgw itself sent it a request (a call or a health probe: ``learn`` from the adapter),
so a configured gateway or outbound proxy counts as a peer from callgw's first request to it.

Sans-I/O: time is passed in. Tests: tests/sip/test_strangers.py.
"""
from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict

from protocols.sip.uas import RateLimiter

MODES = ("answer", "drop")


class Strangers:
    """The peer set, the stranger rate limit and the per-source tally for the log."""

    def __init__(self, trusted=(), mode: str = "answer", rate: float = 5.0, burst: float = 20.0,
                 max_sources: int = 10_000, max_peers: int = 4096):
        if mode not in MODES:
            raise ValueError(f"strangers mode {mode!r}: expected one of {', '.join(MODES)}")
        self.networks = [ipaddress.ip_network(t, strict=False) for t in trusted]
        self.mode = mode
        self.limiter = RateLimiter(rate, burst, max_sources)
        self.max_sources = max_sources
        self._peers: OrderedDict[str, None] = OrderedDict()
        self._max_peers = max_peers
        self._tally: dict[str, Counter] = {}

    # -- peers --------------------------------------------------------------------------------
    def learn(self, host: str) -> None:
        """callgw sent a request to ``host``: its requests are a peer's from now on."""
        self._peers[host] = None
        self._peers.move_to_end(host)
        while len(self._peers) > self._max_peers:
            self._peers.popitem(last=False)

    def is_stranger(self, host: str) -> bool:
        if host in self._peers:
            return False
        try:
            addr = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return True
        return not any(addr in net for net in self.networks)

    # -- strangers ----------------------------------------------------------------------------
    def admit(self, source: str, method: str, now: float) -> bool:
        """Count one request (``method``, or ``malformed``) from stranger ``source``; True
        when it may get its one stateless answer."""
        tally = self._tally.get(source)
        if tally is None:
            if len(self._tally) >= self.max_sources:
                source = "other sources"
                tally = self._tally.setdefault(source, Counter())
            else:
                tally = self._tally[source] = Counter()
        tally[method] += 1
        if method == "ACK":
            tally["ignored"] += 1
            return False
        if not self.limiter.allow(source, now):
            tally["rate-limited"] += 1
            return False
        if self.mode == "drop":
            tally["dropped"] += 1
            return False
        tally["answered"] += 1
        return True

    @property
    def pending(self) -> bool:
        """Something was tallied since the last ``report``."""
        return bool(self._tally)

    def report(self) -> list[tuple[str, int, str]]:
        """``(source, requests, details)`` per source since the last call, and start over:
        details like ``INVITE 40, OPTIONS 2; answered 20, rate-limited 22``."""
        out = []
        for source, tally in sorted(self._tally.items()):
            outcomes = {k: tally.pop(k) for k in ("answered", "dropped", "rate-limited",
                                                  "ignored") if k in tally}
            total = sum(tally.values())
            methods = ", ".join(f"{m} {n}" for m, n in sorted(tally.items()))
            fates = ", ".join(f"{k} {n}" for k, n in outcomes.items())
            out.append((source, total, f"{methods}; {fates}"))
        self._tally = {}
        return out
