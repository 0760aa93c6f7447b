"""The client protocol over UDP: one payload per datagram, reliability from the protocol core.

Owned by the front-end listeners; the spec is docs/protocol.md sections 11 and 12. The
reliability itself (ids, acks, in-order delivery, retransmission with back-off, giving up,
anti-amplification before the address is validated) is ``protocols.client.reliable``'s
sans-I/O ``ReliableEndpoint``; ``ReliableChannel`` drives one on the injected clock and is
shared with the client library (``callgw.client.links``).

``ClientDatagramProtocol(manager)`` keeps one ``ClientConnection`` per source address. A
datagram from an unknown address opens a session only when it is a valid ``login`` with an id
(``opens_session``); anything else from a stranger is dropped without an answer. The address is
validated when the login succeeds (``login_succeeded``). From the welcome on, every datagram
is sealed both ways (``seal_datagrams``, docs/protocol.md "Datagram authentication"); one that
claims a session but fails its seal is dropped, counted in the metrics and logged at most once
a minute per session.

Tests: tests/frontend/test_udp.py (a lossy fake network and a Clock) and test_framings.py.
"""
from __future__ import annotations

import errno
from typing import Callable

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, RemoteProtocolError
from protocols.client.reliable import ReliableEndpoint, opens_session

MAX_DATAGRAM = fr.MAX_PAYLOAD
_SEND_IGNORED = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EINTR)
LINGER = 30.0           # seconds a closed session's peer waits for its last acknowledgements


class ReliableChannel:
    """Drives one ``protocols.client.reliable.ReliableEndpoint`` on the injected clock.
    ``side`` is who we are (``m.SERVER`` or ``m.CLIENT``). ``send_datagram(bytes)`` puts a
    datagram on the wire; ``deliver(item)`` gets each received message once and in order,
    media payloads (bytes) and ``ProtocolError`` for undecodable datagrams; ``give_up()`` is
    called once when a message was never acknowledged; ``on_idle()`` (optional) whenever
    nothing is left unacknowledged after a flush."""

    log = Logger()

    def __init__(self, clock, send_datagram: Callable[[bytes], None],
                 deliver: Callable[[object], None], give_up: Callable[[], None],
                 side: str = m.SERVER, validated: bool = False,
                 max_message: int = m.MAX_MESSAGE):
        self.clock = clock
        self.send_datagram = send_datagram
        self.deliver = deliver
        self.give_up = give_up
        self.on_idle: Callable[[], None] | None = None
        self.on_dropped: Callable[[str], None] | None = None   # a datagram failed its seal
        self.endpoint = ReliableEndpoint(sender=side, validated=validated,
                                         max_message=max_message)
        self._timer = None
        self.closed = False
        self.send_failures = 0

    def receive(self, data: bytes) -> None:
        """One datagram (a control message over ``max_message`` bytes is acknowledged, but
        delivered as a TOO_LARGE error). Never raises."""
        items = self.endpoint.receive_datagram(data, self.clock.seconds())
        if self.endpoint.dropped is not None and self.on_dropped is not None:
            self.on_dropped(self.endpoint.dropped)
        if len(items) == 1 and type(items[0]) is bytes:
            # a media frame: it acknowledges nothing and owes no acknowledgement, so there is
            # nothing to flush and the timer stands (the per-frame fast path)
            if not self.closed:
                self.deliver(items[0])
            return
        for item in items:
            if self.closed:
                break
            self.deliver(item)
        self.flush()

    def send(self, message: m.Message) -> None:
        if not self.closed:
            self.endpoint.send(message, self.clock.seconds())
            self.flush()

    def send_media(self, payload: bytes) -> bool:
        """One media frame, sent at once (sealed when sealing), never retransmitted; False
        when it did not go (closed, over the anti-amplification budget, or the socket refused
        it: counted in ``send_failures``)."""
        if self.closed:
            return False
        data = self.endpoint.media_datagram(payload)
        if data is None:
            return False
        try:
            self.send_datagram(data)
        except OSError as e:
            self._send_failed(e)
            return False
        return True

    def _send_failed(self, error: OSError) -> None:
        self.send_failures += 1
        if self.send_failures == 1 or self.send_failures % 1000 == 0:
            self.log.warn("UDP send failed ({n} so far on this channel): {error}",
                          n=self.send_failures, error=str(error))

    def address_validated(self) -> None:
        self.endpoint.address_validated()
        self.flush()

    def seal_datagrams(self, action) -> None:
        """``events.SealDatagrams``: seal what is sent, require sealed datagrams in."""
        self.endpoint.seal_datagrams(action.send_key, action.receive_key, action.required)

    def flush(self) -> int:
        """Send what the endpoint has queued and (re)arm its timer; returns how many
        datagrams the socket refused (a full send buffer: a control message is sent again
        by the reliability layer, a media frame is gone; counted in ``send_failures``)."""
        now = self.clock.seconds()
        failed = 0
        for data in self.endpoint.datagrams_to_send(now):
            try:
                self.send_datagram(data)
            except OSError as e:
                failed += 1
                self._send_failed(e)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.endpoint.failure is not None:
            if not self.closed:
                self.closed = True
                self.give_up()
            return failed
        due = self.endpoint.get_timer()
        if due is not None:
            self._timer = self.clock.callLater(max(0.0, due - now), self._expired)
        elif self.endpoint.idle and self.on_idle is not None:
            self.on_idle()
        return failed

    def _expired(self) -> None:
        self._timer = None
        self.endpoint.handle_timer(self.clock.seconds())
        self.flush()

    @property
    def unacknowledged(self) -> int:
        return self.endpoint.unacknowledged

    @property
    def idle(self) -> bool:
        return self.endpoint.idle

    def close(self) -> None:
        """Stop sending and retransmitting (what is unacknowledged is abandoned)."""
        self.closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class _UdpPeer:
    """One source address: its reliable channel and ClientConnection (the writer for it).
    After the session ended the peer stays ``LINGER`` seconds, so that retransmissions (ours,
    or the client's whose acknowledgement was lost) do not open a new session."""

    def __init__(self, proto: "ClientDatagramProtocol", addr: tuple[str, int]):
        self.proto = proto
        self.addr = addr
        self.channel = ReliableChannel(proto.manager.clock, self._send, self._deliver,
                                       self._give_up, side=m.SERVER,
                                       max_message=proto.manager.max_message)
        self.conn = None
        self._linger = None
        self.channel.on_dropped = self._dropped
        self._drops: dict[str, int] = {}         # dropped since the last log line
        self._drop_logged = None                 # when that line was written

    def _send(self, data: bytes) -> None:
        self.proto.send_datagram(data, self.addr)

    def _deliver(self, item) -> None:
        if type(item) is bytes:
            self.conn.receive(item)
        elif isinstance(item, m.Message):
            self.conn.receive_message(item)
        else:
            self.conn.protocol_error(item)

    def _give_up(self) -> None:
        self.conn.protocol_error(RemoteProtocolError(ErrorCode.UNREACHABLE,
                                                     "messages not acknowledged", fatal=True))
        self.conn.close("unreachable")

    def receive(self, data: bytes) -> None:
        self.channel.receive(data)

    # -- the writer interface of ClientConnection -------------------------------------------------
    def write_control(self, message: m.Message) -> None:
        self.channel.send(message)

    def write_media(self, data: bytes) -> bool:
        return self.channel.send_media(data)

    def seal_datagrams(self, action) -> None:
        """The login keyed datagram authentication (docs/protocol.md): from the welcome on,
        every datagram is sealed, and one from this address that is not is dropped."""
        self.channel.seal_datagrams(action)

    def _dropped(self, reason: str) -> None:
        """A datagram claiming this session failed its seal (spoofed, forged or replayed):
        dropped, counted in the metrics, logged at most once a minute per session."""
        metrics = self.proto.manager.metrics
        if metrics is not None:
            metrics.datagram_dropped(reason)
        self._drops[reason] = self._drops.get(reason, 0) + 1
        now = self.proto.manager.clock.seconds()
        if self._drop_logged is None or now - self._drop_logged >= 60.0:
            conn = self.conn
            self.proto.log.warn(
                "dropped datagrams claiming the session of {user} at {host}:{port}: {counts}",
                user=conn.username if conn is not None else None, host=self.addr[0],
                port=self.addr[1], counts=", ".join(f"{n} {r}" for r, n in
                                                    sorted(self._drops.items())))
            self._drops, self._drop_logged = {}, now

    def login_succeeded(self) -> None:
        """The client proved it receives at its address: lift the anti-amplification limit."""
        self.channel.address_validated()

    def lose(self) -> None:
        """The session ended: keep acknowledging (and retransmitting) for ``LINGER`` seconds,
        also once all of ours were acknowledged: the client may still be retransmitting a
        message whose acknowledgement was lost, which must not open a new session."""
        if self.channel.closed:
            self._forget()
        elif self._linger is None:
            self._linger = self.proto.manager.clock.callLater(LINGER, self._forget)

    def _forget(self) -> None:
        self.channel.close()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        if self.proto.peers.get(self.addr) is self:
            del self.proto.peers[self.addr]


class ClientDatagramProtocol(DatagramProtocol):
    """The UDP listener's protocol: one ``ClientConnection`` per source address."""

    log = Logger()

    def __init__(self, manager):
        self.manager = manager
        self.peers: dict[tuple[str, int], _UdpPeer] = {}
        self._sendto = None         # the listening socket's sendto, once listening

    def startProtocol(self) -> None:
        """Listening: send through the socket itself. ``Port.write`` validates the address
        string three times per datagram (``isIPAddress``), a third of a media frame's cost;
        ours are the addresses datagrams came from."""
        self._sendto = self.transport.getHandle().sendto

    def stopProtocol(self) -> None:
        self._sendto = None
        self._stop_peers()

    def send_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram to ``addr`` (a full socket buffer drops it, as the network may)."""
        sendto = self._sendto
        if sendto is None:
            if self.transport is not None:
                self.transport.write(data, addr)
            return
        try:
            sendto(data, addr)
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in _SEND_IGNORED:
                self.log.warn("sending to {host}:{port}: {error}", host=addr[0], port=addr[1],
                              error=e)

    def datagramReceived(self, data: bytes, addr) -> None:
        addr = (addr[0], addr[1])
        try:
            peer = self.peers.get(addr)
            if peer is None:
                if len(data) > MAX_DATAGRAM or not opens_session(data):
                    return              # docs/protocol.md 12: dropped without an answer
                peer = _UdpPeer(self, addr)
                self.peers[addr] = peer
                peer.conn = self.manager.open("udp", addr, peer)
            peer.receive(data)
        except Exception:
            self.log.failure("datagram from {host}:{port}", host=addr[0], port=addr[1])

    def _stop_peers(self) -> None:
        for peer in list(self.peers.values()):
            if peer.conn is not None:
                peer.conn.connection_lost("listener stopped")
            peer._forget()
        self.peers.clear()
