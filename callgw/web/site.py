"""callgw's HTTPS site: twisted.web over TLS, HTTP/2 by ALPN with HTTP/1.1 fallback.

Owned by the web site. ``WebSite(manager, listener, cert, reactor, config, store)`` is a service
holding the site (``callgw.web.limits.LimitedSite``: the ``[limits]`` on sizes and time), its
``StreamListener`` (per-source cap, TLS handshake deadline) and ``admin``, the admin accounts'
``AdminAuth`` (callgw/web/adminauth.py). Its root serves:

- ``/`` and ``/static/<version>/...``: the browser call page (``callgw.web.page``); its URL
  is logged once the listener is bound ("open the call page at https://...");
- ``/client/v1/ws``: the client protocol over WebSocket (``callgw.web.websocket``, HTTP/1.1);
- ``/client/v1/events`` + ``/client/v1/messages``: the HTTP framing (``callgw.web.httpframing``);
- ``/admin/``: the admin sign-in page and ``/admin/session`` (``callgw.web.admin``).

Other parts add their resources with ``add_resource("name", resource)`` (a ``putChild`` on the
root); this works before or after start. The admin paths (``ADMIN_PATHS``: ``/api``,
``/metrics``) take only a resource wrapped by ``admin_only(resource)`` (admins; for
``/metrics`` ``admin_only(resource, bearer=True)`` also accepts the Prometheus token), so
nothing is mounted there open by mistake.
Whether HTTP/2 is available (``twisted.web.http.H2_ENABLED``) is logged at start.

Tests: tests/web/test_site.py.
"""
from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.internet.defer import succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource

from callgw.config import defaults
from callgw.connlimits import ConnectionLimits
from callgw.listeners import StreamListener
from callgw.web import httpframing, page, websocket
from callgw.web.admin import AdminGuard, AdminRoot
from callgw.web.adminauth import AdminAuth, AdminSettings
from callgw.web.limits import HttpLimits, LimitedSite

ALPN = (b"h2", b"http/1.1")
ADMIN_PATHS = frozenset({b"api", b"metrics"})


class _NoAdmins:
    """A store without admin accounts (a site built without a store)."""

    def run(self, method_name, *args, **kwargs):
        return succeed({})

    def watch(self, callback) -> None:
        pass


class WebSite(MultiService):
    """The HTTPS site as a service: ``root`` is its resource tree, ``listener`` its socket."""

    log = Logger()
    name = "web"

    def __init__(self, manager, listener, cert, reactor, config=None, store=None):
        """``store``: where the admin accounts are (None: no admin can sign in)."""
        super().__init__()
        config = config if config is not None else defaults()
        self.admin = AdminAuth(store if store is not None else _NoAdmins(),
                               AdminSettings.from_config(config), reactor)
        self.root = page.Root()
        self.page_files = page.PageFiles()
        self.index = page.IndexPage(self.page_files)
        self.root.putChild(b"", self.index)
        self.root.putChild(b"static", page.StaticFiles(self.page_files))
        client, v1 = Resource(), Resource()
        self.root.putChild(b"client", client)
        client.putChild(b"v1", v1)
        v1.putChild(b"ws", websocket.make_resource(
            manager, debug=config["limits"]["websocket_debug"]))
        self.http_sessions = httpframing.add_resources(v1, manager)
        self.root.putChild(b"admin", AdminRoot(self.admin))
        self.clock = reactor
        self._keepalive = None
        self.site = LimitedSite(self.root, HttpLimits.from_config(config), reactor)
        self.listener = StreamListener("web-https", listener, self.site, reactor,
                                       tls_context=cert.context(ALPN),
                                       limits=ConnectionLimits.from_config(config))
        self.listener.setServiceParent(self)

    def add_resource(self, path: str | bytes, resource: Resource) -> None:
        """Serve ``resource`` at ``/path`` (one path segment). Raises ValueError for an admin
        path (``ADMIN_PATHS``) unless ``resource`` came from ``admin_only``."""
        path = path.encode("ascii") if isinstance(path, str) else path
        if path in ADMIN_PATHS and not isinstance(resource, AdminGuard):
            raise ValueError(f"/{path.decode()} is an admin path: mount admin_only(resource)")
        self.root.putChild(path, resource)

    def allow_connect(self, host: str, port: int) -> None:
        """The call page may open ``wss://host:port`` as well as its own origin: a call
        server's client listener a front end redirects the page to (its Content-Security-
        Policy names it). ValueError for a bad host or port."""
        self.index.allow_connect(host, port)

    def admin_only(self, resource: Resource, bearer: bool = False) -> Resource:
        """``resource`` (a tree) for signed-in admins only; ``bearer``: also for the configured
        ``[admin] metrics_token`` (Prometheus)."""
        return AdminGuard(resource, self.admin, bearer)

    def startService(self):
        """Fires when the HTTPS listener is bound."""
        self.log.info("web: HTTP/2 {state}", state="enabled (ALPN h2, http/1.1)"
                      if http.H2_ENABLED else "not available: HTTP/1.1 only")
        Service.startService(self)
        self.page_files.load()
        self.admin.startService()
        self._keepalive = LoopingCall(self.http_sessions.keepalive)
        self._keepalive.clock = self.clock
        self._keepalive.start(self.http_sessions.KEEPALIVE, now=False).addErrback(
            lambda f: self.log.failure("web: SSE keep-alive stopped", f))
        d = self.listener.startService()
        d.addCallback(self._announce)
        return d

    def _announce(self, result):
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        if host in ("0.0.0.0", "::"):
            shown = "localhost"
        self.log.info("web: open the call page at https://{host}:{port}/ (page version "
                      "{version})", host=shown, port=port, version=self.page_files.version)
        return result

    def stopService(self):
        """Fires when the HTTPS listener is closed."""
        Service.stopService(self)
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self.admin.stopService()
        return self.listener.stopService()

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.address
