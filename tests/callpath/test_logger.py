"""The call logger: batching every 200 ms, the active-call table, the reaper, metrics."""
from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from prometheus_client import generate_latest

from callgw.callserver import events as ev
from callgw.callserver.logger import CallLogger
from callgw.callserver.metrics import CallMetrics
from tests.callpath.fakes import SyncStore
from tests.callpath.test_handler import make, start


def test_batches_every_200ms_and_active_table():
    h, a, slaves, clock, logger, store, _ = make(scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    logger.startService()
    start(h)
    slaves.legs[0].emit(ev.Trace("sip", "out", "INVITE sip:+15551234@gw"))
    assert store.db.active_calls() == []            # nothing written yet
    n = store.calls.count("call_log_batch")
    clock.advance(0.2)
    assert store.calls.count("call_log_batch") == n + 1
    rows = store.db.active_calls()
    assert rows[0]["state"] == "delivered" and rows[0]["gateway"] == "gw1"
    assert store.db.call_trace("call-1")[0]["summary"].startswith("INVITE")
    clock.advance(0.2)                               # nothing new: no batch
    assert store.calls.count("call_log_batch") == n + 1
    a.emit(ev.Release(16, "client hung up"))
    clock.advance(0.2)
    assert store.db.active_calls() == []
    assert store.db.get_cdr("call-1")["stats"]["outcome"] == "cancelled"
    logger.stopService()


def test_short_call_never_touches_active_table():
    h, a, slaves, clock, logger, store, _ = make(scripts={"gw1": {"Setup": (ev.Release(17),)}})
    start(h)
    logger.flush()
    assert store.db.active_calls() == [] and store.db.get_cdr("call-1")["cause"] == 17


def test_one_batch_in_flight_then_the_rest():
    clock = Clock()
    pending = []

    class SlowStore:
        def run(self, name, *args):
            d = Deferred()
            pending.append((d, args))
            return d
    logger = CallLogger(SlowStore(), clock, "n")
    logger.event("c1", "x")
    logger.flush()
    logger.event("c1", "y")
    assert logger.flush() is None and len(pending) == 1
    done = logger.drain()
    pending[0][0].callback(None)
    assert len(pending) == 2 and [e["kind"] for e in pending[1][1][1]] == ["y"]
    pending[1][0].callback(None)
    assert done.called


def test_stop_flushes():
    h, a, slaves, clock, logger, store, _ = make()
    logger.startService()
    start(h)
    h.stop(41, "callgw shutting down")
    d = logger.stopService()
    assert d.called
    assert store.db.get_cdr("call-1")["cause_text"] == "callgw shutting down"


def test_reaper_stops_dead_calls():
    h, a, slaves, clock, logger, store, _ = make(scripts={"gw1": {"Setup": (ev.Connect(),)}})
    logger.startService()
    start(h)
    logger.register(h)
    clock.advance(5)
    assert h.state.value == "active"
    a.dead = "client vanished: no pings"
    clock.advance(5)
    assert h.state.value == "released"
    assert slaves.legs[0].sent[-1].cause == 41
    clock.advance(0.2)
    cdr = store.db.get_cdr("call-1")
    assert cdr["cause_text"] == "reaped: client vanished: no pings"
    assert "reaped" in [e["kind"] for e in store.db.call_events("call-1")]
    logger.stopService()


def test_metrics():
    metrics = CallMetrics()
    h, a, slaves, clock, logger, store, _ = make(scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    logger.metrics = metrics
    start(h)
    a.emit(ev.Release())
    metrics.gateway_status("gw1", "up", 3.5)
    text = generate_latest(metrics.registry).decode()
    assert 'callgw_calls_total{outcome="cancelled"} 1.0' in text
    assert "callgw_call_setup_seconds_count 1.0" in text
    assert 'callgw_gateway_up{gateway="gw1"} 1.0' in text
    assert "callgw_active_calls 0.0" in text
    assert metrics.resource() is not None


def test_metrics_forget_a_removed_gateway():
    """A gateway the admin removed leaves /metrics at the directory's next reload."""
    from callgw.proxy.gateways import GatewayDirectory
    metrics = CallMetrics()
    directory = GatewayDirectory()
    directory.listeners.append(lambda name, status: metrics.gateway_status(
        name, status, directory.rtt_ms.get(name)))
    row = {"protocol": "sip", "host": "127.0.0.1", "port": 5060, "prefixes": ["+49"],
           "capacity": 10, "enabled": True}
    directory.load([dict(row, name="gw1"), dict(row, name="gw2")])
    directory.set_status("gw1", "up", 2.0)
    directory.set_status("gw2", "down")
    text = generate_latest(metrics.registry).decode()
    assert 'callgw_gateway_up{gateway="gw2"} 0.0' in text
    directory.load([dict(row, name="gw1")])
    text = generate_latest(metrics.registry).decode()
    assert 'gateway="gw2"' not in text
    assert 'callgw_gateway_up{gateway="gw1"} 1.0' in text
    assert 'callgw_gateway_rtt_ms{gateway="gw1"} 2.0' in text
