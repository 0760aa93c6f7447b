"""Periodic gateway status polling, each gateway in its own protocol.

Owned by the call path (ARCHITECTURE.md, "Proxy server"). ``HealthPoller`` is a service: every
``interval`` seconds (injected clock) it asks the pinger registered for each gateway's protocol
(``pingers["sip"]`` sends SIP OPTIONS; H.323 and MGCP add theirs later) and counts results:
a gateway is marked ``down`` after ``down_after`` consecutive failures and ``up`` after
``up_after`` consecutive successes (from ``unknown`` a single success or ``down_after`` failures
decide). The round-trip time of each success is recorded. Status changes go to the
``GatewayDirectory`` (which selection reads) and to the store (``set_gateway_status``).

A pinger is ``pinger(gateway_record) -> Deferred`` firing with the RTT in seconds, or failing.
A gateway whose protocol has no pinger keeps its status. One poll per gateway is in flight at a
time.

Tests: tests/callpath/test_health.py.
"""
from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger


class HealthPoller(Service):
    """Polls every gateway of ``directory`` with ``pingers[protocol]``."""

    log = Logger()
    name = "gateway-health"

    def __init__(self, directory, pingers: dict, clock, store=None, interval: float = 10.0,
                 down_after: int = 3, up_after: int = 2):
        self.directory = directory
        self.pingers = dict(pingers)
        self.clock = clock
        self.store = store
        self.interval = interval
        self.down_after = down_after
        self.up_after = up_after
        self.failures: dict[str, int] = {}
        self.successes: dict[str, int] = {}
        self._in_flight: set[str] = set()
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("gateway health polling stopped", f))

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def poll(self) -> None:
        """Ping every gateway that has a pinger and no poll in flight."""
        for name, gw in list(self.directory.gateways.items()):
            pinger = self.pingers.get(gw["protocol"])
            if pinger is None or name in self._in_flight or not gw.get("enabled", True):
                continue
            self._in_flight.add(name)
            started = self.clock.seconds()
            d = maybeDeferred(pinger, gw)
            d.addCallbacks(self._success, self._failure, callbackArgs=(name, started),
                           errbackArgs=(name,))
            d.addErrback(lambda f, n=name: self.log.failure(
                "health result for gateway {gateway}", f, gateway=n))
            d.addBoth(lambda _, n=name: self._in_flight.discard(n))

    def _success(self, rtt, name: str, started: float) -> None:
        if rtt is None:
            rtt = self.clock.seconds() - started
        self.failures[name] = 0
        self.successes[name] = self.successes.get(name, 0) + 1
        current = self.directory.status.get(name, "unknown")
        status = current
        if current != "up" and (current == "unknown" or self.successes[name] >= self.up_after):
            status = "up"
        self._record(name, status, round(rtt * 1000.0, 3), current)

    def _failure(self, failure, name: str) -> None:
        self.successes[name] = 0
        self.failures[name] = self.failures.get(name, 0) + 1
        current = self.directory.status.get(name, "unknown")
        status = current
        if current != "down" and self.failures[name] >= self.down_after:
            status = "down"
        if status != current:
            self.log.warn("gateway {gateway} down after {n} failed polls: {why}",
                          gateway=name, n=self.failures[name],
                          why=failure.getErrorMessage())
        self._record(name, status, None, current)

    def _record(self, name: str, status: str, rtt_ms: float | None, previous: str) -> None:
        self.directory.set_status(name, status, rtt_ms)
        if status != previous:
            self.log.info("gateway {gateway}: {old} -> {new}", gateway=name, old=previous,
                          new=status)
        if self.store is not None and (status != previous or rtt_ms is not None):
            self.store.run("set_gateway_status", name, status,
                           self.directory.rtt_ms.get(name)).addErrback(
                lambda f: self.log.failure("saving status of gateway {gateway}", f,
                                           gateway=name))
