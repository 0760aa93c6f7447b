"""protocols/h323/callstate.py: the Q.931 call-state table and its timers."""
import pytest

from protocols.h323.callstate import CallState as S, CallStateError, Event as E, rows, transition


def test_originating_call_through_to_active():
    state, start, stop = transition(S.NULL, E.SEND_SETUP)
    assert (state, start) == (S.CALL_INITIATED, ("T303",))
    state, start, stop = transition(state, E.RECV_CALL_PROCEEDING)
    assert (state, start, stop) == (S.OUTGOING_CALL_PROCEEDING, ("T310",), ("T303",))
    state, start, stop = transition(state, E.RECV_ALERTING)
    assert (state, start, stop) == (S.CALL_DELIVERED, ("T301",), ("T310",))
    state, start, stop = transition(state, E.RECV_CONNECT)
    assert (state, stop) == (S.ACTIVE, ("T301",))


def test_terminating_call_through_to_active():
    state = S.NULL
    for event in (E.RECV_SETUP, E.SEND_CALL_PROCEEDING, E.SEND_ALERTING, E.SEND_CONNECT):
        state = transition(state, event)[0]
    assert state is S.ACTIVE


@pytest.mark.parametrize("state", [s for s in S if s is not S.NULL])
def test_release_complete_clears_from_every_state(state):
    assert transition(state, E.RECV_RELEASE_COMPLETE)[0] is S.NULL
    assert transition(state, E.SEND_RELEASE_COMPLETE)[2] == ("T303", "T310", "T301")


@pytest.mark.parametrize("state,event", [
    (S.NULL, E.RECV_CONNECT), (S.ACTIVE, E.RECV_ALERTING), (S.CALL_DELIVERED, E.RECV_CALL_PROCEEDING),
    (S.ACTIVE, E.T303_EXPIRY), (S.NULL, E.RECV_NON_CALL_STATE),
])
def test_pairs_without_a_row_are_protocol_errors_with_cause_101(state, event):
    with pytest.raises(CallStateError) as err:
        transition(state, event)
    assert err.value.cause == 101


def test_rows_for_the_docs():
    assert ("NULL", "send Setup", "CALL_INITIATED", "T303", "-") in rows()
