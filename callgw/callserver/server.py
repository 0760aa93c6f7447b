"""A call server: takes call requests from the front end and runs their handlers.

Owned by the call path (ARCHITECTURE.md, "Front-end server" and "Call handler"). The front end
hands a ``CallRequest`` and the request's leg to ``ICallServer.launch``; in one process that is
a method call on a ``CallServer`` object (``InMemoryCallServer`` is the name the front end
sees), and the multi-node step puts AMP under the same interface. A call server

- asks the call director to authorize the request (a refusal answers the leg with
  ``unauthorized`` and logs an event; nothing reaches a gateway);
- asks the proxy's ``GatewayDirectory`` for the ordered gateways and makes a ``CallHandler``
  whose slave legs come from ``slave_factories[protocol](gateway, call_id)``;
- knows its ``capacity``, ``active`` calls, ``healthy`` and ``draining`` flags (read by the
  balancer and published to the call-servers table), and ``stop_calls`` releases everything.

``AddressOnlyMediaSession`` is the ``IMediaSession`` used until the media relay lands: it hands
out RTP port numbers from the configured range (even ports) and moves no audio.

Tests: tests/callpath/test_server.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import succeed
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from callgw.callserver import events as ev
from callgw.callserver.handler import CallContext, CallHandler, Timers
from callgw.callserver.rules import Refused
from callgw.interfaces import IMediaSession


class ICallServer(Interface):
    """What the front end's balancer and hand-over need of a call server."""

    name = Attribute("The call server's name (call-servers table).")
    capacity = Attribute("Most calls at once.")
    weight = Attribute("Share for the weighted policy.")
    active = Attribute("Calls in progress now.")
    healthy = Attribute("False when the server must not get new calls.")
    draining = Attribute("True while finishing its calls before stopping.")

    def launch(request, leg):
        """Run the call ``request`` (a ``CallRequest``) with ``leg`` as its leg a.

        Fires with the ``CallHandler`` (None when refused; the leg was answered)."""


@dataclass
class CallRequest:
    """A client's call request as the front end hands it over (plain data, AMP-friendly)."""
    call_id: str
    user: dict
    tenant: str
    number: str | None = None
    contact: str | None = None
    media_mode: str = "relay"
    media: ev.MediaDescription | None = None
    peer: str = ""
    requested: float = 0.0


@implementer(IMediaSession)
class AddressOnlyMediaSession:
    """Allocates RTP addresses from a port range; relays nothing (the media issue does)."""

    def __init__(self, pool: "PortPool"):
        self.pool = pool
        self.ports: list[int] = []

    def allocate(self, side):
        port = self.pool.take()
        self.ports.append(port)
        return succeed((self.pool.address, port))

    def connect(self, side, media):
        pass

    def statistics(self):
        return {}

    def close(self):
        for port in self.ports:
            self.pool.give(port)
        self.ports = []
        return succeed({})


class PortPool:
    """Even RTP ports from ``low``..``high`` handed out round-robin (no sockets)."""

    def __init__(self, address: str, low: int, high: int):
        self.address = address
        self.free = list(range(low + (low % 2), high, 2))
        self._next = 0
        self.used: set[int] = set()

    def take(self) -> int:
        for _ in range(len(self.free)):
            port = self.free[self._next]
            self._next = (self._next + 1) % len(self.free)
            if port not in self.used:
                self.used.add(port)
                return port
        raise RuntimeError("no free RTP ports")

    def give(self, port: int) -> None:
        self.used.discard(port)


@implementer(ICallServer)
class CallServer:
    """One call server: director, gateways, handlers, counters."""

    log = Logger()

    def __init__(self, name: str, director, directory, logger, clock, slave_factories: dict,
                 timers: Timers = Timers(), media_factory=None, capacity: int = 1000,
                 weight: int = 100, address: str = "in-process"):
        self.name = name
        self.director = director
        self.directory = directory
        self.logger = logger
        self.clock = clock
        self.slave_factories = slave_factories
        self.timers = timers
        self.media_factory = media_factory
        self.capacity = capacity
        self.weight = weight
        self.address = address
        self.healthy = True
        self.draining = False
        self.handlers: dict[str, CallHandler] = {}
        self.launched = 0

    @property
    def active(self) -> int:
        return len(self.handlers)

    def launch(self, request: CallRequest, leg):
        """Authorize, then start a handler; fires with it (None when refused)."""
        d = self.director.authorize(request.user, request.number, request.contact,
                                    request.tenant)
        d.addCallbacks(self._authorized, self._refused, callbackArgs=(request, leg),
                       errbackArgs=(request, leg))
        return d

    def _refused(self, failure, request: CallRequest, leg):
        failure.trap(Refused)
        refusal = failure.value
        leg.refuse(refusal.code, refusal.text)
        self.logger.refused(request.call_id, request.user["username"],
                            request.number or request.contact or "", refusal.reason,
                            refusal.code, refusal.text, request.peer)
        return None

    def _authorized(self, auth, request: CallRequest, leg) -> CallHandler:
        username = request.user["username"]
        gateways = self.directory.select(auth.target)
        ctx = CallContext(request.call_id, username, request.tenant, auth.target,
                          auth.caller, auth.privacy, request.media_mode, self.name,
                          request.requested or self.clock.seconds(), auth.max_duration,
                          request.peer)
        media = self.media_factory(request.call_id) if (
            self.media_factory is not None and request.media is None) else None
        handler = CallHandler(ctx, leg, self._slave, gateways, self.clock, self.logger,
                              self.timers, media, self._finished, self.directory)
        self.handlers[request.call_id] = handler
        self.director.call_began(username, request.tenant)
        self.launched += 1
        handler.start(ev.Setup(request.call_id, auth.target, auth.caller, auth.privacy,
                               request.media))
        if handler.state.value != "released":
            self.logger.register(handler)
        return handler

    def _slave(self, gateway: dict, call_id: str):
        factory = self.slave_factories.get(gateway["protocol"])
        if factory is None:
            raise LookupError(f"no {gateway['protocol']} leg for gateway {gateway['name']}")
        return factory(gateway, call_id)

    def _finished(self, handler: CallHandler) -> None:
        if self.handlers.pop(handler.ctx.call_id, None) is not None:
            self.director.call_ended(handler.ctx.username, handler.ctx.tenant)

    def stop_calls(self, cause: int = 41, text: str = "callgw shutting down") -> int:
        """Release every call on both legs now; returns how many."""
        handlers = list(self.handlers.values())
        for handler in handlers:
            handler.stop(cause, text)
        return len(handlers)

    def status(self) -> dict:
        return {"name": self.name, "address": self.address, "capacity": self.capacity,
                "weight": self.weight, "healthy": self.healthy, "draining": self.draining,
                "active_calls": self.active}


InMemoryCallServer = CallServer
