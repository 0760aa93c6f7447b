"""The client protocol over WebSocket: wss on the HTTPS listener at ``/client/v1/ws``, HTTP/1.1.

Owned by the web site. autobahn's ``WebSocketServerProtocol`` carries control messages in text
frames and media frames in binary frames (``protocols.client.framing.websocket_payload``);
each connection is a ``ClientConnection`` with framing ``"wss"``. ``make_factory(manager)``
sets what autobahn leaves unlimited or off (PLATFORM-NOTES): ``maxMessagePayloadSize`` and
``maxFramePayloadSize`` (the largest payload, 4096 bytes: a larger message closes the connection
with 1009), ``autoPingInterval``/``autoPingTimeout``, and the opening/closing handshake timeouts;
its ``Server`` header names no version. autobahn's own debug logging stays off unless
``[limits] websocket_debug`` asks for it (``make_resource(manager, debug=True)``). An HTTP/2
request for the endpoint gets ``400`` (WebSocket rides HTTP/1.1 here; autobahn would answer 500).
The upgrade request itself is an HTTP request bounded by the site's limits
(callgw/web/limits.py).

How the socket ended decides what happens to the session's calls (docs/protocol.md section 9):
a close the client starts with 1000 (normal closure) ends the session as a logout would; any
other end callgw did not ask for (the TCP connection dropped: 1006; the page went away: 1001;
the page gave the session up: 4000) is a *lost* session, reported as ``connection lost``, whose
answered calls wait ``[client] reattach_grace`` seconds for an ``attach``.

Real-time audio is not queued behind a slow reader: once open, the connection is the
transport's streaming producer (in place of the HTTP channel that handed it over), and while the
transport says its buffer is full a media frame is not sent (``write_media`` returns False; the
relay counts it as discarded). Control messages are always sent.

Tests: tests/web/test_websocket.py, tests/web/test_browser_continuity.py.
"""
from __future__ import annotations

import txaio
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from zope.interface import implementer

from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import RemoteProtocolError

PATH = "/client/v1/ws"


@implementer(IPushProducer)
class _Backlog:
    """Whether the transport's buffer is full (it pauses and resumes us)."""

    full = False

    def pauseProducing(self) -> None:
        self.full = True

    def resumeProducing(self) -> None:
        self.full = False

    def stopProducing(self) -> None:
        self.full = True


class ClientWebSocketProtocol(WebSocketServerProtocol):
    """One WebSocket client; the writer of its ``ClientConnection``. (``log`` stays autobahn's
    own leveled logger: a plain twisted Logger here would print all its debug messages.)"""

    conn = None
    backlog = None
    media_dropped = 0

    def onOpen(self) -> None:
        self.backlog = _Backlog()
        try:
            self.transport.unregisterProducer()       # the HTTP channel's, before the upgrade
            self.transport.registerProducer(self.backlog, True)
        except (AttributeError, RuntimeError) as e:
            self.log.warn("websocket: no backpressure on this transport: {error}", error=e)
            self.backlog = None
        peer = self.transport.getPeer()
        self.conn = self.factory.manager.open("wss", (peer.host, peer.port), self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.conn is None:
            return
        try:
            fr.websocket_payload(payload, isBinary)
        except RemoteProtocolError as e:
            self.conn.protocol_error(e)
            return
        self.conn.receive(payload)

    def onClose(self, wasClean: bool, code, reason) -> None:
        if self.conn is not None:
            if self.closedByMe:                               # callgw closed it (e.g. 1009)
                self.conn.connection_lost(f"websocket closed ({self.localCloseCode})")
            elif self.remoteCloseCode == 1000:                # the client closed it normally
                self.conn.connection_lost("websocket closed (1000)")
            else:                                             # dropped, or the page went away
                self.conn.connection_lost("connection lost")  # may re-attach (section 9)

    # -- autobahn's per-call debug lines, without their cost --------------------------------------
    # autobahn's ``dataReceived`` and ``sendData`` build a debug line's arguments (``hltype``,
    # ``hlval``: qualified names and colour styling) on every call, logged or not: about a sixth
    # of the CPU of relayed media over wss (bench/relay.py path (c), cProfile). With autobahn's
    # debug logging off (the default: ``make_resource(debug=False)``) they go straight through.
    def dataReceived(self, data: bytes) -> None:
        if txaio.get_global_log_level() == "debug":
            super().dataReceived(data)
            return
        self._dataReceived(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if chopsize or sync or self.send_queue or txaio.get_global_log_level() == "debug":
            super().sendData(data, sync, chopsize)
            return
        self.transport.write(data)

    # -- the writer interface of ClientConnection -------------------------------------------------
    def write_control(self, message: m.Message) -> None:
        if self.state != self.STATE_OPEN:       # closing or closed: the session is ending
            return
        self.sendMessage(m.encode(message), isBinary=False)

    def write_media(self, data: bytes) -> bool:
        """False when the frame was not sent: a full send backlog, or a WebSocket already
        closing (the relay may still deliver a frame in the same reactor turn)."""
        if self.state != self.STATE_OPEN or (self.backlog is not None and self.backlog.full):
            self.media_dropped += 1
            return False
        self.sendMessage(data, isBinary=True)
        return True

    def lose(self) -> None:
        self.sendClose(1000)

    def _closeConnection(self, abort: bool = False) -> None:
        """autobahn's hook to close the transport: give up the producer first (TLS closes
        only once none is registered)."""
        if self.backlog is not None:
            self.backlog = None
            try:
                self.transport.unregisterProducer()
            except (AttributeError, RuntimeError):
                pass
        super()._closeConnection(abort)


def make_factory(manager) -> WebSocketServerFactory:
    """An autobahn factory for ``manager``'s connections with the limits set."""
    factory = WebSocketServerFactory(server="callgw")
    factory.protocol = ClientWebSocketProtocol
    factory.manager = manager
    interval = manager.ping_interval
    factory.setProtocolOptions(maxMessagePayloadSize=fr.MAX_PAYLOAD,
                               maxFramePayloadSize=fr.MAX_PAYLOAD,
                               autoPingInterval=interval, autoPingTimeout=interval,
                               openHandshakeTimeout=10, closeHandshakeTimeout=5,
                               failByDrop=False)
    return factory


class _Http11Only(Resource):
    """autobahn's resource for HTTP/1.1 requests; a clear ``400`` for HTTP/2 ones."""

    isLeaf = True

    def __init__(self, websocket: WebSocketResource):
        super().__init__()
        self.websocket = websocket

    def render(self, request):
        if request.clientproto != b"HTTP/1.1":
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"application/json")
            return b'{"error": "WebSocket needs HTTP/1.1 (no WebSocket over HTTP/2 here)"}'
        return self.websocket.render(request)


def make_resource(manager, debug: bool = False) -> Resource:
    """The twisted.web resource for the WebSocket endpoint (``PATH``); ``debug`` turns on
    autobahn's debug logging (process-wide)."""
    if debug:
        txaio.set_global_log_level("debug")
    return _Http11Only(WebSocketResource(make_factory(manager)))
