"""The call agent against a real MGCP media gateway, osmo-mgw 1.10, on real loopback sockets,
with every datagram captured by dumpcap and judged by tshark's MGCP dissector.

One run drives osmo-mgw through the adapter the way the MGCP leg will: a CRCX to
``rtpbridge/*@mgw`` (osmo-mgw's "any free endpoint") whose ``Z:`` names the endpoint used from
then on; a second connection on that endpoint; MDCX to sendrecv; AUEP; RTP sent to the first
connection comes out of the second (osmo-mgw understood both our SDPs); DLCX of both with the
statistics of their ``P:`` lines (the packets that crossed); no K: goes to osmo-mgw (it
answers 539 to one in CRCX, MDCX and DLCX); an AUCX, which osmo-mgw never answers, is
retransmitted on the back-off schedule and fails cleanly; ``$`` is refused by osmo-mgw (500)
and by its dialect before sending. tshark reads every datagram as MGCP, none malformed."""
from __future__ import annotations

import re
import struct

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import DatagramProtocol

from protocols.mgcp.adapter import CallAgentEndpoint, MgcpCommandError
from protocols.mgcp.endpoint import OSMO_MGW as DIALECT
from protocols.mgcp.endpoint import EndpointName, EndpointNameError
from protocols.mgcp.events import Gateway
from protocols.mgcp.message import Command
from protocols.mgcp.params import parse_connection_parameters
from protocols.mgcp.transaction import Timers
from protocols.sip.sdp import make_offer, parse_sdp
from tests.mgcp.osmo_mgw import OsmoMgw
from tests.mgcp.wire import Capture, mgcp_verdict
from tests.peers import require_peer

FAST = Timers(initial=0.05, maximum=0.2, max1=2, max2=3, t_max=5.0, t_hist=30.0)


@pytest.fixture
def peers():
    require_peer("osmo-mgw", "dumpcap", "tshark")


def within(d, seconds=10.0):
    d.addTimeout(seconds, reactor)
    return d


class RtpSocket(DatagramProtocol):
    """A UDP socket that records where packets come from."""

    def __init__(self):
        self.received = []

    def datagramReceived(self, data, addr):
        self.received.append((data, addr))


def rtp(seq):
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234ABCD) + b"\xff" * 160


def media_port(response):
    return parse_sdp(response.sdp).media[0].port


@pytest_twisted.inlineCallbacks
def test_call_agent_drives_osmo_mgw_and_wireshark_reads_every_message(tmp_path, peers):
    mgw = OsmoMgw(tmp_path)
    yield mgw.start()
    ca = CallAgentEndpoint(reactor, "127.0.0.1", 0, timers=FAST)
    sockets, ports = [RtpSocket(), RtpSocket()], []
    capture = None
    try:
        ca_port = ca.start()
        for s in sockets:
            ports.append(reactor.listenUDP(0, s, interface="127.0.0.1"))
        a_port, b_port = (p.getHost().port for p in ports)
        ca.add_gateway(Gateway("osmo", "127.0.0.1", mgw.port,
                               (EndpointName.parse("rtpbridge/*@mgw"),), DIALECT))
        capture = Capture(tmp_path / "mgcp.pcapng", [mgw.port, ca_port])
        yield capture.start()

        # CRCX to "any free endpoint": osmo-mgw names the one it took in Z:
        first = yield within(ca.send("osmo", Command(
            "CRCX", 0, "rtpbridge/*@mgw", (("C", "c0ffee"), ("L", "p:20, a:PCMU"),
                                           ("M", "recvonly")),
            make_offer("127.0.0.1", a_port, codecs=("PCMU",), telephone_event=None))))
        assert first.response.code == 200, first.response
        assert re.fullmatch(r"rtpbridge/[0-9a-f]+@mgw", first.endpoint), first.endpoint
        endpoint, conn_a = first.endpoint, first.response.param("I")
        mgw_a = media_port(first.response)
        assert mgw.rtp_range[0] <= mgw_a <= mgw.rtp_range[1]

        second = yield within(ca.send("osmo", Command(
            "CRCX", 0, endpoint, (("C", "c0ffee"), ("L", "p:20, a:PCMU"), ("M", "sendrecv")),
            make_offer("127.0.0.1", b_port, codecs=("PCMU",), telephone_event=None))))
        assert second.response.code == 200 and second.endpoint == endpoint
        assert not second.command.has("K")          # osmo-mgw answers 539 to a K: in CRCX
        conn_b, mgw_b = second.response.param("I"), media_port(second.response)

        modified = yield within(ca.send("osmo", Command(
            "MDCX", 0, endpoint, (("C", "c0ffee"), ("I", conn_a), ("M", "sendrecv")),
            make_offer("127.0.0.1", a_port, codecs=("PCMU",), telephone_event=None))))
        assert modified.response.code == 200
        audit = yield within(ca.send("osmo", Command("AUEP", 0, endpoint)))
        assert audit.response.code == 200

        # media: what the first connection receives leaves by the second
        for seq in range(20):
            ports[0].write(rtp(seq), ("127.0.0.1", mgw_a))
            yield task.deferLater(reactor, 0.02, lambda: None)
        yield task.deferLater(reactor, 0.3, lambda: None)
        crossed = [d for d, addr in sockets[1].received if addr == ("127.0.0.1", mgw_b)]
        assert len(crossed) >= 18, sockets[1].received[:3]

        # osmo-mgw refuses "$"; the dialect refuses it before anything is sent
        with pytest.raises(EndpointNameError):
            DIALECT.check("rtpbridge/$@mgw")
        refused = yield within(ca.send("osmo", Command("CRCX", 0, "rtpbridge/$@mgw",
                                                       (("C", "1"), ("M", "recvonly")))))
        assert refused.response.code == 500

        # AUCX: osmo-mgw never answers; the back-off runs out and the command fails
        with pytest.raises(MgcpCommandError, match="Max2"):
            yield within(ca.send("osmo", Command("AUCX", 0, endpoint, (("I", conn_a),
                                                                       ("F", "C,M")))))

        stats = {}
        for conn in (conn_a, conn_b):
            gone = yield within(ca.send("osmo", Command("DLCX", 0, endpoint,
                                                        (("C", "c0ffee"), ("I", conn)))))
            assert gone.response.code == 250
            stats[conn] = parse_connection_parameters(gone.response.param("P"))
        assert stats[conn_a].packets_received >= 18
        assert stats[conn_b].packets_sent >= 18
        assert ca.agent.connections_of("osmo") == []
        yield capture.stop()
        capture = None

        rows, problems = yield mgcp_verdict(tmp_path / "mgcp.pcapng", [mgw.port, ca_port])
        assert problems == []
        ours = [r for r in rows if ca_port in (r[0], r[1])]
        assert all(r[2] for r in ours), [r for r in ours if not r[2]]   # all read as MGCP
        sent = [r[2] for r in ours if r[0] == ca_port]
        assert sent == ["CRCX", "CRCX", "MDCX", "AUEP", "CRCX"] + ["AUCX"] * 4 + ["DLCX"] * 2
        answers = [r[2] for r in ours if r[1] == ca_port]
        assert answers == ["200", "200", "200", "200", "500", "250", "250"]
    finally:
        if capture is not None:
            yield capture.stop()
        yield ca.stop()
        yield defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        yield mgw.stop()
