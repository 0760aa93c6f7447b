"""The call path's JSON API: active calls, recent CDRs, gateways and call servers.

Owned by the call path (ARCHITECTURE.md, "Call logger": display). ``make_api(callpath)``
returns the resource mounted at ``/api`` on the HTTPS site (``WebSite.add_resource``):

- ``GET /api/calls``: ``{"active": [...], "recent": [...]}`` from the call logger's memory
  (the active-call rows and the newest CDRs first; ``?limit=N`` for CDRs, at most 500);
- ``/api/gateways``: each gateway with status, RTT, calls in progress and capacity, and an
  admin's changes (add, change, drain, enable, remove): ``callgw.web.gateways_api``;
- ``/api/tenants`` and ``/api/users`` (list, add, disable, enable; a user's new password):
  ``callgw.web.accounts_api``;
- ``/api/rules`` and ``/api/books/<user>`` (list, add, remove): ``callgw.web.rules_api``;
- ``GET /api/servers``: each call server with capacity, active calls, health and draining;
- the operator dashboard's routes (call stories, ending a call, CDRs by filter and as CSV,
  refused attempts, the live stream): ``callgw.web.dashboard``;
- ``GET /api/openapi.json``: all of it as an OpenAPI document (``callgw.web.openapi``).

Live figures are served from memory; records from the store's reader thread. ``/metrics`` is
``CallMetrics.resource()`` (callgw/callserver/metrics.py), mounted next to it.

Tests: tests/callpath/test_sipp_calls.py (over the running site).
"""
from __future__ import annotations

import json

from twisted.web.resource import Resource

from callgw.web.accounts_api import Tenants, Users
from callgw.web.dashboard import Dashboard, add_routes
from callgw.web.gateways_api import Gateways
from callgw.web.rules_api import Books, Rules
from callgw.web.limits import bounded_int
from callgw.web.openapi import OpenApi


class _Json(Resource):
    isLeaf = True

    def __init__(self, produce):
        super().__init__()
        self.produce = produce

    def render_GET(self, request):
        limit = bounded_int((request.args.get(b"limit") or [b""])[0], 50, 1, 500)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(self.produce(limit), default=str).encode("utf-8")


def make_api(callpath, cluster: bool = False) -> Resource:
    """The ``/api`` resource over a ``CallPathService``, with the operator dashboard's routes
    (``callgw.web.dashboard``: calls and their stories, CDRs, refused attempts, gateways);
    ``cluster``: a call server of the role ``callserver`` (the others' calls shown too)."""
    root = Resource()
    dashboard = Dashboard(callpath, cluster=cluster)
    root.putChild(b"servers", _Json(lambda limit: dashboard.servers()))
    add_routes(root, dashboard)
    root.putChild(b"gateways", Gateways(dashboard))
    root.putChild(b"tenants", Tenants(dashboard))
    root.putChild(b"users", Users(dashboard))
    root.putChild(b"rules", Rules(dashboard))
    root.putChild(b"books", Books(dashboard))
    root.putChild(b"openapi.json", OpenApi())
    return root
