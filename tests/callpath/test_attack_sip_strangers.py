"""The attack: SIP from a foreign source at a running callgw (the real SIP listener of the call
path), from raw UDP sockets on another loopback address (127.0.0.2: no configured gateway).

A captured INVITE replayed 5 times, its ACK (also without Max-Forwards, as an old phone sends
it), and a scanner's burst of 100 OPTIONS. What a provider cares about: callgw cannot be used as
a reflector (at most one stateless answer per request, sent back to the real source, nothing
ever retransmitted; none at all with ``[sip] strangers = "drop"``), the scanner is rate-limited
and logged in one line, the Server header names no version, and callgw keeps serving.
"""
from __future__ import annotations

import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from protocols.sip.message import parse_message
from tests.callpath.callgw_env import sleep, start
from tests.frontend.test_attack_login import LogLines
from tests.sip import builders

STRANGER = "127.0.0.2"


class Stranger(DatagramProtocol):
    """A raw UDP socket on 127.0.0.2 that records every datagram it gets."""

    def __init__(self):
        self.got: list[bytes] = []

    def datagramReceived(self, data, addr):
        self.got.append(data)


def no_max_forwards(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n")
                        if not line.startswith(b"Max-Forwards"))


@defer.inlineCallbacks
def attack(gw):
    """Fires with (datagrams the stranger got, the SIP address attacked)."""
    sip = gw.callpath.providers["sip"].endpoint
    target = ("127.0.0.1", sip.port)
    proto = Stranger()
    port = reactor.listenUDP(0, proto, interface=STRANGER)
    try:
        me = f"{STRANGER}:{port.getHost().port}"
        invite = builders.invite(uri=f"sip:+4930123456@127.0.0.1:{sip.port}", via_host=me)
        for _ in range(5):                                  # a captured INVITE, replayed
            port.write(invite, target)
        yield sleep(0.3)
        to_tag = None
        if proto.got:
            to_tag = parse_message(proto.got[0]).to_tag
        ack = builders.request("ACK", uri=f"sip:+4930123456@127.0.0.1:{sip.port}",
                               via_host=me, to_tag=to_tag or "x")
        port.write(ack, target)
        port.write(no_max_forwards(ack), target)
        for i in range(100):                                # a scanner
            port.write(builders.request("OPTIONS", uri=f"sip:{i}@127.0.0.1",
                                        branch=f"z9hG4bKscan{i}", via_host=me), target)
        yield sleep(1.5)                                    # >> T1: retransmissions would show
        return proto.got
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("mode", ["answer", "drop"])
def test_sip_from_a_stranger_gets_at_most_one_stateless_answer(tmp_path, mode):
    gw = yield start(tmp_path, sip={"t1": 0.05, "strangers": mode})
    try:
        with LogLines() as log:
            got = yield attack(gw)
            answers = [parse_message(d) for d in got]
            if mode == "drop":
                assert answers == []
            else:
                invites = [a for a in answers if a.cseq[1] == "INVITE"]
                options = [a for a in answers if a.cseq[1] == "OPTIONS"]
                # one answer per INVITE received, never a retransmission (T1 = 50 ms: a
                # server transaction would have resent its 403 about 5 times by now)
                assert len(invites) <= 5 and {a.status for a in invites} == {403}
                assert len(options) <= 20                   # the scanner hits its rate limit
                assert len(answers) == len(invites) + len(options)     # the ACKs: nothing
                assert {a.headers.get("Server") for a in answers} == {"callgw"}
            sip = gw.callpath.providers["sip"].endpoint
            assert not sip.table.servers                    # no server transaction at all
            yield gw.stopService()                          # flushes the minute's report
        report = [line for line in log.lines if line.startswith("SIP from stranger")]
        assert len(report) == 1 and report[0].startswith(
            f"SIP from stranger {STRANGER}: 107 requests in the last minute (ACK 2, "
            "INVITE 5, OPTIONS 100; ")
        assert "rate-limited" in report[0] and "ignored 2" in report[0]     # the ACKs
        assert ("answered" in report[0]) == (mode == "answer")
    finally:
        if gw.running:
            yield gw.stopService()


def test_stranger_address_is_local():
    """The attack needs a second loopback address: Linux routes all of 127/8 to lo."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((STRANGER, 0))
