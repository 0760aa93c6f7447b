"""RTP/RTCP port pairs from a configured range (RFC 3550 11: RTP on an even port, RTCP on the
next odd one).

``PortRange`` hands out even ports whose odd neighbour is also in range, from a given point of
the range on (callgw starts each process at a random one); a port goes back to
the end of the free list when released (so a just-closed port is reused last, and stray late
packets of an old call rarely reach a new one). Binding is the caller's job: a pair that fails
to bind is released and the next one tried (see ``callgw.media.relay``).

Tests: tests/media/test_media_ports.py.
"""
from __future__ import annotations

from collections import deque


class PortsExhausted(Exception):
    """Every port pair of the range is in use."""


class PortRange:
    """Even RTP ports ``p`` with ``low <= p`` and ``p + 1 <= high``."""

    def __init__(self, low: int, high: int, start: int = 0):
        """``start``: how many pairs into the range the first allocation is (the list wraps
        around): processes sharing a range, or another program holding a block of it, then
        do not all try the same ports first."""
        if not 0 < low < high <= 65535:
            raise ValueError("bad port range %d-%d" % (low, high))
        first = low + (low & 1)
        self.low, self.high = low, high
        self._free = deque(range(first, high, 2))
        self._free.rotate(-(start % max(1, len(self._free))))
        self._used = set()
        self.capacity = len(self._free)

    def allocate(self) -> int:
        """Take the next free even port; raises ``PortsExhausted``."""
        if not self._free:
            raise PortsExhausted("no free RTP port pair in %d-%d" % (self.low, self.high))
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int):
        """Give ``port`` back; releasing a port that is not allocated does nothing."""
        if port in self._used:
            self._used.discard(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        """How many pairs are allocated."""
        return len(self._used)

    def __len__(self) -> int:
        return len(self._free)
