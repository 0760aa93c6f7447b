"""Accounts that stay the provider's: the admin disables a user, or a whole tenant, with the
command line (a real process) while the user is on a call through a running callgw to sipp as
the PSTN gateway. Within the reload interval the call is released (sipp gets its BYE, a CDR is
written), the client is told and its session ends, and the user cannot log in again.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue

from callgw import passwords
from callgw.client import LoginRefused
from callgw.client.links import connect
from callgw.store.db import Database
from protocols.client import messages as m
from protocols.client.errors import AuthCode
from tests.callpath.callgw_env import (PASSWORD, Sipp, client_url, prepare_db, settled_cdr,
                                       start, within)

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.peers("sipp")


@defer.inlineCallbacks
def admin(tmp_path, *args):
    """``callgw --config ... ARGS`` as a real process, off the reactor; fires with stdout."""
    cfg = tmp_path / "admin.toml"
    cfg.write_text(f'[general]\ndatabase = "{tmp_path / "callgw.sqlite3"}"\n')
    out, err, code = yield getProcessOutputAndValue(
        sys.executable, ["-m", "callgw.cli", "--config", str(cfg), *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), path=str(ROOT), reactor=reactor)
    assert code == 0, err
    return out.decode()


@defer.inlineCallbacks
def on_a_call(gw, user, framing):
    """``user`` logged in over ``framing`` with a connected call; fires with (session, call,
    the messages the session got outside calls)."""
    session = yield connect(client_url(gw, framing))
    yield within(session.login(user, PASSWORD))
    unsolicited = []
    session.on_message = unsolicited.append
    call = session.call("+4930123456")
    yield within(call.connected)
    return session, call, unsolicited


@defer.inlineCallbacks
def assert_cut_off(gw, session, call, unsolicited, user, framing, reason):
    end = yield within(call.disconnected)
    assert isinstance(end, m.Disconnected) and end.cause == "unauthorized", end
    closed = yield within(session.closed)
    assert closed
    assert [(u.code, u.text) for u in unsolicited if isinstance(u, m.Unauthorized)] == [
        (AuthCode.ACCOUNT_DISABLED, reason)]
    cdr = (yield settled_cdr(gw, user))[0]
    assert cdr["gateway"] == "gw1" and cdr["answered"] and cdr["ended"] >= cdr["answered"]
    again = yield connect(client_url(gw, framing))
    with pytest.raises(LoginRefused) as refused:
        yield within(again.login(user, PASSWORD))
    assert refused.value.code == AuthCode.ACCOUNT_DISABLED
    again.close()


@pytest_twisted.inlineCallbacks
def test_disabled_user_and_tenant_lose_their_calls_and_sessions(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path, calls=2, timeout=60).start()
    prepare_db(tmp_path, users=("alice", "bob"), gateways=[("gw1", sipp.port, ["+49"], {})])
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.add_tenant("acme", 1.0, country="49")
    db.add_user("carol", passwords.hash_password(PASSWORD, n=1024), 1.0, tenant="acme")
    db.close()
    gw = yield start(tmp_path)
    try:
        alice = yield on_a_call(gw, "alice", "udp")
        carol = yield on_a_call(gw, "carol", "tcp")
        bob = yield connect(client_url(gw, "tcp"))
        yield within(bob.login("bob", PASSWORD))

        out = yield admin(tmp_path, "user", "disable", "alice")
        assert "alice disabled" in out
        yield assert_cut_off(gw, *alice, "alice", "udp", "user disabled")
        assert not carol[0].is_closed and not bob.is_closed     # nobody else is touched

        yield admin(tmp_path, "tenant", "disable", "acme")
        yield assert_cut_off(gw, *carol, "carol", "tcp", "tenant disabled")
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()  # both calls got their BYE
        pong = yield within(bob.ping())
        assert isinstance(pong, m.Pong)                          # bob's session goes on
        yield bob.logout()
    finally:
        yield gw.stopService()
        sipp.stop()
