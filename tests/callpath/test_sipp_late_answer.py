"""No half-answered call: a gateway that answers after callgw gave up on it (real sipp).

sipp's ``uas_late_answer.xml`` sends no provisional response and answers 200 after 3 s, longer
than the 2 s setup timeout these tests give callgw. callgw has by then released that attempt
(and failed over, or told the client); the late 200 must still be ACKed and ended with a BYE,
which sipp checks (its scenario ends only after ACK and BYE, exit code 0).
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from callgw.client.links import connect
from tests.callpath.callgw_env import (PASSWORD, Sipp, client_url, events_of,
                                       prepare_db, settled_cdr, start, within)

pytestmark = pytest.mark.peers("sipp")


@defer.inlineCallbacks
def login(gw):
    session = yield connect(client_url(gw, "tcp"))
    yield session.login("alice", PASSWORD)
    return session


def sipp_saw(sipp, method):
    path = sipp.tmp_path / "sipp_messages.log"
    return path.exists() and f"\n{method} sip:" in path.read_text(errors="replace")


@pytest_twisted.inlineCallbacks
def test_late_answer_after_setup_timeout_is_acked_and_byed(tmp_path):
    late = Sipp("uas_late_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("late", late.port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        end = yield within(call.disconnected)
        assert end.cause != "normal"
        assert (yield late.wait(gw.reactor)) == 0, late.log()
        assert sipp_saw(late, "ACK") and sipp_saw(late, "BYE")
        log = (late.tmp_path / "sipp_messages.log").read_text(errors="replace")
        assert "Reason: Q.850;cause=102" in log          # the setup timeout's cause
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert not cdr["answered"]
    finally:
        yield gw.stopService()
        late.stop()


@pytest_twisted.inlineCallbacks
def test_failover_then_the_first_gateways_late_answer_is_ended(tmp_path):
    # without the BYE, the callee would be answered on two gateways at once
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    late = Sipp("uas_late_answer.xml", tmp_path / "a").start()
    good = Sipp("uas_answer.xml", tmp_path / "b").start()
    prepare_db(tmp_path, gateways=[("late", late.port, ["+49"], {"priority": 1}),
                                   ("good", good.port, ["+49"], {"priority": 2})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call("+4930123456")
        yield within(call.connected)
        assert (yield late.wait(gw.reactor)) == 0, late.log()     # ACK and BYE for its 200
        assert sipp_saw(late, "BYE") and not sipp_saw(good, "BYE")
        call.hangup()
        yield within(call.disconnected)
        assert (yield good.wait(gw.reactor)) == 0, good.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "good" and cdr["stats"]["attempts"] == 2
        assert "failover" in (yield events_of(gw, cdr["call_id"]))
    finally:
        yield gw.stopService()
        late.stop()
        good.stop()
