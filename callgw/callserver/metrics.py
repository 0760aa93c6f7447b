"""Prometheus metrics of the call path, and the ``/metrics`` resource that serves them.

Owned by the call path (ARCHITECTURE.md, "Call logger": display). One ``CallMetrics`` per
gateway process, on its own ``CollectorRegistry`` (so several in one test process do not
collide):

- ``callgw_calls_total{outcome}``: answered, busy, no-answer, cancelled, failed, refused,
  rejected (no call server could take it);
- ``callgw_active_calls``: calls in progress;
- ``callgw_call_setup_seconds``: request to ringing (or to answer, when there was no ringing);
- ``callgw_gateway_up{gateway}``: 1 up, 0 down, -1 unknown; ``callgw_gateway_rtt_ms``
  (a removed gateway's series go with it);
- ``callgw_calls_reaped_total``;
- the call logger's writes: ``callgw_call_log_database_ok`` (1 writable, 0 a fault holds its
  records), ``callgw_call_log_held_records`` (records kept in memory until the database takes
  them), ``callgw_call_log_write_failures_total{fault}`` (locked, read-only, disk-full,
  io-error, ...);
- ``callgw_login_failures_total{reason}``: refused client logins (``bad-credentials``,
  ``throttled``, ``stale-nonce``, ``token-expired``, ``token-invalid``, ``account-disabled``);
- ``callgw_client_datagrams_dropped_total{reason}``: UDP datagrams claiming a logged-in
  session that failed datagram authentication (``unsealed``, ``forged``, ``replayed``).

``resource()`` returns a twisted.web resource rendering the text exposition format.

Tests: tests/callpath/test_logger.py.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.twisted import MetricsResource

_STATUS = {"up": 1, "down": 0}
LOGIN_REASONS = ("bad-credentials", "throttled", "stale-nonce", "token-expired", "token-invalid",
                 "account-disabled")
OUTCOMES = ("answered", "busy", "no-answer", "cancelled", "failed", "refused", "rejected")


class CallMetrics:
    """The call path's counters, gauges and histogram."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.calls = Counter("callgw_calls", "Calls by outcome", ["outcome"],
                             registry=self.registry)
        for outcome in OUTCOMES:
            self.calls.labels(outcome)
        self.active_calls = Gauge("callgw_active_calls", "Calls in progress",
                                  registry=self.registry)
        self.setup = Histogram("callgw_call_setup_seconds",
                               "Call request to ringing (or answer)",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                               registry=self.registry)
        self.gateway_up = Gauge("callgw_gateway_up", "Gateway status (1 up, 0 down, -1 unknown)",
                                ["gateway"], registry=self.registry)
        self.gateway_rtt = Gauge("callgw_gateway_rtt_ms", "Last OPTIONS round-trip time",
                                 ["gateway"], registry=self.registry)
        self.reaped_calls = Counter("callgw_calls_reaped", "Calls stopped by the reaper",
                                    registry=self.registry)
        self._outcome_children = {o: self.calls.labels(o) for o in OUTCOMES}
        self.call_log_ok = Gauge("callgw_call_log_database_ok",
                                 "1 when the call logger's last write succeeded, 0 while a "
                                 "database fault holds its records", registry=self.registry)
        self.call_log_ok.set(1)
        self.call_log_held = Gauge("callgw_call_log_held_records",
                                   "Call records held in memory until the database takes them",
                                   registry=self.registry)
        self.call_log_failures = Counter("callgw_call_log_write_failures",
                                         "Call-log writes that failed, by database fault",
                                         ["fault"], registry=self.registry)
        self.login_failures = Counter("callgw_login_failures", "Refused client logins by reason",
                                      ["reason"], registry=self.registry)
        for reason in LOGIN_REASONS:
            self.login_failures.labels(reason)
        self.datagrams_dropped = Counter(
            "callgw_client_datagrams_dropped", "UDP datagrams claiming a logged-in session "
            "that failed its authentication, by reason", ["reason"], registry=self.registry)
        for reason in ("unsealed", "forged", "replayed"):
            self.datagrams_dropped.labels(reason)

    def outcome(self, outcome: str) -> None:
        child = self._outcome_children.get(outcome)
        if child is None:
            child = self._outcome_children[outcome] = self.calls.labels(outcome)
        child.inc()

    def login_failed(self, reason: str) -> None:
        """One refused client login (``reason`` as in ``LOGIN_REASONS``)."""
        self.login_failures.labels(reason).inc()

    def datagram_dropped(self, reason: str) -> None:
        """One UDP datagram dropped by datagram authentication (``unsealed``, ``forged``,
        ``replayed``)."""
        self.datagrams_dropped.labels(reason).inc()

    def active(self, n: int) -> None:
        self.active_calls.set(n)

    def setup_latency(self, seconds: float) -> None:
        self.setup.observe(seconds)

    def reaped(self) -> None:
        self.reaped_calls.inc()

    def call_log_failed(self, fault: str) -> None:
        """A call-log write failed with ``fault`` (its records are held)."""
        self.call_log_failures.labels(fault).inc()
        self.call_log_ok.set(0)

    def call_log_status(self, held: int, ok: bool) -> None:
        self.call_log_held.set(held)
        self.call_log_ok.set(1 if ok else 0)

    def gateway_status(self, name: str, status: str, rtt_ms: float | None = None) -> None:
        """``status`` ``removed``: the gateway is gone, and so are its series."""
        if status == "removed":
            for gauge in (self.gateway_up, self.gateway_rtt):
                try:
                    gauge.remove(name)
                except KeyError:                # never had that series
                    pass
            return
        self.gateway_up.labels(name).set(_STATUS.get(status, -1))
        if rtt_ms is not None:
            self.gateway_rtt.labels(name).set(rtt_ms)

    def resource(self) -> MetricsResource:
        return MetricsResource(registry=self.registry)
