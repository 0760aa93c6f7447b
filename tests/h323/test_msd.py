"""protocols/h323/msd.py: H.245 master-slave determination, its decision rule and its table."""
import pytest

from protocols.h323 import msd
from protocols.h323.msd import Input, State


def numbers(*values):
    it = iter(values)
    return lambda _n: next(it)


def sends(effects):
    return [e.message[1][0] for e in effects if isinstance(e, msd.Send)]


@pytest.mark.parametrize("local,remote,expected", [
    ((60, 5), (50, 9), "master"), ((50, 5), (60, 1), "slave"),
    ((60, 5), (60, 6), "master"), ((60, 6), (60, 5), "slave"),
    ((60, 0), (60, 0x7FFFFF), "master"), ((60, 0), (60, 0x800001), "slave"),
    ((60, 7), (60, 7), None), ((60, 0), (60, 0x800000), None),
])
def test_decision_rule_of_h245_8_2_2(local, remote, expected):
    assert msd.decide(local[0], local[1], remote[0], remote[1]) == expected


def test_we_start_and_the_peer_acks():
    m = msd.MasterSlaveDetermination(rng=numbers(100))
    out = m.handle(Input.DETERMINE)
    assert sends(out) == ["masterSlaveDetermination"] and m.state is State.OUTGOING_AWAITING_RESPONSE
    out = m.handle(Input.ACK, {"decision": ("slave", None)})
    assert msd.Determined("slave") in out and sends(out) == ["masterSlaveDeterminationAck"]
    assert out[1].message[1][1]["decision"] == ("master", None)  # the ack tells the peer it is master
    assert m.state is State.IDLE and m.status == "slave"


def test_crossing_requests_are_resolved_by_the_rule():
    m = msd.MasterSlaveDetermination(rng=numbers(100))
    m.handle(Input.DETERMINE)
    out = m.handle(Input.MSD, {"terminalType": 60, "statusDeterminationNumber": 200})
    assert m.state is State.INCOMING_AWAITING_RESPONSE and m.status == "master"
    assert out[1].message[1][1]["decision"] == ("slave", None)
    out = m.handle(Input.ACK, {"decision": ("master", None)})
    assert msd.Determined("master") in out


def test_identical_numbers_retry_with_a_new_number_then_fail_after_n100():
    m = msd.MasterSlaveDetermination(rng=numbers(7, 7, 7, 7))
    m.handle(Input.DETERMINE)
    same = {"terminalType": 60, "statusDeterminationNumber": 7}
    assert sends(m.handle(Input.MSD, same)) == ["masterSlaveDetermination"]
    assert sends(m.handle(Input.MSD, same)) == ["masterSlaveDetermination"]
    out = m.handle(Input.MSD, same)
    assert any(isinstance(e, msd.Failed) for e in out)


def test_incoming_request_when_idle_and_indeterminate_is_rejected():
    m = msd.MasterSlaveDetermination(rng=numbers(7))
    out = m.handle(Input.MSD, {"terminalType": 60, "statusDeterminationNumber": 7})
    assert sends(out) == ["masterSlaveDeterminationReject"] and m.state is State.IDLE


def test_t106_expiry_releases_and_fails():
    m = msd.MasterSlaveDetermination(rng=numbers(1))
    m.handle(Input.DETERMINE)
    out = m.handle(Input.T106_EXPIRY)
    assert sends(out) == ["masterSlaveDeterminationRelease"]
    assert any(isinstance(e, msd.Failed) for e in out)


def test_contradicting_ack_and_unexpected_inputs_fail():
    m = msd.MasterSlaveDetermination(rng=numbers(100))
    m.handle(Input.MSD, {"terminalType": 50, "statusDeterminationNumber": 1})   # we are master
    assert any(isinstance(e, msd.Failed) for e in m.handle(Input.ACK, {"decision": ("slave", None)}))
    m2 = msd.MasterSlaveDetermination()
    assert any(isinstance(e, msd.Failed) for e in m2.handle(Input.ACK, {"decision": ("slave", None)}))
    assert m2.handle(Input.T106_EXPIRY) == []   # no timer runs in Idle: a stale expiry


def test_table_rows_for_the_docs():
    assert ("Idle", "DETERMINE.request", "start") in msd.table()
