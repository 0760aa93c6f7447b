"""Bounded connections on every stream listener: a per-source cap and a TLS handshake deadline.

Owned by operations. ``StreamListener`` (callgw/listeners.py) puts every TCP and TLS listener
(client TCP/TLS, the HTTPS site, the manhole) behind these wrappers, so a stranger cannot hold
sockets for free:

- ``SourceCap``: at most ``per_source`` open connections from one source address on one
  listener; a connection beyond that is closed as soon as it is accepted (before TLS or any
  protocol work). ``0`` turns the cap off.
- a TLS handshake deadline: a connection whose TLS handshake has not completed (the peer's
  Finished message has not arrived) ``handshake_timeout`` seconds after it was accepted is
  aborted (an idle TLS socket, or one that trickles its ClientHello, is dropped instead of being
  held forever). Checked from outside the TLS layer, so the application protocol's transport
  stays Twisted's own TLS transport (autobahn insists on it).

Both report through ``SourceLog``: one warning per source and reason per minute, with the
count since the last line, so a flood costs a few log lines rather than one per connection.
``ConnectionLimits.from_config(config)`` reads the ``[limits]`` settings.

Tests: tests/test_connlimits.py (unit, fake clock) and tests/web/test_attacks.py (a real
callgw process).
"""
from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_PER_SOURCE = 256


@dataclass(frozen=True)
class ConnectionLimits:
    """What every stream listener enforces (``[limits]`` in the configuration)."""
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    per_source: int = DEFAULT_PER_SOURCE

    @classmethod
    def from_config(cls, config) -> "ConnectionLimits":
        limits = config["limits"]
        return cls(float(limits["tls_handshake_timeout"]), int(limits["connections_per_source"]))


class SourceLog:
    """One warning per (source, reason) per ``interval`` seconds, counting what it held back."""

    log = Logger()
    MAX_ENTRIES = 10000

    def __init__(self, clock, name: str, interval: float = 60.0):
        self.clock = clock
        self.name = name
        self.interval = interval
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def note(self, source: str, reason: str) -> None:
        now = self.clock.seconds()
        key = (source, reason)
        last = self.seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self.seen[key] = (last[0], last[1] + 1)
            return
        held = last[1] if last is not None else 0
        if len(self.seen) >= self.MAX_ENTRIES:
            self.seen = {k: v for k, v in self.seen.items() if now - v[0] < self.interval}
        self.seen[key] = (now, 0)
        self.log.warn("{listener}: {reason} from {source}{more}", listener=self.name,
                      reason=reason, source=source,
                      more=f" (and {held} more in the last minute)" if held else "")


def source_of(addr) -> str:
    """The host part of a peer address (what the per-source limits count by)."""
    return addr.host if isinstance(addr, (IPv4Address, IPv6Address)) else str(addr)


class _Guarded(ProtocolWrapper):
    """One connection ``SourceCap`` counts (and, on a TLS listener, times until its handshake
    is done); forgets it when it closes."""

    source = ""
    timer = None

    def makeConnection(self, transport):
        super().makeConnection(transport)
        if self.factory.handshake_timeout:
            self.timer = self.factory.clock.callLater(self.factory.handshake_timeout,
                                                      self._check_handshake)

    def _check_handshake(self):
        self.timer = None
        tls = self.wrappedProtocol
        if tls is None or tls.getHandle().get_peer_finished() is not None:
            return                              # the peer's Finished arrived: handshake done
        self.factory.report.note(
            self.source, f"no TLS handshake within {self.factory.handshake_timeout:g} s: dropped")
        self.transport.abortConnection()

    def connectionLost(self, reason):
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self.factory.release(self.source)
        super().connectionLost(reason)


class SourceCap(WrappingFactory):
    """Refuses a connection when its source already has ``per_source`` open ones here; with
    ``handshake_timeout`` (the wrapped factory is a ``TLSMemoryBIOFactory``) aborts one whose
    TLS handshake is not done in time."""

    protocol = _Guarded
    noisy = False                               # no "Starting factory" lines

    def __init__(self, wrapped, per_source: int, report: SourceLog, clock=None,
                 handshake_timeout: float = 0.0):
        super().__init__(wrapped)
        self.per_source = per_source
        self.report = report
        self.clock = clock
        self.handshake_timeout = handshake_timeout
        self.open: dict[str, int] = {}

    def buildProtocol(self, addr):
        source = source_of(addr)
        if self.per_source and self.open.get(source, 0) >= self.per_source:
            self.report.note(source, f"over {self.per_source} connections: refused")
            return None                         # Twisted closes the accepted socket
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        self.open[source] = self.open.get(source, 0) + 1
        proto = self.protocol(self, wrapped)
        proto.source = source
        return proto

    def release(self, source: str) -> None:
        left = self.open.get(source, 0) - 1
        if left > 0:
            self.open[source] = left
        else:
            self.open.pop(source, None)


def guarded_factory(factory, limits: ConnectionLimits, clock, name: str, tls_context=None):
    """``factory`` behind the listener's limits, to listen on with plain TCP: the per-source
    cap outermost, then TLS (with its handshake deadline) when ``tls_context`` is given."""
    from twisted.protocols.tls import TLSMemoryBIOFactory
    report = SourceLog(clock, name)
    if tls_context is None:
        return SourceCap(factory, limits.per_source, report)
    return SourceCap(TLSMemoryBIOFactory(tls_context, False, factory), limits.per_source,
                     report, clock, limits.handshake_timeout)
