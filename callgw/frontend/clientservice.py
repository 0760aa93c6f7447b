"""The client-protocol listeners and the HTTPS site as one service, and the front end's choice.

Owned by the front-end listeners. ``ClientService(config, store, frontend, reactor)`` makes the
``SessionManager`` all framings share and, for each configured listener, its socket service:
``[client] udp`` (``udp.py``), ``tcp`` and ``tls`` (``stream.py``), ``[web] https`` (the site in
``callgw.web.site``: WebSocket, HTTP framing, landing page). The TLS certificate
(``tls.py``) is prepared first. ``stopService`` ends every session (``session_closed`` with
reason ``shutdown``) before closing the sockets. When the admin CLI changes the configuration
(``store.watch``), the sessions of disabled users and tenants end (``recheck_accounts``).

The front end (an ``IFrontEnd``: the call path's ``callgw.frontend.server.FrontEnd``) is
handed in by the composition root (callgw/compose.py).

Tests: tests/frontend/test_framings.py.
"""
from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.python.failure import Failure

from callgw.connlimits import ConnectionLimits
from callgw.frontend.connection import SessionManager
from callgw.frontend.stream import ClientStreamFactory
from callgw.frontend.tls import CertificateService
from callgw.frontend.udp import ClientDatagramProtocol
from callgw.listeners import DatagramListener, StreamListener

_PENDING = object()


class ClientService(MultiService):
    """Every client listener; ``manager`` is shared, ``web`` is the site (or None when off)."""

    name = "client"

    def __init__(self, config, store, frontend, reactor, metrics=None):
        """``metrics``: the ``CallMetrics`` that count refused logins and dropped datagrams."""
        super().__init__()
        self.manager = SessionManager(store, frontend, config, reactor, metrics=metrics)
        store.watch(self.manager.recheck_accounts)   # a disabled account's sessions end
        self.cert = CertificateService(config, reactor)
        if config.listener("client", "tls") or config.listener("web", "https"):
            self.cert.setServiceParent(self)            # made/loaded only when TLS is used
        self.listeners: dict[str, Service] = {}
        self._waiting: list[Deferred] = []
        self._outcome = _PENDING
        udp = config.listener("client", "udp")
        if udp is not None:
            self._add("udp", DatagramListener("client-udp", udp,
                                              ClientDatagramProtocol(self.manager), reactor))
        tcp = config.listener("client", "tcp")
        if tcp is not None:
            self._add("tcp", StreamListener("client-tcp", tcp,
                                            ClientStreamFactory(self.manager, "tcp"), reactor,
                                            limits=ConnectionLimits.from_config(config)))
        tls = config.listener("client", "tls")
        if tls is not None:
            self._add("tls", StreamListener("client-tls", tls,
                                            ClientStreamFactory(self.manager, "tls"), reactor,
                                            tls_context=self.cert.context(),
                                            limits=ConnectionLimits.from_config(config)))
        self.web = None
        https = config.listener("web", "https")
        if https is not None:
            from callgw.web.site import WebSite
            self.web = WebSite(self.manager, https, self.cert, reactor, config, store)
            self._add("https", self.web)

    def _add(self, framing: str, service: Service) -> None:
        self.listeners[framing] = service
        service.setServiceParent(self)

    @property
    def frontend(self):
        return self.manager.frontend

    def address(self, framing: str) -> tuple[str, int]:
        """(host, port) bound for ``framing`` (``udp``, ``tcp``, ``tls``, ``https``)."""
        return self.listeners[framing].address

    def startService(self):
        """Fires when every listener is bound; fails with the first that cannot bind."""
        Service.startService(self)
        d = _gather([maybeDeferred(child.startService) for child in self])
        d.addBoth(self._bound)
        return d

    def _bound(self, result):
        self._outcome = result
        waiting, self._waiting = self._waiting, []
        for w in waiting:
            self._tell(w)
        return result

    def _tell(self, d: Deferred) -> None:
        if isinstance(self._outcome, Failure):
            d.errback(self._outcome)
        else:
            d.callback(self.addresses())

    def when_listening(self) -> Deferred:
        """Fires with ``addresses()`` once every listener is bound (fails if one cannot)."""
        d = Deferred()
        if self._outcome is _PENDING:
            self._waiting.append(d)
        else:
            self._tell(d)
        return d

    def addresses(self) -> dict[str, tuple[str, int]]:
        """Each bound listener's (host, port) by framing: ``udp``, ``tcp``, ``tls``, ``wss``
        and ``https`` (both on the web listener): where a redirected client goes."""
        out = {framing: self.address(framing) for framing in self.listeners}
        if "https" in out:
            out["wss"] = out["https"]
        return out

    def stopService(self):
        """Fires when every session is closed and every socket stopped."""
        self.manager.close_all("shutdown")
        Service.stopService(self)
        return _gather([maybeDeferred(c.stopService) for c in reversed(list(self))])


def _gather(deferreds):
    d = DeferredList(deferreds, fireOnOneErrback=True, consumeErrors=True)
    d.addCallback(lambda _: None)
    d.addErrback(lambda f: getattr(f.value, "subFailure", f))
    return d
