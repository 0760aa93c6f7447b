"""protocols/h323/adapter.py: CallRunner over StringTransport and a task.Clock-driven memory
reactor: TPKT framing both ways, Q.931 timers fired by the clock, a broken stream and a lost
connection end the call with a Released event (never an exception)."""
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from protocols.h323 import call as c
from protocols.h323 import h225, q931, tpkt
from protocols.h323.adapter import CallRunner


class Listener:
    def __init__(self):
        self.events, self.traces = [], []

    def callEvent(self, event):
        self.events.append(event)

    def trace(self, direction, summary):
        self.traces.append((direction, summary))


def connected_runner(**kw):
    reactor = MemoryReactorClock()
    listener = Listener()
    options = c.CallOptions(dest_number="123", rtp=("127.0.0.1", 3000), rtcp=("127.0.0.1", 3001),
                            **kw)
    runner = CallRunner(c.OutgoingCall(3, options), ("127.0.0.1", 1720), reactor=reactor,
                        clock=reactor, listener=listener)
    d = runner.start()
    host, port, factory, _timeout, _bind = reactor.tcpClients[0]
    assert (host, port) == ("127.0.0.1", 1720)
    proto = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport()
    proto.makeConnection(transport)
    assert d.called
    return runner, reactor, transport, proto, listener


def written(transport):
    framer = tpkt.Framer()
    out = [h225.decode_message(p) for p in framer.feed(transport.value())]
    transport.clear()
    return out


def test_setup_is_sent_framed_and_t303_fires_on_the_clock():
    runner, reactor, transport, _proto, listener = connected_runner()
    (setup,) = written(transport)
    assert setup.body_name == "setup"
    assert listener.traces[0][0] == "out"
    reactor.advance(3.9)
    assert written(transport) == []
    reactor.advance(0.2)
    (rc,) = written(transport)
    assert rc.q931.type == q931.MessageType.RELEASE_COMPLETE
    assert isinstance(listener.events[-1], c.Released) and listener.events[-1].cause == 102
    assert transport.disconnecting
    assert reactor.getDelayedCalls() == []


def test_answers_arrive_in_any_split_and_t310_is_replaced_by_t301():
    runner, reactor, transport, proto, listener = connected_runner()
    core = runner.core
    stream = b"".join(tpkt.frame(h225.encode_message(
        name, h225.response_body(name, core.call_id), core.crv, True)) for name in
        ("callProceeding", "alerting"))
    for i in range(len(stream)):
        proto.dataReceived(stream[i:i + 1])
    assert [type(e) for e in listener.events][:2] == [c.Proceeding, c.Alerting]
    assert sorted(call.getTime() for call in reactor.getDelayedCalls()) == [180.0]
    assert ("in", "alerting") in listener.traces


def test_a_stream_that_is_not_tpkt_is_a_protocol_error():
    runner, reactor, transport, proto, listener = connected_runner()
    written(transport)
    proto.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
    (rc,) = written(transport)
    assert q931.parse_cause(rc.q931.get(q931.IE.CAUSE))["value"] == 100
    released = listener.events[-1]
    assert released.protocol_error and released.cause == 100


def test_lost_connection_releases_with_41_and_stops_timers():
    runner, reactor, transport, proto, listener = connected_runner()
    from twisted.python.failure import Failure
    from twisted.internet.error import ConnectionLost
    proto.connectionLost(Failure(ConnectionLost("gone")))
    assert listener.events[-1].cause == 41
    assert reactor.getDelayedCalls() == []


def test_dtmf_and_release_from_the_caller():
    runner, reactor, transport, proto, listener = connected_runner()
    written(transport)
    runner.send_dtmf("1")          # no H.245 yet: held, nothing written
    assert written(transport) == []
    runner.release(16)
    (rc,) = written(transport)
    assert rc.body_name == "releaseComplete"


def test_a_protocol_error_is_one_log_line_naming_the_gateway():
    from twisted.logger import capturedLogs
    runner, reactor, transport, proto, listener = connected_runner()
    written(transport)
    bad = q931.Message(q931.MessageType.ALERTING, runner.core.crv, True,
                       ((q931.IE.USER_USER, b"\x05\xff\xff\xff"),)).encode()
    with capturedLogs() as logs:
        proto.dataReceived(tpkt.frame(bad))
    lines = [e for e in logs if "protocol error" in e.get("log_format", "")]
    assert len(lines) == 1 and lines[0]["peer"] == ("127.0.0.1", 1720)
    assert "does not decode" in lines[0]["reason"]
