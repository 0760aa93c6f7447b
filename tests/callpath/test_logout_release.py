"""A logout with a call up is a normal release: the client hears ``disconnected`` (cause normal)
for its call before the session closes, sipp (the gateway) gets its BYE, and the CDR says
cause 16 "client logged out" -- not 41 "client vanished"."""
from __future__ import annotations

import pytest
import pytest_twisted

from callgw.client.links import connect
from protocols.client import messages as m
from tests.callpath.callgw_env import (PASSWORD, Sipp, client_url, prepare_db, settled_cdr,
                                       start, within)

pytestmark = pytest.mark.peers("sipp")


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("framing", ["udp", "tcp"])
def test_logout_with_a_call_up_ends_it_normally(tmp_path, framing):
    sipp = Sipp("uas_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        session = yield connect(client_url(gw, framing))
        yield session.login("alice", PASSWORD)
        call = session.call("+4930123456")
        yield within(call.connected)
        order = []
        call.disconnected.addCallback(lambda msg: order.append(("disconnected", msg)) or msg)
        session.closed.addCallback(lambda reason: order.append(("closed", reason)) or reason)
        yield within(session.logout())
        assert [kind for kind, _ in order] == ["disconnected", "closed"], order
        end = order[0][1]
        assert isinstance(end, m.Disconnected) and end.cause == "normal", end
        assert (yield within(sipp.wait(gw.reactor), 20)) == 0, sipp.log()   # BYE answered
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 16 and cdr["cause_text"] == "client logged out", cdr
        assert cdr["stats"]["outcome"] == "answered" and cdr["stats"]["released_by"] == "a"
        assert (yield gw.store.run("active_calls")) == []
    finally:
        yield gw.stopService()
        sipp.stop()
