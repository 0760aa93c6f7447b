"""The client protocol over plain HTTP: ``POST`` a payload, read the server's over SSE.

Owned by the web site; the spec is docs/protocol.md section 11 ("HTTP"). For clients that
cannot hold a socket:

- ``GET /client/v1/events`` opens a session's Server-Sent Events stream. Its first event is
  ``event: session`` with the session id; then each server payload is one event with an
  increasing ``id:`` (control JSON as ``data:``, media as ``event: media`` base64url).
- ``POST /client/v1/messages`` with ``Callgw-Session: <id>`` and ``Content-Type:
  application/json`` (control) or ``application/octet-stream`` (a media frame) delivers one
  payload: ``202 Accepted``, the replies come on the stream. ``404``: unknown session; ``413``:
  body over the size limit; ``415``: the content type does not match the body (each with an
  ``error`` message as JSON body).
- A dropped stream does not end the session: it lives until its idle timeout. ``GET`` with
  ``Callgw-Session`` (and ``Last-Event-ID``) reattaches and replays the last ``REPLAY`` events
  after that id. One stream per session: a new one replaces the old. Attached streams get a
  ``: keep-alive`` comment every 15 s.

Each session is a ``ClientConnection`` with framing ``"https"``. Works over HTTP/2 and
HTTP/1.1. Tests: tests/web/test_site.py.
"""
from __future__ import annotations

import os
from collections import deque

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from callgw.web.limits import bounded_int
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, RemoteProtocolError

REPLAY = 64
SESSION_HEADER = b"callgw-session"


class HttpSession:
    """One HTTP session: the writer of its ``ClientConnection``, its stream and replay buffer."""

    log = Logger()

    def __init__(self, sessions: "HttpSessions", sid: str):
        self.sessions = sessions
        self.sid = sid
        self.request = None
        self.events: deque[tuple[int, bytes]] = deque(maxlen=REPLAY)
        self.next_id = 1
        self.conn = None

    def attach(self, request, last_id: int | None) -> None:
        """Make ``request`` the session's stream; replay events after ``last_id``."""
        if self.request is not None:
            old, self.request = self.request, None
            old.finish()
        self.request = request
        request.write(fr.sse_session_event(self.sid))
        if last_id is not None:
            for event_id, event in self.events:
                if event_id > last_id:
                    request.write(event)
        request.notifyFinish().addBoth(self._detach, request).addErrback(
            lambda f: self.log.failure("HTTP session {sid}: stream end", f, sid=self.sid))

    def _detach(self, _result, request) -> None:
        if self.request is request:
            self.request = None

    def _event(self, payload: bytes) -> bool:
        """Send one payload as an event; False when no stream is attached (it waits in the
        replay buffer)."""
        event = fr.sse_event(payload, self.next_id)
        self.events.append((self.next_id, event))
        self.next_id += 1
        if self.request is not None:
            self.request.write(event)
            return True
        return False

    # -- the writer interface of ClientConnection -------------------------------------------------
    def write_control(self, message: m.Message) -> None:
        self._event(m.encode(message))

    def write_media(self, data: bytes) -> bool:
        return self._event(data)

    def lose(self) -> None:
        self.sessions.by_id.pop(self.sid, None)
        if self.request is not None:
            request, self.request = self.request, None
            request.finish()


class HttpSessions:
    """The live HTTP sessions by id. ``keepalive()`` writes an SSE comment on every attached
    stream (so proxies keep it open and a dead one is noticed); the site calls it
    every ``KEEPALIVE`` seconds while running."""

    KEEPALIVE = 15.0

    def __init__(self, manager):
        self.manager = manager
        self.by_id: dict[str, HttpSession] = {}

    def keepalive(self) -> None:
        for session in list(self.by_id.values()):
            if session.request is not None:
                session.request.write(b": keep-alive\n\n")

    def lookup(self, request) -> HttpSession | None:
        sid = request.getHeader(SESSION_HEADER)
        return self.by_id.get(sid.decode("ascii", "replace")) if sid else None


def _error_body(request, status: int, error: RemoteProtocolError) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return m.encode(m.Error(code=error.code, text=error.text[:256]))


def _unknown(request) -> bytes:
    return _error_body(request, 404, RemoteProtocolError(
        ErrorCode.OUT_OF_ORDER, "unknown HTTP session: open /client/v1/events first"))


class EventsResource(Resource):
    """``GET /client/v1/events``: opens (or reattaches to) a session's event stream."""

    isLeaf = True

    def __init__(self, sessions: HttpSessions):
        super().__init__()
        self.sessions = sessions

    def render_GET(self, request):
        if request.getHeader(SESSION_HEADER):
            session = self.sessions.lookup(request)
            if session is None:
                return _unknown(request)
        else:
            session = None
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-store")
        if session is None:
            session = HttpSession(self.sessions, m.b64e(os.urandom(18)))
            self.sessions.by_id[session.sid] = session
            session.attach(request, None)
            client = request.getClientAddress()
            session.conn = self.sessions.manager.open("https", (client.host, client.port),
                                                      session)
        else:
            last = bounded_int(request.getHeader(b"last-event-id"), 0, 0, 1 << 62)
            session.attach(request, last)
        return NOT_DONE_YET


class MessagesResource(Resource):
    """``POST /client/v1/messages``: one payload into the session named by its header."""

    isLeaf = True

    def __init__(self, sessions: HttpSessions):
        super().__init__()
        self.sessions = sessions

    def render_POST(self, request):
        session = self.sessions.lookup(request)
        if session is None or session.conn is None:
            return _unknown(request)
        body = request.content.read(fr.MAX_PAYLOAD + 1)
        ctype = (request.getHeader(b"content-type") or b"").decode("latin-1")
        try:
            payload = fr.http_payload(body, ctype)
        except RemoteProtocolError as e:
            return _error_body(request, 413 if e.code == ErrorCode.FRAME_TOO_LARGE else 415, e)
        session.conn.receive(payload)
        request.setResponseCode(202)
        return b""


def add_resources(v1: Resource, manager) -> HttpSessions:
    """Put ``events`` and ``messages`` under ``v1`` (``/client/v1``); returns the sessions."""
    sessions = HttpSessions(manager)
    v1.putChild(b"events", EventsResource(sessions))
    v1.putChild(b"messages", MessagesResource(sessions))
    return sessions
