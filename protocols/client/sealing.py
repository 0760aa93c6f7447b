"""Datagram authentication for the UDP framing: after login every datagram is sealed with a
message authentication code keyed from the login exchange.

Owned by the client protocol; the spec is docs/protocol.md ("UDP datagram authentication").
Over UDP a source address proves nothing: anybody can send a datagram claiming a logged-in
client's address and port. From the ``welcome`` on, both sides therefore send only *sealed*
datagrams and drop everything else::

    sealed = 0x02 | counter (8 bytes, big-endian, 1, 2, 3... per direction) | payload | tag
    tag    = HMAC-SHA256(key, 0x02 | counter | payload), first 16 bytes

The keys (one per direction) come from the login: a password login from the SCRAM client key
(which the server recovers from the proof and an eavesdropper never sees) and the auth message;
a token login from the token and the nonce the client sent with it (``datagram_keys``). A
receiver drops a datagram that is not sealed, carries a wrong tag, or repeats (or is older than
the 64 before the newest of) the counters it accepted, as IPsec's anti-replay window does
(RFC 4303 section 3.4.3).

Sans-I/O: ``DatagramSeal`` is driven by ``reliable.ReliableEndpoint``. Tests:
tests/client_proto/test_sealing.py.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

SEALED = 0x02                # the first byte of a sealed datagram
TAG_SIZE = 16
HEADER_SIZE = 9
OVERHEAD = HEADER_SIZE + TAG_SIZE
WINDOW = 64                  # counters accepted behind the newest one
_COUNTER = struct.Struct(">Q")

#: why a datagram was dropped
UNSEALED, FORGED, REPLAYED = "unsealed", "forged", "replayed"


@dataclass(frozen=True)
class DatagramKeys:
    """The two keys of a session: ``client`` seals what the client sends, ``server`` what the
    server sends."""
    client: bytes
    server: bytes


def _derive(secret: bytes, context: bytes) -> DatagramKeys:
    return DatagramKeys(
        hmac.digest(secret, b"callgw-v1 datagram client," + context, "sha256"),
        hmac.digest(secret, b"callgw-v1 datagram server," + context, "sha256"))


def password_keys(client_key: bytes, auth_message: bytes) -> DatagramKeys:
    """The keys of a password login: from the SCRAM client key and the auth message."""
    return _derive(client_key, auth_message)


def token_keys(token: str, nonce: str | None) -> DatagramKeys:
    """The keys of a token login: from the token and the nonce sent with it."""
    return _derive(token.encode("ascii"), b"token," + (nonce or "").encode("ascii"))


def seal(key: bytes, counter: int, payload: bytes) -> bytes:
    """One sealed datagram."""
    return _seal(_keyed(key), counter, payload)


def _keyed(key: bytes):
    """HMAC-SHA256 with ``key`` already absorbed: ``copy()`` per datagram saves re-keying
    (about a third of the cost of a small datagram's tag)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _tag(keyed, body: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(body)
    return mac.digest()[:TAG_SIZE]


def _seal(keyed, counter: int, payload: bytes) -> bytes:
    body = bytes([SEALED]) + _COUNTER.pack(counter) + payload
    return body + _tag(keyed, body)


def is_sealed(datagram: bytes) -> bool:
    return datagram[:1] == bytes([SEALED])


class DatagramSeal:
    """Sealing toward one peer, and checking what it sends.

    ``configure(send_key, receive_key, required)``: seal what is sent with ``send_key`` (None:
    send plain), open sealed datagrams with ``receive_key``; ``required`` drops plain ones.
    ``outgoing(payload)`` returns the datagram to send; ``incoming(datagram)`` returns the
    payload, or None with ``dropped`` (a reason) set, counted in ``counts``.
    """

    def __init__(self) -> None:
        self._send_key: bytes | None = None
        self._receive_key: bytes | None = None
        self._send_mac = self._receive_mac = None
        self.required = False
        self._sent = 0
        self._highest = 0
        self._seen = 0                    # bit i: counter (highest - i) was accepted
        self.dropped: str | None = None
        self.counts = {UNSEALED: 0, FORGED: 0, REPLAYED: 0}

    def configure(self, send_key: bytes | None, receive_key: bytes | None,
                  required: bool) -> None:
        if receive_key != self._receive_key:
            self._highest = self._seen = 0
        self._send_key, self._receive_key, self.required = send_key, receive_key, required
        self._send_mac = _keyed(send_key) if send_key is not None else None
        self._receive_mac = _keyed(receive_key) if receive_key is not None else None

    @property
    def sealing(self) -> bool:
        return self._send_mac is not None

    def outgoing(self, payload: bytes) -> bytes:
        if self._send_mac is None:
            return payload
        self._sent += 1
        return _seal(self._send_mac, self._sent, payload)

    def incoming(self, datagram: bytes) -> bytes | None:
        self.dropped = None
        if not is_sealed(datagram):
            if self.required:
                return self._drop(UNSEALED)
            return datagram
        if self._receive_mac is None or len(datagram) < OVERHEAD:
            return self._drop(FORGED)
        body, tag = datagram[:-TAG_SIZE], datagram[-TAG_SIZE:]
        if not hmac.compare_digest(_tag(self._receive_mac, body), tag):
            return self._drop(FORGED)
        counter = _COUNTER.unpack_from(datagram, 1)[0]
        if not self._fresh(counter):
            return self._drop(REPLAYED)
        return bytes(body[HEADER_SIZE:])

    def _fresh(self, counter: int) -> bool:
        """Accept ``counter`` once (RFC 4303 3.4.3's sliding window), after the tag checked."""
        if counter == 0:
            return False
        if counter > self._highest:
            shift = counter - self._highest
            self._seen = ((self._seen << shift) | 1) & ((1 << WINDOW) - 1) \
                if shift < WINDOW else 1
            self._highest = counter
            return True
        back = self._highest - counter
        if back >= WINDOW or self._seen >> back & 1:
            return False
        self._seen |= 1 << back
        return True

    def _drop(self, reason: str) -> None:
        self.dropped = reason
        self.counts[reason] += 1
        return None
