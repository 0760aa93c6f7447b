"""The client library's links: one per framing, all with the same small interface.

Owned by the client library. ``connect(url, ...)`` opens a link for
``udp://HOST:PORT``, ``tcp://HOST:PORT``, ``tls://HOST:PORT``, ``wss://HOST:PORT[/client/v1/ws]`` or
``https://HOST:PORT`` (HTTP POST + Server-Sent Events under ``/client/v1/``) and fires with a
``ClientSession`` (``session.py``). A link has ``send(message)``, ``send_media(bytes)`` and
``close()``, and calls ``deliver(message)``, ``media(bytes)`` and ``lost(reason)``.

TLS (tls, wss, https) is verified against ``cacert`` (a PEM file, e.g. callgw's self-signed
certificate) or the system's roots, unless ``insecure`` is set. ``connect`` fails with
``ConnectError`` saying why (refused, TLS verification, handshake, timeout).

Tests: tests/client/test_client.py, tests/client/test_dial.py and (redirects)
tests/client/test_redirect_live.py.
"""
from __future__ import annotations

import io
import os
import ipaddress
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from OpenSSL import SSL
from twisted.internet import endpoints, ssl
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from callgw.client.session import ClientSession
from callgw.frontend.udp import ReliableChannel
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ProtocolError

SCHEMES = ("udp", "tcp", "tls", "wss", "https")
WS_PATH = "/client/v1/ws"
HTTP_EVENTS, HTTP_MESSAGES = "/client/v1/events", "/client/v1/messages"
log = Logger()


class ConnectError(Exception):
    """The link could not be opened; ``str()`` says why."""


def parse_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path)``; raises ValueError for an unusable URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{url!r}: the scheme must be one of {', '.join(SCHEMES)}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: bad port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"{url!r}: expected {parts.scheme}://HOST:PORT")
    return parts.scheme, parts.hostname, port, parts.path


def _decode(data: bytes, link) -> None:
    try:
        message = m.decode(data, sender=m.SERVER)
    except ProtocolError as e:
        log.warn("client: undecodable server message: {error}", error=str(e))
        return
    link.deliver(message)


@implementer(IOpenSSLClientConnectionCreator)
class _NoVerify:
    """TLS without certificate verification (``--insecure``)."""

    def __init__(self):
        self._ctx = ssl.CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, tls_protocol):
        conn = SSL.Connection(self._ctx, None)
        conn.set_app_data(tls_protocol)
        conn.set_connect_state()
        return conn


def tls_creator(host: str, cacert: str | None = None, insecure: bool = False):
    """The client TLS connection creator for ``host``."""
    if insecure:
        return _NoVerify()
    if cacert:
        with open(cacert, "rb") as f:
            root = ssl.Certificate.loadPEM(f.read())
        return ssl.optionsForClientTLS(host, trustRoot=root)
    return ssl.optionsForClientTLS(host)


@implementer(IPolicyForHTTPS)
class _Policy:
    def __init__(self, creator):
        self.creator = creator

    def creatorForNetloc(self, hostname, port):
        return self.creator


class _BaseLink:
    deliver = media = lost = None

    def seal_datagrams(self, action) -> None:
        """Datagram authentication: only UDP needs it (TLS and TCP streams ignore it)."""

    def _lost_once(self, reason: str) -> None:
        if not getattr(self, "_gone", False):
            self._gone = True
            if self.lost is not None:
                self.lost(reason)


@implementer(IHandshakeListener)
class StreamLink(Protocol, _BaseLink):
    """TCP or TLS: length-prefixed frames."""

    def __init__(self, ready: Deferred, tls: bool):
        self.ready, self.tls = ready, tls
        self.deframer = fr.TcpDeframer()

    def connectionMade(self) -> None:
        if not self.tls:
            self.ready.callback(self)

    def handshakeCompleted(self) -> None:
        if not self.ready.called:
            self.ready.callback(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            payloads = self.deframer.receive_data(data)
        except ProtocolError as e:
            log.warn("client: broken framing from the server: {error}", error=str(e))
            self.transport.loseConnection()
            return
        for payload in payloads:
            if payload[:1] == b"{":
                _decode(payload, self)
            elif self.media is not None:
                self.media(payload)
        if self.deframer.broken is not None:
            log.warn("client: broken framing from the server: {error}",
                     error=str(self.deframer.broken))
            self.transport.loseConnection()

    def connectionLost(self, reason) -> None:
        text = reason.getErrorMessage()
        if not self.ready.called:
            self.ready.errback(ConnectError(f"connection failed: {text}"))
        self._lost_once(text)

    def send(self, message: m.Message) -> None:
        self.send_payload(m.encode(message))

    def send_payload(self, payload: bytes) -> None:
        """Any payload, framed as it is (tests use it to send what a session would not)."""
        self.transport.write(fr.tcp_frame(payload))

    send_media = send_payload

    def close(self) -> None:
        self.transport.loseConnection()


class UdpLink(DatagramProtocol, _BaseLink):
    """UDP: reliable control messages (``ReliableChannel``), media datagrams as they are.
    One socket (so one source port, ids from 1) per session, connected to the server's address:
    only the server's datagrams reach it, and when nothing listens there the host's ICMP "port
    unreachable" ends the link at once ("connection refused") instead of after the
    retransmissions."""

    def __init__(self, reactor, host: str, port: int):
        self.reactor, self.addr = reactor, (host, port)
        self.channel = ReliableChannel(reactor, self._send, self._deliver, self._give_up,
                                       side=m.CLIENT, validated=True)
        self._connected = False
        self._port = None
        self._closing = False

    def startProtocol(self) -> None:
        self._port = self.transport
        try:
            self.transport.connect(*self.addr)
            self._connected = True
        except (OSError, ValueError) as e:      # e.g. a host name: keep sending by address
            log.debug("client: UDP socket not connected to {addr}: {error}",
                      addr=self.addr, error=str(e))

    def connectionRefused(self) -> None:
        self.close(f"connection refused: nothing listens at udp {self.addr[0]}:{self.addr[1]}")

    def stopProtocol(self) -> None:
        """The reactor dropped the socket (not our ``close``): an error came back on it --
        for a connected UDP socket, the ICMP "port unreachable" of a host where nothing
        listens (the epoll reactor reports it as a lost connection)."""
        port = self._port
        if port is None or self._closing:
            return
        import errno
        import socket as _socket
        try:
            code = port.socket.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        except (OSError, AttributeError):
            code = 0
        self.transport = self._port = None
        if code in (0, errno.ECONNREFUSED):
            self.connectionRefused()
        else:
            self.channel.close()
            self._lost_once(f"udp {self.addr[0]}:{self.addr[1]}: {os.strerror(code)}")

    def _send(self, data: bytes) -> None:
        if self.transport is not None:
            if self._connected:
                self.transport.write(data)
            else:
                self.transport.write(data, self.addr)

    def _deliver(self, item) -> None:
        if isinstance(item, m.Message):
            self.deliver(item)
        elif isinstance(item, bytes):
            if self.media is not None:
                self.media(item)
        else:
            log.warn("client: undecodable datagram: {error}", error=str(item))

    def _give_up(self) -> None:
        self.close("server unreachable")

    def datagramReceived(self, data: bytes, addr) -> None:
        self.channel.receive(data)

    def seal_datagrams(self, action) -> None:
        """From the welcome on, datagrams are sealed both ways (docs/protocol.md)."""
        self.channel.seal_datagrams(action)

    def send(self, message: m.Message) -> None:
        self.channel.send(message)

    def send_media(self, data: bytes) -> None:
        self.channel.send_media(data)

    def send_payload(self, payload: bytes) -> None:
        """Any datagram as it is (tests use it to send what a session would not)."""
        self._send(payload)

    def close(self, reason: str = "closed") -> None:
        self._closing = True
        self.channel.close()
        if self.transport is not None:
            port, self.transport = self.transport, None
            port.stopListening()
        self._lost_once(reason)

    def finish(self) -> None:
        """Close once every message sent was acknowledged (UDP has no connection to lose)."""
        if self.channel.idle:
            self.close("logged out")
        else:
            self.channel.on_idle = lambda: self.close("logged out")


class _WsProtocol(WebSocketClientProtocol):
    link = None

    def onOpen(self) -> None:
        self.link = self.factory.link
        self.link.proto = self
        self.factory.ready.callback(self.link)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            if self.link.media is not None:
                self.link.media(payload)
        else:
            _decode(payload, self.link)

    def onClose(self, wasClean: bool, code, reason) -> None:
        if not self.factory.ready.called:
            self.factory.ready.errback(ConnectError(f"WebSocket not opened: {reason}"))
        self.factory.link._lost_once(f"websocket closed ({code}): {reason}")


class WsLink(_BaseLink):
    """WebSocket: control in text frames, media in binary frames."""

    proto = None

    def send(self, message: m.Message) -> None:
        self.send_payload(m.encode(message))

    def send_payload(self, payload: bytes, binary: bool | None = None) -> None:
        """Any payload: binary frame for media (or when ``binary``), else text."""
        if binary is None:
            binary = payload[:1] != b"{"
        self.proto.sendMessage(payload, isBinary=binary)

    def send_media(self, data: bytes) -> None:
        self.send_payload(data, True)

    def close(self) -> None:
        if self.proto is not None:
            self.proto.sendClose(1000)


class _SseReader(Protocol):
    def __init__(self, link: "HttpLink"):
        self.link = link
        self.parser = fr.SseParser()

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.parser.receive_data(data)
        except ProtocolError as e:
            log.warn("client: broken SSE stream: {error}", error=str(e))
            self.transport.stopProducing()
            return
        for event in events:
            self.link._event(event)

    def connectionLost(self, reason) -> None:
        self.link._stream_ended(reason.getErrorMessage())


class _Body(Protocol):
    """Collects a (small) response body; ``done`` fires with it."""

    def __init__(self):
        self.data, self.done = b"", Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data[:fr.MAX_PAYLOAD * 2]

    def connectionLost(self, reason) -> None:
        self.done.callback(self.data)


class HttpLink(_BaseLink):
    """HTTP: payloads POSTed one at a time, in order; the server's over an SSE stream."""

    def __init__(self, agent: Agent, base: str, ready: Deferred):
        self.agent, self.base, self.ready = agent, base.rstrip("/"), ready
        self.sid: str | None = None
        self.reader: _SseReader | None = None
        self._queue: list[tuple[bytes, bytes]] = []
        self._busy = False

    def open(self) -> None:
        d = self.agent.request(b"GET", f"{self.base}{HTTP_EVENTS}".encode(),
                               Headers({b"accept": [b"text/event-stream"]}))
        d.addCallback(self._response)
        d.addErrback(self._failed)

    def _response(self, response) -> None:
        if response.code != 200:
            raise ConnectError(f"GET {HTTP_EVENTS} answered {response.code}")
        self.reader = _SseReader(self)
        response.deliverBody(self.reader)

    def _failed(self, failure) -> None:
        if not self.ready.called:
            self.ready.errback(ConnectError(f"connection failed: {failure.getErrorMessage()}"))
        else:
            log.failure("client: HTTP link", failure)

    def _event(self, event: fr.SseEvent) -> None:
        if event.event == "session" and self.sid is None:
            self.sid = event.data
            self.ready.callback(self)
            return
        payload = fr.sse_payload(event)
        if event.event == "media":
            if self.media is not None:
                self.media(payload)
        else:
            _decode(payload, self)

    def _stream_ended(self, reason: str) -> None:
        if not self.ready.called:
            self.ready.errback(ConnectError(f"event stream ended: {reason}"))
        self._lost_once(f"event stream ended: {reason}")

    def send(self, message: m.Message) -> None:
        self._post(m.encode(message), b"application/json")

    def send_payload(self, payload: bytes) -> None:
        self._post(payload, b"application/json" if payload[:1] == b"{"
                   else b"application/octet-stream")

    def send_media(self, data: bytes) -> None:
        self._post(data, b"application/octet-stream")

    def _post(self, body: bytes, ctype: bytes) -> None:
        self._queue.append((body, ctype))
        if not self._busy:
            self._next()

    def _next(self) -> None:
        if not self._queue or self.sid is None:
            self._busy = False
            return
        self._busy = True
        body, ctype = self._queue.pop(0)
        d = self.agent.request(b"POST", f"{self.base}{HTTP_MESSAGES}".encode(),
                               Headers({b"content-type": [ctype],
                                        b"callgw-session": [self.sid.encode("ascii")]}),
                               FileBodyProducer(io.BytesIO(body)))
        d.addCallback(self._posted)
        d.addErrback(lambda f: log.failure("client: HTTP POST to {base}", f, base=self.base))
        d.addBoth(lambda _: self._next())

    def _posted(self, response):
        if response.code in (202, 204):
            return None
        body = _Body()
        response.deliverBody(body)
        body.done.addCallback(lambda data: _decode(data, self) if data[:1] == b"{" else None)
        return body.done

    def close(self) -> None:
        if self.reader is not None and self.reader.transport is not None:
            self.reader.transport.stopProducing()


def connect(url: str, reactor=None, cacert: str | None = None, insecure: bool = False,
            timeout: float = 10.0, local_address: str | None = None,
            server_name: str | None = None) -> Deferred:
    """Open a session to ``url``. Fires with a ``ClientSession``; fails with ``ConnectError``
    (or ValueError for a bad URL). ``local_address``: the address to send from (a host with
    several). ``server_name``: the name the server's TLS certificate must carry (default: the
    host of each link -- the URL's, then the address a ``redirect`` names). The session
    follows a ``redirect`` over a link of the same kind, with the same TLS settings."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor
        reactor = global_reactor
    scheme, host, port, path = parse_url(url)

    def reopen(address: str, new_port: int) -> Deferred:
        return open_link(scheme, address, new_port, path, reactor, cacert=cacert,
                         insecure=insecure, timeout=timeout, local_address=local_address,
                         server_name=server_name)

    ready = open_link(scheme, host, port, path, reactor, cacert=cacert, insecure=insecure,
                      timeout=timeout, local_address=local_address, server_name=server_name)
    ready.addCallback(lambda lk: ClientSession(lk, url, clock=reactor, reopen=reopen))
    return ready


def open_link(scheme: str, host: str, port: int, path: str, reactor, *,
              cacert: str | None = None, insecure: bool = False, timeout: float = 10.0,
              local_address: str | None = None, server_name: str | None = None) -> Deferred:
    """One link (no session yet) of ``scheme`` to ``host``:``port``; fires with it, fails with
    ``ConnectError``."""
    url = f"{scheme}://{_netloc(host, port)}{path}"
    ready: Deferred = Deferred()
    creator = tls_creator(server_name or host, cacert, insecure) \
        if scheme in ("tls", "wss", "https") else None
    tcp = endpoints.HostnameEndpoint(reactor, host, port, timeout=timeout,
                                     bindAddress=(local_address, 0) if local_address else None)
    if scheme in ("tcp", "tls"):
        link = StreamLink(ready, tls=scheme == "tls")
        endpoint = endpoints.wrapClientTLS(creator, tcp) if creator else tcp
        endpoints.connectProtocol(endpoint, link).addErrback(
            lambda f: ready.called or ready.errback(
                ConnectError(f"connection failed: {f.getErrorMessage()}")))
    elif scheme == "udp":
        _open_udp(reactor, host, port, ready, local_address)
    elif scheme == "wss":
        link = WsLink()
        ws_url = f"wss://{_netloc(host, port)}{path if path not in ('', '/') else WS_PATH}"
        factory = WebSocketClientFactory(ws_url)
        factory.protocol, factory.link, factory.ready = _WsProtocol, link, ready
        factory.setProtocolOptions(maxMessagePayloadSize=2 * fr.MAX_PAYLOAD,
                                   openHandshakeTimeout=timeout)
        endpoints.wrapClientTLS(creator, tcp).connect(factory).addErrback(
            lambda f: ready.called or ready.errback(
                ConnectError(f"connection failed: {f.getErrorMessage()}")))
    else:
        agent = Agent(reactor, contextFactory=_Policy(creator), connectTimeout=timeout)
        link = HttpLink(agent, f"https://{_netloc(host, port)}", ready)
        link.open()
    timer = reactor.callLater(timeout, lambda: ready.called or ready.errback(
        ConnectError(f"no connection to {url} within {timeout:g} s")))
    ready.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
    return ready


def _open_udp(reactor, host: str, port: int, ready: Deferred,
              local_address: str | None = None) -> None:
    """A UDP link on a new socket (a new source port per session) toward ``host``."""
    def opened(address: str) -> None:
        link = UdpLink(reactor, address, port)
        listening = reactor.listenUDP(0, link, interface=local_address or (
            "::" if ":" in address else "0.0.0.0"))
        from callgw.listeners import grow_buffers
        grow_buffers(listening, 1 << 20)     # media arrives 50 frames a second per call
        ready.callback(link)

    try:
        ipaddress.ip_address(host)
    except ValueError:
        d = reactor.resolve(host)
        d.addCallback(opened)
        d.addErrback(lambda f: ready.called or ready.errback(
            ConnectError(f"cannot resolve {host}: {f.getErrorMessage()}")))
        return
    opened(host)


def _netloc(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"
