"""The operator dashboard of a call server shows the whole cluster (callgw/web/dashboard.py with
``cluster``): two call servers of the real role in one process on one SQLite file, a call on
the first; the second's dashboard lists that call (its row as written to the shared table) and
the first call server with its state, beside its own."""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor

from callgw.client.links import connect
from callgw.web.dashboard import Dashboard
from tests.callpath.callgw_env import PASSWORD, prepare_db, sleep, within
from tests.cluster.nodes import ECHO, TCP_ONLY, node
from tests.helpers import started


@pytest_twisted.inlineCallbacks
def test_a_call_servers_dashboard_shows_the_other_call_servers_calls(tmp_path):
    prepare_db(tmp_path)
    nodes, session = [], None
    try:
        for name in ("cs-a", "cs-b"):
            nodes.append((yield started(node(tmp_path, name, "callserver", **TCP_ONLY))))
        a, b = nodes
        host, port = a.client.address("tcp")
        session = yield within(connect(f"tcp://{host}:{port}", reactor))
        yield within(session.login("alice", PASSWORD))
        call = session.call(ECHO)
        yield within(call.connected)
        board = Dashboard(b.callpath, cluster=True)
        for _ in range(100):                    # the call's row: the first call server's flush
            yield board.refresh_cluster()
            if board.peer_calls:
                break
            yield sleep(0.1)
        [row] = board.state()["active"]
        assert row["node"] == "cs-a" and row["username"] == "alice" and row["target"] == ECHO
        assert "recovery" not in row and "attach_key" not in row
        servers = {s["name"]: s for s in board.servers()}
        assert servers["cs-a"]["state"] == "up" and servers["cs-a"]["address"].startswith(
            "127.0.0.1:")
        assert "cs-b/cs1" in servers                     # its own, from memory
        alone = Dashboard(b.callpath)                    # not a cluster member: its own only
        yield alone.refresh_cluster()
        assert alone.state()["active"] == [] and "cs-a" not in {
            s["name"] for s in alone.servers()}
        call.hangup()
        yield within(call.disconnected)
    finally:
        if session is not None:
            session.close()
        for gw in reversed(nodes):
            yield defer.maybeDeferred(gw.stopService)
