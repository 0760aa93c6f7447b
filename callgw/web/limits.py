"""Bounded HTTP on the HTTPS site: sizes and deadlines enforced before anything is buffered.

Owned by the web site. ``LimitedSite(root, limits, reactor)`` is the ``twisted.web`` ``Site`` the
HTTPS listener serves, with the ``[limits]`` settings (``HttpLimits``):

- the request target (``http_max_uri``): longer ones get ``414``;
- the request line and headers together (``http_max_headers``, also the longest single line)
  and their number (``http_max_header_count``): ``431`` (``414`` when the request line itself is
  too long) and the connection is closed, over HTTP/1.1 at the first line that crosses it;
  HTTP/2 header blocks are bounded by the h2 library's header-list limit (64 kB);
- the body (``http_max_body``): a ``Content-Length`` over it is refused with ``413`` before a
  byte of the body is read, a chunked or HTTP/2 body as soon as it crosses it; bodies are held
  in memory, never spooled to a temporary file (twisted.web spools anything over 100 kB);
- time (``http_request_timeout``): from a request's first byte to the end of its body
  (HTTP/1.1), from a connection's start to its first byte (both) and its first request
  (HTTP/2), from a stream's
  headers to the end of its body (HTTP/2); a trickled request gets ``408`` and is dropped.
  WebSocket handshakes are HTTP/1.1 requests and share this deadline. Idle keep-alive
  connections close after ``http_idle_timeout``.

A refusal over HTTP/1.1 is one canned response and the connection closes; over HTTP/2 the
stream is answered with the same code and reset, the connection stays. Each refusal is logged
through ``SourceLog`` (one line per source and reason a minute). Numbers read from a request go
through ``bounded_int`` so an over-long integer is not a 500; HEAD on a resource without GET is a
405, not twisted.web's 500.

Tests: tests/web/test_limits.py (over a real socket) and tests/web/test_attacks.py (a real
callgw process).
"""
from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from twisted.internet.error import ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import Resource
from twisted.web._http2 import H2Connection
from twisted.web.http import _GenericHTTPChannelProtocol   # the h2/http1.1 switch per ALPN

from callgw.connlimits import SourceLog, source_of


@dataclass(frozen=True)
class HttpLimits:
    """The ``[limits]`` settings that concern HTTP (defaults as in callgw/config.py)."""
    request_timeout: float = 15.0
    idle_timeout: float = 60.0
    max_uri: int = 4096
    max_headers: int = 16384
    max_header_count: int = 100
    max_body: int = 65536

    @classmethod
    def from_config(cls, config) -> "HttpLimits":
        lim = config["limits"]
        return cls(float(lim["http_request_timeout"]), float(lim["http_idle_timeout"]),
                   int(lim["http_max_uri"]), int(lim["http_max_headers"]),
                   int(lim["http_max_header_count"]), int(lim["http_max_body"]))


def bounded_int(raw, default: int, low: int, high: int) -> int:
    """A count from a request (query argument or header, bytes or str): ASCII digits only,
    clamped to ``low..high``; anything else is ``default``. Never raises."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    raw = (raw or "").strip()
    if not raw or not raw.isascii() or not raw.isdigit():
        return default
    if len(raw) > len(str(high)):
        return high
    return max(low, min(high, int(raw)))


_PHRASES = {413: b"Content Too Large", 414: b"URI Too Long", 408: b"Request Timeout",
            431: b"Request Header Fields Too Large"}


def _peer(transport) -> str:
    return source_of(transport.getPeer()) if transport is not None else "unknown"


class LimitedHTTPChannel(http.HTTPChannel):
    """HTTP/1.1 with callgw's limits: counts lines and bytes itself and answers with one canned
    response (``refuse``) before twisted.web would buffer more."""

    def __init__(self, limits: HttpLimits, report: SourceLog):
        super().__init__()
        self.limits = limits
        self.report = report
        self.MAX_LENGTH = limits.max_headers + 2        # one line; ours is the finer check
        self.totalHeadersSize = limits.max_headers + 2
        self.maxHeaders = limits.max_header_count + 1
        self._refused = False
        self._busy = False                  # a request is complete and being answered
        self._lines = 0
        self._header_bytes = 0
        self._deadline = None

    # -- refusing -----------------------------------------------------------------------------
    def refuse(self, code: int, reason: str) -> None:
        """Answer ``code`` with an empty body, log ``reason``, close the connection."""
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        self.report.note(_peer(self.transport), f"{code} {reason}")
        phrase = _PHRASES.get(code) or http.RESPONSES.get(code, b"Error")
        self.transport.write(b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                             % (code, phrase))
        self.loseConnection()

    def _respondToBadRequestAndDisconnect(self):
        self.refuse(400, "malformed request")

    def lineLengthExceeded(self, line):
        if self._lines == 0:
            self.refuse(414, "request line too long")
        else:
            self.refuse(431, "header line too long")

    # -- counting -----------------------------------------------------------------------------
    def dataReceived(self, data):
        if self._refused:
            return
        if self._deadline is None and not self._busy:
            self._deadline = self.callLater(self.limits.request_timeout, self._too_slow)
        super().dataReceived(data)

    def lineReceived(self, line):
        if self._refused:
            return
        self._header_bytes += len(line) + 2
        if self._lines == 0 and len(line) > self.limits.max_uri + 32:
            self.refuse(414, "request target too long")
            return
        self._lines += 1
        if self._header_bytes > self.limits.max_headers:
            self.refuse(431, "headers too large")
            return
        if self._lines > self.limits.max_header_count + 1:
            self.refuse(431, "too many header fields")
            return
        super().lineReceived(line)

    def rawDataReceived(self, data):
        if not self._refused:
            super().rawDataReceived(data)

    def allContentReceived(self):
        self._cancel_deadline()
        self._busy = True
        self._lines = self._header_bytes = 0
        super().allContentReceived()

    def requestDone(self, request):
        self._busy = False
        super().requestDone(request)

    # -- time ---------------------------------------------------------------------------------
    def _too_slow(self):
        self._deadline = None
        self.refuse(408, f"request not complete within {self.limits.request_timeout:g} s")

    def _cancel_deadline(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason):
        self._cancel_deadline()
        super().connectionLost(reason)


class _LimitedSwitch(_GenericHTTPChannelProtocol):
    """Twisted's ALPN switch between HTTP/1.1 and HTTP/2, with a deadline for a connection's
    first byte and, over HTTP/2, its first request (HTTP/1.1 then times each request itself)."""

    _first = None

    def __init__(self, channel: LimitedHTTPChannel, timeout: float):
        super().__init__(channel)
        self.timeout = timeout

    def makeConnection(self, transport):
        self._first = self.callLater(self.timeout, self._no_request)
        super().makeConnection(transport)

    def dataReceived(self, data):
        super().dataReceived(data)
        if self._first is not None and (not isinstance(self._channel, H2Connection)
                                        or self._channel.conn.highest_inbound_stream_id):
            self._stop_first()

    def _no_request(self):
        self._first = None
        transport = self._channel.transport
        if transport is not None:
            self._channel.site.report.note(_peer(transport), "no request in time")
            transport.abortConnection()

    def _stop_first(self):
        if self._first is not None and self._first.active():
            self._first.cancel()
        self._first = None

    def connectionLost(self, reason):
        self._stop_first()
        super().connectionLost(reason)


class LimitedRequest(server.Request):
    """A request whose body is bounded and held in memory, whose target is bounded, and
    which must arrive in time (HTTP/2 streams; HTTP/1.1 is timed by its channel)."""

    log = Logger()
    _over = False
    _deadline = None

    def __init__(self, channel, *args, **kwargs):
        super().__init__(channel, *args, **kwargs)
        site = channel.site
        self.limits: HttpLimits = site.limits
        self.report: SourceLog = site.report
        self._received = 0
        if not isinstance(channel, LimitedHTTPChannel):
            self._deadline = site.reactor.callLater(self.limits.request_timeout,
                                                    self._too_slow)

    def gotLength(self, length):
        self.content = BytesIO()
        if length is not None and length > self.limits.max_body:
            self._refuse(413, f"body of {length} bytes announced")

    def handleContentChunk(self, data):
        if self._over:
            return
        self._received += len(data)
        if self._received > self.limits.max_body:
            self._refuse(413, f"body over {self.limits.max_body} bytes")
            return
        self.content.write(data)

    def requestReceived(self, command, path, version):
        self._cancel()
        if self._over:
            return
        super().requestReceived(command, path, version)

    def process(self):
        if len(self.uri) > self.limits.max_uri:
            self.report.note(source_of(self.getClientAddress()), "414 request target too long")
            self.setResponseCode(414)
            self.setHeader(b"content-type", b"application/json")
            self.write(b'{"error": "request target too long"}')
            self.finish()
            return
        super().process()

    def render(self, resrc):
        """As twisted.web's, but HEAD on a resource that answers no GET is a 405 (twisted.web's
        ``Resource.render_HEAD`` calls a ``render_GET`` that is not there: a 500)."""
        if self.method == b"HEAD" and isinstance(resrc, Resource) \
                and type(resrc).render is Resource.render \
                and getattr(resrc, "render_GET", None) is None:
            resrc = _NoGet(resrc)
        super().render(resrc)

    def connectionLost(self, reason):
        self._cancel()
        super().connectionLost(reason)

    def _too_slow(self):
        self._deadline = None
        self._refuse(408, f"request not complete within {self.limits.request_timeout:g} s")

    def _cancel(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _refuse(self, code: int, reason: str) -> None:
        if self._over:
            return
        self._over = True
        self._cancel()
        channel = self.channel
        if isinstance(channel, LimitedHTTPChannel):
            channel.refuse(code, reason)
        elif channel is not None:           # an HTTP/2 stream: answered and reset
            self.report.note(source_of(self.getClientAddress()),
                             f"{code} {reason} (HTTP/2 stream)")
            # not from inside the stream's constructor (gotLength): on the next turn
            channel.site.reactor.callLater(0, self._reset_stream, channel, code, reason)

    def _reset_stream(self, stream, code: int, reason: str):
        if not (self.finished or self._disconnected):
            refuse_h2_stream(stream, code, reason)


class _NoGet(Resource):
    """Stands for a resource without GET when HEAD is asked of it: 405 with its methods."""

    def __init__(self, resource: Resource):
        super().__init__()
        self.resource = resource

    def render(self, request):
        methods = {name[len("render_"):] for name in dir(self.resource)
                   if name.startswith("render_")} - {"HEAD"}
        raise UnsupportedMethod(sorted(m.encode("ascii") for m in methods))


def refuse_h2_stream(stream, code: int, reason: str) -> None:
    """Answer an HTTP/2 stream ``code`` with an empty body and reset it with NO_ERROR (RFC 9113
    section 8.1: a complete response, then RST_STREAM, so the client stops sending); the
    connection and its other streams go on. twisted.web has no public API for this (its own
    ``_respondToBadRequestAndDisconnect`` leaves the stream open and then fails on the next DATA
    frame), so this reaches into its ``H2Connection``; tests/web/test_limits.py guards it."""
    conn, sid = stream._conn, stream.streamID
    if sid not in conn.streams:
        return
    conn.conn.send_headers(sid, [(b":status", b"%d" % code), (b"content-length", b"0")],
                           end_stream=True)
    conn.conn.reset_stream(sid, error_code=0)
    if conn._tryToWriteControlData() and sid in conn.streams:
        stream.connectionLost(Failure(ConnectionLost(reason)))
        conn._requestDone(sid)


class LimitedSite(server.Site):
    """The HTTPS site's factory: ``LimitedHTTPChannel``/``LimitedRequest`` under ``limits``."""

    def __init__(self, root, limits: HttpLimits, reactor, name: str = "web-https"):
        super().__init__(root, requestFactory=LimitedRequest, timeout=limits.idle_timeout,
                         reactor=reactor)
        self.limits = limits
        self.report = SourceLog(reactor, name)
        self.displayTracebacks = False

    def protocol(self):
        return _LimitedSwitch(LimitedHTTPChannel(self.limits, self.report),
                              self.limits.request_timeout)
