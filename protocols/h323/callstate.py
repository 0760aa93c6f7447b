"""Q.931 call states as H.225.0 uses them (Q.931 clause 2.1.1 user-side states, clause 5 procedures;
H.225.0 clause 7.3, where ReleaseComplete alone clears a call).

Owns the table ``(CallState, Event) -> (next CallState, timers to start, timers to stop)`` for both
the originating and the terminating side, and the Q.931 timers H.225.0 keeps: T303 (Setup sent, no
answer: 4 s), T310 (CallProceeding received, no Alerting/Connect: H.225.0 allows 30-120 s) and
T301 (Alerting received, no Connect: at least 3 min). A ``(state, event)`` pair with no row is a
protocol error: the caller of ``transition`` gets ``CallStateError`` and clears the call with cause
101 (message not compatible with call state).

Messages that never change the state (Facility, Information, Status, StatusEnquiry, Notify, and
Progress where it is allowed) have rows that keep the state, so the table also says where each
is accepted.

Tests: tests/h323/test_callstate.py.
"""
from __future__ import annotations

import enum

T303 = 4.0
T310 = 30.0
T301 = 180.0


class CallState(enum.Enum):
    """Q.931 2.1.1 user-side states (the number is the Q.931 call state value, 4.5.7)."""
    NULL = 0                      # U0
    CALL_INITIATED = 1            # U1
    OUTGOING_CALL_PROCEEDING = 3  # U3
    CALL_DELIVERED = 4            # U4
    CALL_PRESENT = 6              # U6
    CALL_RECEIVED = 7             # U7
    INCOMING_CALL_PROCEEDING = 9  # U9
    ACTIVE = 10                   # U10


class Event(enum.Enum):
    SEND_SETUP = "send Setup"
    RECV_SETUP = "receive Setup"
    SEND_CALL_PROCEEDING = "send CallProceeding"
    RECV_CALL_PROCEEDING = "receive CallProceeding"
    SEND_ALERTING = "send Alerting"
    RECV_ALERTING = "receive Alerting"
    SEND_PROGRESS = "send Progress"
    RECV_PROGRESS = "receive Progress"
    SEND_CONNECT = "send Connect"
    RECV_CONNECT = "receive Connect"
    SEND_RELEASE_COMPLETE = "send ReleaseComplete"
    RECV_RELEASE_COMPLETE = "receive ReleaseComplete"
    RECV_NON_CALL_STATE = "receive Facility/Information/Status/StatusEnquiry/Notify"
    T303_EXPIRY = "T303 expiry"
    T310_EXPIRY = "T310 expiry"
    T301_EXPIRY = "T301 expiry"


class CallStateError(Exception):
    """An event the table has no row for: Q.850 cause 101 (or 98 for unknown messages)."""

    def __init__(self, state, event):
        super().__init__(f"{event.value} in call state {state.name} (U{state.value})")
        self.state, self.event = state, event
        self.cause = 101


S = CallState
E = Event
ALL_TIMERS = ("T303", "T310", "T301")
_ALIVE = [s for s in CallState if s is not S.NULL]

#: (state, event) -> (next state, start, stop)
TABLE = {
    # originating side (Q.931 5.1)
    (S.NULL, E.SEND_SETUP): (S.CALL_INITIATED, ("T303",), ()),
    (S.CALL_INITIATED, E.RECV_CALL_PROCEEDING): (S.OUTGOING_CALL_PROCEEDING, ("T310",), ("T303",)),
    (S.CALL_INITIATED, E.RECV_ALERTING): (S.CALL_DELIVERED, ("T301",), ("T303",)),
    (S.CALL_INITIATED, E.RECV_CONNECT): (S.ACTIVE, (), ("T303",)),
    (S.CALL_INITIATED, E.RECV_PROGRESS): (S.CALL_INITIATED, (), ()),
    (S.CALL_INITIATED, E.T303_EXPIRY): (S.NULL, (), ALL_TIMERS),
    (S.OUTGOING_CALL_PROCEEDING, E.RECV_ALERTING): (S.CALL_DELIVERED, ("T301",), ("T310",)),
    (S.OUTGOING_CALL_PROCEEDING, E.RECV_CONNECT): (S.ACTIVE, (), ("T310",)),
    (S.OUTGOING_CALL_PROCEEDING, E.RECV_PROGRESS): (S.OUTGOING_CALL_PROCEEDING, (), ("T310",)),
    (S.OUTGOING_CALL_PROCEEDING, E.RECV_CALL_PROCEEDING): (S.OUTGOING_CALL_PROCEEDING, (), ()),
    (S.OUTGOING_CALL_PROCEEDING, E.T310_EXPIRY): (S.NULL, (), ALL_TIMERS),
    (S.CALL_DELIVERED, E.RECV_CONNECT): (S.ACTIVE, (), ("T301",)),
    (S.CALL_DELIVERED, E.RECV_PROGRESS): (S.CALL_DELIVERED, (), ()),
    (S.CALL_DELIVERED, E.RECV_ALERTING): (S.CALL_DELIVERED, (), ()),
    (S.CALL_DELIVERED, E.T301_EXPIRY): (S.NULL, (), ALL_TIMERS),
    # terminating side (Q.931 5.2)
    (S.NULL, E.RECV_SETUP): (S.CALL_PRESENT, (), ()),
    (S.CALL_PRESENT, E.SEND_CALL_PROCEEDING): (S.INCOMING_CALL_PROCEEDING, (), ()),
    (S.CALL_PRESENT, E.SEND_ALERTING): (S.CALL_RECEIVED, (), ()),
    (S.CALL_PRESENT, E.SEND_CONNECT): (S.ACTIVE, (), ()),
    (S.INCOMING_CALL_PROCEEDING, E.SEND_ALERTING): (S.CALL_RECEIVED, (), ()),
    (S.INCOMING_CALL_PROCEEDING, E.SEND_PROGRESS): (S.INCOMING_CALL_PROCEEDING, (), ()),
    (S.INCOMING_CALL_PROCEEDING, E.SEND_CONNECT): (S.ACTIVE, (), ()),
    (S.CALL_RECEIVED, E.SEND_PROGRESS): (S.CALL_RECEIVED, (), ()),
    (S.CALL_RECEIVED, E.SEND_CONNECT): (S.ACTIVE, (), ()),
}
# H.225.0 7.3 needs no CONNECT ACKNOWLEDGE: the answering side is Active (U10) once Connect is
# sent, so Connect Request (U8) is never entered.
for _s in _ALIVE:
    TABLE[(_s, E.SEND_RELEASE_COMPLETE)] = (S.NULL, (), ALL_TIMERS)
    TABLE[(_s, E.RECV_RELEASE_COMPLETE)] = (S.NULL, (), ALL_TIMERS)
    TABLE.setdefault((_s, E.RECV_NON_CALL_STATE), (_s, (), ()))
# ReleaseComplete on an idle call reference is answered by nothing (Q.931 5.8.3.2 c)
TABLE[(S.NULL, E.RECV_RELEASE_COMPLETE)] = (S.NULL, (), ())


def transition(state: CallState, event: Event):
    """``(next state, timers to start, timers to stop)``; ``CallStateError`` without a row."""
    try:
        return TABLE[(state, event)]
    except KeyError:
        raise CallStateError(state, event) from None


def rows():
    """The table as text rows (state, event, next, start, stop) for docs/protocols/h323.md."""
    return [(s.name, e.value, n.name, ",".join(start) or "-", ",".join(stop) or "-")
            for (s, e), (n, start, stop) in TABLE.items()]
