"""A call server and the call path of one process.

Owned by the call path (ARCHITECTURE.md, "Front-end server" and "Call handler"). The front end
hands a ``CallRequest`` and the request's leg to ``ICallServer.launch``; in one process that is
a method call on a ``CallServer`` object, and the multi-node step puts AMP under the same
interface. A call server

- asks the call director to authorize the request (a refusal answers the leg with
  ``unauthorized`` and logs an event; nothing reaches a gateway);
- asks the proxy's ``GatewayDirectory`` for the ordered gateways and makes a ``CallHandler``
  whose b legs come from the leg provider of each gateway's protocol
  (``providers[protocol].make_leg(gateway, call_id)``);
- knows its ``capacity``, ``active`` calls, ``healthy`` and ``draining`` flags (read by the
  balancer and published to the call-servers table), and ``stop_calls`` releases everything;
- ``admits()``: admission control from measured load (callgw/callserver/admission.py): the
  balancer skips a server that refuses, and the call is answered with cause ``congestion``.

``CallPathService`` runs the call path's parts that the composition root (callgw/compose.py)
made and handed in: the leg providers (one per native protocol; it names none), the logger,
registrar, front end and health poller.

Tests: tests/callpath/test_frontend.py, tests/callpath/test_sipp_calls.py,
tests/callpath/test_publish_faults.py, tests/callpath/test_admission.py.
"""
from __future__ import annotations

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from callgw import numbers
from callgw.callserver import events as ev
from callgw.callserver.admission import Admission
from callgw.callserver.handler import CallContext, CallHandler, Timers
from callgw.callserver.legs.echo import ECHO_GATEWAY
from callgw.callserver.media import standby
from callgw.callserver.rules import Refused
from callgw.interfaces import CallRequest, ICallServer, LegUnavailable

__all__ = ["CallServer", "CallPathService", "CallRequest"]


@implementer(ICallServer)
class CallServer:
    """One call server: director, gateways, handlers, counters."""

    log = Logger()

    def __init__(self, name: str, director, directory, logger, clock, providers: dict,
                 timers: Timers = Timers(), media_factory=None, capacity: int = 1000,
                 weight: int = 100, address: str = "in-process", echo_number=None,
                 anchor_factory=None):
        self.name = name
        self.director = director
        self.directory = directory
        self.logger = logger
        self.clock = clock
        self.providers = providers              # protocol name -> ILegProvider
        self.echo_number = echo_number          # answered by callgw itself (legs/echo.py)
        self.timers = timers
        self.media_factory = media_factory
        self.anchor_factory = anchor_factory    # direct-mode media anchored (rtpengine), or None
        self.capacity = capacity
        self.weight = weight
        self.address = address
        self.healthy = True
        self.draining = False
        self.handlers: dict[str, CallHandler] = {}
        self.launched = 0
        self.admission = Admission(clock, max_limit=capacity)

    @property
    def active(self) -> int:
        return len(self.handlers)

    def admits(self) -> bool:
        """Whether this server takes a new call now (callgw/callserver/admission.py: reactor
        lag and call set-ups in flight); a refusal is counted and ``admission.reason`` says
        why."""
        return self.admission.admits()

    def accepting(self) -> bool:
        """Whether ``admits()`` would take a call now, without counting a refusal (the
        cluster link's status)."""
        return self.admission.refusal() is None

    def launch(self, request: CallRequest, leg):
        """Authorize, then start a handler; fires with it (None when refused)."""
        self.admission.began(request.call_id)
        d = self.director.authorize(request.user, request.number, request.contact,
                                    request.tenant, request.call_id)
        d.addCallbacks(self._authorized, self._refused, callbackArgs=(request, leg),
                       errbackArgs=(request, leg))
        d.addBoth(self._settled, request.call_id)
        return d

    def _settled(self, result, call_id: str):
        self.admission.settle(call_id, result if isinstance(result, CallHandler) else None)
        return result

    def _refused(self, failure, request: CallRequest, leg):
        failure.trap(Refused)
        refusal = failure.value
        leg.refuse(refusal.code, refusal.text)
        self.logger.refused(request.call_id, request.user["username"],
                            request.number or request.contact or "", refusal.reason,
                            refusal.code, refusal.text, request.peer)
        return None

    def _screened(self, auth, request: CallRequest) -> tuple[list, object]:
        """The gateways to try for ``auth.target``, without those whose number rewriting makes
        a number the caller's rules refuse (each skipped one logged); with the first refusal."""
        gateways, refusal = [], None
        if self.echo_number is not None and auth.target == self.echo_number:
            return [ECHO_GATEWAY], None
        for gw in self.directory.select(auth.target):
            dialled = numbers.dialled_for(auth.target, gw)
            refused = next((r for r in map(auth.refusal, sorted(numbers.interpretations(
                dialled, gw))) if r is not None), None)
            if refused is None:
                gateways.append(gw)
                continue
            refusal = refusal or refused
            self.log.warn("call {call_id} peer {peer}: gateway {gateway} skipped: {target} "
                          "rewritten as {dialled} reaches a refused range ({why})",
                          call_id=request.call_id, peer=request.peer, gateway=gw["name"],
                          target=auth.target, dialled=dialled, why=refused.text)
            self.logger.event(request.call_id, "gateway-skipped", gateway=gw["name"],
                              dialled=dialled, reason=refused.text)
        return gateways, refusal

    def _authorized(self, auth, request: CallRequest, leg) -> CallHandler | None:
        username = request.user["username"]
        gateways, refusal = self._screened(auth, request)
        if not gateways and refusal is not None:
            self.director.withdraw(request.call_id)
            leg.refuse(refusal.code, refusal.text)
            self.logger.refused(request.call_id, username, auth.target, refusal.reason,
                                refusal.code, refusal.text, request.peer)
            return None
        ctx = CallContext(request.call_id, username, request.tenant, auth.target,
                          auth.caller, auth.privacy, request.media_mode, self.name,
                          request.requested or self.clock.seconds(), auth.max_duration,
                          request.peer)
        media = self.media_factory(request.call_id) if (
            self.media_factory is not None and request.media is None) else None
        anchored = self.anchor_factory(request.call_id) if (
            self.anchor_factory is not None and request.media is not None) else None
        handler = CallHandler(ctx, leg, self._slave, gateways, self.clock, self.logger,
                              self.timers, media or anchored, self._finished, self.directory)
        if media is not None:
            media.bind(leg, handler)            # the relay joins the call's client leg
        elif anchored is None and self.media_factory is not None and \
                request.media_mode == "direct":
            standby(leg, handler, self.media_factory)   # the move to relay, if ever asked
        self.handlers[request.call_id] = handler
        self.director.call_began(username, request.tenant, request.call_id)
        self.launched += 1
        handler.start(ev.Setup(request.call_id, auth.target, auth.caller, auth.privacy,
                               request.media))
        if handler.state.value != "released":
            self.logger.register(handler)
        return handler

    def _slave(self, gateway: dict, call_id: str):
        provider = self.providers.get(gateway["protocol"])
        if provider is None:
            raise LegUnavailable(f"no {gateway['protocol']} leg provider for gateway "
                                 f"{gateway['name']}")
        return provider.make_leg(gateway, call_id)

    def _finished(self, handler: CallHandler) -> None:
        self.admission.settle(handler.ctx.call_id)     # out of flight: admission lets it go
        if self.handlers.pop(handler.ctx.call_id, None) is not None:
            self.director.call_ended(handler.ctx.username, handler.ctx.tenant,
                                     handler.ctx.call_id)

    def stop_calls(self, cause: int = 41, text: str = "callgw shutting down") -> int:
        """Release every call on both legs now; returns how many."""
        self.admission.stop()
        handlers = list(self.handlers.values())
        for handler in handlers:
            handler.stop(cause, text)
        return len(handlers)

    def status(self) -> dict:
        return {"name": self.name, "address": self.address, "capacity": self.capacity,
                "weight": self.weight, "healthy": self.healthy, "draining": self.draining,
                "active_calls": self.active, "admission": self.admission.status()}


class CallPathService(MultiService):
    """The call path of one process: call servers behind the balancer, and the parts the
    composition root made for it (logger, registrar, front end as child services; the leg
    providers; the gateway directory and its health poller; the media relay).

    ``startService`` starts the leg providers, loads the gateways and starts polling; fires when
    all are ready. ``stopService`` releases every call on both legs with a shutdown cause,
    gives the legs' last messages the longest ``shutdown_grace`` of the providers, then stops
    the providers and fires once the CDRs are written.
    """

    log = Logger()
    name = "callpath"

    def __init__(self, store, clock, node: str, timers: Timers, *, logger, directory, director,
                 branding, registrar, media, balancer, frontend, providers: dict, metrics,
                 health=None, n_servers: int = 1, publish_interval: float = 5.0,
                 echo_number: str | None = None, publish: bool = True):
        """``publish``: write the call servers to the call-servers table every
        ``publish_interval`` (the role ``all``; a cluster member writes its own row)."""
        super().__init__()
        self.store = store
        self.clock = clock
        self.node = node
        self.timers = timers
        self.logger = logger
        self.directory = directory
        self.director = director
        self.branding = branding
        self.registrar = registrar
        self.media = media
        self.balancer = balancer
        self.frontend = frontend
        self.providers = dict(providers)
        self.metrics = metrics
        self.health = health
        self.publish_interval = publish_interval
        self.publish = publish
        self.echo_number = echo_number
        self.servers: list[CallServer] = []
        self.started_at = float("inf")
        self._publish = None
        self._publish_fault: str | None = None      # the database fault publishing met, if any
        self.logger.setServiceParent(self)
        self.registrar.setServiceParent(self)
        self.frontend.setServiceParent(self)
        self.directory.listeners.append(
            lambda name, status: self.metrics.gateway_status(
                name, status, self.directory.rtt_ms.get(name)))
        for i in range(n_servers):
            self.add_call_server(f"{node}/cs{i + 1}")
        store.watch(self.reload)

    def add_call_server(self, name: str, capacity: int = 1000, weight: int = 100):
        """One more in-process call server behind the balancer (before or after start)."""
        server = CallServer(name, self.director, self.directory, self.logger, self.clock,
                            self.providers, self.timers, self.media.session,
                            capacity=capacity, weight=weight, echo_number=self.echo_number,
                            anchor_factory=self.media.anchor_factory)
        self.servers.append(server)
        self.balancer.add(server)
        return server

    def drain(self, on: bool) -> bool:
        """The operator's order (``callgw server drain``): this process's call servers take no
        new calls (or take them again); their calls go on. True when it changed anything."""
        changed = False
        for server in self.servers:
            if server.draining != on:
                server.draining = on
                changed = True
        return changed

    # -- lifecycle ----------------------------------------------------------------------------
    def startService(self) -> Deferred:
        """Fires once every leg provider is ready and the gateways are loaded; fails with the
        first provider that cannot start."""
        MultiService.startService(self)
        self.started_at = self.clock.seconds()  # what began before is a previous run's
        started = [maybeDeferred(p.start) for p in self.providers.values()]
        d = DeferredList(started, fireOnOneErrback=True, consumeErrors=True)
        d.addErrback(lambda f: getattr(f.value, "subFailure", f))
        d.addCallback(lambda _: self.directory.reload())
        d.addCallback(lambda _: self.store.run("node_calls", self.node))
        d.addCallback(lambda rows: [r for r in rows if r["started"] < self.started_at])
        d.addCallback(self._recover, self.node,
                      "callgw restarted: released the call its previous run left open")
        d.addCallback(self._loaded)
        d.addErrback(lambda f: self.log.failure("call path start", f) or f)
        return d

    def _recover(self, rows: list[dict], node: str, text: str,
                 dead_before: float | None = None):
        """Close the calls ``node`` left open (a previous run of this node that crashed, or
        another call server that died: then only while it still counts as dead at
        ``dead_before``): one CDR each (cause 41, ``text``), the active-call rows dropped, and
        each native leg's far end released by its provider (SIP: a BYE built from the stored
        dialog). Only the calls this process closed are released (another survivor may have
        closed some first). Fires with how many were closed, once the records are written;
        the releases go on in the background, each logged."""
        if not rows and not self.store.shared:     # (shared: admitted calls without rows)
            return 0
        now = self.clock.seconds()
        cdrs, events = [], []
        for row in rows:
            answered = row.get("answered")
            cdrs.append({
                "call_id": row["call_id"], "username": row["username"],
                "tenant": row.get("tenant") or "default", "target": row["target"],
                "gateway": row.get("gateway"), "call_server": row["call_server"],
                "requested": row["started"], "ringing": None, "answered": answered,
                "ended": now, "duration": round(now - answered, 3) if answered else 0.0,
                "cause": 41, "cause_text": text, "media_mode": row["media_mode"],
                "stats": {"outcome": "answered" if answered else "failed",
                          "released_by": "callgw", "recovered": True, "recovered_by": self.node,
                          "last_state": row["state"], "last_update": row["updated"]}})
            events.append({"call_id": row["call_id"], "kind": "recovered", "at": now,
                           "data": {"state": row["state"], "node": node, "by": self.node,
                                    "legs": [r.get("protocol") for r in row["recovery"]]}})
        d = self.store.run("close_calls", node, cdrs, events, dead_before, now, text,
                           self.started_at if node == self.node else None)
        d.addCallback(self._release_orphans, rows, node)
        return d

    def take_over(self, node: str, dead_before: float):
        """Call server ``node`` stopped heartbeating: close its calls (see ``_recover``);
        fires with how many this process closed."""
        d = self.store.run("node_calls", node)
        d.addCallback(self._recover, node, f"call server {node} died: its call was released "
                      f"by {self.node}", dead_before)
        return d

    def _release_orphans(self, closed: list[str], rows: list[dict], node: str) -> int:
        released = 0
        mine = set(closed)
        for row in rows:
            if row["call_id"] not in mine:
                continue
            for recovery in row["recovery"]:
                provider = self.providers.get(recovery.get("protocol"))
                if provider is None:
                    self.log.warn("call {call_id}: no {protocol} provider to release it",
                                  call_id=row["call_id"], protocol=recovery.get("protocol"))
                    continue
                gateway = self.directory.gateways.get(recovery.get("gateway"))
                d = maybeDeferred(provider.release_orphan, gateway, recovery)
                d.addCallbacks(
                    lambda _, c=row["call_id"], g=recovery.get("gateway"): self.log.info(
                        "call {call_id} left open by {node}: released at {gateway}",
                        call_id=c, gateway=g, node=node),
                    lambda f, c=row["call_id"], g=recovery.get("gateway"): self.log.warn(
                        "call {call_id} left open by {node}: releasing it at "
                        "{gateway} failed: {why}", call_id=c, gateway=g, node=node,
                        why=f.getErrorMessage()))
                released += 1
        if closed:
            who = (f"start-up: {len(closed)} call(s) left open by the previous run of {node}"
                   if node == self.node else
                   f"{len(closed)} call(s) left open by dead call server {node}")
            self.log.warn("{who} closed with a CDR (cause 41); {r} far end(s) being released",
                          who=who, r=released)
        return len(closed)

    def _loaded(self, _) -> None:
        from twisted.internet.task import LoopingCall
        if not self.running:        # stopped while starting (another part failed): no loops
            return
        if self.health is not None:
            self.health.startService()
        if self.publish:
            self._publish = LoopingCall(self._publish_servers)
            self._publish.clock = self.clock
            self._publish.start(self.publish_interval, now=True).addErrback(
                lambda f: self.log.failure("call-server publishing stopped", f))
        self.log.info("call path ready: {n} call server(s), {g} gateway(s), policy {p}, "
                      "protocols {protocols}", n=len(self.servers),
                      g=len(self.directory.gateways), p=self.balancer.policy,
                      protocols=", ".join(sorted(self.providers)))

    def _publish_servers(self) -> None:
        d = self.balancer.publish(self.store, self.clock.seconds())
        d.addCallbacks(self._published, self._publish_failed)

    def _published(self, _) -> None:
        if self._publish_fault is not None:
            self.log.info("call servers published again (database back from {fault})",
                          fault=self._publish_fault)
            self._publish_fault = None

    def _publish_failed(self, failure) -> None:
        """A passing database fault is one warning when it starts (the next publish after
        it ends writes everything); anything else is a failure with its traceback."""
        from twisted.internet.defer import FirstError
        from callgw.store.errors import StoreUnavailable
        if failure.check(FirstError):
            failure = failure.value.subFailure
        if not failure.check(StoreUnavailable):
            self.log.failure("publishing call servers", failure)
        elif self._publish_fault is None:
            self._publish_fault = failure.value.fault
            self.log.warn("call servers not published: {why}; trying again every {s} s",
                          why=failure.getErrorMessage(), s=self.publish_interval)

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
        grace = max((p.shutdown_grace for p in self.providers.values()), default=0) if n else 0
        d = deferLater(self.clock, grace, lambda: None) if grace else succeed(None)
        d.addCallback(lambda _: MultiService.stopService(self))
        d.addCallback(lambda _: self.media.close())
        d.addCallback(lambda _: DeferredList([maybeDeferred(p.stop)
                                              for p in self.providers.values()],
                                             consumeErrors=True))
        d.addErrback(lambda f: self.log.failure("stopping the call path", f))
        return d
