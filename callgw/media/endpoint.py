"""The relay's sockets and its per-packet path: one RTP and one RTCP socket per call side.

Speed decides here (PLATFORM-NOTES.md: a naive Twisted forwarder ~83 k packets/s per core, a
bare epoll loop ~150 k). So the relay does not register each socket with the reactor, whose
per-event dispatch (log context, logPrefix) costs more than forwarding a packet: ``Poller``
keeps its own ``select.epoll`` holding every relay socket and registers only that epoll's file
descriptor with the reactor. When it is readable, the reactor calls ``Poller.doRead``, which
polls without blocking and calls each ready endpoint's ``readable(now)`` directly. Where
``select.epoll`` is missing, every endpoint is registered with the reactor instead.

``RtpEndpoint.readable`` reads one datagram (level-triggered epoll brings the socket back if
more wait, and no EAGAIN exception is raised per packet). In the latched steady state with no
conversion it checks the source address and payload type, counts the packet, keeps RFC 3550
A.1 sequence and A.8 jitter figures inline, and sends the same bytes to the other side (on a
socket ``connect()``ed to that side's latched address: no address parsing, no route lookup).
Everything else (latching, DTMF, codec conversion, relayed mode, RTCP multiplexed on the RTP
port, junk) goes to the session's slow path. What the far side's sender refuses is counted:
an ``OSError`` as the target's ``send_errors``, ``False`` (relayed mode: the client's transport
did not take the frame) as the target's ``discarded``.

Tests: tests/media/test_media_relay.py.
"""
from __future__ import annotations

import ctypes
import errno
import select
import socket

from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

RECV_SIZE = 2048
SOCKET_BUFFER = 1 << 20


def open_udp(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``(address, port)``; raises OSError when busy."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock


def _libc_connect():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.connect
    except (OSError, AttributeError):
        return None


_connect = _libc_connect()


def disconnect(sock: socket.socket) -> bool:
    """Dissolve a connected UDP socket's association (``connect`` to AF_UNSPEC).

    Python's ``socket.connect`` cannot pass AF_UNSPEC, so this calls libc. False when it
    cannot be done here (the caller then closes the socket instead of reusing it).
    """
    if _connect is None:
        return False
    unspec = (ctypes.c_ubyte * 28)()  # sa_family 0 (AF_UNSPEC), large enough for IPv6
    return _connect(sock.fileno(), unspec, ctypes.sizeof(unspec)) == 0


@implementer(IReadDescriptor)
class Poller:
    """One epoll set for all relay sockets, itself registered once with the reactor."""

    max_events = 1024

    def __init__(self, reactor, seconds=None):
        self.reactor = reactor
        self._epoll = None
        self._handlers = {}
        self._seconds = seconds if seconds is not None else reactor.seconds

    def add(self, sock: socket.socket, handler):
        """Call ``handler(now)`` whenever ``sock`` is readable."""
        fd = sock.fileno()
        self._handlers[fd] = handler
        if hasattr(select, "epoll"):
            if self._epoll is None:
                self._epoll = select.epoll()
                self.reactor.addReader(self)
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self.reactor.addReader(_SingleReader(sock, handler, self._seconds))

    def remove(self, sock: socket.socket):
        """Stop watching ``sock`` (before it is closed)."""
        fd = sock.fileno()
        if self._handlers.pop(fd, None) is None:
            return
        if self._epoll is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass
            if not self._handlers:
                self.reactor.removeReader(self)
                self._epoll.close()
                self._epoll = None
        else:
            for reader in list(self.reactor.getReaders()):
                if isinstance(reader, _SingleReader) and reader.sock is sock:
                    self.reactor.removeReader(reader)

    def fileno(self) -> int:
        return self._epoll.fileno() if self._epoll is not None else -1

    def logPrefix(self) -> str:
        return "media-relay"

    def doRead(self):
        if self._epoll is None:
            return None
        events = self._epoll.poll(0, self.max_events)
        now = self._seconds()
        handlers = self._handlers
        for fd, _ in events:
            handler = handlers.get(fd)
            if handler is not None:
                try:
                    handler(now)
                except Exception:
                    log.failure("media relay handler failed on fd {fd}", fd=fd)
        return None

    def connectionLost(self, reason):
        """The reactor dropped us (shutdown); nothing to tidy beyond what close does."""


@implementer(IReadDescriptor)
class _SingleReader:
    """Fallback without epoll: one reactor reader per socket."""

    def __init__(self, sock, handler, seconds):
        self.sock = sock
        self.handler = handler
        self.seconds = seconds

    def fileno(self):
        return self.sock.fileno()

    def logPrefix(self):
        return "media-relay"

    def doRead(self):
        try:
            self.handler(self.seconds())
        except Exception:
            log.failure("media relay handler failed")
        return None

    def connectionLost(self, reason):
        """Nothing to tidy."""


class RtpEndpoint:
    """One side's RTP socket, its latching state and the counters of what it receives.

    The session sets the fast-path fields through ``wire``; ``readable`` is the hot path.
    """

    def __init__(self, session, side: str, sock: socket.socket, port: int):
        self.session = session
        self.side = side
        self.sock = sock
        self.port = port
        self.recvfrom = sock.recvfrom
        self.recv = sock.recv
        self.sendto = sock.sendto
        self.payload_type = None      # negotiated audio payload type on this side
        self.event_type = None        # negotiated telephone-event payload type, or None
        self.codec = None
        self.ptime = 20
        self.sdp_address = None       # (host, port) from the side's SDP
        self.latched = None           # the real source address, once latched
        self.connected = False        # the socket is connect()ed to ``latched``
        self.ssrc = None
        self.send_allowed = True      # the side's SDP lets us send to it
        self.expect_media = True      # the side's SDP says it sends
        # fast path: where packets from this side go when passed through untouched;
        # fast_ready: wiring allows it, fast: and the counters are primed for it
        self.fast_ready = False
        self.fast = False
        self.out_send = None          # send(data) toward the other side
        self.out_counter = None
        # receive counters (RFC 3550 A.1 / A.8 kept inline)
        self.packets = 0
        self.octets = 0
        self.base_seq = None
        self.max_seq = 0
        self.cycles = 0
        self.jitter = 0.0
        self.transit = None
        self.last_rx = None
        self.dropped = 0              # foreign source, wrong payload type, malformed
        self.discarded = 0            # from the latched source, but not forwarded (see relay)
        self.events = 0               # RFC 4733 packets from the latched source
        self.after_end = 0            # read as the session closed (see drain)
        self.send_errors = 0          # sends out of this socket (toward this side) that failed
        self.sent_packets = 0         # packets sent out of this socket (toward this side)
        self.sent_octets = 0
        self.clock_rate = 8000

    @property
    def destination(self):
        """Where media for this side goes: the latched source, else the SDP address."""
        return self.latched or self.sdp_address

    def latch(self, addr):
        """Fix this side's source to ``addr`` and connect the socket to it.

        A connected UDP socket lets the kernel drop other sources and skip the route lookup
        on every send (about 0.6 us a packet measured here).
        """
        self.latched = addr
        self.connected = False
        try:
            self.sock.connect(addr)
            self.connected = True
        except OSError as e:
            log.warn("RTP {side}: cannot connect to {addr}: {error}", side=self.side,
                     addr=addr, error=e)

    def open_filter(self):
        """Let other sources reach the socket again (before a re-latch); keeps ``latched``."""
        if self.connected and disconnect(self.sock):
            self.connected = False

    def unlatch(self):
        """Forget the latched source (a new far end)."""
        self.open_filter()
        self.latched = None

    def sender(self):
        """A ``send(data)`` toward this side's destination, or None when it has none."""
        if self.connected:
            return self.sock.send
        destination, sendto = self.destination, self.sendto
        if destination is None:
            return None
        return lambda data: sendto(data, destination)

    def readable(self, now: float):
        """Read one datagram and forward or hand it to the session."""
        try:
            if self.connected:  # only the latched source gets through: skip its address
                data = self.recv(RECV_SIZE)
                addr = self.latched
            else:
                data, addr = self.recvfrom(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as e:  # ICMP port unreachable from an earlier send, and similar
            if e.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                log.warn("RTP receive failed on {side}: {error}", side=self.side, error=e)
            return
        if self.fast and addr == self.latched and len(data) >= 12 and \
                data[1] & 0x7F == self.payload_type:
            # self.count(data, now, True), inlined: this runs for every packet
            self.packets += 1
            self.octets += len(data)
            self.last_rx = now
            seq = data[2] << 8 | data[3]
            delta = (seq - self.max_seq) & 0xFFFF
            if delta < 3000:
                if seq < self.max_seq:
                    self.cycles += 65536
                self.max_seq = seq
            elif delta < 65436 and int.from_bytes(data[8:12], "big") != self.ssrc:
                self.new_source(data)  # same address, new SSRC: restart the figures
            transit = int(now * 8000) - int.from_bytes(data[4:8], "big")
            d = transit - self.transit
            if d < 0:
                d = -d
            if d < 0x80000000:
                self.jitter += (d - self.jitter) * 0.0625
            self.transit = transit
            try:
                sent = self.out_send(data)
            except OSError:
                self.out_counter.send_errors += 1
                return
            out = self.out_counter
            if sent is False:  # relayed mode: the client's transport did not take it
                out.discarded += 1
                return
            out.sent_packets += 1
            out.sent_octets += len(data)
            return
        self.session.slow_packet(self, data, addr, now)

    def count(self, data: bytes, now: float, audio: bool):
        """Account for one packet from the latched source (sequence, jitter, bytes)."""
        self.packets += 1
        self.octets += len(data)
        self.last_rx = now
        seq = data[2] << 8 | data[3]
        if self.base_seq is None:
            self.base_seq = self.max_seq = seq
            self.packets_at_base = self.packets - 1
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if delta < 3000:
                if seq < self.max_seq:
                    self.cycles += 65536
                self.max_seq = seq
        if audio:
            transit = int(now * self.clock_rate) - int.from_bytes(data[4:8], "big")
            if self.transit is not None:
                d = transit - self.transit
                if d < 0:
                    d = -d
                if d < 0x80000000:
                    self.jitter += (d - self.jitter) * 0.0625
            self.transit = transit

    def restart_counting(self):
        """A new source (SSRC or address): restart sequence and jitter tracking."""
        self.base_seq = None
        self.cycles = 0
        self.transit = None
        self.fast = False

    def new_source(self, data: bytes):
        """The fast path saw a new SSRC: restart counting from this (already counted) packet."""
        self.ssrc = int.from_bytes(data[8:12], "big")
        self.base_seq = self.max_seq = data[2] << 8 | data[3]
        self.packets_at_base = self.packets - 1
        self.cycles = 0

    def lost(self) -> int:
        """Cumulative packets lost from the current source (RFC 3550 A.3)."""
        if self.base_seq is None:
            return 0
        expected = self.cycles + self.max_seq - self.base_seq + 1
        return max(0, expected - (self.packets - self.packets_at_base))

    def expected(self) -> int:
        """Packets expected from the current source (RFC 3550 A.3)."""
        return 0 if self.base_seq is None else self.cycles + self.max_seq - self.base_seq + 1

    packets_at_base = 0

    def drain(self, now: float, limit: int = 4096) -> int:
        """Read what the kernel still holds for this socket as the session closes: packets
        from the latched source with the audio payload type are counted as received and as
        ``after_end`` (the call is over: not forwarded, not an impairment of the call), so the
        figures hold every packet that reached callgw.
        Returns how many were counted."""
        counted = 0
        for _ in range(limit):
            try:
                data, addr = self.recvfrom(RECV_SIZE)
            except OSError:          # BlockingIOError: nothing left; anything else: give up
                break
            if addr == self.latched and len(data) >= 12 and data[0] >> 6 == 2 and \
                    data[1] & 0x7F == self.payload_type and self.base_seq is not None:
                self.count(data, now, True)
                self.after_end += 1
                counted += 1
        return counted

    def close(self):
        """Close the socket and let go of the session and the fast path's target (both point
        back here through the session: no reference cycle outlives the call)."""
        self.fast = self.fast_ready = False
        self.out_send = self.out_counter = None
        self.session = None
        self.sock.close()


class RtcpEndpoint:
    """One side's RTCP socket: latches like RTP and hands every packet to the session."""

    def __init__(self, session, side: str, sock: socket.socket, port: int):
        self.session = session
        self.side = side
        self.sock = sock
        self.port = port
        self.latched = None
        self.sdp_address = None
        self.packets = 0

    @property
    def destination(self):
        return self.latched or self.sdp_address

    def readable(self, now: float):
        try:
            data, addr = self.sock.recvfrom(RECV_SIZE)
        except OSError:
            return
        self.session.quality.rtcp_packet(self, data, addr, now)

    def close(self):
        """Close the socket and let go of the session (no cycle outlives the call)."""
        self.session = None
        self.sock.close()
