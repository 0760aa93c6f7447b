"""GatewayService: the root of a running callgw, embeddable in any Twisted application.

Owned by operations. ``GatewayService(config, reactor)`` builds the service tree from a
``callgw.config.Config`` (the store, the manhole, the JSON log, and the listeners and parts that
later issues add) and starts nothing until ``startService``. ``ready`` fires once the store is
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
from twisted.logger import Logger, globalLogPublisher, jsonFileLogObserver

from callgw.config import Config
from callgw.manhole import make_manhole
from callgw.store.threaded import ThreadedStore


class JsonLogService(Service):
    """Also writes every log event as a JSON line to ``path`` while running."""

    name = "json-log"

    def __init__(self, path: str):
        self.path = path
        self._file = None
        self._observer = None

    def startService(self):
        super().startService()
        self._file = open(self.path, "a", encoding="utf-8")
        self._observer = jsonFileLogObserver(self._file)
        globalLogPublisher.addObserver(self._observer)

    def stopService(self):
        super().stopService()
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)
            self._file.close()
            self._observer = self._file = None


class GatewayService(MultiService):
    """The whole gateway. Children are named: ``store``, ``manhole``, ``json-log``, ..."""

    log = Logger()

    def __init__(self, config: Config, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        self.ready: Deferred = Deferred()
        general = config["general"]
        if general["log_json"]:
            JsonLogService(general["log_json"]).setServiceParent(self)
        self.store = ThreadedStore(general["database"], reactor,
                                   reload_interval=general["reload_interval"])
        self.store.setServiceParent(self)
        self.namespace = {"gateway": self, "config": config, "store": self.store}
        manhole = make_manhole(config, self.namespace, reactor)
        if manhole is not None:
            manhole.setServiceParent(self)
        # Client-protocol listeners (UDP, TCP, TLS) and the HTTPS site: callgw/frontend, web.
        from callgw.frontend.clientservice import ClientService, make_frontend
        self.client = ClientService(config, self.store, make_frontend(self), reactor)
        self.client.setServiceParent(self)
        self.web = self.client.web          # web.add_resource("api", resource)
        self.namespace["client"] = self.client

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
        failure = getattr(failure.value, "subFailure", failure)
        self.log.failure("callgw failed to start", failure)
        self.ready.errback(failure)

    def stopService(self) -> Deferred:
        """Fires when every child has stopped, in three waves: the call path first (it releases
        calls and tells their clients while the listeners still carry messages), then the
        rest, then the store (after everyone's last writes)."""
        Service.stopService(self)
        callpath = self.child("callpath")
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
