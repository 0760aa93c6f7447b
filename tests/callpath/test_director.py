"""The call director over a real (in-memory) database: books, rules, counts, caches."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from callgw.callserver.branding import BrandingUnit, clean_branding
from callgw.callserver.director import CallDirector
from callgw.callserver.rules import Refused
from tests.callpath.fakes import SyncStore


@pytest.fixture
def env():
    store = SyncStore()
    db = store.db
    db.add_tenant("acme", 0, timezone="Europe/Berlin", country="49",
                  branding={"display_name": "ACME"})
    db.add_user("alice", "x", 0, tenant="acme", number="+4930111")
    db.add_user("bob", "x", 0, tenant="acme")
    db.book_add("alice", "office", "+4930222333")
    clock = Clock()
    clock.advance(1_790_000_000)
    return store, CallDirector(store, clock, max_duration=3600), clock


def result(d):
    out = []
    d.addBoth(out.append)
    return out[0]


def test_number_book_and_caller(env):
    store, director, clock = env
    alice = store.db.get_user("alice")
    auth = result(director.authorize(alice, "+4930123456"))
    assert auth.target == "+4930123456" and auth.caller == "+4930111" and not auth.privacy
    auth = result(director.authorize(alice, contact="office"))
    assert auth.target == "+4930222333" and auth.contact == "office"
    auth = result(director.authorize(alice, "030 999 888"))
    assert auth.target == "+4930999888"
    bob = store.db.get_user("bob")
    assert result(director.authorize(bob, "+4930123456")).privacy is True


def test_refusals(env):
    store, director, clock = env
    alice = store.db.get_user("alice")
    f = result(director.authorize(alice, "+4990012345"))
    assert isinstance(f.value, Refused) and f.value.code == 411
    f = result(director.authorize(alice, contact="nobody"))
    assert f.value.reason == "unknown-contact"


def test_concurrency_and_rate(env):
    store, director, clock = env
    alice = store.db.get_user("alice")
    for _ in range(4):
        director.call_began("alice", "acme")
    f = result(director.authorize(alice, "+4930123456"))
    assert f.value.reason == "concurrent"
    for _ in range(4):
        director.call_ended("alice", "acme")
    for _ in range(10):      # 10 per minute by default; the refused one did not count
        result(director.authorize(alice, "+4930123456"))
    f = result(director.authorize(alice, "+4930123456"))
    assert f.value.reason == "rate"
    clock.advance(61)
    assert result(director.authorize(alice, "+4930123456")).target


def test_cache_and_invalidate(env):
    store, director, clock = env
    alice = store.db.get_user("alice")
    result(director.authorize(alice, "+4930123456"))
    n = store.calls.count("director_snapshot")
    result(director.authorize(alice, "+4930123457"))
    assert store.calls.count("director_snapshot") == n
    store.db.add_rule("block", "+4930", 0, username="alice")
    f = result(director.authorize(alice, "+4930123458"))
    assert not isinstance(f, Exception) and not hasattr(f, "value")
    director.invalidate()
    f = result(director.authorize(alice, "+4930123459"))
    assert f.value.code == 411


def test_max_duration_rule(env):
    store, director, clock = env
    store.db.add_rule("max_duration", "120", 0, tenant="acme")
    alice = store.db.get_user("alice")
    assert result(director.authorize(alice, "+4930123456")).max_duration == 120


def test_branding(env):
    store, *_ = env
    unit = BrandingUnit()
    b = unit.branding_for(store.db.get_tenant("acme"))
    assert b["display_name"] == "ACME" and "greeting" in b
    assert clean_branding({"Bad Key": "x", "ok": "a\nb", "fine": 3}) == {"fine": "3"}


def test_concurrent_first_requests_share_one_read():
    from twisted.internet.defer import Deferred
    store = SyncStore()
    store.db.ensure_default_tenant(0)
    store.db.add_user("alice", "x", 0)
    pending = []

    class SlowStore:
        def run(self, name, *args):
            d = Deferred()
            pending.append((d, getattr(store.db, name)(*args)))
            return d
    clock = Clock()
    director = CallDirector(SlowStore(), clock)
    alice = store.db.get_user("alice")
    first = director.authorize(alice, "+12125551234")
    first.addCallback(lambda auth: "handler")          # what the call server chains on
    second = director.authorize(alice, "+12125551235")
    assert len(pending) == 1
    pending[0][0].callback(pending[0][1])
    assert result(first) == "handler"
    assert result(second).target == "+12125551235"


def test_provides_the_interfaces():
    from zope.interface.verify import verifyObject

    from callgw.interfaces import ICallLogSink, IDirector, IGatewayDirectory, IRegistrar
    from callgw.callserver.logger import CallLogger
    from callgw.proxy.gateways import GatewayDirectory
    from callgw.proxy.registrar import Registrar
    store = SyncStore()
    clock = Clock()
    assert verifyObject(IDirector, CallDirector(store, clock))
    assert verifyObject(IGatewayDirectory, GatewayDirectory(store))
    assert verifyObject(IRegistrar, Registrar(store, clock, "n"))
    assert verifyObject(ICallLogSink, CallLogger(store, clock, "n"))
