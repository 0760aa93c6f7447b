"""Balancer policies and the call server's hand-over."""
from __future__ import annotations

import pytest

from callgw.frontend.balancer import Balancer


class Server:
    def __init__(self, name, capacity=10, weight=100, active=0):
        self.name, self.capacity, self.weight, self.active = name, capacity, weight, active
        self.healthy, self.draining = True, False
        self.admitting = True

    def admits(self):
        return self.admitting


def test_least_calls():
    a, b = Server("a", active=3), Server("b", active=1)
    bal = Balancer([a, b])
    assert bal.pick() is b
    b.active = 5
    assert bal.pick() is a
    c = Server("c", capacity=100, active=20)     # 20% vs a's 30%
    bal.add(c)
    assert bal.pick() is c


def test_least_calls_ties_rotate():
    a, b = Server("a"), Server("b")
    bal = Balancer([a, b])
    assert {bal.pick().name for _ in range(4)} == {"a", "b"}


def test_round_robin_skips_ineligible():
    a, b, c = Server("a"), Server("b"), Server("c")
    bal = Balancer([a, b, c], "round-robin")
    assert [bal.pick().name for _ in range(3)] == ["a", "b", "c"]
    b.draining = True
    c.active = 10
    assert [bal.pick().name for _ in range(3)] == ["a", "a", "a"]


def test_weighted():
    a, b = Server("a", weight=3), Server("b", weight=1)
    bal = Balancer([a, b], "weighted")
    picks = [bal.pick().name for _ in range(8)]
    assert picks.count("a") == 6 and picks.count("b") == 2


def test_full_or_unhealthy_pool():
    a, b = Server("a", active=10), Server("b")
    b.healthy = False
    assert Balancer([a, b]).pick() is None


def test_bad_policy():
    with pytest.raises(ValueError):
        Balancer([], "random")


def test_a_server_refusing_for_its_load_is_skipped_and_marks_congestion():
    a, b = Server("a"), Server("b")
    bal = Balancer([a, b], "round-robin")
    a.admitting = False
    assert [bal.pick().name for _ in range(3)] == ["b", "b", "b"] and bal.congested
    b.admitting = False
    assert bal.pick() is None and bal.congested
    a.admitting = b.admitting = True
    assert bal.pick() is not None and not bal.congested
