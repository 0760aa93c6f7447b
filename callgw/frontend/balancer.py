"""The front end's load balancer: which call server takes the next call.

Owned by the call path (ARCHITECTURE.md, "Front-end server"). ``Balancer(servers, policy)``
picks among ``ICallServer`` providers that are healthy, not draining and below capacity:

- ``least-calls`` (default): fewest active calls relative to capacity; ties go round-robin;
- ``round-robin``: the next eligible server in turn;
- ``weighted``: smooth weighted round-robin (nginx's algorithm) over ``weight``.

``pick()`` returns the server, or None when the pool is full or unhealthy (the front end then
answers ``disconnected`` with cause ``congestion``). ``publish()`` writes every server's state to
the call-servers table (for other front ends and the admin CLI).

Tests: tests/callpath/test_balancer.py.
"""
from __future__ import annotations

POLICIES = ("least-calls", "round-robin", "weighted")


class Balancer:
    """Chooses a call server by policy."""

    def __init__(self, servers: list, policy: str = "least-calls"):
        if policy not in POLICIES:
            raise ValueError(f"balancer policy {policy!r}: expected one of {', '.join(POLICIES)}")
        self.servers = list(servers)
        self.policy = policy
        self._turn = 0
        self._current: dict[str, int] = {}
        self.congested = False

    def add(self, server) -> None:
        self.servers.append(server)

    def remove(self, server) -> None:
        """``server`` leaves the pool (a call-server node that stopped)."""
        if server in self.servers:
            self.servers.remove(server)
        self._current.pop(server.name, None)

    def eligible(self) -> list:
        """The servers that may take a call now; ``congested`` says whether one that is
        healthy and below capacity refused it for its measured load (admission control)."""
        pool = [s for s in self.servers
                if s.healthy and not s.draining and s.active < s.capacity]
        admitted = [s for s in pool if s.admits()]
        self.congested = len(admitted) < len(pool)
        return admitted

    def pick(self):
        """The call server for the next call, or None."""
        pool = self.eligible()
        if not pool:
            return None
        if self.policy == "weighted":
            return self._weighted(pool)
        start = self._turn % len(self.servers)
        self._turn += 1
        if self.policy == "round-robin":
            ordered = self.servers[start:] + self.servers[:start]
            return next(s for s in ordered if s in pool)
        ordered = pool[start % len(pool):] + pool[:start % len(pool)]
        return min(ordered, key=lambda s: s.active / s.capacity)

    def _weighted(self, pool: list):
        total = 0
        best = None
        for s in pool:
            current = self._current.get(s.name, 0) + s.weight
            self._current[s.name] = current
            total += s.weight
            if best is None or current > self._current[best.name]:
                best = s
        self._current[best.name] -= total
        return best

    def publish(self, store, now: float):
        """Write each server's state to the call-servers table; fires when written."""
        from twisted.internet.defer import gatherResults
        return gatherResults([
            store.run("upsert_call_server", s.name, s.address, now,
                      capacity=s.capacity, weight=s.weight, healthy=s.healthy,
                      draining=s.draining, active_calls=s.active)
            for s in self.servers], consumeErrors=True)
