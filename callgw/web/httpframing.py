"""The client protocol over plain HTTP: ``POST`` a payload, read the server's over SSE.

Owned by the web site (docs/protocol.md, "HTTP"). For clients that cannot hold a socket:

- ``GET /client/events`` opens a Server-Sent Events stream; its first event is
  ``event: session`` with the HTTP session id, then every server payload follows as an event
  (control JSON as ``data:``, media as ``event: media`` base64url). The stream *is* the session:
  when it ends, the ``ClientConnection`` (framing ``"https"``) is lost.
- ``POST /client/send/<session>`` with ``Content-Type: application/json`` (control) or
  ``application/octet-stream`` (a media frame) delivers one payload; the answer is 204, and
  what the server says in return arrives on the stream. An unknown session is 404; a body that
  does not match its Content-Type is 400 and an oversized body 413, each with an ``error``
  message as the JSON body.

Works over HTTP/2 and HTTP/1.1 (SSE streams fine over HTTP/2, PLATFORM-NOTES).
Tests: tests/web/test_http_framing.py.
"""
from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, RemoteProtocolError

PATH = b"client"


class _SseWriter:
    """The writer of one HTTP session's ``ClientConnection``: its SSE response."""

    def __init__(self, sessions: "HttpSessions", sid: str, request):
        self.sessions = sessions
        self.sid = sid
        self.request = request
        self.next_id = 1
        self.finished = False
        self.conn = None

    def _event(self, payload: bytes) -> None:
        if not self.finished:
            self.request.write(fr.sse_event(payload, self.next_id))
            self.next_id += 1

    def write_control(self, message: m.Message) -> None:
        self._event(m.encode(message))

    def write_media(self, data: bytes) -> None:
        self._event(data)

    def lose(self) -> None:
        self.sessions.forget(self.sid)
        if not self.finished:
            self.finished = True
            self.request.finish()

    def stream_ended(self, _result) -> None:
        self.finished = True
        self.sessions.forget(self.sid)
        if self.conn is not None:
            self.conn.connection_lost("event stream closed")


class HttpSessions:
    """The live HTTP sessions by id."""

    def __init__(self, manager):
        self.manager = manager
        self.by_id: dict[str, _SseWriter] = {}

    def forget(self, sid: str) -> None:
        self.by_id.pop(sid, None)


def _error_body(request, status: int, error: RemoteProtocolError) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return m.encode(m.Error(code=error.code, text=error.text[:256]))


class EventsResource(Resource):
    """``GET /client/events``: opens a session and streams the server's payloads."""

    isLeaf = True
    log = Logger()

    def __init__(self, sessions: HttpSessions):
        super().__init__()
        self.sessions = sessions

    def render_GET(self, request):
        sid = m.b64e(os.urandom(18))
        writer = _SseWriter(self.sessions, sid, request)
        self.sessions.by_id[sid] = writer
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-store")
        request.write(fr.sse_session_event(sid))
        request.notifyFinish().addBoth(writer.stream_ended).addErrback(
            lambda f: self.log.failure("ending HTTP session {sid}", f, sid=sid))
        client = request.getClientAddress()
        writer.conn = self.sessions.manager.open("https", (client.host, client.port), writer)
        return NOT_DONE_YET


class SendResource(Resource):
    """``POST /client/send/<session>``: one payload into a session."""

    isLeaf = True
    log = Logger()

    def __init__(self, sessions: HttpSessions):
        super().__init__()
        self.sessions = sessions

    def render_POST(self, request):
        writer = (self.sessions.by_id.get(request.postpath[0].decode("ascii", "replace"))
                  if len(request.postpath) == 1 else None)
        if writer is None or writer.conn is None:
            return _error_body(request, 404, RemoteProtocolError(
                ErrorCode.OUT_OF_ORDER, "no such HTTP session: open /client/events first"))
        body = request.content.read(fr.MAX_PAYLOAD + 1)
        ctype = (request.getHeader(b"content-type") or b"").decode("latin-1")
        try:
            payload = fr.http_payload(body, ctype)
        except RemoteProtocolError as e:
            return _error_body(request, 413 if e.code == ErrorCode.FRAME_TOO_LARGE else 400, e)
        writer.conn.receive(payload)
        request.setResponseCode(204)
        return b""


def make_resource(manager) -> Resource:
    """The ``/client`` resource with ``events`` and ``send`` children."""
    sessions = HttpSessions(manager)
    root = Resource()
    root.putChild(b"events", EventsResource(sessions))
    root.putChild(b"send", SendResource(sessions))
    root.sessions = sessions
    return root
