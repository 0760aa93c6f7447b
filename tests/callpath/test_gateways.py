"""Gateway selection: longest prefix, protocol, least used, priority and weight; health."""
from __future__ import annotations

import random

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock

from callgw.proxy.gateways import GatewayDirectory
from callgw.proxy.health import HealthPoller
from callgw.proxy.registrar import Registrar
from tests.callpath.fakes import SyncStore, gateway


def names(gws):
    return [g["name"] for g in gws]


def directory(*gws):
    d = GatewayDirectory(rng=random.Random(1))
    d.load(list(gws))
    return d


def test_longest_prefix_first_then_shorter_for_failover():
    d = directory(gateway("world", ["+"]), gateway("de", ["+49"]), gateway("berlin", ["+4930"]))
    assert names(d.select("+4930123")) == ["berlin", "de", "world"]
    assert names(d.select("+4989123")) == ["de", "world"]
    assert names(d.select("+15551234")) == ["world"]


def test_protocol_filter():
    d = directory(gateway("s", ["+1"]), gateway("h", ["+1"], protocol="h323"))
    assert names(d.select("+1555", protocol="h323")) == ["h"]
    assert sorted(names(d.select("+1555"))) == ["h", "s"]


def test_least_used_relative_to_capacity_then_priority():
    d = directory(gateway("big", ["+1"], capacity=100, priority=20),
                  gateway("small", ["+1"], capacity=10, priority=10))
    # both idle: priority decides
    assert names(d.select("+1555")) == ["small", "big"]
    d.acquire("small")          # 10% used vs 0%
    assert names(d.select("+1555")) == ["big", "small"]
    for _ in range(9):
        d.acquire("small")      # full: left out
    assert names(d.select("+1555")) == ["big"]
    for _ in range(10):
        d.release("small")
    assert d.active == {}


def test_a_protocol_that_knows_the_capacity_lowers_the_rows():
    """An MGCP gateway with two specific endpoints takes two calls, whatever its row says;
    a protocol that knows nothing (None) leaves the row's capacity."""
    known = {"lines": 2, "sip": None}
    d = GatewayDirectory(rng=random.Random(1), capacity=lambda row: known[row["name"]])
    d.load([gateway("lines", ["+1"], capacity=100, protocol="mgcp"),
            gateway("sip", ["+1"], capacity=5, priority=20)])
    assert d.limits == {"lines": 2, "sip": 5}
    d.acquire("lines")
    d.acquire("lines")
    assert names(d.select("+1555")) == ["sip"]
    assert [g["capacity"] for g in d.snapshot()] == [2, 5]


def test_weight_shares_equal_priority():
    d = directory(gateway("a", ["+1"], weight=300), gateway("b", ["+1"], weight=100))
    firsts = [d.select("+1555")[0]["name"] for _ in range(2000)]
    share = firsts.count("a") / len(firsts)
    assert 0.68 < share < 0.82


def test_down_and_disabled_are_skipped():
    off = dict(gateway("off", ["+1"]), enabled=False)
    d = directory(gateway("a", ["+1"]), off)
    d.set_status("a", "down")
    assert d.select("+1555") == []
    d.set_status("a", "up")
    assert names(d.select("+1555")) == ["a"]


def test_health_down_after_k_up_after_m():
    clock = Clock()
    store = SyncStore()
    store.db.add_gateway("gw", "sip", "127.0.0.1", 5060, ["+"], 0, down_after=3, up_after=2)
    d = GatewayDirectory(store)
    d.reload()
    results = []
    changes = []
    d.listeners.append(lambda n, s: changes.append(s))

    def pinger(gw):
        return results.pop(0)
    poller = HealthPoller(d, {"sip": pinger}, clock, store, interval=10, tick=10)
    results.extend([succeed(0.004)])
    poller.startService()
    assert d.status["gw"] == "up" and d.rtt_ms["gw"] == 4.0
    for i in range(3):
        results.append(fail(RuntimeError("timeout")))
        clock.advance(10)
        assert d.status["gw"] == ("down" if i == 2 else "up")
    results.append(succeed(0.002))
    clock.advance(10)
    assert d.status["gw"] == "down"
    results.append(succeed(0.002))
    clock.advance(10)
    assert d.status["gw"] == "up"
    assert changes == ["up", "down", "up"]
    assert store.db.get_gateway("gw")["status"] == "up"
    poller.stopService()


def test_registrar_expiry():
    clock = Clock()
    store = SyncStore()
    r = Registrar(store, clock, "node-1", sweep_interval=10)
    r.startService()
    r.register("alice", "udp:127.0.0.1:4000", 15)
    assert [c["contact"] for c in r.lookup("alice")] == ["udp:127.0.0.1:4000"]
    assert len(store.db.registrations("alice", 0)) == 1
    clock.advance(10)
    r.register("alice", "udp:127.0.0.1:4000", 15)      # refreshed
    clock.advance(10)
    assert r.lookup("alice")
    clock.advance(10)
    assert r.lookup("alice") == [] and r.contacts == {}
    assert store.db.registrations("alice", 0) == []
    r.register("bob", "tcp:127.0.0.1:5000", 60)
    r.unregister("bob", "tcp:127.0.0.1:5000")
    assert r.lookup("bob") == []
    r.stopService()
