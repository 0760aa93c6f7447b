"""A call server's place in the cluster (role ``callserver``): joining under a unique name,
heartbeating its load, taking the operator's drain order, answering front ends over the
cluster link, and closing the calls of a call server that died.

Owned by operations (docs/operations.md, "Roles"). ``ClusterMember(config, store, callpath,
client, reactor)``, built by the composition root for the role ``callserver``:

- ``startService``: binds the cluster link (``[cluster] amp``, TLS with the node's certificate),
  waits for the client listeners, then joins the call-servers table under ``[general] node``
  with its link and client listeners (the addresses a front end redirects clients to; the host
  is ``[cluster] advertise`` when set). A name another live process heartbeats is refused:
  the process does not start (``StartupError``, one line).
- every ``[cluster] heartbeat`` seconds: writes its load, reads the operator's drain order
  (``callgw server drain NAME``) and applies it to its call servers, and looks for call
  servers whose heartbeat stopped ``dead_after`` beats ago (once this node itself wrote every
  heartbeat of that window: after a database outage each node waits that long again, so the
  first one back does not take the others for dead): their calls are closed here
  (``CallPathService.take_over``: a CDR with cause 41, the far ends released); the store makes
  sure one survivor closes each call once.
- ``stopService``: leaves the table (the row stays, naming no process; the drain order stays).

Tests: tests/cluster/test_roles.py (real processes), tests/cluster/test_member.py (the dead
node rule with a fake clock and store).
"""
from __future__ import annotations

import uuid

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callgw.cluster.link import CallServerLink
from callgw.listeners import StreamListener
from callgw.startup import StartupError
from callgw.store.errors import StoreError, StoreUnavailable


class ClusterMember(Service):
    """This call-server process in the cluster; see the module docstring."""

    log = Logger()
    name = "cluster"

    def __init__(self, config, store, callpath, client, reactor):
        cluster = config["cluster"]
        self.node = config["general"]["node"]
        self.secret = cluster["secret"].encode()
        self.advertise = cluster["advertise"]
        self.heartbeat = cluster["heartbeat"]
        self.dead_after = cluster["dead_after"]
        self.store = store
        self.callpath = callpath
        self.client = client
        self.clock = reactor
        self.instance = uuid.uuid4().hex
        self.joined = False
        self.listeners: dict[str, list] = {}
        self._loop: LoopingCall | None = None
        self._beating: Deferred | None = None
        self._taking: set[str] = set()
        self._fault: str | None = None
        self._last_written: float | None = None     # start of the last heartbeat written
        self._writing_since: float | None = None    # heartbeats written without a gap since
        factory = Factory.forProtocol(lambda: CallServerLink(self.node, self.secret,
                                                             self.status, client.cert.digest))
        self.link = StreamListener("cluster-link", config.listener("cluster", "amp"), factory,
                                   reactor, tls_context=client.cert.context())

    # -- lifecycle ----------------------------------------------------------------------------
    def startService(self) -> Deferred:
        """Fires once joined; fails (``StartupError``) when the name is in use."""
        Service.startService(self)
        d = maybeDeferred(self.link.startService)
        d.addCallback(lambda _: self.client.when_listening())
        d.addCallback(self._join)
        return d

    def _advertised(self, host: str) -> str:
        if self.advertise:
            return self.advertise
        return "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)

    def _join(self, addresses: dict) -> Deferred:
        self.listeners = {framing: [self._advertised(host), port]
                          for framing, (host, port) in addresses.items()}
        host, port = self.link.address
        link = f"{self._advertised(host)}:{port}"
        now = self.clock.seconds()
        server = self._servers()[0]
        d = self.store.run("join_cluster", self.node, self.instance, "callserver", link,
                           self.listeners, server.capacity, server.weight, now,
                           now - self.heartbeat * self.dead_after)
        d.addCallbacks(self._joined, self._refused)
        return d

    def _refused(self, failure):
        failure.trap(StoreError)
        raise StartupError(f"[general] node: {failure.getErrorMessage()}")

    def _joined(self, row: dict) -> None:
        self.joined = True
        self._last_written = self._writing_since = self.clock.seconds()
        self._apply(row)
        self.log.info("cluster: joined as call server {node} (link {link}, clients "
                      "{listeners}){draining}", node=self.node, link=row["link"],
                      listeners=", ".join(f"{f} {h}:{p}" for f, (h, p) in
                                          sorted(self.listeners.items())),
                      draining=" -- draining (operator's order)" if row["draining"] else "")
        self._loop = LoopingCall(self._beat)
        self._loop.clock = self.clock
        self._loop.start(self.heartbeat, now=False).addErrback(
            lambda f: self.log.failure("cluster heartbeat stopped", f))

    def stopService(self) -> Deferred:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        pending = self._beating if self._beating is not None else succeed(None)
        d = Deferred()
        pending.addBoth(lambda _: d.callback(None))
        if self.joined:
            self.joined = False
            d.addCallback(lambda _: self.store.run("leave_cluster", self.node, self.instance))
            d.addErrback(lambda f: self.log.warn("cluster: leaving the table failed: {why}",
                                                 why=f.getErrorMessage()))
        d.addCallback(lambda _: Service.stopService(self))
        d.addCallback(lambda _: self.link.stopService())
        return d

    # -- what front ends ask ------------------------------------------------------------------
    def _servers(self) -> list:
        return self.callpath.servers

    def status(self) -> dict:
        """This node's load and state for ``Status`` on the cluster link."""
        servers = self._servers()
        return {"node": self.node, "active": sum(s.active for s in servers),
                "capacity": sum(s.capacity for s in servers),
                "weight": servers[0].weight if servers else 100,
                "healthy": all(s.healthy for s in servers),
                "draining": any(s.draining for s in servers),
                "admits": any(s.accepting() for s in servers if not s.draining),
                "listeners": self.listeners}

    # -- heartbeat ----------------------------------------------------------------------------
    def _beat(self) -> None:
        if self._beating is not None:           # the last one is still waiting on the store
            return
        status = self.status()
        now = self.clock.seconds()
        d = self._beating = Deferred()
        d.addCallback(lambda _: self.store.run("heartbeat_node", self.node, self.instance, now,
                                               status["active"], status["capacity"],
                                               status["healthy"]))
        d.addCallback(self._apply)
        d.addCallback(lambda _: self._written(now))
        d.addCallback(lambda judge: self.store.run("dead_nodes",
                                                   now - self.heartbeat * self.dead_after,
                                                   self.node) if judge else [])
        d.addCallback(self._survive, now - self.heartbeat * self.dead_after)
        d.addCallbacks(self._beaten, self._beat_failed)
        d.addBoth(self._beat_done)
        d.callback(None)

    def _written(self, now: float) -> bool:
        """This node's heartbeat of ``now`` is written; True when it may judge others dead:
        only after writing every heartbeat of the last ``dead_after`` (a gap -- the database
        was down or hung, or this process stalled -- starts the count again), so that a live
        call server had as long to write its own since the database answered again."""
        if self._last_written is None or now - self._last_written > 1.5 * self.heartbeat:
            self._writing_since = now
        self._last_written = now
        return now - self._writing_since >= self.heartbeat * self.dead_after

    def _beat_done(self, _) -> None:
        self._beating = None

    def _apply(self, row: dict) -> None:
        """The operator's drain order, from this node's row."""
        draining = bool(row["draining"])
        if self.callpath.drain(draining):
            self.log.info("cluster: call server {node} {what} (operator's order)",
                          node=self.node, what="draining: no new calls" if draining
                          else "takes new calls again")

    def _survive(self, dead: list[str], dead_before: float) -> None:
        for node in dead:
            if node in self._taking:
                continue
            self._taking.add(node)
            self.log.warn("cluster: call server {node} stopped heartbeating: closing its "
                          "calls", node=node)
            d = self.callpath.take_over(node, dead_before)
            d.addErrback(lambda f, n=node: self.log.failure(
                "cluster: closing the calls of dead call server {node}", f, node=n))
            d.addBoth(lambda _, n=node: self._taking.discard(n))

    def _beaten(self, _) -> None:
        if self._fault is not None:
            self.log.info("cluster: heartbeat written again (database back from {fault})",
                          fault=self._fault)
            self._fault = None

    def _beat_failed(self, failure) -> None:
        if failure.check(StoreUnavailable):
            if self._fault is None:
                self._fault = failure.value.fault
                self.log.warn("cluster: heartbeat not written: {why}; trying again every "
                              "{s} s", why=failure.getErrorMessage(), s=self.heartbeat)
            return
        if failure.check(StoreError):       # the name was taken over: stop taking calls
            self.log.error("cluster: {why}: this call server takes no new calls",
                           why=failure.getErrorMessage())
            self.callpath.drain(True)
            return
        self.log.failure("cluster heartbeat", failure)
