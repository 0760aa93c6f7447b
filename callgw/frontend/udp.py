"""The client protocol over UDP: one payload per datagram, ids, acks, retransmission, duplicates.

Owned by the front-end listeners (docs/protocol.md, "UDP"). Every control message carries an
``id``; the receiver answers with ``{"v":1,"ack":[id]}`` and delivers each id once (a window of
recent ids suppresses duplicates); the sender retransmits unacknowledged messages with
exponential back-off on the injected clock (``T1`` doubling to ``T_MAX``) and gives up after
``TRIES`` sends (the session then ends: ``UNREACHABLE``). Media frames are neither numbered
nor acknowledged. ``ReliableChannel`` is shared with the client library (``callgw.client``).

``ClientDatagramProtocol(manager)`` keeps one ``ClientConnection`` per source address.

Tests: tests/frontend/test_udp.py (a lossy fake transport and a Clock) and test_framings.py.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, RemoteProtocolError

T1, T_MAX, TRIES = 0.5, 4.0, 8
WINDOW = 256            # received ids remembered for duplicate suppression
MAX_DATAGRAM = fr.MAX_PAYLOAD


class ReliableChannel:
    """Reliable control messages to one peer over datagrams. ``send_datagram(bytes)`` puts a
    datagram on the wire; ``deliver(message)`` gets each received message once;
    ``give_up()`` is called when a message was never acknowledged."""

    log = Logger()

    def __init__(self, clock, send_datagram: Callable[[bytes], None],
                 deliver: Callable[[m.Message], None], give_up: Callable[[], None],
                 sender: str = m.CLIENT, t1: float = T1, t_max: float = T_MAX,
                 tries: int = TRIES):
        self.clock = clock
        self.send_datagram = send_datagram
        self.deliver = deliver
        self.give_up = give_up
        self.sender = sender            # who sends what we receive
        self.t1, self.t_max, self.tries = t1, t_max, tries
        self._next = 1
        self._pending: dict[int, list] = {}     # id -> [data, timer, sends, interval]
        self._seen: OrderedDict[int, None] = OrderedDict()
        self.closed = False
        self.on_idle: Callable[[], None] | None = None     # called when all are acknowledged

    def send(self, message: m.Message) -> int:
        """Send ``message`` reliably; returns its id."""
        mid, self._next = self._next, self._next % (2 ** 31) + 1
        data = m.encode(message, mid=mid)
        if self.closed:
            return mid
        self.send_datagram(data)
        timer = self.clock.callLater(self.t1, self._retransmit, mid)
        self._pending[mid] = [data, timer, 1, self.t1]
        return mid

    def _retransmit(self, mid: int) -> None:
        entry = self._pending.get(mid)
        if entry is None or self.closed:
            return
        if entry[2] >= self.tries:
            self.close()
            self.give_up()
            return
        entry[2] += 1
        entry[3] = min(entry[3] * 2, self.t_max)
        self.send_datagram(entry[0])
        entry[1] = self.clock.callLater(entry[3], self._retransmit, mid)

    def receive(self, data: bytes) -> None:
        """One control datagram. Raises RemoteProtocolError (after acknowledging its id when
        one can be read, so that a bad message is not retransmitted forever)."""
        try:
            env = m.decode_envelope(data, sender=self.sender)
        except RemoteProtocolError:
            self._ack_anyway(data)
            raise
        for ack in env.acks:
            entry = self._pending.pop(ack, None)
            if entry is not None and entry[1].active():
                entry[1].cancel()
        if env.acks and not self._pending and self.on_idle is not None:
            self.on_idle()
        if env.message is None:
            return
        if env.mid is not None:
            self.send_datagram(m.encode_ack((env.mid,)))
            if env.mid in self._seen:
                return
            self._seen[env.mid] = None
            if len(self._seen) > WINDOW:
                self._seen.popitem(last=False)
        self.deliver(env.message)

    def _ack_anyway(self, data: bytes) -> None:
        try:
            mid = m.parse_json(data).get("id")
        except RemoteProtocolError:
            return
        if type(mid) is int and 1 <= mid <= 2 ** 31:
            self.send_datagram(m.encode_ack((mid,)))

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Stop retransmitting; later sends are dropped."""
        self.closed = True
        for entry in self._pending.values():
            if entry[1].active():
                entry[1].cancel()
        self._pending.clear()


class _UdpPeer:
    """One source address: its reliable channel and ClientConnection (the writer for it)."""

    def __init__(self, proto: "ClientDatagramProtocol", addr: tuple[str, int]):
        self.proto = proto
        self.addr = addr
        self.channel = ReliableChannel(proto.manager.clock, self._send, self._deliver,
                                       self._give_up)
        self.conn = None

    def _send(self, data: bytes) -> None:
        if self.proto.transport is not None:
            self.proto.transport.write(data, self.addr)

    def _deliver(self, message: m.Message) -> None:
        self.conn.receive_message(message)

    def _give_up(self) -> None:
        self.conn.close("unreachable")

    def receive(self, data: bytes) -> None:
        if fr.kind_of(data) == fr.MEDIA:
            self.conn.receive(data)
            return
        if len(data) > self.proto.manager.max_message:
            self.channel._ack_anyway(data)
            raise RemoteProtocolError(ErrorCode.TOO_LARGE,
                                      f"message over {self.proto.manager.max_message} bytes")
        self.channel.receive(data)

    # -- the writer interface of ClientConnection -------------------------------------------------
    def write_control(self, message: m.Message) -> None:
        self.channel.send(message)

    def write_media(self, data: bytes) -> None:
        self._send(data)

    def lose(self) -> None:
        self.channel.close()
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
        peer = self.peers.get(addr)
        try:
            if len(data) > MAX_DATAGRAM:
                raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, "datagram too large")
            kind = fr.kind_of(data)
            if peer is None:
                if kind == fr.MEDIA:
                    return                      # media from a stranger: dropped
                peer = self._new_peer(addr)
            peer.receive(data)
        except RemoteProtocolError as e:
            if peer is not None and peer.conn is not None:
                peer.conn.protocol_error(e)
            else:
                self._stranger_error(e, addr)
        except Exception:
            self.log.failure("datagram from {host}:{port}", host=addr[0], port=addr[1])

    def _new_peer(self, addr: tuple[str, int]) -> _UdpPeer:
        peer = _UdpPeer(self, addr)
        self.peers[addr] = peer
        peer.conn = self.manager.open("udp", addr, peer)
        return peer

    def _stranger_error(self, error: RemoteProtocolError, addr) -> None:
        """An error to a source that has no session (not numbered, not retransmitted)."""
        if self.transport is not None:
            text = "".join(c if c >= " " else " " for c in error.text)[:256]
            self.transport.write(m.encode(m.Error(code=error.code, text=text)), addr)

    def stopProtocol(self) -> None:
        for peer in list(self.peers.values()):
            if peer.conn is not None:
                peer.conn.connection_lost("listener stopped")
            peer.channel.close()
        self.peers.clear()
