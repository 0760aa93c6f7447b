"""The client protocol over UDP: one payload per datagram, reliability from the protocol core.

Owned by the front-end listeners; the spec is docs/protocol.md sections 11 and 12. The
reliability itself (ids, acks, in-order delivery, retransmission with back-off, giving up,
anti-amplification before the address is validated) is ``protocols.client.reliable``'s
sans-I/O ``ReliableEndpoint``; ``ReliableChannel`` drives one on the injected clock and is
shared with the client library (``callgw.client.links``).

``ClientDatagramProtocol(manager)`` keeps one ``ClientConnection`` per source address. A
datagram from an unknown address opens a session only when it is a valid ``login`` with an id
(``opens_session``); anything else from a stranger is dropped without an answer. The address is
validated when the login succeeds (``login_succeeded``).

Tests: tests/frontend/test_udp.py (a lossy fake network and a Clock) and test_framings.py.
"""
from __future__ import annotations

from typing import Callable

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, RemoteProtocolError
from protocols.client.reliable import ReliableEndpoint, opens_session

MAX_DATAGRAM = fr.MAX_PAYLOAD
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
                 side: str = m.SERVER, validated: bool = False):
        self.clock = clock
        self.send_datagram = send_datagram
        self.deliver = deliver
        self.give_up = give_up
        self.on_idle: Callable[[], None] | None = None
        self.endpoint = ReliableEndpoint(sender=side, validated=validated)
        self._timer = None
        self.closed = False

    def receive(self, data: bytes, too_large: int | None = None) -> None:
        """One datagram. ``too_large``: the limit it broke (its id is acknowledged, but what
        it carries is replaced by a TOO_LARGE error). Never raises."""
        items = self.endpoint.receive_datagram(data, self.clock.seconds())
        for item in items:
            if self.closed:
                break
            if too_large is not None and not isinstance(item, bytes):
                item = RemoteProtocolError(ErrorCode.TOO_LARGE,
                                           f"message over {too_large} bytes")
            self.deliver(item)
        self.flush()

    def send(self, message: m.Message) -> None:
        if not self.closed:
            self.endpoint.send(message, self.clock.seconds())
            self.flush()

    def send_media(self, payload: bytes) -> None:
        if not self.closed:
            self.endpoint.send_media(payload)
            self.flush()

    def address_validated(self) -> None:
        self.endpoint.address_validated()
        self.flush()

    def flush(self) -> None:
        """Send what the endpoint has queued and (re)arm its timer."""
        now = self.clock.seconds()
        for data in self.endpoint.datagrams_to_send(now):
            self.send_datagram(data)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.endpoint.failure is not None:
            if not self.closed:
                self.closed = True
                self.give_up()
            return
        due = self.endpoint.get_timer()
        if due is not None:
            self._timer = self.clock.callLater(max(0.0, due - now), self._expired)
        elif self.endpoint.idle and self.on_idle is not None:
            self.on_idle()

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
                                       self._give_up, side=m.SERVER)
        self.conn = None
        self._linger = None

    def _send(self, data: bytes) -> None:
        if self.proto.transport is not None:
            self.proto.transport.write(data, self.addr)

    def _deliver(self, item) -> None:
        if isinstance(item, m.Message):
            self.conn.receive_message(item)
        elif isinstance(item, bytes):
            self.conn.receive(item)
        else:
            self.conn.protocol_error(item)

    def _give_up(self) -> None:
        self.conn.protocol_error(RemoteProtocolError(ErrorCode.UNREACHABLE,
                                                     "messages not acknowledged", fatal=True))
        self.conn.close("unreachable")

    def receive(self, data: bytes) -> None:
        limit = self.proto.manager.max_message
        self.channel.receive(data, limit if len(data) > limit and data[:1] == b"{" else None)

    # -- the writer interface of ClientConnection -------------------------------------------------
    def write_control(self, message: m.Message) -> None:
        self.channel.send(message)

    def write_media(self, data: bytes) -> None:
        self.channel.send_media(data)

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

    def stopProtocol(self) -> None:
        for peer in list(self.peers.values()):
            if peer.conn is not None:
                peer.conn.connection_lost("listener stopped")
            peer._forget()
        self.peers.clear()
