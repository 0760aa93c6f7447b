"""The front end's view of the call servers (role ``frontend``): who they are, whether each is
alive, and its load, for the balancer.

Owned by operations (docs/operations.md, "Roles"). ``ClusterPool(config, store, balancer,
reactor)`` reads the call-servers table every ``[cluster] heartbeat`` seconds and keeps one
``RemoteCallServer`` per call-server node, each with its cluster link (AMP over TLS,
callgw/cluster/link.py) kept up by a ``ClientService`` that reconnects with exponential
back-off. Each heartbeat it asks every proven link for ``Status``. A call server counts as
healthy while its link is proven and its last status is at most ``dead_after`` heartbeats
old: a call server that dies (its link drops) is out of the balancer's choice at once, and
after ``dead_after`` heartbeats when only its answers stop. A node whose row names no process
(a clean stop) is let go.

Tests: tests/cluster/test_link.py, tests/cluster/test_roles.py (real processes).
"""
from __future__ import annotations

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import endpoints, ssl
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callgw.cluster.link import FrontEndLink
from callgw.store.errors import StoreUnavailable


class RemoteCallServer:
    """A call-server node as the balancer sees it (name, healthy, draining, active, capacity,
    weight, ``admits()``), and where its clients go (``listener(framing)``). Healthy while its
    link is proven (``linked``) and its last status is at most ``fresh_for`` seconds old."""

    def __init__(self, name: str, link: str, listeners: dict, clock, fresh_for: float):
        self.name = name
        self.link = link
        self.address = link
        self.capacity = 1
        self.weight = 100
        self.active = 0
        self.draining = False
        self.listeners: dict[str, list] = dict(listeners)
        self.proto: FrontEndLink | None = None
        self.last_status = float("-inf")
        self.clock = clock
        self.fresh_for = fresh_for
        self._admits = False
        self._healthy = False

    @property
    def healthy(self) -> bool:
        return (self.proto is not None and self._healthy and
                self.clock.seconds() - self.last_status <= self.fresh_for)

    def admits(self) -> bool:
        return self._admits

    def listener(self, framing: str) -> tuple[str, int] | None:
        where = self.listeners.get(framing)
        return (where[0], int(where[1])) if where else None

    def linked(self, proto: FrontEndLink) -> None:
        self.proto = proto

    def unlinked(self, proto: FrontEndLink) -> bool:
        """The connection of ``proto`` ended; True when it was this node's current link."""
        if self.proto is not proto:
            return False
        self.proto = None
        return True

    def update(self, status: dict, now: float) -> None:
        self.active, self.capacity = status["active"], max(1, status["capacity"])
        self.weight, self._healthy = status["weight"], status["healthy"]
        self.draining, self._admits = status["draining"], status["admits"]
        self.listeners = status["listeners"]
        self.last_status = now


class ClusterPool(Service):
    """Keeps ``balancer.servers`` equal to the live call-server nodes; see the module docstring."""

    log = Logger()
    name = "cluster"

    def __init__(self, config, store, balancer, reactor, allow_connect=None):
        """``allow_connect(host, port)``: lets the call page this front end serves open a call
        server's ``wss`` listener (its Content-Security-Policy), or None without a page."""
        cluster = config["cluster"]
        self.node = config["general"]["node"]
        self.secret = cluster["secret"].encode()
        self.heartbeat = cluster["heartbeat"]
        self.dead_after = cluster["dead_after"]
        self.store = store
        self.balancer = balancer
        self.clock = reactor
        self.allow_connect = allow_connect
        self.nodes: dict[str, RemoteCallServer] = {}
        self.links: dict[str, ClientService] = {}       # node -> its link, reconnecting
        self._loop: LoopingCall | None = None
        self._busy = False
        self._fault: str | None = None

    def startService(self) -> Deferred:
        """Fires after the first look at the table (the links come up in the background)."""
        super().startService()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        done = self._loop.start(self.heartbeat, now=True)
        done.addErrback(lambda f: self.log.failure("cluster pool stopped", f))
        return None

    def stopService(self) -> Deferred:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        stops = [self._drop(name) for name in list(self.nodes)]
        return DeferredList([d for d in stops if d is not None], consumeErrors=True)

    # -- the table ----------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._busy:
            return
        self._busy = True
        d = self.store.run("cluster_nodes")
        d.addCallback(self._nodes)
        d.addCallback(lambda _: self._poll())
        d.addErrback(self._failed)
        d.addBoth(self._done)

    def _done(self, _) -> None:
        self._busy = False

    def _failed(self, failure) -> None:
        if failure.check(StoreUnavailable):
            if self._fault is None:
                self._fault = failure.value.fault
                self.log.warn("cluster: call servers not read: {why} (the known ones are "
                              "still used)", why=failure.getErrorMessage())
            return
        self.log.failure("cluster: reading the call servers", failure)

    def _nodes(self, rows: list[dict]) -> None:
        if self._fault is not None:
            self.log.info("cluster: call servers read again (database back from {fault})",
                          fault=self._fault)
            self._fault = None
        seen = set()
        for row in rows:
            name = row["name"]
            if not row["instance"] or not row["link"]:
                continue                        # stopped cleanly: names no process
            seen.add(name)
            known = self.nodes.get(name)
            if known is not None and known.link != row["link"]:
                self._drop(name)                # restarted elsewhere
                known = None
            if known is None:
                self._add(name, row["link"], row["listeners"])
                self._allow(name, row["listeners"])
        for name in [n for n in self.nodes if n not in seen]:
            self._drop(name)

    def _allow(self, name: str, listeners: dict) -> None:
        where = listeners.get("wss")
        if self.allow_connect is None or not where:
            return
        try:
            self.allow_connect(where[0], int(where[1]))
        except ValueError as e:
            self.log.warn("cluster: call server {name}: its wss listener {where} cannot be "
                          "named in the call page's policy: {why}", name=name, where=where,
                          why=e)

    def _add(self, name: str, link: str, listeners: dict) -> None:
        host, _, port = link.rpartition(":")
        server = RemoteCallServer(name, link, listeners, self.clock,
                                  self.heartbeat * self.dead_after)
        endpoint = endpoints.SSL4ClientEndpoint(self.clock, host.strip("[]"), int(port),
                                                ssl.CertificateOptions())
        factory = Factory.forProtocol(lambda: self._link(server))
        service = ClientService(endpoint, factory, retryPolicy=backoffPolicy(
            initialDelay=0.25, maxDelay=max(2.0, self.heartbeat * 2)), clock=self.clock)
        service.startService()
        self.nodes[name] = server
        self.links[name] = service
        self.balancer.add(server)
        self.log.info("cluster: call server {name} at {link}", name=name, link=link)

    def _link(self, server: RemoteCallServer) -> FrontEndLink:
        ready = Deferred()
        ready.addCallback(self._proven, server)
        ready.addErrback(lambda f: None)        # FrontEndLink logged why and closed
        return FrontEndLink(self.node, self.secret, server.name, ready,
                            lambda proto, reason: self._lost(server, proto, reason))

    def _lost(self, server: RemoteCallServer, proto: FrontEndLink, reason) -> None:
        if server.unlinked(proto):
            self.log.warn("cluster: link to call server {name} lost: {why}",
                          name=server.name, why=reason.getErrorMessage())

    def _proven(self, proto: FrontEndLink, server: RemoteCallServer) -> None:
        server.linked(proto)
        self.log.info("cluster: link to call server {name} up", name=server.name)
        self._status(server)

    def _drop(self, name: str):
        server = self.nodes.pop(name, None)
        service = self.links.pop(name, None)
        if server is None:
            return None
        self.balancer.remove(server)
        self.log.info("cluster: call server {name} left", name=name)
        return service.stopService() if service is not None else None

    # -- status -------------------------------------------------------------------------------
    def _poll(self) -> None:
        for server in self.nodes.values():
            if server.proto is not None:
                self._status(server)

    def _status(self, server: RemoteCallServer) -> None:
        proto = server.proto
        d = proto.status()
        d.addTimeout(self.heartbeat, self.clock)
        d.addCallbacks(lambda s: server.update(s, self.clock.seconds()),
                       lambda f: self.log.warn("cluster: call server {name} did not answer "
                                               "its status: {why}", name=server.name,
                                               why=f.getErrorMessage()))
