"""SIP's sockets over Twisted: UDP, TCP, TLS and host names (RFC 3261 18, 26; RFC 5630).

``Transports`` owns the sockets of one ``protocols.sip.adapter.SipEndpoint``: a UDP port, a
TCP listener (on its own host and port, or the UDP one's), and the stream connections, one per
(transport, host, port), made on first use and reused both ways. Messages are framed by
Content-Length on streams (``StreamFramer``). ``send(data, hop, tx)`` writes a datagram or to
the stream of ``hop``, connecting first; a connection that cannot be made, or that is lost,
or that closes before the peer said anything (a failed TLS handshake), is reported to the
endpoint (``connect_failed``, ``stream_failed``) so the transactions that wait on it fail at
once (17.1.4) instead of waiting for Timer B or F.

TLS (RFC 3261 26.2, 26.3.1): ``hop.transport == "tls"`` connects with TLS; ``hop.tls`` (a
``protocols.sip.session.TlsPolicy``) says whether the gateway's certificate is verified (the
default), against which CA file (PEM, one or more certificates; the system's trust store when
none), for which name (``server_name``, else the name the hop was resolved from, else its
address: service_identity checks a DNS name or an IP address in the certificate). A handshake
that fails (certificate not trusted, wrong name) loses the connection: logged with its reason,
and the waiting transactions see a transport error (503). There is no TLS listener: a gateway
reaches us over the connection we opened.

Host names (``Names``): a hop whose host is not an address is resolved through Twisted's
``IHostnameResolver`` (the reactor's ``nameResolver``: getaddrinfo on the reactor's thread
pool, never on the reactor thread), cached for ``ttl`` seconds on the clock, and a name that
does not resolve within ``timeout`` seconds, or to no address, fails with ``DNSLookupError``.
RFC 3263 (NAPTR and SRV) is not done: A/AAAA records only, with the hop's own port.

Tests: tests/sip/test_transports.py (MemoryReactorClock, StringTransport, a fake resolver) and
tests/sip/test_baresip_tls.py (a real TLS peer).
"""
from __future__ import annotations

import ipaddress

from twisted.internet import defer, protocol
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError, DNSLookupError
from twisted.internet.interfaces import IReactorTCP, IResolutionReceiver
from twisted.logger import Logger
from zope.interface import implementer

from protocols.sip.message import SipParseError, StreamFramer
from protocols.sip.session import Hop, TlsPolicy

log = Logger(namespace="callgw.sip")

CONNECT_TIMEOUT = 10.0


def is_address(host):
    """True for an IPv4 or IPv6 address literal (brackets allowed)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Datagram(protocol.DatagramProtocol):
    def __init__(self, endpoint):
        self.endpoint = endpoint

    def datagramReceived(self, data, addr):
        self.endpoint.data_received(data, "udp", addr[0], addr[1], None)


class Stream(protocol.Protocol):
    """One TCP or TLS connection: Content-Length framing in, writes out. ``key`` is
    (transport, host, port) of the peer as we reach it."""

    def __init__(self, transports, kind="tcp", key=None):
        self.transports = transports
        self.kind = kind
        self.framer = StreamFramer()
        self.key = key
        self.received = False

    def connectionMade(self):
        if self.key is None:                               # accepted: the peer's address
            peer = self.transport.getPeer()
            self.key = (self.kind, peer.host, peer.port)
        self.transports.connection_made(self)

    def dataReceived(self, data):
        self.received = True
        endpoint = self.transports.endpoint
        try:
            items = self.framer.feed(data)
        except SipParseError as exc:
            log.warn("SIP/{kind} framing error from {peer}: {error}", kind=self.kind.upper(),
                     peer=self.key[1:], error=exc)
            self.transport.loseConnection()
            return
        for item in items:
            if isinstance(item, SipParseError):
                log.info("malformed SIP/{kind} message from {peer}: {error}",
                         kind=self.kind.upper(), peer=self.key[1:], error=item)
                continue
            endpoint.message_received(item, self.kind, self.key[1], self.key[2], self)

    def connectionLost(self, reason=protocol.connectionDone):
        self.transports.connection_lost(self, reason)

    def send(self, data):
        self.transport.write(data)


class StreamFactory(protocol.ClientFactory):
    def __init__(self, transports, key):
        self.transports = transports
        self.key = key

    def buildProtocol(self, addr):
        return Stream(self.transports, self.key[0], self.key)

    def clientConnectionFailed(self, connector, reason):
        self.transports.connect_failed(self.key, reason.getErrorMessage())


def _pem_certificates(data):
    """The PEM certificate blocks in ``data`` (a CA bundle may hold several)."""
    from twisted.internet import ssl
    blocks, marker = [], b"-----END CERTIFICATE-----"
    for part in data.split(marker)[:-1]:
        start = part.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(ssl.Certificate.loadPEM(part[start:] + marker))
    if not blocks:
        raise ValueError("no PEM certificate in the CA file")
    return blocks


class TlsContexts:
    """Client TLS connection creators per (policy, name); CA files read once each."""

    def __init__(self):
        self._roots = {}

    def creator(self, policy, hostname):
        """An ``IOpenSSLClientConnectionCreator`` for a gateway named ``hostname`` (or at that
        address). Raises ``OSError``/``ValueError`` when the CA file cannot be used."""
        from twisted.internet import ssl
        policy = policy or TlsPolicy()
        name = policy.server_name or hostname
        if not policy.verify:
            return ssl.CertificateOptions(verify=False)
        if policy.ca_file:
            root = self._roots.get(policy.ca_file)
            if root is None:
                with open(policy.ca_file, "rb") as f:
                    root = ssl.trustRootFromCertificates(_pem_certificates(f.read()))
                self._roots[policy.ca_file] = root
        else:
            root = ssl.platformTrust()
        return ssl.optionsForClientTLS(name, trustRoot=root)


@implementer(IResolutionReceiver)
class _Receiver:
    def __init__(self, deferred):
        self.deferred = deferred
        self.addresses = []

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.addresses.append(address.host)

    def resolutionComplete(self):
        if not self.deferred.called:
            self.deferred.callback(self.addresses)


class Names:
    """Host names of hops, resolved off the reactor and cached (see the module docstring)."""

    def __init__(self, resolver, clock, ttl=60.0, timeout=10.0, ipv6=False):
        self.resolver = resolver
        self.clock = clock
        self.ttl = ttl
        self.timeout = timeout
        self.family = [IPv6Address] if ipv6 else [IPv4Address]
        self._cache = {}            # name -> (address, expiry)
        self._pending = {}          # name -> [Deferred]

    def resolve(self, hop):
        """A Deferred firing with ``hop`` on an address (at once for an address or a cached
        name; a TLS hop keeps the name for certificate checks), failing with DNSLookupError."""
        host = hop.host
        if is_address(host):
            return defer.succeed(hop)
        name = host.lower().rstrip(".")
        cached = self._cache.get(name)
        if cached is not None and cached[1] > self.clock.seconds():
            return defer.succeed(self._on(hop, cached[0]))
        d = defer.Deferred()
        waiting = self._pending.get(name)
        if waiting is None:
            self._pending[name] = [d]
            self._lookup(name)
        else:
            waiting.append(d)
        return d.addCallback(lambda address: self._on(hop, address))

    def _on(self, hop, address):
        tls = hop.tls
        if hop.transport == "tls":
            tls = tls or TlsPolicy()
            if tls.server_name is None:
                tls = TlsPolicy(tls.verify, tls.ca_file, hop.host)
        return Hop(hop.transport, address, hop.port, tls)

    def _lookup(self, name):
        d = defer.Deferred()
        try:
            self.resolver.resolveHostName(_Receiver(d), name, 0, self.family)
        except Exception as exc:  # noqa: BLE001 - a resolver that fails at once: the same
            d.errback(exc)
        d.addTimeout(self.timeout, self.clock)
        d.addCallbacks(self._found, self._failed, callbackArgs=(name,), errbackArgs=(name,))

    def _found(self, addresses, name):
        if not addresses:
            return self._failed(None, name)
        self._cache[name] = (addresses[0], self.clock.seconds() + self.ttl)
        for d in self._pending.pop(name, ()):
            d.callback(addresses[0])

    def _failed(self, failure, name):
        if failure is None or failure.check(defer.TimeoutError, defer.CancelledError):
            why = "no address" if failure is None else f"no answer in {self.timeout:g} s"
        else:
            why = failure.getErrorMessage()
        error = DNSLookupError(f"{name}: {why}")
        for d in self._pending.pop(name, ()):
            d.errback(error)


class Transports:
    """The sockets of one SIP endpoint (see the module docstring).

    ``endpoint`` gets ``data_received``, ``message_received``, ``connect_failed(transactions)``
    and ``stream_failed(key)``. ``tcp`` False means no TCP listener (outgoing streams still
    work); ``tcp_host``/``tcp_port`` place the listener apart from UDP (None: the same).
    ``wrap_listener(factory)``, when given, wraps the TCP listener's factory (the caller's
    limits on connections: a per-source cap).
    """

    def __init__(self, endpoint, reactor, host, port, tcp=True, tcp_host=None, tcp_port=None,
                 wrap_listener=None):
        self.endpoint = endpoint
        self.reactor = reactor
        self.host = host
        self.port = port
        self.tcp = tcp
        self.tcp_host = tcp_host or host
        self.tcp_port = tcp_port
        self.wrap_listener = wrap_listener
        self.streams = {}              # (transport, host, port) -> Stream
        self.pending = {}              # (transport, host, port) -> [(bytes, tx)] while connecting
        self.tls = TlsContexts()
        self._udp = None
        self._udp_port = None
        self._tcp_listener = None

    def start(self):
        """Bind UDP, and TCP (on the UDP port number unless told otherwise); returns
        (udp port, tcp port or None). With port 0 and TCP on the same number, a number the OS
        gave UDP but TCP has in use is given back and another one tried."""
        for attempt in range(20):
            self._udp = Datagram(self.endpoint)
            self._udp_port = self.reactor.listenUDP(self.port, self._udp, interface=self.host)
            port = self._udp_port.getHost().port
            if not (self.tcp and IReactorTCP.providedBy(self.reactor)):
                self.port = port
                return self.port, self.tcp_port
            factory = protocol.Factory.forProtocol(lambda: Stream(self, "tcp"))
            if self.wrap_listener is not None:
                factory = self.wrap_listener(factory)
            same = self.tcp_port is None
            try:
                self._tcp_listener = self.reactor.listenTCP(port if same else self.tcp_port,
                                                            factory, interface=self.tcp_host)
            except CannotListenError:
                if not (same and self.port == 0 and attempt < 19):
                    self._udp_port.stopListening()
                    raise
                self._udp_port.stopListening()
                continue
            self.port = port
            self.tcp_port = self._tcp_listener.getHost().port
            return self.port, self.tcp_port

    def attach_datagram_transport(self, transport):
        """Use ``transport`` (tests: a fake with ``write(data, addr)``) instead of a real port."""
        self._udp = Datagram(self.endpoint)
        self._udp.makeConnection(transport)

    def udp_socket(self):
        port = self._udp_port
        return port.socket if port is not None else None

    def stop(self):
        """Close the listeners and every connection; a Deferred firing once they are."""
        waits = []
        for port in (self._udp_port, self._tcp_listener):
            if port is not None:
                waits.append(defer.maybeDeferred(port.stopListening))
        for stream in list(self.streams.values()):
            stream.transport.loseConnection()
        self._udp_port = self._tcp_listener = None
        return defer.DeferredList(waits, consumeErrors=True)

    # ---- sending ----
    def send(self, data, hop, tx):
        """Send ``data`` to ``hop`` (an address); ``tx`` (or None) is told of a failure."""
        if hop.transport == "udp":
            self._udp.transport.write(data, (hop.host, hop.port))
            return
        key = (hop.transport, hop.host, hop.port)
        stream = self.streams.get(key)
        if stream is not None:
            stream.send(data)
            return
        queue = self.pending.get(key)
        if queue is not None:
            queue.append((data, tx))
            return
        self.pending[key] = [(data, tx)]
        factory = StreamFactory(self, key)
        if hop.transport == "tls":
            try:
                creator = self.tls.creator(hop.tls, hop.host)
            except (OSError, ValueError) as exc:
                self.connect_failed(key, f"TLS settings: {exc}")
                return
            self.reactor.connectSSL(hop.host, hop.port, factory, creator,
                                    timeout=CONNECT_TIMEOUT)
        else:
            self.reactor.connectTCP(hop.host, hop.port, factory, timeout=CONNECT_TIMEOUT)

    # ---- stream events ----
    def connection_made(self, stream):
        """A connection (either way) is up: flush what waited for it."""
        self.streams[stream.key] = stream
        for data, _ in self.pending.pop(stream.key, ()):
            stream.send(data)

    def connection_lost(self, stream, reason):
        """A connection closed. One that closed before the peer said anything (a TLS
        handshake that failed, a reset) fails the transactions that wait on it."""
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
        if stream.received:
            return
        log.warn("SIP/{kind} connection to {peer} closed before any answer: {reason}",
                 kind=stream.kind.upper(), peer=stream.key[1:],
                 reason=reason.getErrorMessage())
        self.endpoint.stream_failed(stream.key)

    def connect_failed(self, key, reason):
        """An outgoing connection could not be made (``reason`` says why): what waited for
        it fails."""
        log.info("SIP/{kind} connection to {peer} failed: {reason}", kind=key[0].upper(),
                 peer=key[1:], reason=reason)
        waiting = [tx for _, tx in self.pending.pop(key, ()) if tx is not None]
        self.endpoint.connect_failed(waiting)
