"""GatewayService: the root of a running callgw, embeddable in any Twisted application.

Owned by operations. ``GatewayService(config, reactor)`` holds the service graph that the
composition root (``callgw.compose.build``) makes from a ``callgw.config.Config`` (the store,
the manhole, the JSON log, the call path, the client listeners and the site) and starts nothing
until ``startService``. ``ready`` fires once the store is
open and every listener is bound. ``stopService`` fires when everything is closed.

    from callgw.config import load
    from callgw.service import GatewayService
    gw = GatewayService(load("callgw.toml"))
    gw.setServiceParent(application)      # or gw.startService() yourself

Tests: tests/test_service.py.
"""
from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger

from callgw.compose import build
from callgw.config import Config


class GatewayService(MultiService):
    """The whole gateway. Children are named: ``store``, ``manhole``, ``json-log``, ..."""

    log = Logger()

    def __init__(self, config: Config, reactor=None, frontend=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        self.ready: Deferred = Deferred()
        parts = build(self, config, reactor, frontend=frontend)
        self.store = parts.store
        self.callpath = parts.callpath
        self.client = parts.client
        self.web = parts.web                # web.add_resource("name", resource)

    def startService(self) -> None:
        """Starts every child in order; ``ready`` fires when all started, or fails."""
        Service.startService(self)
        results = [maybeDeferred(child.startService) for child in self]
        d = DeferredList(results, fireOnOneErrback=True, consumeErrors=True)
        d.addCallback(self._started)
        d.addErrback(self._failed)

    def _started(self, _):
        self.log.info("callgw ready: node {node}", node=self.config["general"]["node"])
        self.ready.callback(self)

    def _failed(self, failure):
        from callgw.startup import describe
        failure = getattr(failure.value, "subFailure", failure)
        why = describe(failure)
        if why is not None:             # the machine or the configuration: one line says it
            self.log.critical("callgw failed to start: {why}", why=why)
        else:
            self.log.failure("callgw failed to start", failure)
        self.ready.errback(failure)

    def stopService(self) -> Deferred:
        """Fires when every child has stopped, in three waves: the call path first (it releases
        calls and tells their clients while the listeners still carry messages), then the
        rest, then the store (after everyone's last writes)."""
        Service.stopService(self)
        callpath = self.callpath
        rest = [c for c in reversed(list(self)) if c is not self.store and c is not callpath]
        d = maybeDeferred(callpath.stopService) if callpath is not None else succeed(None)
        d.addErrback(lambda f: self.log.failure("stopping the call path", f))
        d.addCallback(lambda _: DeferredList([maybeDeferred(c.stopService) for c in rest],
                                             consumeErrors=True))
        d.addCallback(lambda _: self.store.stopService())
        d.addCallback(lambda _: self.log.info("callgw stopped"))
        d.addErrback(lambda f: self.log.failure("stopping callgw", f))
        return d

    def child(self, name: str):
        """The named child service, or None."""
        try:
            return self.getServiceNamed(name)
        except KeyError:
            return None
