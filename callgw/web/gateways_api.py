"""The admin API's gateways: the list the dashboard shows, and the changes an admin makes.

Owned by the web site; what may change is ``callgw.admin_service``'s (the CLI's gateway
commands go through it too), run on the store's writer thread (``IStore.write``). Mounted at
``/api/gateways`` by ``callgw.web.api.make_api``, behind the admin guard (a change from a
session needs its ``X-CSRF-Token``, see callgw/web/admin.py):

- ``GET /api/gateways``: each gateway as the running directory sees it: ``status`` (``up``,
  ``down``, ``unknown`` as probed, ``draining`` when disabled), ``rtt_ms``, ``active``,
  ``capacity``, ``enabled`` and ``failures`` (fail-overs from it in the last hour);
- ``POST /api/gateways``: add one; a JSON object ``{"name", "protocol", "host", "prefixes",
  ...}`` (``admin_service.GATEWAY_FIELDS``; ``port`` defaults to the protocol's, ``options``
  are the protocol's own, e.g. ``{"transport": "tls"}``); ``201`` with the stored gateway;
- ``GET /api/gateways/<name>``: its stored configuration (passwords left out);
- ``PATCH /api/gateways/<name>``: change the fields given; ``200`` with the stored gateway;
- ``POST /api/gateways/<name>/drain``: no new calls (its calls go on); ``.../enable``: again;
- ``DELETE /api/gateways/<name>``: remove it (its calls go on).

Mistakes are ``400`` with one ``error`` line (the same words the CLI prints), an unknown
gateway ``404``, a body that is not JSON ``415``/``400``, the store down ``503``. A change
reaches the call path's gateway selection within ``[general] reload_interval`` seconds (the
store's change serial, like a CLI change). Each change is logged with the admin's address.

Tests: tests/web/test_gateways_api.py (a running callgw, HTTP Basic and a session with CSRF).
"""
from __future__ import annotations

import json

from twisted.logger import Logger
from twisted.web.resource import Resource

from callgw import admin_service
from callgw.connlimits import source_of
from callgw.store.errors import StoreError, StoreUnavailable
from callgw.web.dashboard import _json, _later

MAX_BODY = 65536
log = Logger()


def _public(row: dict) -> dict:
    """A stored gateway without its secrets (an option whose name has ``password``)."""
    row = dict(row)
    row["options"] = {k: v for k, v in row.get("options", {}).items() if "password" not in k}
    return row


def body_of(request) -> dict | bytes:
    """The request's JSON object, or the bytes of the error answer."""
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if ctype != b"application/json":
        return _json(request, {"error": "send the body as application/json"}, 415)
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return _json(request, {"error": "body too large"}, 413)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return _json(request, {"error": "the body is not JSON"}, 400)
    if not isinstance(body, dict):
        return _json(request, {"error": "expected a JSON object"}, 400)
    return body


def change(request, dashboard, what: str, fn, *args, code: int = 200, render=_public):
    """Run ``fn(db, *args)`` (an ``admin_service`` function) on the store's writer; answer
    with ``render(its result)`` as JSON, or its mistake; log ``what`` was done, by whom."""
    source = source_of(request.getClientAddress())
    d = dashboard.callpath.store.write(fn, *args)

    def done(result):
        log.info("admin API: {what} from {source}", what=what, source=source)
        return _json(request, render(result), code)

    def mistake(failure):
        error = failure.check(admin_service.NotFound, StoreUnavailable,
                              admin_service.AdminError, StoreError)
        if error is None:
            return failure
        status = {admin_service.NotFound: 404, StoreUnavailable: 503}.get(error, 400)
        return _json(request, {"error": str(failure.value)}, status)
    d.addCallback(done)
    d.addErrback(mistake)
    return _later(request, d, lambda body: body)


class Gateways(Resource):
    """``/api/gateways``: the list (GET), add (POST), one gateway (``Gateway``)."""

    def __init__(self, dashboard):
        super().__init__()
        self.dashboard = dashboard

    def getChild(self, path, request):
        if path == b"":
            return self
        return Gateway(self.dashboard, path.decode("utf-8", "replace"))

    def render_GET(self, request):
        return _later(request, self.dashboard.refresh_failures(),
                      lambda _: _json(request, self.dashboard.gateways()))

    def render_POST(self, request):
        body = body_of(request)
        if isinstance(body, bytes):
            return body
        name, proto = body.pop("name", None), body.pop("protocol", None)
        if not isinstance(name, str) or not isinstance(proto, str):
            return _json(request, {"error": 'expected {"name": "...", "protocol": "...", '
                                            '"host": "...", "prefixes": ["+..."], ...}'}, 400)
        try:
            admin_service.check_types(body)
        except admin_service.AdminError as e:
            return _json(request, {"error": str(e)}, 400)
        return change(request, self.dashboard, f"gateway {name} added",
                      admin_service.add_gateway, name, proto, body, code=201)


class Gateway(Resource):
    """``/api/gateways/<name>`` and its ``drain`` and ``enable``."""

    isLeaf = True

    def __init__(self, dashboard, name: str):
        super().__init__()
        self.dashboard = dashboard
        self.name = name

    def _bare(self, request) -> bool:
        return request.postpath in ([], [b""])

    def render_GET(self, request):
        if not self._bare(request):
            return _json(request, {"error": "not found"}, 404)

        def found(row):
            if row is None:
                return _json(request, {"error": f"no gateway {self.name!r}"}, 404)
            return _json(request, _public(row))
        return _later(request, self.dashboard.callpath.store.run("get_gateway", self.name),
                      found)

    def render_PATCH(self, request):
        if not self._bare(request):
            return _json(request, {"error": "not found"}, 404)
        body = body_of(request)
        if isinstance(body, bytes):
            return body
        return change(request, self.dashboard, f"gateway {self.name} changed",
                      admin_service.change_gateway, self.name, body)

    def render_DELETE(self, request):
        if not self._bare(request):
            return _json(request, {"error": "not found"}, 404)
        return change(request, self.dashboard, f"gateway {self.name} removed",
                      admin_service.remove_gateway, self.name,
                      render=lambda _: {"removed": self.name})

    def render_POST(self, request):
        action = request.postpath
        if action not in ([b"drain"], [b"enable"]):
            return _json(request, {"error": "not found"}, 404)
        enabled = action == [b"enable"]
        return change(request, self.dashboard,
                      f"gateway {self.name} {'enabled' if enabled else 'drained'}",
                      admin_service.set_gateway_enabled, self.name, enabled)
