"""Listening sockets as services, one per configured listener.

Owned by operations. ``StreamListener`` (TCP, or TLS with a context factory) and
``DatagramListener`` (UDP) open their socket in ``startService``, log the address actually bound
(port 0 lets the OS pick, which tests use), expose it as ``address`` and close it in
``stopService``. Every callgw listener (client, web, SIP, manhole) goes through these, so the
log line ``listening: NAME PROTO HOST:PORT`` is the same everywhere, and every stream listener
is bounded the same way (``callgw.connlimits``: a per-source connection cap, and a TLS handshake
deadline on TLS listeners; the built-in defaults unless ``limits`` is given).

Tests: tests/test_service.py.
"""
from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from callgw.config import Listener
from callgw.connlimits import ConnectionLimits, guarded_factory


class _ListenerBase(Service):
    log = Logger()

    def __init__(self, name: str, listener: Listener, reactor):
        self.setName(name)
        self.listener = listener
        self.reactor = reactor
        self.port = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; only valid once started."""
        addr = self.port.getHost()
        return addr.host, addr.port

    def _listening(self, port, proto: str):
        self.port = port
        host, portno = self.address
        self.log.info("listening: {name} {proto} {host}:{port}", name=self.name, proto=proto,
                      host=host, port=portno)
        return port

    def stopService(self) -> Deferred | None:
        super().stopService()
        if self.port is None:
            return None
        port, self.port = self.port, None
        return maybeDeferred(port.stopListening)


class StreamListener(_ListenerBase):
    """A TCP listener (TLS when ``tls_context`` is given) for ``factory``, within ``limits``
    (``ConnectionLimits``; None: the defaults)."""

    def __init__(self, name, listener, factory, reactor, tls_context=None,
                 limits: ConnectionLimits | None = None):
        super().__init__(name, listener, reactor)
        self.factory = factory
        self.tls_context = tls_context
        self.limits = limits if limits is not None else ConnectionLimits()

    def startService(self) -> Deferred:
        """Fires with the listening port; fails if the address cannot be bound."""
        super().startService()
        proto = "tls" if self.tls_context is not None else "tcp"
        endpoint = endpoints.TCP4ServerEndpoint(
            self.reactor, self.listener.port, interface=self.listener.host)
        if ":" in self.listener.host:
            endpoint = endpoints.TCP6ServerEndpoint(
                self.reactor, self.listener.port, interface=self.listener.host)
        d = endpoint.listen(guarded_factory(self.factory, self.limits, self.reactor, self.name,
                                            self.tls_context))
        d.addCallback(self._listening, proto)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure):
        """The address is taken (or not ours): a ``StartupError`` naming the listener, said
        once by the GatewayService."""
        from twisted.internet.error import CannotListenError

        from callgw.startup import cannot_listen
        if failure.check(CannotListenError):
            raise cannot_listen(self.name, str(self.listener), failure.value)
        return failure


class DatagramListener(_ListenerBase):
    """A UDP listener for one DatagramProtocol."""

    def __init__(self, name, listener, protocol, reactor):
        super().__init__(name, listener, reactor)
        self.protocol = protocol

    def startService(self) -> None:
        """Binds now; raises if the address cannot be bound."""
        from twisted.internet.error import CannotListenError

        from callgw.startup import cannot_listen
        super().startService()
        try:
            port = self.reactor.listenUDP(self.listener.port, self.protocol,
                                          interface=self.listener.host)
        except CannotListenError as e:
            raise cannot_listen(self.name, str(self.listener), e) from None
        grow_buffers(port)
        self._listening(port, "udp")


def grow_buffers(port, size: int = 4 << 20) -> None:
    """Room in a UDP listener's socket for a burst while the reactor is busy: every client's
    media frames share it (50 a second per call), and the kernel's default (~200 kB, about a
    tenth of a second at 40 calls) drops what arrives during a short stall. The kernel caps
    ``size`` at net.core.rmem_max / wmem_max."""
    import socket
    sock = getattr(port, "socket", None)
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass
