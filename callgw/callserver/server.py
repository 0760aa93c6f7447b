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

Tests: tests/callpath/test_server.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from callgw.callserver import events as ev
from callgw.callserver.handler import CallContext, CallHandler, Timers
from callgw.callserver.rules import Refused


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
        if hasattr(media, "bind"):          # callgw.callserver.media: the call's client leg
            media.bind(leg, handler)
        elif self.media_factory is not None and request.media_mode == "direct":
            from callgw.callserver.media import standby
            standby(leg, handler, self.media_factory)   # the move to relay, if ever asked
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


class CallPathService(MultiService):
    """The call path of one process, built from a ``GatewayService``: front end, balancer,
    call servers, director, proxy (gateways, health, registrar), logger, metrics, the SIP
    endpoint for the SIP slaves (unless the gateway already has one as ``sip_endpoint``).

    ``startService`` loads the gateways, binds SIP, mounts ``/api`` and ``/metrics`` on the
    site, and starts polling; ``stopService`` releases every call on both legs with a shutdown
    cause, gives the BYEs ``shutdown_grace`` seconds, then fires once the CDRs are written.
    """

    log = Logger()
    name = "callpath"

    def __init__(self, gateway, n_servers: int = 1, shutdown_grace: float = 0.5,
                 health_interval: float | None = 10.0):
        super().__init__()
        from callgw.callserver.branding import BrandingUnit
        from callgw.callserver.director import CallDirector
        from callgw.callserver.logger import CallLogger
        from callgw.callserver.metrics import CallMetrics
        from callgw.frontend.balancer import Balancer
        from callgw.frontend.server import FrontEnd
        from callgw.proxy.gateways import GatewayDirectory
        from callgw.proxy.registrar import Registrar

        config, reactor, store = gateway.config, gateway.reactor, gateway.store
        calls = config["calls"]
        self.gateway = gateway
        self.config = config
        self.reactor = reactor
        self.store = store
        self.node = config["general"]["node"]
        self.shutdown_grace = shutdown_grace
        self.health_interval = health_interval      # None: no status polling
        self.timers = Timers(calls["setup_timeout"], calls["no_answer_timeout"],
                             calls["max_attempts"])
        self.metrics = CallMetrics()
        self.logger = CallLogger(store, reactor, self.node, metrics=self.metrics)
        self.logger.setServiceParent(self)
        self.directory = GatewayDirectory(store)
        self.directory.listeners.append(
            lambda name, status: self.metrics.gateway_status(
                name, status, self.directory.rtt_ms.get(name)))
        self.director = CallDirector(store, reactor, calls["max_duration"])
        self.branding = BrandingUnit()
        self.registrar = Registrar(store, reactor, self.node)
        self.registrar.setServiceParent(self)
        media = config["media"]
        from callgw.callserver.media import CallMedia
        self.media = CallMedia(reactor, media)         # the relay; opens nothing until a call
        self.sip_endpoint = None
        self.slave_factories = {"sip": self._sip_leg}
        self.servers: list[CallServer] = []
        self.balancer = Balancer([], calls["balancer"])
        for i in range(n_servers):
            self.add_call_server(f"{self.node}/cs{i + 1}")
        self.frontend = FrontEnd(self.balancer, reactor, self.logger, self.registrar,
                                 self.branding, store, self.node,
                                 registration_ttl=2 * config["client"]["idle_timeout"],
                                 metrics=self.metrics)
        self.frontend.setServiceParent(self)
        self.frontend.media = self.media
        self.health = None
        self._publish = None
        store.watch(self.reload)

    def add_call_server(self, name: str, capacity: int = 1000, weight: int = 100):
        """One more in-process call server behind the balancer (before or after start)."""
        server = CallServer(name, self.director, self.directory, self.logger, self.reactor,
                            self.slave_factories, self.timers, self._media_session,
                            capacity=capacity, weight=weight)
        self.servers.append(server)
        self.balancer.add(server)
        return server

    def _media_session(self, call_id):
        return self.media.session(call_id)

    # -- SIP ----------------------------------------------------------------------------------
    def _sip_leg(self, gateway: dict, call_id: str):
        from callgw.callserver.legs.sip import SipLeg
        return SipLeg(self.sip_endpoint, sip_gateway(gateway, self.timers), self.reactor)

    def _sip_ping(self, gateway: dict):
        from callgw.callserver.legs.sip import options_ping
        return options_ping(self.sip_endpoint, sip_gateway(gateway, self.timers),
                            self.timers.setup)

    def _start_sip(self) -> None:
        self.sip_endpoint = getattr(self.gateway, "sip_endpoint", None)
        if self.sip_endpoint is not None:
            return
        listener = self.config.listener("sip", "udp")
        if listener is None:
            return
        from protocols.sip.adapter import SipEndpoint
        from protocols.sip.transaction import TimerConfig
        sip = self.config["sip"]
        self.sip_endpoint = SipEndpoint(self.reactor, listener.host, listener.port,
                                        timers=TimerConfig(sip["t1"], sip["t2"], sip["t4"]),
                                        tcp=self.config.listener("sip", "tcp") is not None)
        port = self.sip_endpoint.start()
        self._own_sip = True
        _grow_buffers(getattr(self.sip_endpoint, "_udp_port", None))
        self.log.info("listening: sip udp+tcp {host}:{port} (call path)", host=listener.host,
                      port=port)

    # -- lifecycle ----------------------------------------------------------------------------
    def startService(self) -> Deferred:
        """Fires once the gateways are loaded and SIP is bound."""
        from callgw.proxy.health import HealthPoller
        from callgw.web.api import make_api
        self._own_sip = False
        self._start_sip()
        if self.sip_endpoint is not None and self.health is None and self.health_interval:
            self.health = HealthPoller(self.directory, {"sip": self._sip_ping}, self.reactor,
                                       self.store, interval=self.health_interval)
        MultiService.startService(self)
        web = getattr(self.gateway, "web", None)
        if web is not None:
            web.add_resource("api", make_api(self))
            web.add_resource("metrics", self.metrics.resource())
        d = self.store.run("clear_active_calls", self.node)
        d.addCallback(lambda _: self.directory.reload())
        d.addCallback(self._loaded)
        d.addErrback(lambda f: self.log.failure("call path start", f) or f)
        return d

    def _loaded(self, _) -> None:
        from twisted.internet.task import LoopingCall
        if self.health is not None:
            self.health.startService()
        self._publish = LoopingCall(self._publish_servers)
        self._publish.clock = self.reactor
        self._publish.start(5.0, now=True).addErrback(
            lambda f: self.log.failure("call-server publishing stopped", f))
        self.log.info("call path ready: {n} call server(s), {g} gateway(s), policy {p}",
                      n=len(self.servers), g=len(self.directory.gateways),
                      p=self.balancer.policy)

    def _publish_servers(self) -> None:
        self.balancer.publish(self.store, self.reactor.seconds()).addErrback(
            lambda f: self.log.failure("publishing call servers", f))

    def reload(self) -> Deferred:
        """The admin CLI changed configuration: drop caches, reload gateways."""
        self.director.invalidate()
        self.branding.invalidate()
        return self.directory.reload()

    def stopService(self) -> Deferred:
        """Release every call (both legs, shutdown cause), then write the CDRs; fires after."""
        from twisted.internet.task import deferLater
        for server in self.servers:
            server.draining = True
        n = sum(server.stop_calls(41, "callgw shutting down") for server in self.servers)
        if self._publish is not None and self._publish.running:
            self._publish.stop()
        if self.health is not None and self.health.running:
            self.health.stopService()
        grace = self.shutdown_grace if (n or self.sip_endpoint is not None) else 0
        d = deferLater(self.reactor, grace, lambda: None) if grace else succeed(None)
        d.addCallback(lambda _: MultiService.stopService(self))
        d.addCallback(lambda _: self.media.close())
        if getattr(self, "_own_sip", False):
            d.addCallback(lambda _: self.sip_endpoint.stop())
        d.addErrback(lambda f: self.log.failure("stopping the call path", f))
        return d


def _grow_buffers(port, size: int = 4 << 20) -> None:
    """Give the SIP UDP socket room for a burst of responses while the reactor is busy (the
    kernel caps it at net.core.rmem_max/wmem_max). Default buffers (~200 kB) overflow after a
    few hundred milliseconds' stall at some hundred calls per second."""
    import socket
    sock = getattr(port, "socket", None)
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass


def sip_gateway(row: dict, timers: Timers) -> dict:
    """The SIP leg's gateway record from the store's gateway row."""
    caller_id = row.get("caller_id") or "pass"
    return {"name": row["name"], "address": row["host"], "port": row["port"],
            "transport": row.get("transport") or "udp",
            "outbound_proxy": row.get("outbound_proxy"),
            "username": row.get("auth_user"), "password": row.get("auth_password"),
            "strip_digits": row.get("strip_digits") or 0, "prepend": row.get("prepend") or "",
            "keep_plus": row.get("keep_plus", True),
            "presentation": "restricted" if caller_id == "withhold" else "allowed",
            "no_answer_timeout": timers.no_answer + 5.0}
