"""The attack: forged UDP datagrams from a spoofed source claiming a logged-in client's session,
against a running callgw (the real listeners and call path) with sipp as the PSTN gateway.

Raw IPv4 packets (a raw socket: root, as the tests and CI run) carry the victim's address and
port as their source: 40 plain ``call`` commands with every likely message id (today each of
them would have placed a call in the victim's name), 10 sealed datagrams under a guessed key,
and one real datagram of the victim captured and replayed. What a provider cares about: no call
reaches the gateway, the attempts are dropped, counted and logged, and the victim's session
goes on and places its own call.
"""
from __future__ import annotations

import os
import socket
import struct

import pytest
import pytest_twisted
from twisted.internet import defer

from callgw.client.links import connect
from protocols.client import messages as m
from protocols.client import sealing
from tests.callpath.callgw_env import (PASSWORD, Sipp, client_url, prepare_db, settled_cdr,
                                       sleep, start, within)
from tests.frontend.test_attack_login import LogLines

pytestmark = pytest.mark.peers("sipp")


def spoof(source: tuple[str, int], dest: tuple[str, int], payload: bytes) -> None:
    """Send one UDP datagram whose IP source is ``source`` (the kernel fills the IP checksum;
    a UDP checksum of 0 means none, which IPv4 allows)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64,
                     socket.IPPROTO_UDP, 0, socket.inet_aton(source[0]),
                     socket.inet_aton(dest[0]))
    udp = struct.pack("!HHHH", source[1], dest[1], 8 + len(payload), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(ip + udp + payload, (dest[0], 0))


def dropped(gw, reason):
    return gw.callpath.metrics.registry.get_sample_value(
        "callgw_client_datagrams_dropped_total", {"reason": reason}) or 0


@pytest_twisted.inlineCallbacks
def test_spoofed_datagrams_place_no_call_in_the_victims_session(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path, calls=1).start()
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        victim = yield connect(client_url(gw, "udp"))
        yield within(victim.login("alice", PASSWORD))
        unsolicited = []
        victim.on_message = unsolicited.append
        link = victim.link
        captured = []
        send = link.channel.send_datagram
        link.channel.send_datagram = lambda data: (captured.append(data), send(data))
        yield within(victim.ping())
        source = ("127.0.0.1", link.transport.getHost().port)
        server = gw.client.address("udp")

        with LogLines() as log:
            for mid in range(1, 41):
                spoof(source, server, m.encode(
                    m.Call(call=f"c{mid}", number="+4930123456", mode="relay"), mid=mid))
            guessed = os.urandom(32)
            for counter in range(1, 11):
                spoof(source, server, sealing.seal(guessed, counter, m.encode(
                    m.Call(call="c9", number="+4930123456", mode="relay"), mid=3)))
            spoof(source, server, captured[-1])        # the victim's own ping, replayed
            yield sleep(0.5)

        assert (dropped(gw, "unsealed"), dropped(gw, "forged"), dropped(gw, "replayed")) == \
            (40, 10, 1)
        assert unsolicited == []                      # no trying/disconnected for any c*
        assert (yield gw.store.run("active_calls")) == []
        assert (yield gw.store.run("cdrs", 50, "alice")) == []
        warnings = [line for line in log.lines if line.startswith("dropped datagrams")]
        assert len(warnings) == 1 and "session of alice at 127.0.0.1" in warnings[0]

        call = victim.call("+4930123456")             # the victim's session goes on
        yield within(call.connected)
        call.hangup()
        end = yield within(call.disconnected)
        assert end.cause == "normal"
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()
        cdrs = yield settled_cdr(gw, "alice")
        assert len(cdrs) == 1 and cdrs[0]["target"] == "+4930123456"   # its call only
        yield victim.logout()
    finally:
        yield gw.stopService()
        sipp.stop()
