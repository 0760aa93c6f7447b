"""One session on one framing: the glue that keeps Twisted adapters a few lines long.

Owned by the client protocol; the spec is docs/protocol.md ("Framings", "Driving the core").
Each class wraps a session machine (``ServerSession`` or ``ClientSession``: they share the input
and timer methods) and a framing, h11-style: bytes in, an ``Output`` out.

    out = conn.receive_data(data, now)          # or receive_datagram / receive_message / ...
    transport.write(b"".join(out.data))          # TCP; per item for UDP, WebSocket, SSE
    for event in out.events: handle(event)      # LookupCredentials, CallRequested, DeriveKey...
    if out.close: transport.loseConnection()    # after writing out.data
    # after answering an event (session.credentials_found(...), session.ringing(...)):
    out = conn.flush(now)
    # timers: conn.get_timer() -> absolute time or None; at that time conn.handle_timer(now)

Tests: tests/client_proto/test_connection.py.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client.errors import ProtocolError
from protocols.client.framing import (HTTP_CONTENT_TYPES, MEDIA, SseParser, TcpDeframer,
                                      http_payload, kind_of, sse_event, sse_payload, tcp_frame,
                                      websocket_payload)
from protocols.client.reliable import ReliableEndpoint


@dataclass(frozen=True)
class Output:
    """What to do after an input: write ``data`` (in order), hand ``events`` to callgw or the
    library, then close the transport when ``close`` is set (a ``Close`` action)."""
    data: list = field(default_factory=list)
    events: list = field(default_factory=list)
    close: ev.Close | None = None


class _Connection:
    """Common part: drain the session's actions into an Output, using ``_encode``."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.closed: ev.Close | None = None

    def _encode(self, payload: bytes, now: float) -> list:
        raise NotImplementedError

    def _send(self, message: m.Message, now: float) -> list:
        return self._encode(m.encode(message), now)

    def flush(self, now: float) -> Output:
        """Collect what the session produced (call after answering one of its events)."""
        data: list = []
        events: list = []
        close = None
        for action in self.session.next_actions():
            if isinstance(action, ev.Send):
                data += self._send(action.message, now)
            elif isinstance(action, ev.SendMedia):
                data += self._encode(action.payload, now)
            elif isinstance(action, ev.Close):
                close = self.closed = action
                events.append(action)
            elif isinstance(action, ev.SealDatagrams):
                self._seal(action)
            else:
                events.append(self._event(action))
        data += self._extra(now)
        return Output(data, events, close)

    def _event(self, action: Any) -> Any:
        return action

    def _seal(self, action: ev.SealDatagrams) -> None:
        """Datagram authentication: only UDP has datagrams to seal."""

    def _extra(self, now: float) -> list:
        return []

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run (absolute), or None."""
        return self.session.get_timer()

    def handle_timer(self, now: float) -> Output:
        self.session.handle_timer(now)
        return self.flush(now)

    def connection_lost(self, now: float) -> Output:
        """The transport went away: end the session (its calls are released)."""
        self.session.close(now, 0, "connection lost")
        return self.flush(now)


class TcpConnection(_Connection):
    """TCP or TLS: two-byte length prefixes. ``Output.data`` holds bytes to write."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self._deframer = TcpDeframer()

    def _encode(self, payload: bytes, now: float) -> list:
        return [tcp_frame(payload)]

    def receive_data(self, data: bytes, now: float) -> Output:
        try:
            payloads = self._deframer.receive_data(data)
        except ProtocolError as e:
            self.session.receive_error(e, now)
            return self.flush(now)
        for payload in payloads:
            self.session.receive_payload(payload, now)
        if self._deframer.broken is not None:
            self.session.receive_error(self._deframer.broken, now)
        return self.flush(now)


class WebSocketConnection(_Connection):
    """WebSocket: ``Output.data`` holds ``(payload, is_binary)`` pairs, one message each."""

    def _encode(self, payload: bytes, now: float) -> list:
        return [(payload, kind_of(payload) == MEDIA)]

    def receive_message(self, payload: bytes, is_binary: bool, now: float) -> Output:
        try:
            self.session.receive_payload(websocket_payload(payload, is_binary), now)
        except ProtocolError as e:
            self.session.receive_error(e, now)
        return self.flush(now)


class HttpConnection(_Connection):
    """HTTP: POSTed payloads in, Server-Sent Events out. ``Output.data`` holds SSE event bytes
    for the open stream; the last ``replay`` events are kept for a reconnecting stream
    (``events_after(last_event_id)``)."""

    def __init__(self, session: Any, session_id: str, replay: int = 64) -> None:
        super().__init__(session)
        self.session_id = session_id
        self._next_id = 1
        self._kept: deque[tuple[int, bytes]] = deque(maxlen=replay)

    def _encode(self, payload: bytes, now: float) -> list:
        event = sse_event(payload, self._next_id)
        self._kept.append((self._next_id, event))
        self._next_id += 1
        return [event]

    def receive_post(self, body: bytes, content_type: str, now: float) -> Output:
        """One POST body. Framing errors are answered on the stream (and with 413/415 by the
        adapter when it checks ``http_payload`` itself first)."""
        try:
            self.session.receive_payload(http_payload(body, content_type), now)
        except ProtocolError as e:
            self.session.receive_error(e, now)
        return self.flush(now)

    def events_after(self, last_event_id: str | None) -> list[bytes]:
        """The kept events after ``last_event_id`` (all kept events for None or garbage)."""
        try:
            last = int(last_event_id) if last_event_id is not None else 0
        except ValueError:
            last = 0
        return [data for i, data in self._kept if i > last]


class SseClientConnection(_Connection):
    """The client's side of HTTP: ``Output.data`` holds ``(body, content_type)`` pairs to POST
    (with header ``Callgw-Session: <session_id>``); ``receive_stream`` takes the SSE stream's
    bytes. ``session_id`` is known once the stream's first ``session`` event arrived."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self._parser = SseParser()
        self.session_id: str | None = None
        self.last_event_id: str | None = None

    def _encode(self, payload: bytes, now: float) -> list:
        return [(payload, HTTP_CONTENT_TYPES[kind_of(payload)])]

    def receive_stream(self, data: bytes, now: float) -> Output:
        try:
            for event in self._parser.receive_data(data):
                if event.event == "session":
                    self.session_id = event.data
                    continue
                self.last_event_id = event.id or self.last_event_id
                self.session.receive_payload(sse_payload(event), now)
        except ProtocolError as e:
            self.session.receive_error(e, now)
        return self.flush(now)


class UdpConnection(_Connection):
    """UDP: a ``ReliableEndpoint`` under the session. ``Output.data`` holds datagrams.
    ``sender`` is ``messages.SERVER`` for callgw's side, ``messages.CLIENT`` for a client."""

    def __init__(self, session: Any, sender: str, **endpoint: Any) -> None:
        super().__init__(session)
        endpoint.setdefault("validated", sender == m.CLIENT)
        self.endpoint = ReliableEndpoint(sender=sender, **endpoint)

    def _send(self, message: m.Message, now: float) -> list:
        self.endpoint.send(message, now)
        return []

    def _encode(self, payload: bytes, now: float) -> list:
        self.endpoint.send_media(payload)
        return []

    def _event(self, action: Any) -> Any:
        if isinstance(action, ev.LoggedIn):
            self.endpoint.address_validated()
        return action

    def _seal(self, action: ev.SealDatagrams) -> None:
        self.endpoint.seal_datagrams(action.send_key, action.receive_key, action.required)

    def _extra(self, now: float) -> list:
        return self.endpoint.datagrams_to_send(now)

    def receive_datagram(self, data: bytes, now: float) -> Output:
        for item in self.endpoint.receive_datagram(data, now):
            self.session.receive(item, now)
        return self.flush(now)

    def get_timer(self) -> float | None:
        times = [t for t in (self.session.get_timer(), self.endpoint.get_timer())
                 if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> Output:
        endpoint_due = self.endpoint.get_timer()
        if endpoint_due is not None and endpoint_due <= now:
            self.endpoint.handle_timer(now)
            if self.endpoint.failure is not None:
                self.session.close(now, self.endpoint.failure.code, self.endpoint.failure.text)
        session_due = self.session.get_timer()
        if session_due is not None and session_due <= now:
            self.session.handle_timer(now)
        return self.flush(now)

    @property
    def finished(self) -> bool:
        """The session ended and nothing is left to retransmit (all acknowledged, or an address
        never validated, where the server does not retransmit): forget this peer."""
        return self.closed is not None and (self.endpoint.idle or not self.endpoint.validated)
