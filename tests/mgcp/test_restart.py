"""RSIP restart methods (protocols/mgcp/restart.py, and their flow through agent.py): forced
releases the calls, graceful takes no new calls (and ends them after RD:), cancel-graceful
puts the endpoints back, restart marks them down for the restart delay, disconnected audits
with AUEP and AUCX, keeps the calls that survived and marks the endpoints up again."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from protocols.mgcp import events as ev
from protocols.mgcp.codes import RestartMethod
from protocols.mgcp.endpoint import EndpointName
from protocols.mgcp.message import Command
from protocols.mgcp.restart import (TABLE, Audit, EndpointService, ReleaseCalls, ServiceChanged,
                                    ServiceState, ServiceTable)
from protocols.mgcp.transaction import LocalProtocolError, StartTimer, StopTimer
from tests.mgcp import builders as b
from tests.mgcp.test_agent import PEER, agent, of, sent

S = ServiceState


def n(text):
    return EndpointName.parse(text)


def test_each_method_in_the_table():
    svc = EndpointService()
    out = svc.restart(RestartMethod.FORCED)
    assert ServiceChanged(S.OUT_OF_SERVICE, False) in out and any(
        isinstance(e, ReleaseCalls) for e in out)
    out = svc.restart(RestartMethod.GRACEFUL, 30)
    assert StartTimer("RestartDelay", 30.0) in out and svc.state is S.DRAINING
    assert not any(isinstance(e, ReleaseCalls) for e in out)
    out = svc.restart(RestartMethod.CANCEL_GRACEFUL)
    assert out == [StopTimer("RestartDelay"), ServiceChanged(S.IN_SERVICE, True)]
    out = svc.restart(RestartMethod.RESTART, 5)
    assert svc.state is S.RESTARTING and StartTimer("RestartDelay", 5.0) in out
    assert svc.timer_fired("RestartDelay") == [ServiceChanged(S.IN_SERVICE, True)]
    out = svc.restart(RestartMethod.RESTART)                     # no delay: back at once
    assert svc.accepting and ServiceChanged(S.IN_SERVICE, True) in out
    out = svc.restart(RestartMethod.DISCONNECTED)
    assert Audit() in out and svc.state is S.AUDITING and not svc.accepting
    assert svc.audited(True) == [ServiceChanged(S.IN_SERVICE, True)]
    svc.restart(RestartMethod.DISCONNECTED)
    out = svc.audited(False)
    assert svc.state is S.OUT_OF_SERVICE and any(isinstance(e, ReleaseCalls) for e in out)
    assert svc.audited(True) == []                               # a stale audit answer
    with pytest.raises(LocalProtocolError):
        svc.timer_fired("RestartDelay")                          # never started here


def test_graceful_without_delay_drains_until_told_otherwise():
    svc = EndpointService()
    out = svc.restart(RestartMethod.GRACEFUL)
    assert not any(isinstance(e, StartTimer) for e in out) and svc.state is S.DRAINING


def test_table_states_are_the_service_states():
    assert {s for s, _ in TABLE} == set(ServiceState)


@given(st.lists(st.sampled_from(list(RestartMethod)), max_size=12), st.integers(0, 60))
def test_latest_rsip_wins_from_any_state(methods, delay):
    svc = EndpointService()
    for method in methods:
        svc.restart(method, delay)
    expected = {RestartMethod.FORCED: S.OUT_OF_SERVICE, RestartMethod.GRACEFUL: S.DRAINING,
                RestartMethod.CANCEL_GRACEFUL: S.IN_SERVICE,
                RestartMethod.RESTART: S.RESTARTING if delay else S.IN_SERVICE,
                RestartMethod.DISCONNECTED: S.AUDITING}
    assert svc.state is (expected[methods[-1]] if methods else S.IN_SERVICE)


def test_service_table_asks_the_most_specific_rsip():
    table = ServiceTable()
    table.restart(n("aaln/1@gw"), RestartMethod.FORCED)
    assert not table.accepting(n("aaln/1@gw")) and table.accepting(n("aaln/2@gw"))
    table.restart(n("aaln/2@gw"), RestartMethod.GRACEFUL)
    # an RSIP for every endpoint replaces those for single ones
    out = table.restart(n("*@gw"), RestartMethod.RESTART)
    assert {str(name) for name, _ in out} == {"*@gw", "aaln/1@gw", "aaln/2@gw"}
    assert table.accepting(n("aaln/1@gw")) and table.accepting(n("aaln/2@gw"))
    table.restart(n("*@gw"), RestartMethod.FORCED)
    table.restart(n("aaln/3@gw"), RestartMethod.CANCEL_GRACEFUL)
    assert table.accepting(n("aaln/3@gw")) and not table.accepting(n("aaln/4@gw"))


# ---- through the call agent -----------------------------------------------------------------

def restart_delay(effects):
    return [e for e in of(effects, ev.TimerStart) if e.name == "RestartDelay"]


def _crcx():
    return Command("CRCX", 0, f"aaln/$@{b.GW}", (("C", b.CALL_ID), ("M", "recvonly")))


def with_call(a):
    tid, _ = a.send("gw1", _crcx())
    a.datagram_received(b.crcx_ok(tid, z=b.LINE), PEER)
    return a


def test_forced_rsip_releases_the_calls_with_its_reason():
    a = with_call(agent())
    out = a.datagram_received(b.rsip(method="forced", reason="905 facility failure"), PEER)
    assert sent(out)[0].code == 200
    [release] = of(out, ev.ReleaseEndpointCalls)
    assert (release.endpoint, release.reason_code) == (f"*@{b.GW}", 905)
    assert not a.accepting("gw1", b.LINE) and a.connections_of("gw1") == []
    [changed] = of(out, ev.EndpointServiceChanged)
    assert changed.state is S.OUT_OF_SERVICE and not changed.accepting


def test_graceful_then_cancel_graceful():
    a = with_call(agent())
    out = a.datagram_received(b.rsip(tid=1, endpoint=b.LINE, method="graceful", delay=300),
                              PEER)
    assert not of(out, ev.ReleaseEndpointCalls) and not a.accepting("gw1", b.LINE)
    assert a.accepting("gw1", f"aaln/2@{b.GW}")
    [timer] = restart_delay(out)
    assert (timer.name, timer.delay) == ("RestartDelay", 300.0)
    out = a.datagram_received(b.rsip(tid=2, endpoint=b.LINE, method="cancel-graceful"), PEER)
    assert a.accepting("gw1", b.LINE)
    assert ev.TimerStop(timer.key, "RestartDelay") in out
    assert len(a.connections_of("gw1")) == 1


def test_graceful_delay_over_ends_the_calls():
    a = with_call(agent())
    out = a.datagram_received(b.rsip(method="graceful", delay=10), PEER)
    [timer] = restart_delay(out)
    out = a.timer_fired(timer.key, timer.name)
    assert of(out, ev.ReleaseEndpointCalls)
    assert a.service_state("gw1", b.LINE) is S.OUT_OF_SERVICE


def test_restart_with_delay_is_down_until_the_delay_is_over():
    a = with_call(agent())
    out = a.datagram_received(b.rsip(method="restart", delay=20), PEER)
    assert of(out, ev.ReleaseEndpointCalls) and not a.accepting("gw1", b.LINE)
    [timer] = restart_delay(out)
    out = a.timer_fired(timer.key, timer.name)
    assert of(out, ev.EndpointServiceChanged)[0].accepting and a.accepting("gw1", b.LINE)


def test_disconnected_audits_keeps_live_calls_and_releases_lost_ones():
    a = agent()
    with_call(a)
    tid, _ = a.send("gw1", _crcx())
    a.datagram_received(b.crcx_ok(tid, connection_id="0000BEEF", z=f"aaln/2@{b.GW}"), PEER)
    out = a.datagram_received(b.rsip(method="disconnected"), PEER)
    assert not of(out, ev.ReleaseEndpointCalls) and not a.accepting("gw1", b.LINE)
    cmds = sent(out)
    assert cmds[0].code == 200
    auep, *aucx = cmds[1:]
    assert (auep.verb, auep.endpoint) == ("AUEP", f"*@{b.GW}")
    assert sorted((c.verb, c.param("I")) for c in aucx) == [("AUCX", "0000BEEF"),
                                                            ("AUCX", "FDE234C8")]
    lost = next(c for c in aucx if c.param("I") == "0000BEEF")
    kept = next(c for c in aucx if c.param("I") == "FDE234C8")
    out = a.datagram_received(b.ok(lost.tid, 515, "Incorrect connection-id"), PEER)
    [gone] = of(out, ev.ConnectionLost)
    assert (gone.endpoint, gone.connection_id, gone.code) == (f"aaln/2@{b.GW}", "0000BEEF", 515)
    assert not of(a.datagram_received(b.ok(kept.tid), PEER), ev.ConnectionLost)
    out = a.datagram_received(b.ok(auep.tid), PEER)
    assert of(out, ev.EndpointServiceChanged)[0].state is S.IN_SERVICE
    assert a.accepting("gw1", b.LINE)
    assert [c.connection_id for c in a.connections_of("gw1")] == ["FDE234C8"]
    assert not of(out, ev.ResponseReceived)                  # the audit was the agent's own


def test_disconnected_audit_that_fails_takes_the_endpoints_out():
    a = with_call(agent())
    out = a.datagram_received(b.rsip(method="disconnected"), PEER)
    auep = sent(out)[1]
    out = a.datagram_received(b.ok(auep.tid, 500, "FAIL"), PEER)
    assert of(out, ev.ReleaseEndpointCalls) and not a.accepting("gw1", b.LINE)


def test_rsip_for_an_endpoint_we_do_not_manage_is_500():
    a = agent(endpoints=(b.LINE,))
    out = a.datagram_received(b.rsip(endpoint=f"aaln/9@{b.GW}"), PEER)
    assert sent(out)[0].code == 500 and a.accepting("gw1", b.LINE)
