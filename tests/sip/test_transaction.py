"""RFC 3261 section 17 transactions (with RFC 6026), driven as plain functions.

The cores return effects; these tests read them like the RFC's figures 5-8. Timers are the
effects' delays (the adapter tests check them against a task.Clock).
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.sip import transaction as t
from protocols.sip.message import make_response, parse_message
from tests.sip import builders

T = t.TimerConfig(t1=0.5, t2=4.0, t4=5.0)


def invite(**kw):
    return parse_message(builders.invite(**kw))


def request(method, **kw):
    return parse_message(builders.request(method, **kw))


def response(req, status, to_tag="totag"):
    return make_response(req, status, to_tag=to_tag)


def kinds(effects):
    return [type(e).__name__ + (f":{e.name}" if hasattr(e, "name") else "") for e in effects]


def timer(effects, name):
    return next(e.delay for e in effects if isinstance(e, t.StartTimer) and e.name == name)


# ---- client INVITE (figure 5 / RFC 6026 figure 3) ----

def test_client_invite_udp_starts_timers_a_and_b():
    tx = t.new_client(invite(), reliable=False, timers=T)
    out = tx.start()
    assert isinstance(out[0], t.Transmit)
    assert timer(out, "A") == 0.5 and timer(out, "B") == 32.0
    assert tx.state is t.State.CALLING


def test_client_invite_tcp_has_no_timer_a():
    tx = t.new_client(invite(), reliable=True, timers=T)
    assert "StartTimer:A" not in kinds(tx.start())


def test_timer_a_doubles_without_cap():
    tx = t.new_client(invite(), reliable=False, timers=T)
    tx.start()
    delays = [timer(tx.timer_fired("A"), "A") for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_timer_b_times_out():
    tx = t.new_client(invite(), reliable=False, timers=T)
    tx.start()
    out = tx.timer_fired("B")
    assert kinds(out) == ["TimedOut:B", "Terminated"]
    assert tx.terminated


def test_provisional_moves_to_proceeding_and_stops_retransmission():
    req = invite()
    tx = t.new_client(req, reliable=False, timers=T)
    tx.start()
    out = tx.receive(response(req, 180))
    assert tx.state is t.State.PROCEEDING
    assert kinds(out) == ["StopTimer:A", "StopTimer:B", "Deliver"]
    assert kinds(tx.receive(response(req, 183))) == ["Deliver"]


def test_non_2xx_final_sends_ack_in_transaction_and_waits_timer_d():
    req = invite()
    tx = t.new_client(req, reliable=False, timers=T)
    tx.start()
    tx.receive(response(req, 100))
    resp = response(req, 486)
    out = tx.receive(resp)
    ack = next(e.message for e in out if isinstance(e, t.Transmit))
    assert ack.method == "ACK"
    assert ack.cseq == (1, "ACK")
    assert ack.branch == req.branch            # 17.1.1.3: same branch as the INVITE
    assert ack.to_tag == "totag"
    assert ack.uri == req.uri
    assert timer(out, "D") == 32.0
    assert tx.state is t.State.COMPLETED
    # a retransmitted final response gets the same ACK again, not passed up
    again = tx.receive(resp)
    assert kinds(again) == ["Transmit"] and again[0].message is ack
    assert kinds(tx.timer_fired("D")) == ["Terminated"]


def test_non_2xx_over_tcp_terminates_at_once():
    req = invite()
    tx = t.new_client(req, reliable=True, timers=T)
    tx.start()
    out = tx.receive(response(req, 503))
    assert kinds(out)[-1] == "Terminated" and tx.terminated


def test_2xx_enters_accepted_and_passes_retransmissions_up():
    req = invite()
    tx = t.new_client(req, reliable=False, timers=T)
    tx.start()
    ok = response(req, 200)
    out = tx.receive(ok)
    assert tx.state is t.State.ACCEPTED
    assert timer(out, "M") == 32.0
    assert "Transmit" not in kinds(out)        # the TU sends the ACK for a 2xx
    assert kinds(tx.receive(ok)) == ["Deliver"]
    assert kinds(tx.timer_fired("M")) == ["Terminated"]


# ---- client non-INVITE (figure 6) ----

def test_non_invite_timer_e_caps_at_t2_and_proceeding_uses_t2():
    req = request("OPTIONS")
    tx = t.new_client(req, reliable=False, timers=T)
    out = tx.start()
    assert timer(out, "E") == 0.5 and timer(out, "F") == 32.0
    delays = [timer(tx.timer_fired("E"), "E") for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    tx.receive(response(req, 100))
    assert timer(tx.timer_fired("E"), "E") == 4.0


def test_non_invite_final_waits_timer_k_then_absorbs():
    req = request("BYE", to_tag="x")
    tx = t.new_client(req, reliable=False, timers=T)
    tx.start()
    out = tx.receive(response(req, 200))
    assert timer(out, "K") == 5.0
    assert tx.receive(response(req, 200)) == []
    assert kinds(tx.timer_fired("K")) == ["Terminated"]


def test_non_invite_timer_f():
    tx = t.new_client(request("OPTIONS"), reliable=False, timers=T)
    tx.start()
    assert kinds(tx.timer_fired("F")) == ["TimedOut:F", "Terminated"]


def test_transport_error_fails_the_transaction():
    tx = t.new_client(request("OPTIONS"), reliable=True, timers=T)
    tx.start()
    assert kinds(tx.transport_error()) == ["Failed", "Terminated"]


# ---- server INVITE (figure 7 / RFC 6026 figure 5) ----

def test_server_invite_retransmits_final_on_timer_g_until_ack():
    req = invite()
    tx = t.new_server(req, reliable=False, timers=T)
    assert tx.state is t.State.PROCEEDING
    assert tx.receive(req) == []                  # nothing sent yet: nothing to resend
    out = tx.respond(response(req, 100))
    assert kinds(out) == ["Transmit"]
    assert kinds(tx.receive(req)) == ["Transmit"]  # resend the last provisional
    out = tx.respond(response(req, 486))
    assert timer(out, "G") == 0.5 and timer(out, "H") == 32.0
    assert [timer(tx.timer_fired("G"), "G") for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    ack = request("ACK", cseq=1, to_tag="totag")
    out = tx.receive(ack)
    assert tx.state is t.State.CONFIRMED
    assert timer(out, "I") == 5.0
    assert tx.receive(ack) == []
    assert kinds(tx.timer_fired("I")) == ["Terminated"]


def test_server_invite_timer_h():
    req = invite()
    tx = t.new_server(req, reliable=False, timers=T)
    tx.respond(response(req, 403))
    assert kinds(tx.timer_fired("H")) == ["TimedOut:H", "Terminated"]


def test_server_invite_2xx_accepted_absorbs_invite_passes_ack():
    req = invite()
    tx = t.new_server(req, reliable=False, timers=T)
    out = tx.respond(response(req, 200))
    assert tx.state is t.State.ACCEPTED and timer(out, "L") == 32.0
    assert tx.receive(req) == []
    ack = request("ACK", to_tag="totag", branch="z9hG4bKother")
    assert kinds(tx.receive(ack)) == ["Deliver"]
    assert kinds(tx.respond(response(req, 200))) == ["Transmit"]   # TU's 2xx retransmission
    assert kinds(tx.timer_fired("L")) == ["Terminated"]


def test_server_non_invite():
    req = request("OPTIONS")
    tx = t.new_server(req, reliable=False, timers=T)
    assert tx.receive(req) == []
    tx.respond(response(req, 100))
    assert tx.state is t.State.PROCEEDING
    out = tx.respond(response(req, 200))
    assert timer(out, "J") == 32.0
    assert kinds(tx.receive(req)) == ["Transmit"]
    assert kinds(tx.timer_fired("J")) == ["Terminated"]


def test_server_non_invite_reliable_terminates_at_once():
    req = request("OPTIONS")
    tx = t.new_server(req, reliable=True, timers=T)
    assert kinds(tx.respond(response(req, 200))) == ["Transmit", "Terminated"]


# ---- the tables' edges ----

def test_tu_input_not_in_table_is_a_local_error():
    req = request("OPTIONS")
    tx = t.new_server(req, reliable=False, timers=T)
    tx.respond(response(req, 200))
    with pytest.raises(t.LocalProtocolError):
        tx.respond(response(req, 200))


def test_network_input_not_in_table_fails_the_transaction():
    tx = t.new_client(invite(), reliable=False, timers=T)
    tx.start()
    out = tx.timer_fired("K")                      # no Timer K for an INVITE client
    assert kinds(out) == ["Failed", "Terminated"]


def test_ack_never_makes_a_server_transaction():
    with pytest.raises(t.LocalProtocolError):
        t.new_server(request("ACK"), reliable=False)


def test_timer_config_is_configurable():
    tx = t.new_client(invite(), reliable=False, timers=t.TimerConfig(t1=0.1, t2=1.0, t4=1.0))
    out = tx.start()
    assert timer(out, "A") == 0.1 and abs(timer(out, "B") - 6.4) < 1e-9


# ---- matching (17.1.3, 17.2.3) ----

def test_response_matching_by_branch_and_cseq_method():
    table = t.TransactionTable()
    req = invite()
    tx = t.new_client(req, reliable=False)
    table.add(tx)
    assert table.match_response(response(req, 180)) is tx
    cancel = request("CANCEL", branch=req.branch)
    assert table.match_response(response(cancel, 200)) is None   # CANCEL is its own tx
    other = invite(branch="z9hG4bKother")
    assert table.match_response(response(other, 180)) is None


def test_server_matching_rfc3261_ack_and_cancel():
    table = t.TransactionTable()
    req = invite()
    tx = t.new_server(req, reliable=False)
    table.add(tx)
    assert table.match_request(invite()) is tx                  # retransmission
    assert table.match_request(request("ACK", to_tag="x")) is tx  # same branch: non-2xx ACK
    assert table.match_request(request("ACK", branch="z9hG4bKnew")) is None
    assert table.invite_for_cancel(request("CANCEL")) is tx
    assert table.match_request(invite(via_host="192.0.2.99:5060")) is None   # other sent-by


def test_server_matching_rfc2543_fallback():
    table = t.TransactionTable()
    req = invite(branch="oldstyle1")
    tx = t.new_server(req, reliable=False)
    table.add(tx)
    assert tx.key[0] == "2543"
    assert table.match_request(invite(branch="oldstyle1")) is tx
    assert table.match_request(invite(branch="oldstyle1", cseq=2)) is None
    tx.respond(response(req, 486, to_tag="ours"))
    assert table.match_request(request("ACK", branch="oldstyle1", to_tag="ours")) is tx
    assert table.match_request(request("ACK", branch="oldstyle1", to_tag="theirs")) is None


# ---- state tables under random input ----

_INPUTS = ["1xx", "2xx", "4xx", "A", "B", "D", "E", "F", "K", "M", "err"]


@given(st.lists(st.sampled_from(_INPUTS), max_size=30), st.booleans(), st.booleans())
def test_client_tables_never_raise_on_network_input(steps, is_invite, reliable):
    req = invite() if is_invite else request("OPTIONS")
    tx = t.new_client(req, reliable=reliable)
    tx.start()
    for step in steps:
        if step == "err":
            out = tx.transport_error()
        elif step[0].isdigit():
            out = tx.receive(response(req, {"1xx": 180, "2xx": 200, "4xx": 404}[step]))
        else:
            out = tx.timer_fired(step)
        assert all(isinstance(e, (t.Transmit, t.StartTimer, t.StopTimer, t.Deliver,
                                  t.TimedOut, t.Failed, t.Terminated)) for e in out)
        if any(isinstance(e, t.Terminated) for e in out):
            assert tx.terminated


def test_docs_diagrams_are_drawn_from_the_tables():
    from pathlib import Path
    doc = (Path(__file__).parents[2] / "docs" / "protocols" / "sip-sessions.md").read_text()
    for cls in (t.ClientInvite, t.ClientNonInvite, t.ServerInvite, t.ServerNonInvite):
        assert t.mermaid(cls) in doc, f"regenerate the {cls.__name__} diagram"


_SERVER_INPUTS = ["request", "ack", "1xx", "2xx", "4xx", "G", "H", "I", "J", "L", "err"]


@given(st.lists(st.sampled_from(_SERVER_INPUTS), max_size=30), st.booleans(), st.booleans())
def test_server_tables_raise_only_local_errors(steps, is_invite, reliable):
    req = invite() if is_invite else request("OPTIONS")
    tx = t.new_server(req, reliable=reliable)
    for step in steps:
        try:
            if step == "err":
                out = tx.transport_error()
            elif step == "request":
                out = tx.receive(req)
            elif step == "ack":
                out = tx.receive(request("ACK", to_tag="totag"))
            elif step[0].isdigit():
                out = tx.respond(response(req, {"1xx": 180, "2xx": 200, "4xx": 404}[step]))
            else:
                out = tx.timer_fired(step)
        except t.LocalProtocolError:
            assert step[0].isdigit()            # only the TU can misuse the table
            continue
        if any(isinstance(e, t.Terminated) for e in out):
            assert tx.terminated
