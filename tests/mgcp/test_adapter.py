"""The Twisted adapter (protocols/mgcp/adapter.py) with a fake datagram transport and a
task.Clock: RFC 3435's retransmission schedule in time (0, 0.2, 0.6, 1.4, 3.0, 6.2, 10.2, 14.2 s,
failure at 18.2 s), the Deferred of a command, the listener's events and traces, a listener
that fails (the NTFY is answered 400, the reactor goes on), and stop() leaving nothing behind."""
from __future__ import annotations

import pytest
from twisted.internet import defer, task
from zope.interface import implementer

from protocols.mgcp import events as ev
from protocols.mgcp.adapter import CallAgentEndpoint, IMgcpListener, MgcpCommandError
from protocols.mgcp.endpoint import EndpointName
from protocols.mgcp.message import Command, parse_datagram
from tests.logcheck import logs_failure
from tests.mgcp import builders as b

PEER = ("192.0.2.7", 2427)


class FakeDatagram:
    """Records ``write(data, addr)`` like a UDP port's transport."""

    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append((parse_datagram(data)[0], addr))

    def messages(self):
        return [m for m, _ in self.sent]


@implementer(IMgcpListener)
class Listener:
    def __init__(self, endpoint=None, fail=False):
        self.events, self.trace, self.endpoint, self.fail = [], [], endpoint, fail

    def mgcp_event(self, event):
        self.events.append(event)
        if self.fail:
            raise RuntimeError("listener bug")
        if isinstance(event, ev.Notified) and self.endpoint:
            self.endpoint.respond(event.key, 200)

    def mgcp_message(self, direction, peer, message):
        self.trace.append((direction, message))


def make(listener=None):
    clock = task.Clock()
    ep = CallAgentEndpoint(None, clock=clock, listener=listener, first_tid=500)
    transport = FakeDatagram()
    ep.attach_datagram_transport(transport)
    ep.add_gateway(ev.Gateway("gw1", *PEER, endpoints=(EndpointName.parse(f"aaln/$@{b.GW}"),)))
    return ep, clock, transport


def test_retransmission_schedule_in_time_then_failure():
    ep, clock, transport = make()
    d = ep.send("gw1", Command("AUEP", 0, b.LINE))
    failures = []
    d.addErrback(failures.append)
    times = []
    for _ in range(200):
        while len(transport.sent) > len(times):
            times.append(round(clock.seconds(), 3))
        if failures:
            break
        clock.advance(min(c.getTime() for c in clock.getDelayedCalls()) - clock.seconds())
    assert times == [0.0, 0.2, 0.6, 1.4, 3.0, 6.2, 10.2, 14.2]
    assert round(clock.seconds(), 1) == 18.2
    assert failures[0].check(MgcpCommandError)
    assert "Max2" in str(failures[0].value)
    assert transport.messages()[0] == transport.messages()[-1]
    assert clock.getDelayedCalls() == []


def test_answer_fires_the_deferred_and_stops_retransmission():
    listener = Listener()
    ep, clock, transport = make(listener)
    d = ep.send("gw1", Command("CRCX", 0, f"aaln/$@{b.GW}", (("C", b.CALL_ID),)))
    got = []
    d.addCallback(got.append)
    clock.advance(0.25)                                   # one retransmission
    ep.datagram_received(b.crcx_ok(500, z=b.LINE), PEER)
    assert got[0].endpoint == b.LINE and got[0].response.param("I") == "FDE234C8"
    clock.advance(10)
    assert len(transport.sent) == 2
    assert [d for d, _ in listener.trace] == ["out", "out", "in"]
    clock.advance(30)                                     # T-HIST over: nothing left
    assert clock.getDelayedCalls() == []


def test_ntfy_reaches_the_listener_which_answers():
    ep, clock, transport = make()
    listener = ep.listener = Listener(ep)
    ep.datagram_received(b.ntfy(), PEER)
    assert isinstance(listener.events[0], ev.Notified)
    assert transport.messages()[0].code == 200 and transport.sent[0][1] == PEER


@logs_failure(RuntimeError, match="MGCP listener failed on Notified")
def test_a_failing_listener_is_logged_and_the_gateway_answered():
    ep, clock, transport = make(Listener(fail=True))
    ep.datagram_received(b.ntfy(), PEER)
    assert transport.messages()[0].code == 400
    ep.datagram_received(b.ntfy(tid=2003), PEER)          # and the next one still works
    assert transport.messages()[1].tid == 2003


def test_ntfy_without_listener_is_accepted():
    ep, clock, transport = make()
    ep.datagram_received(b.ntfy(), PEER)
    assert transport.messages()[0].code == 200


def test_rsip_restart_delay_runs_on_the_clock():
    listener = Listener()
    ep, clock, transport = make(listener)
    ep.datagram_received(b.rsip(method="restart", delay=20), PEER)
    assert not ep.accepting("gw1", b.LINE)
    clock.advance(19)
    assert not ep.accepting("gw1", b.LINE)
    clock.advance(1)
    assert ep.accepting("gw1", b.LINE)
    kinds = [type(e).__name__ for e in listener.events]
    assert kinds == ["ReleaseEndpointCalls", "EndpointServiceChanged", "EndpointServiceChanged"]


@pytest.mark.parametrize("garbage", [b"\xff" * 40, b"200 nope\n", b"", b"NTFY 1 x MGCP 1.0\n"])
def test_garbage_never_raises(garbage):
    ep, clock, transport = make()
    ep.datagram_received(garbage, PEER)


def test_stop_cancels_timers_and_fails_waiting_commands():
    ep, clock, transport = make()
    d = ep.send("gw1", Command("AUEP", 0, b.LINE))
    failures = []
    d.addErrback(failures.append)
    done = ep.stop()
    assert failures[0].check(defer.CancelledError)
    assert clock.getDelayedCalls() == [] and done.called
