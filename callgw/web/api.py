"""The call path's JSON API: active calls, recent CDRs, gateways and call servers.

Owned by the call path (ARCHITECTURE.md, "Call logger": display). ``make_api(callpath)``
returns the resource mounted at ``/api`` on the HTTPS site (``WebSite.add_resource``):

- ``GET /api/calls``: ``{"active": [...], "recent": [...]}`` from the call logger's memory
  (the active-call rows and the newest CDRs first; ``?limit=N`` for CDRs, at most 500);
- ``GET /api/gateways``: each gateway with status, RTT, calls in progress and capacity;
- ``GET /api/servers``: each call server with capacity, active calls, health and draining.

Everything is served from memory (no database round trip). ``/metrics`` is
``CallMetrics.resource()`` (callgw/callserver/metrics.py), mounted next to it.

Tests: tests/callpath/test_sipp_calls.py (over the running site).
"""
from __future__ import annotations

import json

from twisted.web.resource import Resource

from callgw.web.limits import bounded_int


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


def make_api(callpath) -> Resource:
    """The ``/api`` resource over a ``CallPathService``."""
    root = Resource()
    root.putChild(b"calls", _Json(lambda limit: {
        "active": callpath.logger.active_calls(),
        "recent": callpath.logger.recent_cdrs(limit)}))
    root.putChild(b"gateways", _Json(lambda limit: callpath.directory.snapshot()))
    root.putChild(b"servers", _Json(lambda limit: [s.status() for s in callpath.servers]))
    return root
