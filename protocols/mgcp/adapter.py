"""The Twisted side of the MGCP call agent: one UDP port, timers, Deferreds, log lines.

``CallAgentEndpoint`` is the only MGCP code that touches a socket or a clock. It owns the UDP
port the call agent listens on (RFC 3435 3.5: the call agent's port is 2727 by default; callgw
takes it from its ``[mgcp]`` settings, on loopback unless configured), a
``protocols.mgcp.agent.CallAgent`` and the ``IDelayedCall`` of every timer the core asks for. It
carries out the core's effects (``Send`` becomes a datagram, ``TimerStart``/``TimerStop`` become
``clock.callLater``/``cancel``) and only then hands the batch's events to its listener
(``IMgcpListener``), so the core never sees re-entrant calls half-way through a change.

``send(gateway, command)`` returns a Deferred that fires with the ``ResponseReceived`` event of
the final response (whatever its code) and fails with ``MgcpCommandError`` when the command got
no usable answer (Max2 retransmissions, T-MAX, a silent LONGTRAN-TIMER). Each command the
gateway answers with an error and each input dropped is one log line naming the peer and the
reason. A NTFY with no listener to take it is answered 200.

Tests: tests/mgcp/test_adapter.py (fake datagram transport, task.Clock),
tests/mgcp/test_osmo_mgw.py (real osmo-mgw) and tests/mgcp/test_fixture_gateway.py (the
scripted fixture gateway on real sockets).
"""
from __future__ import annotations

import random

from twisted.internet import defer, protocol
from twisted.logger import Logger
from zope.interface import Interface

from protocols.mgcp import events as ev
from protocols.mgcp.agent import CallAgent
from protocols.mgcp.message import summary
from protocols.mgcp.transaction import State, Timers

log = Logger(namespace="callgw.mgcp")


class IMgcpListener(Interface):
    """What the call agent's user (the MGCP leg provider) receives."""

    def mgcp_event(event):
        """One event of ``protocols.mgcp.events`` (Notified, ConnectionDeleted,
        EndpointServiceChanged, ReleaseEndpointCalls, ConnectionLost, ResponseReceived, ...)."""

    def mgcp_message(direction, peer, message):
        """A message sent (``"out"``) to or read (``"in"``) from ``peer``, for call traces."""


class MgcpCommandError(Exception):
    """A command got no usable final response: ``event`` is the ``CommandFailed``."""

    def __init__(self, event: ev.CommandFailed):
        super().__init__(f"{summary(event.command)} to {event.gateway}: {event.reason}")
        self.event = event


class _Datagram(protocol.DatagramProtocol):
    def __init__(self, endpoint):
        self.endpoint = endpoint

    def datagramReceived(self, data, addr):
        self.endpoint.datagram_received(data, (addr[0], addr[1]))


class CallAgentEndpoint:
    """The call agent on ``host``:``port`` (UDP). ``reactor`` provides IReactorUDP; ``clock``
    an IReactorTime (defaults to ``reactor``). Nothing opens before ``start()``."""

    def __init__(self, reactor, host: str = "127.0.0.1", port: int = 2727, clock=None,
                 timers: Timers = Timers(), listener=None, first_tid: int | None = None):
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.host = host
        self.port = port
        if first_tid is None:
            first_tid = random.SystemRandom().randrange(1, 100_000_000)
        self.agent = CallAgent(timers, first_tid)
        self.listener = listener
        self._protocol = None
        self._port = None
        self._timers: dict[tuple, dict[str, object]] = {}
        self._waiting: dict[int, defer.Deferred] = {}

    # ---- life cycle ----
    def start(self) -> int:
        """Bind the UDP port; returns the port number."""
        self._protocol = _Datagram(self)
        self._port = self.reactor.listenUDP(self.port, self._protocol, interface=self.host)
        self.port = self._port.getHost().port
        return self.port

    def attach_datagram_transport(self, transport) -> None:
        """Use ``transport`` (tests: a fake with ``write(data, addr)``) instead of a port."""
        self._protocol = _Datagram(self)
        self._protocol.makeConnection(transport)

    def stop(self):
        """Cancel every timer, fail the commands still waiting, close the port. Returns a
        Deferred that fires when the port is closed."""
        for calls in self._timers.values():
            for call in calls.values():
                if call.active():
                    call.cancel()
        self._timers.clear()
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            d.errback(defer.CancelledError("MGCP call agent stopped"))
        port, self._port = self._port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)

    # ---- the user's side ----
    def add_gateway(self, gateway: ev.Gateway) -> None:
        self.agent.add_gateway(gateway)

    def remove_gateway(self, name: str) -> None:
        self._run(self.agent.remove_gateway(name))

    def accepting(self, gateway: str, endpoint) -> bool:
        return self.agent.accepting(gateway, endpoint)

    def send(self, gateway: str, command) -> defer.Deferred:
        """Send ``command`` to ``gateway``. Fires with ``ResponseReceived``; fails with
        ``MgcpCommandError`` (no usable answer) or ``CancelledError`` (stopped meanwhile)."""
        tid, effects = self.agent.send(gateway, command)
        d = self._waiting[tid] = defer.Deferred()
        self._run(effects)
        return d

    def respond(self, key: tuple, code: int, comment: str | None = None, params=()) -> None:
        """Answer the command of a ``Notified`` event."""
        self._run(self.agent.respond(key, code, comment, params))

    # ---- the network's side ----
    def datagram_received(self, data: bytes, peer: tuple) -> None:
        try:
            effects = self.agent.datagram_received(data, peer)
        except Exception:  # noqa: BLE001 - a core bug must not take the reactor down
            log.failure("MGCP core failed on a datagram from {peer}", peer=peer)
            return
        self._run(effects)

    def _fire(self, key: tuple, name: str) -> None:
        self._timers.get(key, {}).pop(name, None)
        try:
            effects = self.agent.timer_fired(key, name)
        except Exception:  # noqa: BLE001
            log.failure("MGCP core failed on timer {name} of {key}", name=name, key=key)
            return
        self._run(effects)

    # ---- effects ----
    def _cancel(self, key: tuple, name: str | None = None) -> None:
        calls = self._timers.get(key)
        if not calls:
            return
        names = [name] if name is not None else list(calls)
        for n in names:
            call = calls.pop(n, None)
            if call is not None and call.active():
                call.cancel()
        if not calls:
            self._timers.pop(key, None)

    def _run(self, effects) -> None:
        events = []
        for e in effects:
            if isinstance(e, ev.Send):
                self._write(e)
            elif isinstance(e, ev.TimerStart):
                self._cancel(e.key, e.name)
                self._timers.setdefault(e.key, {})[e.name] = self.clock.callLater(
                    e.delay, self._fire, e.key, e.name)
            elif isinstance(e, ev.TimerStop):
                self._cancel(e.key, e.name)
            elif isinstance(e, ev.CancelTimers):
                self._cancel(e.key)
            elif isinstance(e, ev.Received):
                self._trace("in", e.peer, e.message)    # in order with the answers it causes
            else:
                events.append(e)
        for event in events:
            self._deliver(event)

    def _write(self, send: ev.Send) -> None:
        if self._protocol is None or self._protocol.transport is None:
            log.warn("MGCP: not started, dropped {what} to {peer}",
                     what=summary(send.messages[0]), peer=send.peer)
            return
        try:
            self._protocol.transport.write(send.data, send.peer)
        except OSError as exc:
            log.warn("MGCP: cannot send {what} to {peer}: {error}",
                     what=summary(send.messages[0]), peer=send.peer, error=exc)
            return
        for message in send.messages:
            self._trace("out", send.peer, message)

    def _trace(self, direction, peer, message) -> None:
        if self.listener is None:
            return
        try:
            self.listener.mgcp_message(direction, peer, message)
        except Exception:  # noqa: BLE001
            log.failure("MGCP listener failed on a {direction} message", direction=direction)

    def _deliver(self, event) -> None:
        if isinstance(event, ev.Rejected):
            log.info("MGCP: answered {what} from {peer} with {code}: {reason}",
                     what=event.summary, peer=event.peer, code=event.code, reason=event.reason)
        elif isinstance(event, ev.Dropped):
            log.info("MGCP: dropped input from {peer}: {reason}", peer=event.peer,
                     reason=event.reason)
        elif isinstance(event, ev.PeerSlow):
            log.info("MGCP: gateway {gateway} has not answered transaction {tid} after Max1 "
                     "retransmissions", gateway=event.gateway, tid=event.tid)
        elif isinstance(event, (ev.ResponseReceived, ev.CommandFailed)):
            d = self._waiting.pop(event.tid, None)
            if d is not None:
                if isinstance(event, ev.ResponseReceived):
                    d.callback(event)
                else:
                    d.errback(MgcpCommandError(event))
        if self.listener is None:
            if isinstance(event, ev.Notified):
                self.respond(event.key, 200)
            return
        try:
            self.listener.mgcp_event(event)
        except Exception:  # noqa: BLE001 - the listener's bug is logged, the gateway answered
            log.failure("MGCP listener failed on {event}", event=type(event).__name__)
            if isinstance(event, ev.Notified) and event.key in self.agent.servers:
                entry = self.agent.servers[event.key]
                if entry.txn.state is State.EXECUTING:
                    self.respond(event.key, 400, "call agent error")


__all__ = ["CallAgentEndpoint", "IMgcpListener", "MgcpCommandError"]
