"""The call agent core (protocols/mgcp/agent.py) fed bytes, as a gateway would send them:
commands matched to responses, the Z: name used from then on, connections tracked, K: sent
back, 000 for a final carrying K:, a stray second connection cleaned up, and every kind of bad
input answered with RFC 3435's code (510, 528, 504, 500, 511, 539, 536) or dropped with a
reason, never an exception."""
from __future__ import annotations

import pytest

from protocols.mgcp import events as ev
from protocols.mgcp.agent import CallAgent
from protocols.mgcp.endpoint import OSMO_MGW, EndpointName
from protocols.mgcp.message import Command, Response, parse_datagram
from tests.mgcp import builders as b

GW_HOST, GW_PORT = "192.0.2.7", 2427
PEER = (GW_HOST, GW_PORT)


def agent(dialect=None, endpoints=("aaln/$@" + b.GW,)):
    a = CallAgent(first_tid=100)
    kw = {"dialect": dialect} if dialect else {}
    a.add_gateway(ev.Gateway("gw1", GW_HOST, GW_PORT,
                             tuple(EndpointName.parse(e) for e in endpoints), **kw))
    return a


def sent(effects, peer=PEER):
    out = []
    for e in effects:
        if isinstance(e, ev.Send):
            assert e.peer == peer
            out += parse_datagram(e.data)
    return out


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


# ---- our commands ---------------------------------------------------------------------------

def test_wildcard_crcx_yields_the_specific_endpoint_and_tracks_the_connection():
    a = agent()
    tid, out = a.send("gw1", Command("CRCX", 0, f"aaln/$@{b.GW}", (("C", b.CALL_ID),
                                                                 ("M", "recvonly"))))
    assert tid == 100 and sent(out)[0].tid == 100
    out = a.datagram_received(b.crcx_ok(tid, z=b.LINE), PEER)
    [got] = of(out, ev.ResponseReceived)
    assert got.endpoint == b.LINE and got.response.param("I") == "FDE234C8"
    assert got.response.sdp == b.SDP_GATEWAY
    [conn] = a.connections_of("gw1")
    assert (str(conn.endpoint), conn.connection_id, conn.call_id) == (b.LINE, "FDE234C8",
                                                                       b.CALL_ID)
    # the next command acknowledges that response (K:), and a DLCX forgets the connection
    tid2, out = a.send("gw1", Command("DLCX", 0, b.LINE, (("C", b.CALL_ID), ("I", "FDE234C8"))))
    assert sent(out)[0].param("K") == "100"
    out = a.datagram_received(b.dlcx_ok(tid2), PEER)
    assert of(out, ev.ResponseReceived)[0].response.code == 250
    assert a.connections_of("gw1") == []


def test_crcx_answer_without_z_for_a_wildcard_fails_the_command():
    a = agent()
    tid, _ = a.send("gw1", Command("CRCX", 0, f"aaln/$@{b.GW}", (("C", "1"),)))
    out = a.datagram_received(b.crcx_ok(tid), PEER)
    [failed] = of(out, ev.CommandFailed)
    assert "no Z:" in failed.reason


def test_final_response_with_k_gets_000_and_provisional_is_reported():
    a = agent()
    tid, _ = a.send("gw1", Command("AUEP", 0, b.LINE))
    out = a.datagram_received(b.ok(tid, 100, "Trying"), PEER)
    assert of(out, ev.Provisional)[0].tid == tid
    out = a.datagram_received(b.lines(f"200 {tid} OK", "K:"), PEER)
    assert sent(out) == [Response(0, tid)]
    assert of(out, ev.ResponseReceived)


def test_responses_from_elsewhere_or_for_nothing_are_dropped():
    a = agent()
    tid, _ = a.send("gw1", Command("AUEP", 0, b.LINE))
    out = a.datagram_received(b.ok(tid), ("198.51.100.1", GW_PORT))
    assert of(out, ev.Dropped) and not of(out, ev.ResponseReceived)
    assert of(a.datagram_received(b.ok(9999), PEER), ev.Dropped)
    assert of(a.datagram_received(b.ok(tid), PEER), ev.ResponseReceived)


def test_late_second_answer_to_a_wildcard_crcx_is_deleted():
    a = agent(OSMO_MGW, endpoints=("rtpbridge/*@mgw",))
    tid, _ = a.send("gw1", Command("CRCX", 0, "rtpbridge/*@mgw", (("C", "abc"),)))
    a.datagram_received(b.crcx_ok(tid, "AAAA", z="rtpbridge/1@mgw"), PEER)
    out = a.datagram_received(b.crcx_ok(tid, "BBBB", z="rtpbridge/2@mgw"), PEER)
    [stray] = of(out, ev.StrayConnection)
    assert (stray.endpoint, stray.connection_id) == ("rtpbridge/2@mgw", "BBBB")
    [dlcx] = sent(out)
    assert (dlcx.verb, dlcx.endpoint, dlcx.param("I"), dlcx.param("C")) == (
        "DLCX", "rtpbridge/2@mgw", "BBBB", "abc")
    # its answer is ours alone: the user hears nothing of it
    assert not of(a.datagram_received(b.ok(dlcx.tid, 250), PEER), ev.ResponseReceived)
    assert [str(c.endpoint) for c in a.connections_of("gw1")] == ["rtpbridge/1@mgw"]


def test_no_response_ack_for_a_gateway_that_refuses_it():
    a = agent(OSMO_MGW, endpoints=("rtpbridge/*@mgw",))
    tid, _ = a.send("gw1", Command("AUEP", 0, "rtpbridge/1@mgw"))
    a.datagram_received(b.ok(tid), PEER)
    _, out = a.send("gw1", Command("AUEP", 0, "rtpbridge/1@mgw"))
    assert not sent(out)[0].has("K")


# ---- the gateway's commands -----------------------------------------------------------------

def test_ntfy_is_handed_over_and_answered_once():
    a = agent()
    out = a.datagram_received(b.ntfy(observed="L/hd"), PEER)
    [note] = of(out, ev.Notified)
    assert note.endpoint == b.LINE and note.request_id == b.REQUEST_ID
    assert [str(e) for e in note.events] == ["L/hd"]
    assert sent(out) == []
    out = a.respond(note.key, 200)
    assert sent(out) == [Response(200, 2002, "OK")]
    # a retransmitted NTFY is answered from the cache, not handed over again
    out = a.datagram_received(b.ntfy(observed="L/hd"), PEER)
    assert sent(out) == [Response(200, 2002, "OK")] and not of(out, ev.Notified)
    with pytest.raises(Exception):
        a.respond(note.key, 200)


def test_k_in_a_gateway_command_confirms_our_cached_responses():
    a = agent()
    note = of(a.datagram_received(b.ntfy(tid=50), PEER), ev.Notified)[0]
    a.respond(note.key, 200)
    a.datagram_received(b.lines(*b.ntfy(tid=51).decode().splitlines(), "K: 50"), PEER)
    assert sent(a.datagram_received(b.ntfy(tid=50), PEER)) == []    # confirmed: discarded


def test_gateway_dlcx_reports_reason_and_statistics():
    a = agent()
    tid, _ = a.send("gw1", Command("CRCX", 0, b.LINE, (("C", b.CALL_ID),)))
    a.datagram_received(b.crcx_ok(tid), PEER)
    out = a.datagram_received(b.gateway_dlcx(), PEER)
    assert sent(out) == [Response(200, 1213, "OK")]
    [gone] = of(out, ev.ConnectionDeleted)
    assert (gone.endpoint, gone.connection_id, gone.call_id, gone.reason_code) == (
        b.LINE, "FDE234C8", b.CALL_ID, 900)
    assert gone.stats.packets_sent == 1245 and gone.stats.latency_ms == 48
    assert a.connections_of("gw1") == []


@pytest.mark.parametrize("data, code", [
    (b"FOOO 5 aaln/1@rgw-2567.whatever.net MGCP 1.0\n", 504),
    (b.crcx(tid=5), 504),                                           # not for a call agent
    (b.ntfy(tid=5, endpoint="aaln/1@elsewhere.net"), 500),
    (b.ntfy(tid=5, endpoint="aaln1"), 500),
    (b.lines("NTFY 5 aaln/1@rgw-2567.whatever.net MGCP 1.0", "X: 1"), 510),   # no O:
    (b.lines(*b.ntfy(tid=5).decode().splitlines(), "X: 2"), 510),            # X: twice
    (b.lines(*b.ntfy(tid=5).decode().splitlines(), "X+Foo: 1"), 511),
    (b.lines(*b.ntfy(tid=5).decode().splitlines(), "Q9: 1"), 539),
    (b.lines(*b.ntfy(tid=5).decode().splitlines(), "K: x-y"), 510),
    (b.ntfy(tid=5, observed="L/hd("), 510),
    (b.rsip(tid=5, method="reboot"), 536),
    (b.rsip(tid=5, delay="soon"), 510),
    (b"NTFY 5 aaln/1@rgw-2567.whatever.net MGCP 1.0\nno colon here\n", 510),
    (b"NTFY 5 aaln/1@rgw-2567.whatever.net MGCP 3.0\nX: 1\nO: L/hd\n", 528),
])
def test_bad_commands_get_the_rfc_code(data, code):
    a = agent()
    out = a.datagram_received(data, PEER)
    [answer] = sent(out)
    assert (answer.code, answer.tid) == (code, 5), answer
    [rejected] = of(out, ev.Rejected)
    assert rejected.code == code and rejected.reason
    assert not of(out, ev.Notified)
    assert sent(a.datagram_received(data, PEER)) == [answer]         # the same answer again


def test_extension_parameters_are_ignored_and_lower_case_names_read():
    a = agent()
    data = b.lines("ntfy 5 aaln/1@rgw-2567.whatever.net mgcp 1.0", "x: 1", "o: L/hu", "X-Foo: 1")
    assert of(a.datagram_received(data, PEER), ev.Notified)


def test_commands_from_another_host_are_refused_and_not_remembered():
    a = agent()
    out = a.datagram_received(b.ntfy(tid=5), ("198.51.100.9", 2427))
    assert sent(out, ("198.51.100.9", 2427))[0].code == 500
    assert a.servers == {}


def test_unreadable_input_without_transaction_id_is_dropped():
    a = agent()
    out = a.datagram_received(b"\x00\xffgarbage", PEER)
    assert sent(out) == [] and of(out, ev.Dropped)
    assert of(a.datagram_received(b"200 xyz\n", PEER), ev.Dropped)
    assert a.datagram_received(b"000 77\n", PEER) == [ev.Received(PEER, Response(0, 77))]


def test_transaction_ids_wrap_and_skip_those_in_use():
    a = CallAgent(first_tid=999_999_999)
    a.add_gateway(ev.Gateway("g", GW_HOST, endpoints=(EndpointName.parse("a/1@g"),)))
    assert a.send("g", Command("AUEP", 0, "a/1@g"))[0] == 999_999_999
    assert a.send("g", Command("AUEP", 0, "a/1@g"))[0] == 1
    a._next = 999_999_999
    assert a.send("g", Command("AUEP", 0, "a/1@g"))[0] == 2
