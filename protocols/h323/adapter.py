"""Thin Twisted adapters for the H.323 cores: the call-signalling TCP connection (TPKT + an
``OutgoingCall``), the separate H.245 TCP connection, and the RAS UDP socket (``RasProtocol`` for a
``ras.RasClient``).

Owns only I/O: writing what the cores return, feeding them what arrives, mapping ``StartTimer`` /
``StopTimer`` to ``clock.callLater`` on the injected clock, and connecting TCP through the
injected reactor. Call events go to an ``ICallListener``-like object with ``callEvent(event)``
and ``trace(direction, summary)``; nothing here decides anything about the call.

Tests: tests/h323/test_adapter.py (StringTransport + task.Clock), tests/h323/test_wire.py (real
sockets, tshark).
"""
from __future__ import annotations

from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import Logger

from protocols.h323 import call as callcore
from protocols.h323 import h225, ras, tpkt


class _TPKTProtocol(protocol.Protocol):
    """TPKT framing over TCP; payloads go to ``on_payload``, a broken stream to ``on_error``."""

    def __init__(self, on_connected, on_payload, on_error, on_lost):
        self._framer = tpkt.Framer()
        self._on_connected, self._on_payload = on_connected, on_payload
        self._on_error, self._on_lost = on_error, on_lost
        self.closing = False

    def connectionMade(self):
        self._on_connected(self)

    def dataReceived(self, data):
        try:
            payloads = self._framer.feed(data)
        except tpkt.TPKTError as e:
            self._on_error(str(e))
            return
        for payload in payloads:
            self._on_payload(payload)

    def send(self, payload):
        self.transport.write(tpkt.frame(payload))

    def close(self):
        self.closing = True
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.closing:
            self._on_lost(reason.getErrorMessage())


class CallRunner:
    """Runs one ``OutgoingCall``: ``start()`` connects to ``gateway`` (host, port), sends Setup.
    ``release(cause)``, ``send_dtmf(digit)`` act on the call. ``listener.callEvent`` gets every
    call event, ``listener.trace("out"|"in", summary)`` every message."""

    log = Logger()

    def __init__(self, core: callcore.OutgoingCall, gateway, *, reactor, clock, listener,
                 connect_timeout=5.0):
        self.core = core
        self.gateway = gateway
        self.reactor = reactor
        self.clock = clock
        self.listener = listener
        self.connect_timeout = connect_timeout
        self.signalling = None
        self.h245 = None
        self._timers = {}
        self.finished = False

    # -- public -----------------------------------------------------------------------------------
    def start(self):
        """Connect and send Setup. Returns a Deferred that fires with None once connected (the
        call's progress comes as events) and fails if the TCP connection cannot be made."""
        host, port = self.gateway
        endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=self.connect_timeout)
        factory = protocol.Factory.forProtocol(
            lambda: _TPKTProtocol(self._signalling_up, self._signalling_payload,
                                  self._signalling_error, self._signalling_lost))
        d = endpoint.connect(factory)

        def failed(failure):
            self.finished = True
            self.listener.callEvent(callcore.Released(
                27, f"cannot reach {host}:{port}: {failure.getErrorMessage()}", by_peer=True))
            return None
        d.addCallbacks(lambda _p: None, failed)
        return d

    def release(self, cause=16):
        self._apply(self.core.release(cause))

    def send_dtmf(self, digit):
        self._apply(self.core.send_dtmf(digit))

    def abort(self):
        """Drop the call without signalling: timers stopped, connections closed."""
        self.finished = True
        for name in list(self._timers):
            self._stop(name)
        for proto in (self.h245, self.signalling):
            if proto is not None:
                proto.close()

    # -- signalling connection ------------------------------------------------------------------
    def _signalling_up(self, proto):
        self.signalling = proto
        self._apply(self.core.setup())

    def _signalling_payload(self, payload):
        self.listener.trace("in", _summary(payload))
        self._apply(self.core.receive(payload))

    def _signalling_error(self, reason):
        self.log.warn("H.225.0 from {peer}: {reason}", peer=self.gateway, reason=reason)
        self._apply(self.core.transport_error(reason))

    def _signalling_lost(self, reason):
        self._apply(self.core.connection_lost(f"call-signalling connection lost: {reason}"))

    # -- H.245 connection -------------------------------------------------------------------------
    def _connect_h245(self, host, port):
        endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=self.connect_timeout)
        factory = protocol.Factory.forProtocol(
            lambda: _TPKTProtocol(self._h245_up, self._h245_payload,
                                  self._h245_error, self._h245_lost))
        d = endpoint.connect(factory)

        def failed(failure):
            self._apply(self.core.h245_lost(f"cannot open H.245 to {host}:{port}: "
                                            f"{failure.getErrorMessage()}"))
        d.addCallbacks(lambda _p: None, failed)
        d.addErrback(lambda f: self.log.failure("H.245 connect to {peer}", f, peer=(host, port)))

    def _h245_up(self, proto):
        self.h245 = proto
        self._apply(self.core.h245_connected())

    def _h245_payload(self, payload):
        self._apply(self.core.h245_received(payload))

    def _h245_error(self, reason):
        self.log.warn("H.245 from {peer}: {reason}", peer=self.gateway, reason=reason)
        self._apply(self.core.h245_lost(f"H.245 stream: {reason}"))

    def _h245_lost(self, reason):
        self._apply(self.core.h245_lost(f"H.245 connection lost: {reason}"))

    # -- effects ----------------------------------------------------------------------------------
    def _apply(self, effects):
        for e in effects:
            kind = type(e)
            if kind is callcore.Send:
                if self.signalling is not None:
                    self.listener.trace("out", e.summary)
                    self.signalling.send(e.data)
            elif kind is callcore.SendH245:
                if self.h245 is not None:
                    self.listener.trace("out", f"H.245 {e.summary}")
                    self.h245.send(e.data)
            elif kind is callcore.ConnectH245:
                self._connect_h245(e.host, e.port)
            elif kind is callcore.CloseH245:
                if self.h245 is not None:
                    self.h245.close()
            elif kind is callcore.CloseConnection:
                if self.signalling is not None:
                    self.signalling.close()
            elif kind is callcore.StartTimer:
                self._stop(e.name)
                self._timers[e.name] = self.clock.callLater(e.delay, self._expired, e.name)
            elif kind is callcore.StopTimer:
                self._stop(e.name)
            else:
                if kind is callcore.Released:
                    self.finished = True
                    if e.protocol_error:
                        self.log.warn("H.323 protocol error from gateway {peer}: {reason}",
                                      peer=self.gateway, reason=e.reason)
                    for name in list(self._timers):
                        self._stop(name)
                self.listener.callEvent(e)

    def _stop(self, name):
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _expired(self, name):
        self._timers.pop(name, None)
        self._apply(self.core.timer_expired(name))


def _summary(payload):
    """A short name for a received call-signalling message (for the call trace)."""
    try:
        signal = h225.decode_message(payload)
    except h225.H225Error as e:
        return f"undecodable ({e.reason})"
    names = signal.q931.name.lower()
    if signal.h245_control:
        names += f" [{len(signal.h245_control)} H.245]"
    return names


class ProbeFailed(Exception):
    """A gateway health probe failed; the message says how."""


def _one_shot(reactor, gateway, payload, timeout, silence_ok, what):
    """Connect to ``gateway``, send ``payload`` (a Q.931 message), and fire with the round trip
    in seconds when the gateway answers with any Q.931 message (or, with ``silence_ok``, when
    it says nothing for ``timeout``, or closes the connection); fail with ``ProbeFailed``."""
    host, port = gateway
    started = reactor.seconds()
    result = defer.Deferred()
    state = {"proto": None, "timer": None, "connected_at": None}

    def finish(value):
        if state["timer"] is not None and state["timer"].active():
            state["timer"].cancel()
        if state["proto"] is not None:
            state["proto"].close()
        if not result.called:
            if isinstance(value, Exception):
                result.errback(value)
            else:
                result.callback(value)

    def quiet():
        if silence_ok:
            finish(state["connected_at"] - started)
        else:
            finish(ProbeFailed(f"{host}:{port} did not answer the {what} in {timeout} s"))

    def connected(proto):
        state["proto"] = proto
        state["connected_at"] = reactor.seconds()
        proto.send(payload)
        state["timer"] = reactor.callLater(timeout, quiet)

    def answer(data):
        if not data:
            return
        try:
            h225.decode_message(data)
        except h225.H225Error as e:
            finish(ProbeFailed(f"answer to the {what} from {host}:{port}: {e.reason}"))
            return
        finish(reactor.seconds() - started)

    def broken(reason):
        finish(ProbeFailed(f"{host}:{port} is not speaking TPKT: {reason}"))

    def lost(reason):
        if silence_ok and state["connected_at"] is not None:
            finish(reactor.seconds() - started)
        else:
            finish(ProbeFailed(f"{host}:{port} closed the connection: {reason}"))

    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    factory = protocol.Factory.forProtocol(lambda: _TPKTProtocol(connected, answer, broken, lost))
    d = endpoint.connect(factory)
    d.addErrback(lambda f: finish(ProbeFailed(f"cannot connect to {host}:{port}: "
                                              f"{f.getErrorMessage()}")))
    return result


def status_probe(reactor, gateway, *, timeout=5.0, call_reference=0x7F01):
    """Health of a gateway without a gatekeeper: a TCP connection to its call-signalling port and
    a Status Enquiry. Fires with the round trip in seconds (to the Status or ReleaseComplete that
    answers it; to the TCP connection when the gateway stays silent for ``timeout``, since not
    every gateway answers an enquiry outside a call); fails with ``ProbeFailed`` when the
    connection cannot be made, or the gateway closes it or answers with something not Q.931."""
    payload = h225.status_enquiry(call_reference)
    d = _one_shot(reactor, gateway, payload, timeout, silence_ok=True, what="Status Enquiry")
    return d


def release_orphan(reactor, gateway, *, call_reference, call_id, cause=41, timeout=5.0):
    """Release a call a previous run of this process left up: a ReleaseComplete with its call
    reference and callIdentifier (and ``cause``) on a new connection to ``gateway``. A gateway
    that still knows the call clears it; most cleared it already when our TCP connection died.
    Fires with the round trip once the gateway answered or closed the connection, or stayed
    silent for ``timeout``; fails with ``ProbeFailed`` when it cannot be reached."""
    from protocols.h323 import q931
    body = h225.release_complete_body(call_id)
    payload = h225.encode_message("releaseComplete", body, call_reference, False,
                                  ies=[(q931.IE.CAUSE, q931.cause(cause))])
    return _one_shot(reactor, gateway, payload, timeout, silence_ok=True,
                     what="ReleaseComplete")


class RasProtocol(protocol.DatagramProtocol):
    """The RAS socket of one ``ras.RasClient`` toward ``gatekeeper`` (host, port): datagrams in
    and out, RAS timers on ``clock``, events to ``listener.rasEvent(event)``. Datagrams from any
    other address are dropped with a log line."""

    log = Logger()

    def __init__(self, client, gatekeeper, *, clock, listener):
        self.client = client
        self.gatekeeper = gatekeeper
        self.clock = clock
        self.listener = listener
        self._timers = {}

    def datagramReceived(self, data, addr):
        if (addr[0], addr[1]) != tuple(self.gatekeeper):
            self.log.warn("RAS datagram from {peer}, not our gatekeeper: dropped", peer=addr)
            return
        self.apply(self.client.receive(data))

    def apply(self, effects):
        """Carry out the client's effects (public: the leg calls client methods and hands the
        effects here)."""
        for e in effects:
            if isinstance(e, ras.SendRas):
                if self.transport is not None:
                    self.transport.write(e.data, tuple(self.gatekeeper))
            elif isinstance(e, ras.StartTimer):
                self._stop(e.name)
                self._timers[e.name] = self.clock.callLater(e.delay, self._expired, e.name)
            elif isinstance(e, ras.StopTimer):
                self._stop(e.name)
            else:
                if isinstance(e, ras.RasIgnored):
                    self.log.warn("RAS from {peer}: {reason}", peer=self.gatekeeper,
                                  reason=e.reason)
                self.listener.rasEvent(e)

    def _stop(self, name):
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _expired(self, name):
        self._timers.pop(name, None)
        self.apply(self.client.timer_expired(name))

    def stopProtocol(self):
        for name in list(self._timers):
            self._stop(name)
