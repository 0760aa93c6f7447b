"""Two callgw nodes on one real PostgreSQL server (tests/pgserver.py): what one writes the other
sees (users, gateways, active calls, CDRs), an admin CLI write reaches both (the change serial),
and a user's concurrent-call limit holds across the two together (counted in the database:
callgw/store/admission.py, callgw/callserver/director.py). Calls go to the echo number, which
callgw answers itself (no gateway needed)."""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor

from callgw import passwords
from callgw.client.links import connect
from callgw.service import GatewayService
from callgw.store.db import Database
from protocols.client import messages as m
from protocols.client.errors import AuthCode
from tests.callpath.callgw_env import PASSWORD, client_url, sleep, within
from tests.helpers import make_config, started

ECHO = "+4930999999"


def prepare(url: str) -> None:
    db = Database(url)
    db.migrate()
    db.ensure_default_tenant(1.0)
    db.add_user("alice", passwords.hash_password(PASSWORD, n=1024), 1.0, number="+4930100000")
    db.add_rule("max_concurrent", "2", 1.0, tenant="default")
    db.close()


@defer.inlineCallbacks
def node(tmp_path, url, name):
    directory = tmp_path / name
    directory.mkdir()
    config = make_config(directory, general={"database": url, "node": name,
                                             "reload_interval": 0.2},
                         calls={"echo_number": ECHO, "health_interval": 0},
                         web={"https": "off"}, client={"tls": "off"})
    gw = yield started(GatewayService(config, reactor))
    return gw


@defer.inlineCallbacks
def dial(gw):
    session = yield connect(client_url(gw, "tcp"))
    yield session.login("alice", PASSWORD)
    call = session.call(ECHO)
    first = yield within(defer.DeferredList([call.connected, call.disconnected],
                                            fireOnOneCallback=True, consumeErrors=True))
    return session, call, first[0]


@defer.inlineCallbacks
def until(check, limit=10.0):
    waited = 0.0
    while True:
        value = yield check()
        if value or waited >= limit:
            return value
        yield sleep(0.1)
        waited += 0.1


@pytest_twisted.inlineCallbacks
def test_two_nodes_share_one_postgresql_and_one_users_limit(tmp_path, pg_url):
    prepare(pg_url)
    one = yield node(tmp_path, pg_url, "node-one")
    two = None
    sessions = []
    try:
        two = yield node(tmp_path, pg_url, "node-two")
        assert one.store.shared and two.store.shared

        # the user's limit is 2 at once: one call on each node fills it
        for gw in (one, two):
            session, call, first = yield dial(gw)
            sessions.append((session, call))
            assert isinstance(first, m.Connected), call.events
        # a third call is refused on either node, though each holds only one call itself
        for gw in (one, two):
            session, call, first = yield dial(gw)
            sessions.append((session, None))
            assert isinstance(first, m.Unauthorized), call.events
            assert first.code == AuthCode.CALL_LIMIT
        admitted = yield one.store.run("admitted_calls", "default")
        assert sorted(a["node"] for a in admitted) == ["node-one", "node-two"]

        # both nodes' active calls are in the one table, seen from either
        rows = yield until(lambda: two.store.run("active_calls").addCallback(
            lambda r: r if len(r) == 2 else None))
        assert sorted(r["node"] for r in rows) == ["node-one", "node-two"]

        # the call on node one ends: node two may place one again
        _, ended = sessions[0]
        ended.hangup()
        yield within(ended.disconnected)
        yield until(lambda: one.store.run("admitted_calls", "default").addCallback(
            lambda r: len(r) == 1))
        session, call, first = yield dial(two)
        sessions.append((session, call))
        assert isinstance(first, m.Connected), call.events

        # the CDR written by node one is read through node two
        cdrs = yield until(lambda: two.store.run("cdrs", 10, "alice"))
        assert cdrs and cdrs[0]["call_server"].startswith("node-one")

        # an admin CLI write reaches both running nodes (the change serial)
        noticed = [defer.Deferred(), defer.Deferred()]
        for gw, d in zip((one, two), noticed):
            gw.store.watch(lambda d=d: d.called or d.callback(True))
        cli = Database(pg_url)
        cli.add_gateway("gw-shared", "sip", "127.0.0.1", 25060, ["+1"], 2.0, probe="off")
        cli.close()
        yield within(defer.gatherResults(noticed), 10.0)
        for gw in (one, two):
            names = [g["name"] for g in (yield gw.store.run("list_gateways"))]
            assert names == ["gw-shared"]
    finally:
        for session, call in sessions:
            if call is not None and not call.ended:
                call.hangup()
        for session, _ in sessions:
            session.close()
        for gw in (one, two):
            if gw is not None:
                yield gw.stopService()
