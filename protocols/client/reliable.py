"""Reliable, ordered delivery of control messages over UDP (message ids, acks, back-off).

Owned by the client protocol; the spec is docs/protocol.md ("UDP reliability"). One
``ReliableEndpoint`` per peer (the server keeps one per client address and port; the client
library one per connection). Sans-I/O: datagrams in, messages out; messages in, datagrams out;
time is passed in and the endpoint *asks* for its timer (``get_timer``), in the manner of
aioquic's ``get_timer()`` / ``handle_timer()``.

- Every control message gets the next message id (``"id"``, from 1). The receiver acknowledges
  each id it receives, duplicates included (``"ack"``, piggybacked on the next message sent or a
  bare ``{"v":1,"ack":[...]}`` datagram), delivers each id once and in id order (a bounded
  reorder window), and drops ids beyond the window unacknowledged.
- The sender retransmits an unacknowledged message after ``rto`` seconds, doubling up to
  ``max_rto``; after ``max_tries`` sends the endpoint fails with ``ErrorCode.UNREACHABLE``.
- Media frames bypass all of this: they are neither numbered, acknowledged nor retransmitted.
- Anti-amplification: until ``address_validated()`` (the server calls it once the login
  succeeded), an endpoint sends at most ``AMPLIFICATION`` times the bytes it received, so a
  spoofed source address cannot turn callgw into a reflector. Until then it also behaves like
  a DNS server: it never retransmits on its own timer and sends no bare acks (an ack rides on a
  reply, or the client could stop retransmitting a login whose reply is still being looked
  up); each retransmitted request makes it send its unacknowledged replies again.
- Datagram authentication (``sealing.py``): once ``seal_datagrams`` is given the session's
  keys, every datagram sent is sealed and every datagram received must be; one that is not, or
  whose tag or counter is wrong, is dropped (``dropped`` says why, ``seal.counts`` counts).

Tests: tests/client_proto/test_reliable.py.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from protocols.client import messages as m
from protocols.client.errors import ErrorCode, ProtocolError, RemoteProtocolError
from protocols.client.framing import CONTROL, MEDIA, MEDIA_V1, check_media, kind_of
from protocols.client.sealing import OVERHEAD, DatagramSeal

AMPLIFICATION = 3
_MEDIA_BYTE = bytes([MEDIA_V1])
Item = m.Message | bytes | ProtocolError   # what receive_datagram delivers


@dataclass
class _Outgoing:
    mid: int
    message: m.Message
    tries: int
    due: float
    rto: float


class ReliableEndpoint:
    """The reliability state toward one UDP peer.

    ``receive_datagram(data, now)`` returns what to hand to the session, in order: control
    ``Message`` objects, media payloads (``bytes``, still encoded) and ``ProtocolError`` for a
    datagram that could not be decoded. ``send(message, now)`` and ``send_media(payload)`` queue
    output; ``datagrams_to_send()`` drains it. Call ``handle_timer(now)`` at ``get_timer()``.
    """

    def __init__(self, *, sender: str, rto: float = 0.5, max_rto: float = 2.0,
                 max_tries: int = 15, window: int = 64, validated: bool = False,
                 max_message: int = m.MAX_MESSAGE) -> None:
        self._peer = m.SERVER if sender == m.CLIENT else m.CLIENT
        self._rto0, self._max_rto, self._max_tries = rto, max_rto, max_tries
        self._window = window
        self._max_message = max_message
        self._next_mid = 1
        self._inflight: OrderedDict[int, _Outgoing] = OrderedDict()
        self._backlog: list[m.Message] = []
        self._expected = 1                       # the next id to deliver
        self._reorder: dict[int, m.Message | ProtocolError] = {}
        self._acks: list[int] = []
        self._out: list[bytes] = []
        self._received_bytes = 0
        self._sent_bytes = 0
        self._validated = validated
        self._resend_replies = False
        self.failure: RemoteProtocolError | None = None
        self.seal = DatagramSeal()
        self.dropped: str | None = None     # why the last datagram was dropped (sealing)

    # ------------------------------------------------------------ input
    def receive_datagram(self, data: bytes, now: float) -> list[Item]:
        """Process one datagram; returns the items to deliver, in order (none when it was
        dropped: ``dropped`` then says why)."""
        self._received_bytes += len(data)
        opened = self.seal.incoming(data)
        self.dropped = self.seal.dropped
        if opened is None:
            return []
        data = opened
        if data[:1] == _MEDIA_BYTE:     # the common case: a media frame, checked, as it is
            try:
                check_media(data)
            except ProtocolError as e:
                return [e]
            return [data if type(data) is bytes else bytes(data)]
        try:
            kind = kind_of(data)
            if kind == MEDIA:
                check_media(data)
                return [bytes(data)]
            if len(data) > self._max_message:
                raise RemoteProtocolError(ErrorCode.TOO_LARGE,
                                          f"message over {self._max_message} bytes")
            env = m.decode_envelope(data, sender=self._peer)
        except ProtocolError as e:
            # a bad message that still carries a readable id takes its place in the sequence:
            # acked (so the peer stops resending it) and delivered as the error, in order
            mid = _salvage_id(data)
            return [e] if mid is None else self._arrived(mid, e)
        assert kind == CONTROL
        for mid in env.acks:
            self._acked(mid, now)
        if env.message is None:
            return []
        if env.mid is None:
            return [RemoteProtocolError(ErrorCode.MISSING_FIELD, "id: required over UDP",
                                        command=env.message.command)]
        return self._arrived(env.mid, env.message)

    def _arrived(self, mid: int, message: m.Message | ProtocolError) -> list[Item]:
        if mid >= self._expected + self._window:
            return []                            # too far ahead: no ack, it comes again
        if mid not in self._acks:
            self._acks.append(mid)               # owed acks: unique, at most the window
        if mid < self._expected or mid in self._reorder:
            self._resend_replies = not self._validated
            return []                            # a duplicate: acked again, not delivered
        self._reorder[mid] = message
        out: list[Item] = []
        while self._expected in self._reorder:
            out.append(self._reorder.pop(self._expected))
            self._expected += 1
        return out

    def _acked(self, mid: int, now: float) -> None:
        if self._inflight.pop(mid, None) is None:
            return
        while self._backlog and len(self._inflight) < self._window:
            self._transmit(self._backlog.pop(0), now)

    # ------------------------------------------------------------ output
    def send(self, message: m.Message, now: float) -> None:
        """Queue ``message`` for reliable delivery (LocalProtocolError if it is invalid)."""
        m.to_dict(message)
        if self.failure is not None:
            return
        if len(self._inflight) >= self._window:
            self._backlog.append(message)
        else:
            self._transmit(message, now)

    def send_media(self, payload: bytes) -> bool:
        """Queue one media frame (sent once, never retransmitted); False when the
        anti-amplification budget refuses it (it is not sent)."""
        if self._budget() >= self._wire_size(payload):
            self._emit(payload)
            return True
        return False

    def media_datagram(self, payload: bytes) -> bytes | None:
        """The datagram carrying media frame ``payload`` (sealed when sealing), to send at
        once; None when the anti-amplification budget forbids it. Unlike ``send_media``
        nothing is queued: a media frame changes no reliability state, so the caller sends
        it without draining ``datagrams_to_send`` or re-arming the timer."""
        if not self._validated and self._budget() < self._wire_size(payload):
            return None
        data = self.seal.outgoing(payload)
        self._sent_bytes += len(data)
        return data

    def _transmit(self, message: m.Message, now: float) -> None:
        mid = self._next_mid
        self._next_mid += 1
        out = _Outgoing(mid, message, 0, now, self._rto0)
        self._inflight[mid] = out
        self._try(out, now)

    def _try(self, out: _Outgoing, now: float, count: bool = True) -> None:
        acks, self._acks = tuple(self._acks[-m.MAX_ACKS:]), []
        data = m.encode(out.message, mid=out.mid, acks=acks)
        if count:
            out.tries += 1
            out.due = now + out.rto
            out.rto = min(self._max_rto, out.rto * 2)
        if self._budget() < self._wire_size(data):
            self._acks = list(acks) + self._acks   # no budget: counts as a lost send
            return
        self._emit(data)

    def _emit(self, data: bytes) -> None:
        data = self.seal.outgoing(data)
        self._sent_bytes += len(data)
        self._out.append(data)

    def _wire_size(self, data: bytes) -> int:
        return len(data) + (OVERHEAD if self.seal.sealing else 0)

    def _budget(self) -> float:
        if self._validated:
            return float("inf")
        return AMPLIFICATION * self._received_bytes - self._sent_bytes

    def datagrams_to_send(self, now: float = 0.0) -> list[bytes]:
        """Drain the datagrams to send now (a bare ack if acks are owed and nothing carried
        them; before validation, replies sent again for a retransmitted request instead)."""
        if self._resend_replies:
            self._resend_replies = False
            for out in list(self._inflight.values()):
                self._try(out, now, count=False)
        if self._acks and self._validated:
            for i in range(0, len(self._acks), m.MAX_ACKS):
                ack = m.encode_ack(tuple(self._acks[i:i + m.MAX_ACKS]))
                if self._budget() >= self._wire_size(ack):
                    self._emit(ack)
            self._acks = []
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------ time
    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next (absolute time), or None."""
        if self.failure is not None or not self._inflight or not self._validated:
            return None
        return min(o.due for o in self._inflight.values())

    def handle_timer(self, now: float) -> None:
        """Retransmit what is due; give up after ``max_tries`` (``failure`` is then set)."""
        if not self._validated:
            return
        for out in list(self._inflight.values()):
            if out.due > now:
                continue
            if out.tries >= self._max_tries:
                self.failure = RemoteProtocolError(
                    ErrorCode.UNREACHABLE, f"message {out.mid} ({out.message.command}) was "
                    f"not acknowledged after {out.tries} sends", fatal=True)
                self._inflight.clear()
                self._backlog.clear()
                return
            self._try(out, now)

    # ------------------------------------------------------------ state
    def seal_datagrams(self, send_key: bytes | None, receive_key: bytes | None,
                       required: bool) -> None:
        """From now on seal what is sent with ``send_key`` (None: plain) and open what arrives
        with ``receive_key``; ``required``: drop every datagram that is not sealed by it."""
        self.seal.configure(send_key, receive_key, required)

    def address_validated(self) -> None:
        """The peer proved it receives at its address: lift the anti-amplification limit."""
        self._validated = True

    @property
    def idle(self) -> bool:
        """Nothing unacknowledged and nothing queued (safe to forget the endpoint)."""
        return not self._inflight and not self._backlog

    @property
    def validated(self) -> bool:
        return self._validated

    @property
    def unacknowledged(self) -> int:
        return len(self._inflight) + len(self._backlog)


def opens_session(data: bytes) -> bool:
    """True when a datagram from an unknown address may create an endpoint: a valid ``login``
    with a message id. Anything else from an unknown address is dropped without an answer."""
    try:
        env = m.decode_envelope(data, sender=m.CLIENT)
    except ProtocolError:
        return False
    return isinstance(env.message, m.Login) and env.mid is not None


def _salvage_id(data: bytes) -> int | None:
    """The valid ``id`` of a control datagram that failed to decode for another reason."""
    try:
        mid = m.parse_json(data).get("id")
    except ProtocolError:
        return None
    return mid if type(mid) is int and 1 <= mid <= 2 ** 31 else None
