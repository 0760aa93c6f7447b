"""A client re-attaching through any front end reaches the call server holding its call:
a front end and two call servers of the real roles in one process (``GatewayService`` with
``[cluster] role``), on one SQLite file. The call runs on call server X; the operator drains X
(no new calls there), the client's socket drops; it logs in again at the front end with its
token, is sent to call server Y (the only one taking calls), sends ``attach``; Y finds the call
on X by the key's digest and redirects; the client attaches at X and the call goes on. Calls go
to the echo number, which callgw answers itself."""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor

from callgw.client.links import connect
from tests.callpath.callgw_env import PASSWORD, prepare_db, sleep, within
from tests.cluster.nodes import ECHO, TCP_ONLY, node
from tests.helpers import started


@defer.inlineCallbacks
def until(check, limit=15.0):
    waited = 0.0
    while True:
        value = yield check()
        if value:
            return value
        assert waited < limit, "not within the limit"
        yield sleep(0.1)
        waited += 0.1


@pytest_twisted.inlineCallbacks
def test_a_client_back_through_the_front_end_is_sent_to_the_call_server_holding_its_call(
        tmp_path):
    prepare_db(tmp_path)
    nodes, sessions = [], []
    try:
        for name in ("cs-a", "cs-b"):
            nodes.append((yield started(node(tmp_path, name, "callserver", **TCP_ONLY))))
        fe = yield started(node(tmp_path, "fe", "frontend", **TCP_ONLY))
        nodes.append(fe)
        pool = fe.child("cluster")
        yield until(lambda: defer.succeed(len([s for s in pool.nodes.values() if s.healthy])
                                          == 2))
        host, port = fe.client.address("tcp")
        first = yield within(connect(f"tcp://{host}:{port}", reactor))
        sessions.append(first)
        yield within(first.login("alice", PASSWORD))
        where = {f"127.0.0.1:{n.client.address('tcp')[1]}": n.config["general"]["node"]
                 for n in nodes[:2]}            # a call server's client listener -> its name
        holder = where[first.core.hops[-1]]
        call = first.call(ECHO)
        yield within(call.connected)
        token, key = first.token, call.key
        # the call's re-attach key is in the shared table (the logger's next flush)
        yield until(lambda: fe.store.run("node_calls", holder).addCallback(
            lambda rows: rows and rows[0]["attach_key"]))

        # the operator drains the holder: the front end sends new sessions to the other
        yield fe.store.run("set_draining", holder, True)
        yield until(lambda: defer.succeed(pool.nodes[holder].draining))
        first.link.transport.abortConnection()       # the socket drops; the call waits
        yield within(first.closed)

        second = yield within(connect(f"tcp://{host}:{port}", reactor))
        sessions.append(second)
        yield within(second.login_token(token))
        other = second.core.hops[-1]
        assert where[other] != holder
        again = second.attach(key)                    # at the other: redirected to the holder
        connected = yield within(again.connected)
        assert connected.key not in (None, key)
        assert where[second.core.hops[-1]] == holder
        again.hangup()
        end = yield within(again.disconnected)
        assert end.cause == "normal"
        cdrs = yield until(lambda: fe.store.run("cdrs", 5, "alice"))
        assert len(cdrs) == 1 and cdrs[0]["call_server"].startswith(holder + "/")
        assert cdrs[0]["answered"] and cdrs[0]["cause"] == 16
    finally:
        for session in sessions:
            session.close()
        for gw in reversed(nodes):
            yield gw.stopService()
