"""Gateway health: each gateway probed in its own protocol's way, on its own schedule.

Owned by the call path (ARCHITECTURE.md, "Proxy server"). ``HealthPoller`` is a service that
wakes every ``tick`` seconds (injected clock) and probes each gateway that is due, through the
pinger of the gateway's protocol (``pingers[protocol]``: the leg provider's ``ping``, SIP
OPTIONS). Per gateway row (``callgw gateway add``):

- ``probe``: the mode, ``off`` never probes (only calls tell); '' or the protocol's own mode
  (SIP ``options``) probes;
- ``probe_interval``: seconds between probes (NULL: the poller's ``interval``,
  ``[calls] health_interval``);
- ``down_after`` consecutive failed probes mark it ``down``; ``up_after`` consecutive answered
  ones mark a down gateway ``up`` (from ``unknown`` one answer decides).

Any answer counts as alive (RFC 3261 section 11: a gateway that answers OPTIONS with 404 or 503
is there); only no answer or a failed transport is a failure. A gateway that answered a call
since a probe was sent is alive too (``GatewayDirectory.answered``), so traffic keeps a gateway
up whatever its probes say. The round trip of each answered probe is recorded. Status changes go
to the ``GatewayDirectory`` (which selection reads) and to the store (``set_gateway_status``).
One probe per gateway is in flight at a time.

Tests: tests/callpath/test_gateway_health.py.
"""
from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callgw.store.errors import log_write_failure


class HealthPoller(Service):
    """Probes every gateway of ``directory`` with ``pingers[protocol]`` when it is due."""

    log = Logger()
    name = "gateway-health"

    def __init__(self, directory, pingers: dict, clock, store=None, interval: float = 10.0,
                 tick: float = 1.0):
        self.directory = directory
        self.pingers = dict(pingers)
        self.clock = clock
        self.store = store
        self.interval = interval
        self.tick = min(tick, interval)
        self.failures: dict[str, int] = {}
        self.successes: dict[str, int] = {}
        self.due: dict[str, float] = {}
        self._in_flight: set[str] = set()
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self.clock
        self._loop.start(self.tick, now=True).addErrback(
            lambda f: self.log.failure("gateway health polling stopped", f))

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def poll(self) -> None:
        """Probe every gateway that is due, probed, has a pinger and no probe in flight."""
        now = self.clock.seconds()
        for name, gw in list(self.directory.gateways.items()):
            pinger = self.pingers.get(gw["protocol"])
            if pinger is None or name in self._in_flight or not gw.get("enabled", True) \
                    or (gw.get("probe") or "") == "off" or self.due.get(name, 0.0) > now:
                continue
            self.due[name] = now + (gw.get("probe_interval") or self.interval)
            self._in_flight.add(name)
            d = maybeDeferred(pinger, gw)
            d.addCallbacks(self._success, self._failure, callbackArgs=(gw, now),
                           errbackArgs=(gw, now))
            d.addErrback(lambda f, n=name: self.log.failure(
                "health result for gateway {gateway}", f, gateway=n))
            d.addBoth(lambda _, n=name: self._in_flight.discard(n))

    def _success(self, rtt, gw: dict, started: float) -> None:
        name = gw["name"]
        if rtt is None:
            rtt = self.clock.seconds() - started
        self.failures[name] = 0
        self.successes[name] = self.successes.get(name, 0) + 1
        current = self.directory.status.get(name, "unknown")
        status = current
        if current != "up" and (current == "unknown" or
                                self.successes[name] >= int(gw.get("up_after") or 2)):
            status = "up"
        self._record(name, status, round(rtt * 1000.0, 3), current)

    def _failure(self, failure, gw: dict, started: float) -> None:
        name = gw["name"]
        if self.directory.answered_at.get(name, -1.0) >= started:
            self._success(None, gw, started)        # it answered a call meanwhile: alive
            return
        self.successes[name] = 0
        self.failures[name] = self.failures.get(name, 0) + 1
        current = self.directory.status.get(name, "unknown")
        status = current
        if current != "down" and self.failures[name] >= int(gw.get("down_after") or 3):
            status = "down"
        if status != current:
            self.log.warn("gateway {gateway} down after {n} unanswered probes: {why}",
                          gateway=name, n=self.failures[name], why=failure.getErrorMessage())
        self._record(name, status, None, current)

    def _record(self, name: str, status: str, rtt_ms: float | None, previous: str) -> None:
        self.directory.set_status(name, status, rtt_ms)
        if status != previous:
            self.log.info("gateway {gateway}: {old} -> {new}", gateway=name, old=previous,
                          new=status)
        if self.store is not None and (status != previous or rtt_ms is not None):
            self.store.run("set_gateway_status", name, status,
                           self.directory.rtt_ms.get(name)).addErrback(
                lambda f: log_write_failure(self.log, f, "saving status of gateway {gateway}",
                                            gateway=name))
