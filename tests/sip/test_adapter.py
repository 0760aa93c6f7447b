"""The Twisted adapter: fake UDP transport, StringTransport TCP (byte at a time), task.Clock.

RFC timers are tested by advancing the clock, never by sleeping.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from protocols.sip import session as s
from protocols.sip.uac_session import UacSession
from protocols.sip.adapter import PingError, SipEndpoint
from protocols.sip.message import StreamFramer, make_response, parse_message
from tests.sip import builders

GW = ("192.0.2.5", 5060)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
      b"m=audio 4000 RTP/AVP 0\r\n"


class FakeDatagram:
    """Records ``write(data, addr)`` like a UDP port's transport."""

    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append((parse_message(data), addr))

    def messages(self):
        return [m for m, _ in self.sent]


class Listener:
    def __init__(self):
        self.events = []
        self.traces = []

    def session_event(self, session, event):
        self.events.append(event)

    def sip_message(self, direction, message):
        self.traces.append((direction, message))

    def kinds(self):
        return [type(e).__name__ for e in self.events]


def endpoint():
    reactor = MemoryReactorClock()
    ep = SipEndpoint(reactor, "127.0.0.1", 5070)
    udp = FakeDatagram()
    ep.attach_datagram_transport(udp)
    return ep, reactor, udp


def call(ep, transport="udp"):
    listener = Listener()
    profile = s.Profile("127.0.0.1", 5070, GW[0], GW[1], transport=transport,
                        timers=ep.timers)
    session = UacSession(profile, "+4930123", "+4940555")
    ep.register(session, listener)
    ep.execute(session, session.start(SDP))
    return session, listener


def reply(ep, request, status, body=b"", to_tag="gw1", addr=GW):
    resp = make_response(request, status, to_tag=to_tag,
                         headers=[("Contact", "<sip:gw@192.0.2.5:5060>")])
    resp.body = body
    ep.data_received(resp.to_bytes(), "udp", addr[0], addr[1], None)
    return resp


def test_invite_retransmitted_on_udp_until_a_provisional():
    ep, clock, udp = endpoint()
    session, listener = call(ep)
    assert len(udp.sent) == 1 and udp.sent[0][1] == GW
    clock.advance(0.5)
    assert len(udp.sent) == 2                       # Timer A = T1
    clock.advance(0.99)
    assert len(udp.sent) == 2
    clock.advance(0.01)
    assert len(udp.sent) == 3                       # then 2*T1
    invite = udp.messages()[0]
    reply(ep, invite, 100)
    clock.advance(60)
    assert len(udp.sent) == 3
    assert listener.kinds() == ["Progress"]
    assert [d for d, _ in listener.traces] == ["out", "out", "out", "in"]


def test_timer_b_rejects_with_408():
    ep, clock, udp = endpoint()
    session, listener = call(ep)
    clock.advance(31.9)
    assert listener.events == []
    clock.advance(0.2)
    assert listener.kinds() == ["Rejected", "Closed"]
    assert listener.events[0].status == 408
    assert not ep.table.clients and not ep._timers


def test_answer_ack_and_retransmitted_2xx_after_timer_m():
    ep, clock, udp = endpoint()
    session, listener = call(ep)
    invite = udp.messages()[0]
    reply(ep, invite, 200, SDP)
    ack = udp.messages()[-1]
    assert ack.method == "ACK" and udp.sent[-1][1] == GW
    assert listener.kinds() == ["Answered"]
    reply(ep, invite, 200, SDP)                       # inside Timer M: the transaction passes it
    assert udp.messages()[-1].method == "ACK"
    clock.advance(33)                                 # Timer M gone: the dialog still re-ACKs
    assert not ep.table.clients
    reply(ep, invite, 200, SDP)
    assert [m.method for m in udp.messages()[-3:]] == ["ACK", "ACK", "ACK"]


def test_bye_from_the_gateway_is_answered_and_reported():
    ep, clock, udp = endpoint()
    session, listener = call(ep)
    reply(ep, udp.messages()[0], 200, SDP)
    bye = builders.request("BYE", uri="sip:callgw@127.0.0.1:5070", to_tag=session.local_tag,
                           call_id=session.call_id, from_tag="gw1", cseq=9,
                           branch="z9hG4bKbye1", via_host="192.0.2.5:5099")
    ep.data_received(bye, "udp", "192.0.2.5", 5099, None)
    ok, addr = udp.sent[-1]
    assert ok.status == 200 and addr == ("192.0.2.5", 5099)     # rport: the source port
    assert listener.kinds() == ["Answered", "Ended", "Closed"]
    ep.data_received(bye, "udp", "192.0.2.5", 5099, None)        # retransmission: same answer
    assert udp.sent[-1][0].status == 200
    late = bye.replace(b"z9hG4bKbye1", b"z9hG4bKbye2").replace(b"CSeq: 9", b"CSeq: 8")
    ep.register(session, listener)                # still our dialog: an out-of-order request
    ep.data_received(late, "udp", "192.0.2.5", 5099, None)
    assert udp.sent[-1][0].status == 500 and udp.sent[-1][0].reason == "CSeq out of order"


def test_out_of_dialog_options_gets_200_with_received_and_rport():
    ep, clock, udp = endpoint()
    data = builders.request("OPTIONS", via_host="10.0.0.1:5060")
    ep.data_received(data, "udp", "192.0.2.77", 4444, None)
    resp, addr = udp.sent[-1]
    assert resp.status == 200
    assert resp.top_via.received == "192.0.2.77" and resp.top_via.rport == 4444
    assert addr == ("192.0.2.77", 4444)


def test_out_of_dialog_invite_gets_403_retransmitted_until_ack():
    ep, clock, udp = endpoint()
    ep.data_received(builders.invite(), "udp", "192.0.2.10", 5060, None)
    assert udp.messages()[-1].status == 403
    clock.advance(0.5)
    assert len(udp.sent) == 2                          # Timer G
    ack = builders.request("ACK", to_tag=udp.messages()[-1].to_tag)
    ep.data_received(ack, "udp", "192.0.2.10", 5060, None)
    clock.advance(10)
    assert len(udp.sent) == 2


def test_malformed_request_gets_400_and_responses_are_never_answered():
    ep, clock, udp = endpoint()
    bad = builders.invite().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: lots\r\n")
    ep.data_received(bad, "udp", "192.0.2.10", 5060, None)
    assert udp.messages()[-1].status == 400
    assert "Max-Forwards" in udp.messages()[-1].reason
    ep.data_received(builders.ok_200(), "udp", "192.0.2.10", 5060, None)   # stray: dropped
    ep.data_received(b"\r\n\r\n", "udp", "192.0.2.10", 5060, None)         # keep-alive
    assert len(udp.sent) == 1


def test_cancel_for_an_answered_invite_gets_200():
    ep, clock, udp = endpoint()
    ep.data_received(builders.invite(), "udp", "192.0.2.10", 5060, None)
    ep.data_received(builders.request("CANCEL"), "udp", "192.0.2.10", 5060, None)
    assert udp.messages()[-1].status == 200 and udp.messages()[-1].cseq[1] == "CANCEL"
    ep.data_received(builders.request("CANCEL", branch="z9hG4bKnone"), "udp", "192.0.2.10",
                     5060, None)
    assert udp.messages()[-1].status == 481


def test_ping_fires_with_the_round_trip():
    ep, clock, udp = endpoint()
    results = []
    d = ep.ping(s.Hop("udp", *GW))
    d.addCallback(results.append)
    options = udp.messages()[0]
    assert options.method == "OPTIONS"
    clock.advance(0.25)
    reply(ep, options, 200)
    assert results == [0.25]


def test_ping_timeout_and_any_answer_is_alive():
    ep, clock, udp = endpoint()
    failures, answers = [], []
    ep.ping(s.Hop("udp", *GW), timeout=2.0).addErrback(failures.append)
    clock.advance(2.0)
    assert failures[0].check(PingError) and failures[0].value.status == 408
    for status in (503, 404, 501):         # RFC 3261 section 11: an answer means it is there
        ep.ping(s.Hop("udp", *GW)).addCallbacks(answers.append, failures.append)
        reply(ep, udp.messages()[-1], status)
    assert answers == [0.0, 0.0, 0.0] and len(failures) == 1
    ep.ping(s.Hop("udp", *GW)).addErrback(failures.append)
    clock.advance(32.0)                                # Timer F
    assert failures[1].value.status == 408


def connect_tcp(ep, reactor):
    host, port, factory = reactor.tcpClients[-1][:3]
    proto = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    proto.makeConnection(transport)
    return proto, transport


def written(transport):
    return StreamFramer().feed(transport.value())


def test_tcp_call_connects_once_reuses_and_never_retransmits():
    ep, reactor, udp = endpoint()
    session, listener = call(ep, transport="tcp")
    assert reactor.tcpClients[0][:2] == GW and udp.sent == []
    proto, transport = connect_tcp(ep, reactor)
    invite = written(transport)[0]
    assert invite.method == "INVITE" and invite.top_via.transport == "TCP"
    reactor.advance(10)
    assert len(written(transport)) == 1                # no Timer A on a reliable transport
    resp = make_response(invite, 200, to_tag="gw1", headers=[
        ("Contact", "<sip:gw@192.0.2.5:5060;transport=tcp>")])
    resp.body = SDP
    for byte in resp.to_bytes():                       # one byte at a time
        proto.dataReceived(bytes([byte]))
    assert listener.kinds() == ["Answered"]
    ep.execute(session, session.hangup(16))
    methods = [m.method for m in written(transport)]
    assert methods == ["INVITE", "ACK", "BYE"]
    assert len(reactor.tcpClients) == 1                # the connection was reused


def test_tcp_connection_failure_is_a_transport_error():
    ep, reactor, udp = endpoint()
    session, listener = call(ep, transport="tcp")
    factory = reactor.tcpClients[0][2]
    from twisted.python.failure import Failure
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    assert listener.kinds() == ["Rejected", "Closed"]
    assert listener.events[0].status == 503


def test_inbound_tcp_options_byte_at_a_time_answered_on_the_same_connection():
    ep, reactor, udp = endpoint()
    from protocols.sip.transports import Stream
    proto = Stream(ep.transports, "tcp")
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.44", 40000))
    proto.makeConnection(transport)
    for byte in builders.request("OPTIONS", transport="TCP", via_host="192.0.2.44:40000"):
        proto.dataReceived(bytes([byte]))
    out = written(transport)
    assert len(out) == 1 and out[0].status == 200


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.sampled_from([builders.invite(), builders.request("OPTIONS"),
                                            builders.request("BYE", to_tag="x"),
                                            builders.request("CANCEL"), builders.ok_200()]),
                           st.integers(0, 400), st.binary(max_size=8))
                 .map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:])))
def test_no_datagram_raises_out_of_the_endpoint(data):
    ep, clock, udp = endpoint()
    ep.data_received(data, "udp", "192.0.2.10", 5060, None)
    clock.advance(40)
    for message, _ in udp.sent:
        assert not hasattr(message, "method")       # we only ever answer a stray request


@settings(max_examples=100)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=40))
def test_tcp_framing_at_any_split(sizes):
    ep, reactor, udp = endpoint()
    from protocols.sip.transports import Stream
    proto = Stream(ep.transports, "tcp")
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.44", 40000))
    proto.makeConnection(transport)
    data = b"".join(builders.request("OPTIONS", transport="TCP", branch=f"z9hG4bKs{i}",
                                     via_host="192.0.2.44:40000") for i in range(3))
    pos, i = 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        proto.dataReceived(data[pos:pos + step])
        pos, i = pos + step, i + 1
    assert [m.status for m in written(transport)] == [200, 200, 200]


def inbound_endpoint():
    ep, clock, udp = endpoint()
    taken = []

    def inbound(session):
        taken.append(session)
        return Listener()
    ep.inbound = inbound
    return ep, clock, udp, taken


def test_inbound_invite_rings_answers_and_is_acked():
    ep, clock, udp, taken = inbound_endpoint()
    ep.data_received(builders.invite(), "udp", "192.0.2.10", 5060, None)
    session = taken[0]
    listener = ep.listeners[session]
    assert udp.messages()[-1].status == 100
    ep.execute(session, session.ring())
    ep.execute(session, session.answer(SDP))
    ok, addr = udp.sent[-1]
    assert ok.status == 200 and ok.body == SDP and addr == ("192.0.2.10", 5060)
    clock.advance(0.5)
    assert udp.messages()[-1].status == 200 and len(udp.sent) == 4     # retransmitted
    ep.data_received(builders.invite(), "udp", "192.0.2.10", 5060, None)   # absorbed
    assert len(udp.sent) == 4
    ack = builders.request("ACK", to_tag=session.local_tag, branch="z9hG4bKack1")
    ep.data_received(ack, "udp", "192.0.2.10", 5060, None)
    clock.advance(40)
    assert len(udp.sent) == 4 and listener.kinds() == ["Confirmed"]
    bye = builders.request("BYE", to_tag=session.local_tag, branch="z9hG4bKbye1", cseq=2)
    ep.data_received(bye, "udp", "192.0.2.10", 5060, None)
    assert udp.messages()[-1].status == 200
    assert listener.kinds() == ["Confirmed", "Ended", "Closed"]
    assert [d for d, m in listener.traces][:2] == ["in", "out"]


def test_inbound_cancel_gets_200_and_the_invite_487():
    ep, clock, udp, taken = inbound_endpoint()
    ep.data_received(builders.invite(), "udp", "192.0.2.10", 5060, None)
    session = taken[0]
    listener = ep.listeners[session]
    ep.execute(session, session.ring())
    ep.data_received(builders.request("CANCEL"), "udp", "192.0.2.10", 5060, None)
    statuses = [(m.status, m.cseq[1]) for m in udp.messages()[-2:]]
    assert statuses == [(200, "CANCEL"), (487, "INVITE")]
    assert listener.kinds() == ["Cancelled", "Closed"]
    ack = builders.request("ACK", to_tag=udp.messages()[-1].to_tag)   # same branch: the tx's
    ep.data_received(ack, "udp", "192.0.2.10", 5060, None)
    clock.advance(40)
    assert udp.messages()[-1].status == 487 and len(udp.sent) == 4
    assert not ep.dialogs and not ep.table.servers


def test_inbound_invite_failing_8_2_checks_never_reaches_the_hook():
    ep, clock, udp, taken = inbound_endpoint()
    data = builders.invite(extra=[("Require", "100rel")])
    ep.data_received(data, "udp", "192.0.2.10", 5060, None)
    assert udp.messages()[-1].status == 420 and taken == []


def test_inbound_hook_declining_leaves_the_403():
    ep, clock, udp = endpoint()
    ep.inbound = lambda session: None
    ep.data_received(builders.invite(), "udp", "192.0.2.10", 5060, None)
    assert udp.messages()[-1].status == 403 and not ep.dialogs


def test_closed_session_lingers_until_its_invite_transaction_ends():
    ep, clock, udp = endpoint()
    session, listener = call(ep)
    invite = udp.messages()[0]
    reply(ep, invite, 180)
    ep.execute(session, session.hangup(16))
    assert udp.messages()[-1].method == "CANCEL"
    ep.detach(session)                                 # the leg is gone; the session is not
    reply(ep, invite, 200, SDP)                        # the 2xx crossed our CANCEL
    assert [m.method for m in udp.messages()[-2:]] == ["ACK", "BYE"]
    reply(ep, udp.messages()[-1], 200)                 # the BYE's 200: the session closes
    assert ep.dialogs                                  # but Timer M still runs
    reply(ep, invite, 200, SDP)                        # a retransmitted 2xx: ACKed again
    assert udp.messages()[-1].method == "ACK"
    clock.advance(33)
    assert not ep.dialogs and not ep.table.clients and not ep._owned and not ep._timers
    assert listener.kinds() == ["Progress"]           # nothing after the detach
