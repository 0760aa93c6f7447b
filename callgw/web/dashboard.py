"""The operator dashboard's data: the admin API routes behind ``/api`` that the dashboard page
(``callgw/web/static/admin/dashboard.js``) reads, and its live stream.

Owned by the web site (what the call logger displays: ARCHITECTURE.md, "Call logger"; the
operator's view in docs/operations.md, "The operator dashboard"). ``Dashboard(callpath)`` reads
the call logger (live calls with their media figures, from memory), the gateway directory
(status, probe RTT, calls against capacity) and the call servers from memory, and the store
(``callgw/store/reports.py``, on its reader thread) for records, refused attempts and a call's
events and message trace. ``add_routes(api_root, dashboard)`` mounts, under ``/api`` (whose
guard admits admins only, see callgw/web/admin.py):

- ``GET /api/calls`` (the live calls and the newest CDRs, as before), ``GET /api/calls/stream``:
  Server-Sent Events, one ``state`` event a second (``{"now", "active", "gateways",
  "servers"}``) while the page is open;
- ``GET /api/calls/<call id>``: the call's story: ``live`` (its row, while it lasts), ``events``,
  ``trace`` (every message of both legs: leg, direction, summary, time), ``cdr``, ``routing``
  (each skipped gateway, attempt and fail-over; the first attempt names the candidates in the
  order selection ranked them);
- ``POST /api/calls/<call id>/end``: the operator ends a live call: both legs are released
  through the call path (``CallHandler.stop`` on the call server holding it, cause 16
  "ended by an operator"); ``404`` when no call server holds it;
- ``GET /api/cdrs?user=&tenant=&prefix=&gateway=&cause=&since=&until=&limit=``: records by
  filter (``callgw.store.reports.CDR_FILTERS``), newest first; ``format=csv`` answers
  ``text/csv`` as a download;
- ``GET /api/refused?since=&limit=``: attempts the director refused, with their reasons;
- ``/api/gateways`` (the list: each gateway with ``status``, RTT, calls, capacity and
  recent ``failures``; and the changes) is ``callgw.web.gateways_api``'s;
- ``GET /api/stats/calls?since=&until=``: counters per minute from the store (calls by
  outcome, answer-seizure ratio, set-up latency: ``callgw.store.reports.call_stats``), by
  default the last hour, at most a day; the dashboard draws them as charts.

Tests: tests/web/test_dashboard.py (the routes over a real site, a live call ended by the
operator) and tests/web/test_browser_dashboard.py (the page in Chromium, a call to sipp).
"""
from __future__ import annotations

import csv
import io
import json

from twisted.internet.defer import succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from callgw.causes import NORMAL_CLEARING
from callgw.connlimits import source_of
from callgw.store.reports import CDR_FILTERS
from callgw.web.limits import bounded_int

FAILURE_WINDOW = 3600.0
STATS_WINDOW = 3600.0           # what /api/stats/calls covers by default
STATS_MAX_WINDOW = 86400.0      # and at most
CSV_COLUMNS = ("call_id", "username", "tenant", "target", "gateway", "call_server", "requested",
               "ringing", "answered", "ended", "duration", "cause", "cause_text", "media_mode",
               "outcome", "released_by", "attempts")
#: The events that tell how a call was routed.
ROUTING_KINDS = ("gateway-skipped", "attempt", "failover")
log = Logger()


class Dashboard:
    """What the dashboard shows, read from the call path's parts; the live stream's clients."""

    def __init__(self, callpath, interval: float = 1.0, failures_every: int = 10,
                 cluster: bool = False):
        """``cluster``: this process is a call server of the role ``callserver``: the other
        call servers' calls and states are shown too, read from the shared tables."""
        self.callpath = callpath
        self.clock = callpath.clock
        self.interval = interval
        self.failures_every = failures_every
        self.cluster = cluster
        self.peer_calls: list[dict] = []         # other call servers' active calls (cached)
        self.peer_servers: list[dict] = []       # other call servers (cached)
        self.failures: dict[str, int] = {}       # gateway -> recent fail-overs (cached)
        self.streams: list = []                  # open SSE requests
        self._loop: LoopingCall | None = None
        self._ticks = 0

    # -- what it shows ------------------------------------------------------------------------
    def gateways(self) -> list[dict]:
        rows = []
        for gw in self.callpath.directory.snapshot():
            row = dict(gw)
            if not row.get("enabled", True):
                row["status"] = "draining"
            row["failures"] = self.failures.get(row["name"], 0)
            rows.append(row)
        return rows

    def servers(self) -> list[dict]:
        rows = []
        for server in self.callpath.servers:
            row = server.status()
            row["state"] = ("draining" if row["draining"] else
                            "up" if row["healthy"] else "unhealthy")
            rows.append(row)
        return rows + self.peer_servers

    def active(self) -> list[dict]:
        """The live calls: this process's, with live media figures, then the other call
        servers' as their last written rows (cluster)."""
        return self.callpath.logger.active_calls() + self.peer_calls

    def state(self) -> dict:
        return {"now": self.clock.seconds(), "active": self.active(),
                "gateways": self.gateways(), "servers": self.servers()}

    def refresh_cluster(self):
        """Fires once ``peer_calls`` and ``peer_servers`` hold the other call servers' rows
        (at once when this process is no cluster member)."""
        if not self.cluster:
            return succeed(None)
        node = self.callpath.node
        now = self.clock.seconds()

        def calls(rows):
            self.peer_calls = [{k: v for k, v in r.items() if k != "recovery"}
                               for r in rows if r["node"] != node]
            return self.callpath.store.run("cluster_nodes")

        def nodes(rows):
            peers = []
            for r in rows:
                if r["name"] == node:
                    continue
                alive = bool(r["instance"]) and bool(r["healthy"])
                peers.append({
                    "name": r["name"], "address": r["link"], "capacity": r["capacity"],
                    "weight": r["weight"], "healthy": alive, "draining": bool(r["draining"]),
                    "active_calls": r["active_calls"], "heartbeat_age": round(
                        now - r["updated"], 1),
                    "state": ("stopped" if not r["instance"] else "draining"
                              if r["draining"] else "up" if r["healthy"] else "unhealthy")})
            self.peer_servers = peers
        d = self.callpath.store.run("active_calls")
        d.addCallback(calls)
        d.addCallback(nodes)
        return d

    def refresh_failures(self):
        """Fires once ``failures`` holds the last hour's fail-overs per gateway."""
        d = self.callpath.store.run("gateway_failures", self.clock.seconds() - FAILURE_WINDOW)

        def got(counts):
            self.failures = counts
        d.addCallback(got)
        return d

    def story(self, call_id: str):
        """Fires with the call's story (see the module docstring)."""
        d = self.callpath.store.run("call_story", call_id)

        def merge(story):
            live = next((r for r in self.callpath.logger.active_calls()
                         if r["call_id"] == call_id), None)
            story["live"] = live
            events = story["events"]
            story["routing"] = [e for e in events if e["kind"] in ROUTING_KINDS]
            story["found"] = bool(live or events or story["trace"] or story["cdr"])
            return story
        return d.addCallback(merge)

    def end_call(self, call_id: str, source: str) -> bool:
        """Release both legs of live call ``call_id``; False when no call server holds it."""
        for server in self.callpath.servers:
            handler = server.handlers.get(call_id)
            if handler is not None:
                log.info("call {call_id}: ended by an operator from {source}",
                         call_id=call_id, source=source)
                self.callpath.logger.event(call_id, "operator-ended", source=source)
                handler.stop(NORMAL_CLEARING, "ended by an operator")
                return True
        return False

    # -- the live stream ----------------------------------------------------------------------
    def subscribe(self, request) -> None:
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        self.streams.append(request)
        request.write(b"retry: 2000\n\n" + self._event())
        request.notifyFinish().addBoth(lambda _: self._unsubscribe(request))
        if self._loop is None:
            self._loop = LoopingCall(self._tick)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: log.failure("dashboard: live stream stopped", f))
            self.refresh_failures().addErrback(
                lambda f: log.failure("dashboard: reading gateway failures", f))
            self.refresh_cluster().addErrback(self._cluster_unread)

    def _cluster_unread(self, failure) -> None:
        log.warn("dashboard: the other call servers' calls not read: {why}",
                 why=failure.getErrorMessage())

    def _unsubscribe(self, request) -> None:
        if request in self.streams:
            self.streams.remove(request)
        if not self.streams:
            self.stop()

    def stop(self) -> None:
        """Stop the stream's timer (the streams themselves end with their connections)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _event(self) -> bytes:
        return b"event: state\ndata: " + json.dumps(self.state(), default=str).encode() + b"\n\n"

    def _tick(self) -> None:
        self._ticks += 1
        if self._ticks % self.failures_every == 0:
            self.refresh_failures().addErrback(
                lambda f: log.failure("dashboard: reading gateway failures", f))
        if self.cluster and self._ticks % 2 == 0:
            self.refresh_cluster().addErrback(self._cluster_unread)
        if not self.streams:
            return
        event = self._event()
        for request in list(self.streams):
            request.write(event)


# -- HTTP ---------------------------------------------------------------------------------------
def _json(request, body, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, default=str).encode("utf-8")


def _arg(request, name: str) -> str:
    raw = (request.args.get(name.encode()) or [b""])[0]
    return raw.decode("utf-8", "replace").strip()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) < 1e12 else None     # no NaN, no inf


def _later(request, d, render) -> object:
    """Answer ``request`` with ``render(result)`` once ``d`` fires (a 500 line if it fails)."""
    done = []
    request.notifyFinish().addBoth(done.append)

    def answer(result):
        if not done:
            request.write(render(result))
            request.finish()

    def failed(failure):
        log.failure("dashboard: {uri}", failure, uri=request.uri)
        if not done:
            request.write(_json(request, {"error": "the store could not answer"}, 503))
            request.finish()
    d.addCallback(answer).addErrback(failed)
    return NOT_DONE_YET


class Calls(Resource):
    """``/api/calls``, ``/api/calls/stream``, ``/api/calls/<id>`` and ``.../<id>/end``."""

    def __init__(self, dashboard: Dashboard):
        super().__init__()
        self.dashboard = dashboard

    def render_GET(self, request):
        limit = bounded_int(_arg(request, "limit"), 50, 1, 500)
        dashboard = self.dashboard
        return _later(request, dashboard.refresh_cluster(), lambda _: _json(request, {
            "active": dashboard.active(),
            "recent": dashboard.callpath.logger.recent_cdrs(limit)}))

    def getChild(self, path, request):
        if path == b"stream":
            return Stream(self.dashboard)
        if path == b"":
            return self
        return Call(self.dashboard, path.decode("utf-8", "replace"))


class Stream(Resource):
    isLeaf = True

    def __init__(self, dashboard: Dashboard):
        super().__init__()
        self.dashboard = dashboard

    def render_GET(self, request):
        self.dashboard.subscribe(request)
        return NOT_DONE_YET


class Call(Resource):
    isLeaf = True

    def __init__(self, dashboard: Dashboard, call_id: str):
        super().__init__()
        self.dashboard = dashboard
        self.call_id = call_id

    def render_GET(self, request):
        if request.postpath not in ([], [b""]):
            return _json(request, {"error": "not found"}, 404)

        def render(story):
            if not story["found"]:
                return _json(request, {"error": f"no call {self.call_id}"}, 404)
            return _json(request, story)
        return _later(request, self.dashboard.story(self.call_id), render)

    def render_POST(self, request):
        if request.postpath != [b"end"]:
            return _json(request, {"error": "not found"}, 404)
        source = source_of(request.getClientAddress())
        if not self.dashboard.end_call(self.call_id, source):
            return _json(request, {"error": f"no live call {self.call_id}"}, 404)
        return _json(request, {"ended": self.call_id})


class Cdrs(Resource):
    """``/api/cdrs``: records by filter, as JSON or (``format=csv``) CSV."""

    isLeaf = True

    def __init__(self, dashboard: Dashboard):
        super().__init__()
        self.dashboard = dashboard

    def render_GET(self, request):
        filters = {name: _arg(request, name) for name in CDR_FILTERS}
        for name in ("since", "until"):
            if filters[name]:
                value = _number(filters[name])
                if value is None:
                    return _json(request, {"error": f"{name}: seconds since the epoch"}, 400)
                filters[name] = value
        cause = filters["cause"]
        if cause and not (cause.isascii() and cause.isdigit() and len(cause) <= 3):
            return _json(request, {"error": "cause: a number (e.g. 16)"}, 400)
        limit = bounded_int(_arg(request, "limit"), 100, 1, 10000)
        as_csv = _arg(request, "format") == "csv"
        d = self.dashboard.callpath.store.run("cdr_search", filters, limit)
        return _later(request, d, lambda rows: _csv(request, rows) if as_csv
                      else _json(request, rows))


def _csv(request, rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        stats = row.get("stats") or {}
        merged = dict(row, outcome=stats.get("outcome"), released_by=stats.get("released_by"),
                      attempts=stats.get("attempts"))
        writer.writerow([_cell(merged.get(c)) for c in CSV_COLUMNS])
    request.setHeader(b"content-type", b"text/csv; charset=utf-8")
    request.setHeader(b"content-disposition", b'attachment; filename="callgw-cdrs.csv"')
    request.setHeader(b"cache-control", b"no-store")
    return out.getvalue().encode("utf-8")


def _cell(value) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a '."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@") and _number(text) is None:
        return "'" + text
    return text


class Refused(Resource):
    isLeaf = True

    def __init__(self, dashboard: Dashboard):
        super().__init__()
        self.dashboard = dashboard

    def render_GET(self, request):
        since = _number(_arg(request, "since") or "0")
        if since is None:
            return _json(request, {"error": "since: seconds since the epoch"}, 400)
        limit = bounded_int(_arg(request, "limit"), 100, 1, 1000)
        return _later(request, self.dashboard.callpath.store.run(
            "refused_attempts", since, limit), lambda rows: _json(request, rows))


class CallStats(Resource):
    """``/api/stats/calls``: calls per minute by outcome, ASR and set-up latency."""

    isLeaf = True

    def __init__(self, dashboard: Dashboard):
        super().__init__()
        self.dashboard = dashboard

    def render_GET(self, request):
        now = self.dashboard.clock.seconds()
        until = _number(_arg(request, "until") or str(now))
        if until is None:
            return _json(request, {"error": "until: seconds since the epoch"}, 400)
        since = _number(_arg(request, "since") or str(until - STATS_WINDOW))
        if since is None:
            return _json(request, {"error": "since: seconds since the epoch"}, 400)
        if not 0 <= until - since <= STATS_MAX_WINDOW:
            return _json(request, {"error": "since..until: at most a day, since before until"},
                         400)
        d = self.dashboard.callpath.store.run("call_stats", since, until)
        return _later(request, d, lambda minutes: _json(
            request, {"since": since, "until": until, "minutes": minutes}))


def add_routes(root: Resource, dashboard: Dashboard) -> None:
    """Mount the dashboard's routes on the ``/api`` resource ``root``."""
    root.putChild(b"calls", Calls(dashboard))
    root.putChild(b"cdrs", Cdrs(dashboard))
    root.putChild(b"refused", Refused(dashboard))
    stats = Resource()
    stats.putChild(b"calls", CallStats(dashboard))
    root.putChild(b"stats", stats)
