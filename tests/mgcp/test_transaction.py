"""MGCP transactions (protocols/mgcp/transaction.py) as RFC 3435 3.5 and 4.3 describe them:
the retransmission schedule (200 ms doubling to 4 s, Max1, Max2, T-MAX), provisional responses
and LONGTRAN-TIMER, the 000 for a final response carrying K:, at-most-once on the server side
(cached responses, auto-provisional while executing, confirmation by 000 or K:), T-HIST, and
Hypothesis over both tables: no input sequence crashes them."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from protocols.mgcp import transaction as tx
from protocols.mgcp.message import Command, Response, encode

CMD = Command("CRCX", 17, "aaln/$@gw", (("C", "1"), ("M", "recvonly")))


def kinds(effects):
    return [type(e).__name__ for e in effects]


def timers(effects):
    return {e.name: e.delay for e in effects if isinstance(e, tx.StartTimer)}


def test_client_backs_off_exponentially_then_gives_up_after_max2():
    t = tx.ClientTransaction(CMD)
    out = t.start()
    assert out[0] == tx.Transmit(encode(CMD), CMD)
    assert timers(out) == {"retransmission": 0.2, "T-MAX": 20.0}
    intervals, slow_at = [], None
    while True:
        out = t.timer_fired("retransmission")
        if any(isinstance(e, tx.TimedOut) for e in out):
            break
        assert out[0] == tx.Transmit(encode(CMD), CMD)       # the same bytes again
        intervals.append(timers(out)["retransmission"])
        if any(isinstance(e, tx.Max1Reached) for e in out):
            slow_at = len(intervals)
    assert intervals == [0.4, 0.8, 1.6, 3.2, 4.0, 4.0, 4.0]   # 7 retransmissions (Max2)
    assert slow_at == 5                                       # Max1
    assert kinds(out) == ["StopTimer", "TimedOut", "Terminated"] and t.terminated


def test_client_t_max_ends_retransmission():
    t = tx.ClientTransaction(CMD, tx.Timers(t_max=1.0))
    t.start()
    out = t.timer_fired("T-MAX")
    assert kinds(out) == ["StopTimer", "TimedOut", "Terminated"]
    assert "T-MAX" in out[1].reason


def test_final_response_is_delivered_once_and_remembered_for_t_hist():
    t = tx.ClientTransaction(CMD)
    t.start()
    final = Response(200, 17, "OK", (("I", "A1"),))
    out = t.receive(final)
    assert tx.Deliver(final) in out and timers(out) == {"T-HIST": 30.0}
    assert t.state is tx.State.COMPLETED
    assert t.receive(final) == []                               # a retransmitted response
    assert t.timer_fired("T-HIST") == [tx.Terminated()]


def test_provisional_stops_backoff_and_longtran_timer_takes_over():
    t = tx.ClientTransaction(CMD)
    t.start()
    out = t.receive(Response(100, 17, "Trying"))
    assert timers(out) == {"LONGTRAN-TIMER": 5.0}
    assert tx.StopTimer("retransmission") in out and tx.StopTimer("T-MAX") in out
    assert t.receive(Response(100, 17)) == []                  # the peer still works on it
    out = t.timer_fired("LONGTRAN-TIMER")
    assert out[0] == tx.Transmit(encode(CMD), CMD)             # ask again, once
    out = t.timer_fired("LONGTRAN-TIMER")                      # a whole period of silence
    assert kinds(out) == ["TimedOut", "Terminated"]


def test_final_after_provisional_carries_k_and_is_acknowledged():
    t = tx.ClientTransaction(CMD)
    t.start()
    t.receive(Response(100, 17))
    final = Response(200, 17, "OK", (("K", ""), ("I", "A1")))
    out = t.receive(final)
    assert tx.SendAck(17) in out and tx.Deliver(final) in out
    assert t.receive(final) == [tx.SendAck(17)]                # its retransmission: ack again


def test_a_different_late_final_is_reported():
    t = tx.ClientTransaction(CMD)
    t.start()
    t.receive(Response(200, 17, "OK", (("Z", "aaln/1@gw"), ("I", "A"))))
    other = Response(200, 17, "OK", (("Z", "aaln/2@gw"), ("I", "B")))
    assert t.receive(other) == [tx.LateResponse(other)]


# ---- server side ---------------------------------------------------------------------------

NTFY = Command("NTFY", 9, "aaln/1@gw", (("X", "1"), ("O", "L/hd")))


def test_duplicate_gets_the_cached_final_response():
    s = tx.ServerTransaction(NTFY)
    ok = Response(200, 9, "OK")
    out = s.respond(ok)
    assert out[0] == tx.Transmit(encode(ok), ok) and timers(out) == {"T-HIST": 30.0}
    assert s.duplicate() == [tx.Transmit(encode(ok), ok)]      # never executed twice
    assert s.timer_fired("T-HIST") == [tx.Terminated()]


def test_duplicate_while_executing_gets_a_provisional_and_the_final_then_needs_000():
    s = tx.ServerTransaction(NTFY)
    out = s.duplicate()
    assert out[0].message.code == 100
    out = s.respond(Response(200, 9, "OK"))
    sent = out[0].message
    assert sent.has("K") and sent.param("K") == ""             # asks for a 000
    assert timers(out) == {"retransmission": 0.2, "T-MAX": 20.0}
    assert s.timer_fired("retransmission")[0].message == sent  # retransmitted until acked
    out = s.acknowledged()
    assert tx.StopTimer("retransmission") in out and s.state is tx.State.CONFIRMED
    assert s.duplicate() == []                                 # confirmed: discarded


def test_unacknowledged_final_gives_up_and_stays_cached():
    s = tx.ServerTransaction(NTFY, tx.Timers(max2=1))
    s.respond(Response(100, 9))
    s.respond(Response(200, 9, "OK"))
    s.timer_fired("retransmission")
    out = s.timer_fired("retransmission")
    assert tx.AckTimedOut() in out and s.state is tx.State.COMPLETED
    assert s.duplicate()[0].message.code == 200


def test_k_acknowledgement_drops_the_cached_response():
    s = tx.ServerTransaction(NTFY)
    s.respond(Response(200, 9, "OK"))
    assert s.confirmed_by_k() == [] and s.final is None
    assert s.duplicate() == []


def test_user_misuse_raises_local_protocol_error():
    s = tx.ServerTransaction(NTFY)
    s.respond(Response(200, 9))
    with pytest.raises(tx.LocalProtocolError):
        s.respond(Response(200, 9))
    with pytest.raises(tx.LocalProtocolError):
        tx.ServerTransaction(NTFY).respond(Response(200, 10))
    t = tx.ClientTransaction(CMD)
    t.start()
    with pytest.raises(tx.LocalProtocolError):
        t.start()


def test_tables_are_named_after_the_rfc():
    states = {row[0] for row in tx.table_rows(tx.ServerTransaction)}
    assert states == {"Executing", "Proceeding", "Completed", "Confirming", "Confirmed"}
    timer_inputs = {row[1] for row in tx.table_rows(tx.ClientTransaction)}
    assert {"retransmission", "T-MAX", "T-HIST", "LONGTRAN-TIMER"} <= timer_inputs


# ---- Hypothesis over the tables -------------------------------------------------------------

_responses = st.builds(Response, st.sampled_from([100, 200, 250, 400, 510, 801]), st.just(17),
                       st.just("x"), st.sampled_from([(), (("K", ""),)]))


@given(st.lists(st.one_of(_responses, st.sampled_from(["retransmission", "T-MAX", "T-HIST",
                                                        "LONGTRAN-TIMER"])), max_size=30))
def test_client_table_never_crashes_on_network_input(inputs):
    t = tx.ClientTransaction(CMD, tx.Timers())
    started = dict(timers(t.start()))
    for item in inputs:
        if isinstance(item, Response):
            out = t.receive(item)
        elif item in started:                # only timers the transaction started fire
            del started[item]
            out = t.timer_fired(item)
        else:
            continue
        for e in out:
            if isinstance(e, tx.StartTimer):
                started[e.name] = e.delay
            elif isinstance(e, tx.StopTimer):
                started.pop(e.name, None)
        if t.terminated:
            assert t.receive(Response(200, 17)) == []


@given(st.lists(st.sampled_from(["dup", "ack", "k", "retransmission", "T-MAX", "T-HIST",
                                 "prov", "final"]), max_size=30))
def test_server_table_never_crashes(inputs):
    s = tx.ServerTransaction(NTFY)
    started, answered = {}, False
    for item in inputs:
        try:
            if item == "dup":
                out = s.duplicate()
            elif item == "ack":
                out = s.acknowledged()
            elif item == "k":
                out = s.confirmed_by_k()
            elif item == "prov":
                out = s.respond(Response(100, 9))
            elif item == "final":
                out = s.respond(Response(200, 9))
                answered = True
            elif item in started:
                del started[item]
                out = s.timer_fired(item)
            else:
                continue
        except tx.LocalProtocolError:
            assert item in ("prov", "final") and (answered or s.terminated)
            continue
        for e in out:
            if isinstance(e, tx.StartTimer):
                started[e.name] = e.delay
            elif isinstance(e, tx.StopTimer):
                started.pop(e.name, None)
