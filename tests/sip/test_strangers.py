"""SIP from strangers (protocols/sip/strangers.py and SipEndpoint's use of it): one stateless
answer or none, never a retransmission, ACKs never answered, per-source rate limits and one log
line per source and minute. Fake UDP transport and task.Clock: timers advance, nothing sleeps.
"""
from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher

from protocols.sip import session as s
from protocols.sip.adapter import SipEndpoint
from protocols.sip.strangers import Strangers
from protocols.sip.uas import UasCore
from tests.sip import builders
from tests.sip.test_adapter import FakeDatagram

STRANGER = ("203.0.113.66", 5062)
GATEWAY = ("192.0.2.5", 5060)


def endpoint(**strangers):
    reactor = MemoryReactorClock()
    ep = SipEndpoint(reactor, "127.0.0.1", 5070, uas=UasCore(token=lambda: "t0"),
                     strangers=Strangers(**strangers))
    udp = FakeDatagram()
    ep.attach_datagram_transport(udp)
    return ep, reactor, udp


def receive(ep, data, source=STRANGER):
    ep.data_received(data, "udp", source[0], source[1], None)


def no_max_forwards(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n")
                        if not line.startswith(b"Max-Forwards"))


def test_a_strangers_invite_gets_one_stateless_answer_to_its_source_never_resent():
    ep, clock, udp = endpoint()
    receive(ep, builders.invite(via_host="198.51.100.99:5060"))   # a Via naming a victim
    assert [(m.status, addr) for m, addr in udp.sent] == [(403, STRANGER)]
    assert udp.sent[0][0].headers.get("Server") == "callgw"
    clock.advance(64)                                     # Timer G would resend; H end it
    assert len(udp.sent) == 1
    receive(ep, builders.request("ACK", to_tag="t0"))
    receive(ep, no_max_forwards(builders.request("ACK", to_tag="t0")))
    assert len(udp.sent) == 1                             # an ACK is never answered


def test_drop_mode_answers_nothing_at_all():
    ep, clock, udp = endpoint(mode="drop")
    for data in (builders.invite(), builders.request("OPTIONS"), b"INVITE nonsense\r\n\r\n",
                 builders.request("REGISTER")):
        receive(ep, data)
    clock.advance(64)
    assert udp.sent == []


def test_scanners_are_rate_limited_and_logged_once_per_source_and_minute():
    ep, clock, udp = endpoint(rate=1.0, burst=5.0)
    lines = []

    def observe(event):
        if "log_format" in event:
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    try:
        for i in range(100):
            receive(ep, builders.request("OPTIONS", branch=f"z9hG4bKscan{i}"))
        receive(ep, builders.request("INVITE", branch="z9hG4bKother"), ("198.51.100.3", 5060))
        assert len(udp.sent) == 6                          # a burst of 5, and the other one
        clock.advance(60)
        report = [line for line in lines if line.startswith("SIP from stranger")]
        assert len(report) == 2 and "198.51.100.3: 1 requests" in report[0]
        assert "203.0.113.66: 100 requests in the last minute (OPTIONS 100; answered 5, " \
            "rate-limited 95)" in report[1]
        clock.advance(60)                                  # a quiet minute: no line
        assert len([x for x in lines if x.startswith("SIP from stranger")]) == 2
    finally:
        globalLogPublisher.removeObserver(observe)


def test_peers_keep_stateful_service_and_a_lenient_ack_ends_the_retransmissions():
    ep, clock, udp = endpoint(trusted=["192.0.2.0/24"])
    receive(ep, builders.invite(via_host="192.0.2.5:5060"), GATEWAY)
    assert [m.status for m, _ in udp.sent] == [403]
    clock.advance(0.5)
    assert [m.status for m, _ in udp.sent] == [403, 403]   # Timer G: a server transaction
    # the phone's ACK without Max-Forwards (RFC 2543 style): no 400, and no more 403s
    receive(ep, no_max_forwards(builders.request("ACK", to_tag="t0",
                                                 via_host="192.0.2.5:5060")), GATEWAY)
    clock.advance(64)
    assert [m.status for m, _ in udp.sent] == [403, 403]


def test_a_gateway_we_sent_a_request_to_is_a_peer():
    ep, clock, udp = endpoint()
    assert ep.strangers.is_stranger(GATEWAY[0])
    ep.ping(s.Hop("udp", GATEWAY[0], GATEWAY[1]))
    assert not ep.strangers.is_stranger(GATEWAY[0]) and ep.strangers.is_stranger(STRANGER[0])


def test_report_groups_methods_and_fates():
    st = Strangers(rate=1.0, burst=1.0, mode="answer")
    assert st.admit("a", "INVITE", 0) and not st.admit("a", "INVITE", 0)
    assert not st.admit("a", "ACK", 0)
    assert st.report() == [("a", 3, "ACK 1, INVITE 2; answered 1, rate-limited 1, ignored 1")]
    assert st.report() == [] and not st.pending
