"""A running callgw (GatewayService with the call path) and sipp gateways, for the sipp tests."""
from __future__ import annotations

from twisted.internet import defer, reactor, task

from callgw import passwords
from callgw.service import GatewayService
from callgw.store.db import Database
from tests.helpers import make_config, started
from tests.sip.sipp import Sipp, free_port

PASSWORD = "correct horse"


def prepare_db(tmp_path, users=("alice",), gateways=(), target=None):
    """Users (password PASSWORD) and gateways ``(name, port, prefixes, extra)`` before start,
    in ``target`` (a database; default the SQLite file the gateway's default config uses)."""
    db = Database(target or str(tmp_path / "callgw.sqlite3"))
    db.migrate()
    db.ensure_default_tenant(1.0)
    for i, name in enumerate(users):
        db.add_user(name, passwords.hash_password(PASSWORD, n=1024), 1.0,
                    number=f"+4930100{i:03d}")
    for name, port, prefixes, extra in gateways:
        db.add_gateway(name, "sip", "127.0.0.1", port, list(prefixes), 1.0, **extra)
    db.close()


@defer.inlineCallbacks
def start(tmp_path, servers=1, health=None, **overrides):
    """A started GatewayService; ``servers`` in-process call servers; ``health`` the status
    polling interval (None: off, since sipp's call scenarios do not expect OPTIONS)."""
    calls = {"setup_timeout": 2.0, "no_answer_timeout": 3.0, "health_interval": health or 0}
    calls.update(overrides.pop("calls", {}))
    gw = GatewayService(make_config(tmp_path, calls=calls, web={"https": "off"}, **overrides),
                        reactor)
    for i in range(1, servers):
        gw.callpath.add_call_server(f"{gw.config['general']['node']}/cs{i + 1}")
    yield started(gw)
    return gw


def client_url(gw, framing="tcp"):
    host, port = gw.client.address(framing)
    return f"{framing}://{host}:{port}"


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def settled_cdr(gw, username, count=1, limit=5.0):
    """The user's newest CDRs once ``count`` are written (the logger flushes every 200 ms)."""
    waited = 0.0
    while True:
        rows = yield gw.store.run("cdrs", 50, username)
        if len(rows) >= count or waited >= limit:
            return rows
        yield sleep(0.1)
        waited += 0.1


@defer.inlineCallbacks
def events_of(gw, call_id):
    rows = yield gw.store.run("call_events", call_id)
    return [r["kind"] for r in rows]


__all__ = ["within", "Sipp", "free_port", "PASSWORD", "prepare_db", "start", "client_url",
           "sleep", "settled_cdr", "events_of"]


def within(d, seconds=15.0):
    """``d`` failing with TimeoutError after ``seconds`` (a failing test must not hang)."""
    d.addTimeout(seconds, reactor)
    return d
