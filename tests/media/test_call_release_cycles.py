"""A released call leaves no reference cycle: its objects are freed by reference counts.

With the cyclic collector off, one call runs to its end through callgw (the in-process client
library as the client): relayed (the relay carrying its media frames) toward sipp as the gateway
(echoing RTP), in direct mode toward sipp, or relayed to the echo number; the client hangs up,
its CDR is written, its session logs out and callgw stops (which drops what the SIP stack keeps
of an ended dialog for 32 s). Then no object of the call's classes (handler, legs, media session, relay session and its
parts) may be alive, and a full collection must find none of them as garbage: each close or
release method lets go of the back-references that would otherwise make the call a cycle
(docs/performance.md, "Reference cycles of a released call").

Tests the release paths of callgw/callserver/handler.py, callgw/callserver/legs/client.py,
callgw/callserver/legs/echo.py, callgw/callserver/media.py, callgw/media/relay.py,
callgw/media/relayed.py, callgw/media/endpoint.py and callgw/media/quality.py.
"""
from __future__ import annotations

import gc

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from callgw.callserver.handler import CallContext, CallHandler
from callgw.callserver.legs.client import ClientLeg
from callgw.callserver.legs.echo import EchoLeg
from callgw.callserver.legs.sip import SipLeg
from callgw.callserver.media import CallMediaSession
from callgw.client.links import connect
from callgw.media.endpoint import RtcpEndpoint, RtpEndpoint
from callgw.media.playout import Playout
from callgw.media.quality import SessionQuality
from callgw.media.relay import RelaySession
from callgw.media.relayed import ClientMedia
from protocols.client import framing as fr
from protocols.rtp import g711
from test_media_calls import settled_cdr, sipp_gateway, start, within
from tests.callpath.callgw_env import PASSWORD, free_port, prepare_db

CALL_CLASSES = (CallHandler, CallContext, ClientLeg, SipLeg, EchoLeg, CallMediaSession,
                RelaySession, ClientMedia, RtpEndpoint, RtcpEndpoint, SessionQuality, Playout)
ECHO = "+4930999999"
FRAME = g711.encode("PCMU", bytes(320))


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


def call_objects(objects, earlier=()):
    """The names of the call classes' objects among ``objects``, but those in ``earlier``."""
    known = {id(o) for o in earlier}
    return sorted(type(o).__name__ for o in objects
                  if isinstance(o, CALL_CLASSES) and id(o) not in known)


@defer.inlineCallbacks
def _one_call(gw, target, mode="relay"):
    """Log in, place a call, (relayed) send 20 ms frames until some come back, hang up, log
    out; fires with the CDR once written."""
    host, port = gw.client.address("udp")
    session = yield connect(f"udp://{host}:{port}", reactor)
    try:
        yield session.login("alice", PASSWORD)
        heard = []
        session.on_media = heard.append
        if mode == "direct":                    # RTP to a port nobody reads: no media here
            call = session.call(target, mode="direct", address="127.0.0.1",
                                port=free_port(even=True))
        else:
            call = session.call(target)
        connected = yield within(call.connected)
        waited = 0.0
        for sequence in range(1000 if mode == "relay" else 0):  # until the gateway's audio
            session.link.send_media(fr.encode_media(
                fr.MediaFrame(connected.key, 0, sequence, sequence * 160, FRAME)))
            yield sleep(0.02)
            waited += 0.02
            if len(heard) >= 10 and sequence >= 25:
                break
            assert waited < 20, "no audio came back"
        call.hangup()
        yield within(call.disconnected)
        yield within(session.logout())
    finally:
        if not session.is_closed:
            session.close()
    cdr = (yield settled_cdr(gw, "alice"))[0]
    return cdr


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("gateway", [pytest.param("sipp", marks=pytest.mark.peers("sipp")),
                                     pytest.param("sipp-direct",
                                                  marks=pytest.mark.peers("sipp")),
                                     "echo"])
def test_a_released_call_is_freed_without_the_cyclic_collector(tmp_path, gateway):
    """Relayed through sipp, direct mode through sipp (the leg kept ready to move its media
    to the relay), relayed to the echo number."""
    sipp = sipp_gateway(tmp_path) if gateway.startswith("sipp") else None
    mode = "direct" if gateway == "sipp-direct" else "relay"
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})] if sipp else ())
    gw = yield start(tmp_path, calls={"echo_number": ECHO})
    enabled = gc.isenabled()
    gc.collect()                            # what earlier tests left is not this call's:
    earlier = [o for o in gc.get_objects() if isinstance(o, CALL_CLASSES)]   # kept, left out
    gc.disable()
    stopped = False
    try:
        cdr = yield _one_call(gw, ECHO if sipp is None else "+4930123456", mode)
        assert cdr["answered"] and cdr["gateway"] == ("echo" if sipp is None else "gw1")
        if mode == "relay":
            assert cdr["stats"]["media"]["frames_to_client"] >= 10
        else:
            assert cdr["media_mode"] == "direct"
        stopped = True
        yield gw.stopService()
        waited = 0.0                        # the listeners' and the transports' last calls
        while (alive := call_objects(gc.get_objects(), earlier)) and waited < 10:
            yield sleep(0.1)
            waited += 0.1
        gc.set_debug(gc.DEBUG_SAVEALL)      # every object a collection finds unreachable
        gc.collect()
        cycles = call_objects(gc.garbage, earlier)
        assert cycles == [], f"the released call left reference cycles through {cycles}"
        assert alive == [], f"objects of the released call still alive: {alive}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        del earlier[:]
        if enabled:
            gc.enable()
        if not stopped:
            yield gw.stopService()
        if sipp is not None:
            sipp.stop()
