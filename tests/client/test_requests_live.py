"""The client library's requests against a running callgw (GatewayService, real listeners and
SQLite store) over UDP, TCP and WebSocket: the address book (the same as ``callgw book``),
the user's call history, and token refresh (the fresh token logs in on a new session)."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from callgw import passwords
from callgw.client import LoginRefused
from callgw.client.links import connect
from callgw.client.session import RequestRefused
from callgw.service import GatewayService
from callgw.store.db import Database
from protocols.client.errors import ErrorCode
from tests.helpers import make_config, started

PASSWORD = "correct horse"


def prepare(tmp_path):
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.migrate()
    db.ensure_default_tenant(1.0)
    db.add_user("alice", passwords.hash_password(PASSWORD, n=1024), 1.0)
    db.book_add("alice", "Zoe", "+4930111000")
    db.call_log_batch([], [], [], [{
        "call_id": "old-1", "username": "alice", "tenant": "default", "target": "+4930123456",
        "gateway": "gw1", "call_server": "cs1", "requested": 1_700_000_000.0, "ringing": None,
        "answered": 1_700_000_002.0, "ended": 1_700_000_030.0, "duration": 28.0, "cause": 17,
        "cause_text": "User busy", "media_mode": "relay", "stats": {}}], [])
    db.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "tcp", "wss"])
def test_book_history_and_refresh(tmp_path, scheme):
    prepare(tmp_path)
    gw = GatewayService(make_config(tmp_path, security={"token_lifetime": 600}), reactor)
    yield started(gw)
    sessions = []
    try:
        host, port = gw.client.address("https" if scheme == "wss" else scheme)
        url = f"{scheme}://{host}:{port}"
        cacert = gw.client.cert.cert_path
        session = yield connect(url, reactor, cacert=cacert)
        sessions.append(session)
        welcome = yield session.login("alice", PASSWORD)
        yield session.book_put("Mum", "+4930123456")
        yield session.book_put("Mother", "+4930123457", was="Mum")
        with pytest.raises(RequestRefused) as refused:
            yield session.book_put("Zoe", "+4930000000")
        assert refused.value.code == ErrorCode.ENTRY_EXISTS
        book = yield session.book()
        assert book == [{"name": "Mother", "number": "+4930123457"},
                        {"name": "Zoe", "number": "+4930111000"}]
        yield session.book_delete("Zoe")
        db = Database(str(tmp_path / "callgw.sqlite3"))
        assert db.book_list("alice") == [{"name": "Mother", "number": "+4930123457"}]
        db.close()
        records = yield session.history()
        assert records == [{"number": "+4930123456", "start": 1_700_000_000,
                            "answered": 1_700_000_002, "duration": 28, "cause": "busy",
                            "q850": 17, "text": "User busy"}]
        token = yield session.refresh()
        assert session.token == token.token and token.expires >= welcome.expires
        again = yield connect(url, reactor, cacert=cacert)
        sessions.append(again)
        assert (yield again.login_token(token.token)).user == "alice"
        with pytest.raises(LoginRefused):
            bad = yield connect(url, reactor, cacert=cacert)
            sessions.append(bad)
            yield bad.login_token(token.token[:-4] + "AAAA")
    finally:
        for s in sessions:
            s.close()
        yield gw.stopService()
