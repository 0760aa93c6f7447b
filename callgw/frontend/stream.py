"""The client protocol over TCP and over TLS: length-prefixed frames (docs/protocol.md, "TCP").

Owned by the front-end listeners. ``ClientStreamFactory(manager, framing)`` builds one
``ClientStreamProtocol`` per accepted connection: a ``TcpDeframer`` splits the stream into
payloads for a ``ClientConnection``; what the connection sends is framed with ``tcp_frame``.
A frame that cannot be recovered from (zero or oversized length) is answered with ``error``
and the connection closes. ``framing`` is ``"tcp"`` or ``"tls"`` (the TLS context is the
listener's business: ``callgw.listeners.StreamListener(tls_context=...)``).

Real-time audio is not queued behind a slow reader: the protocol registers itself as the
transport's streaming producer, and while the transport says its buffer is full
(``pauseProducing``) a media frame is not written (``write_media`` returns False and the relay
counts it as discarded); control messages are always written.

Tests: tests/frontend/test_stream.py (StringTransport + Clock) and test_framings.py (sockets).
"""
from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import RemoteProtocolError


@implementer(IPushProducer)
class ClientStreamProtocol(Protocol):
    """One TCP/TLS client: bytes to payloads to its ``ClientConnection``."""

    log = Logger()

    def __init__(self, manager, framing: str):
        self.manager = manager
        self.framing = framing
        self.deframer = fr.TcpDeframer()
        self.conn = None
        self.backed_up = False          # the transport's buffer is full: media is dropped
        self.media_dropped = 0
        self._producing = False

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self._producing = True
        peer = self.transport.getPeer()
        self.conn = self.manager.open(self.framing, (peer.host, peer.port), self)

    def dataReceived(self, data: bytes) -> None:
        try:
            payloads = self.deframer.receive_data(data)
        except RemoteProtocolError as e:
            self.conn.protocol_error(e)
            self.lose()
            return
        for payload in payloads:
            if self.conn.state.value == "closed":
                break
            self.conn.receive(payload)
        if self.deframer.broken is not None and self.conn.state.value != "closed":
            self.conn.protocol_error(self.deframer.broken)
            self.lose()

    def connectionLost(self, reason) -> None:
        if self.conn is not None:
            self.conn.connection_lost("connection lost")

    # -- the writer interface of ClientConnection -------------------------------------------------
    def write_control(self, message: m.Message) -> None:
        self.transport.write(fr.tcp_frame(m.encode(message)))

    def write_media(self, data: bytes) -> bool:
        if self.backed_up:
            self.media_dropped += 1
            return False
        self.transport.write(fr.tcp_frame(data))
        return True

    # -- IPushProducer: the transport says when its buffer is full ----------------------------
    def pauseProducing(self) -> None:
        self.backed_up = True

    def resumeProducing(self) -> None:
        self.backed_up = False

    def stopProducing(self) -> None:
        self.backed_up = True

    def lose(self) -> None:
        if self._producing:                     # TLS closes only once no producer is left
            self._producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()


class ClientStreamFactory(Factory):
    """Builds ``ClientStreamProtocol`` for ``framing`` (``"tcp"`` or ``"tls"``)."""

    def __init__(self, manager, framing: str = "tcp"):
        self.manager = manager
        self.framing = framing

    def buildProtocol(self, addr) -> ClientStreamProtocol:
        proto = ClientStreamProtocol(self.manager, self.framing)
        proto.factory = self
        return proto
