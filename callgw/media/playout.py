"""Relayed mode, client to gateway: client media frames in, paced RTP packets out. No I/O.

The client protocol delivers G.711 frames with its own sequence number and timestamp (8 kHz
samples). ``Playout`` puts them on a sample timeline keyed by the client's timestamp, so frames
may arrive out of order, twice, or late, and may be any length; it cuts the timeline into
packets of the gateway's negotiated ptime and emits them with its own continuous RTP sequence
numbers and timestamps (``client timestamp + offset``, so a pause in the client's stream shows
as a timestamp jump with the marker bit, RFC 3550 5.1 / RFC 3551 4.1).

The jitter buffer is small: an in-order frame goes out as soon as its packet is complete and
the pacing allows (at most half a ptime ahead of the schedule), so the steady state adds no
delay. A missing stretch is waited for ``depth`` ptimes, then filled with silence (short gaps)
or skipped as a pause (gaps over ``max_fill_ms``). A tail shorter than a packet is padded with
silence after one ptime without new frames. Callers pass ``now`` (seconds) and ask
``next_wakeup()`` when to call ``pull`` again.

Tests: tests/media/test_media_playout.py.
"""
from __future__ import annotations

import struct

from protocols.rtp import g711

_HEADER = struct.Struct("!BBHII")


def _rel(ts: int, base: int) -> int:
    """Signed 32-bit distance from ``base`` to ``ts``."""
    d = (ts - base) & 0xFFFFFFFF
    return d - 0x100000000 if d & 0x80000000 else d


class Playout:
    """Client frames -> RTP packets (bytes) toward the gateway; see the module docstring."""

    def __init__(self, in_codec: str, out_codec: str, payload_type: int, ssrc: int,
                 ptime_ms: int = 20, sequence: int = 0, timestamp_offset: int = 0,
                 depth: int = 2, max_fill_ms: int = 200, clock_rate: int = 8000):
        self.table = g711.translation(in_codec, out_codec)
        self.silence = g711.SILENCE[out_codec]
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.ptime = ptime_ms / 1000.0
        self.samples = clock_rate * ptime_ms // 1000
        self.sequence = sequence & 0xFFFF
        self.offset = timestamp_offset
        self.depth = depth
        self.max_fill = clock_rate * max_fill_ms // 1000
        self.max_backlog = self.samples * (depth + 3)
        self.frames = {}
        self.buf = bytearray()
        self.buf_ts = None  # client timestamp of buf[0]; None until the first frame
        self.next_due = 0.0
        self.last_push = 0.0
        self.last_emit = None
        self.gap_since = None
        self.marker = True
        # counters
        self.frames_in = 0
        self.frames_late = 0
        self.frames_duplicate = 0
        self.samples_filled = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.last_timestamp = None
        self._idle_since = None     # when a timestamp was first asked for with no audio sent
        self._event_ts = None       # the last timestamp handed out for an event

    @property
    def cursor(self) -> int:
        """The client timestamp of the next sample not yet in ``buf``."""
        return (self.buf_ts + len(self.buf)) & 0xFFFFFFFF

    def take_sequence(self, count: int = 1) -> int:
        """Reserve ``count`` sequence numbers (for DTMF packets sharing the stream)."""
        first = self.sequence
        self.sequence = (self.sequence + count) & 0xFFFF
        return first

    def current_timestamp(self, now: float) -> int:
        """The stream's RTP timestamp at ``now``: the last audio packet's timestamp plus the
        time since it left, or -- with no audio sent at all -- the stream's first timestamp plus
        the time since it was first asked for."""
        rate = self.samples / self.ptime
        if self.last_timestamp is None or self.last_emit is None:
            if self._idle_since is None:
                self._idle_since = now
            return (self.offset + int((now - self._idle_since) * rate)) & 0xFFFFFFFF
        return (self.last_timestamp + int(max(0.0, now - self.last_emit) * rate)) & 0xFFFFFFFF

    def event_timestamp(self, now: float) -> int:
        """The RTP timestamp of an RFC 4733 event starting now (2.3: the event's start on the
        stream's clock), later than the previous event's: two events never share one (a
        receiver takes the second for the first one going on, as it did when DTMF without
        media gave every digit the same timestamp)."""
        ts = self.current_timestamp(now)
        if self._event_ts is not None and _rel(ts, self._event_ts) <= 0:
            ts = (self._event_ts + self.samples) & 0xFFFFFFFF
        self._event_ts = ts
        return ts

    def push(self, payload: bytes, sequence: int, timestamp: int, now: float):
        """Accept one client frame (``sequence`` is informative; the timeline uses timestamps)."""
        self.frames_in += 1
        self.last_push = now
        if self.table is not None:
            payload = payload.translate(self.table)
        if self.buf_ts is None:
            self.buf_ts = timestamp & 0xFFFFFFFF
            self.next_due = now
            if self.last_timestamp is not None:     # resynced: the outgoing timeline goes on
                self.offset = (self.last_timestamp + self.samples - self.buf_ts) & 0xFFFFFFFF
                self.marker = True
        elif not self.buf and not self.frames and self.last_emit is not None and \
                now - self.last_emit > self.ptime * self.depth and \
                _rel(timestamp, self.cursor) > 0:
            # a new talkspurt after a pause: jump the timeline to it
            self.buf_ts = timestamp & 0xFFFFFFFF
            self.marker = True
            self.gap_since = None
        rel = _rel(timestamp, self.cursor)
        if rel < 0:
            if rel + len(payload) <= 0:
                self.frames_late += 1
                return
            payload = payload[-rel:]
            timestamp = self.cursor
        key = timestamp & 0xFFFFFFFF
        if key in self.frames:
            self.frames_duplicate += 1
            return
        self.frames[key] = payload

    def push_in_order(self, payload: bytes, timestamp: int, now: float) -> bytes | None:
        """The steady state in one step: when nothing is buffered, ``payload`` is exactly one
        packet starting at the cursor and the pacing lets it go now, count it as ``push``
        would and return its RTP packet (what ``pull`` would return alone). Otherwise None,
        having done nothing: the caller then uses ``push`` and ``pull``."""
        buf_ts = self.buf_ts
        n = self.samples
        if buf_ts is None or self.buf or self.frames or len(payload) != n or \
                timestamp & 0xFFFFFFFF != buf_ts or self.next_due > now + self.ptime / 2:
            return None
        self.frames_in += 1
        self.last_push = now
        if self.table is not None:
            payload = payload.translate(self.table)
        ts = (buf_ts + self.offset) & 0xFFFFFFFF
        sequence = self.sequence
        packet = _HEADER.pack(0x80, (0x80 if self.marker else 0) | self.payload_type,
                              sequence, ts, self.ssrc) + payload
        self.buf_ts = (buf_ts + n) & 0xFFFFFFFF
        self.sequence = (sequence + 1) & 0xFFFF
        self.marker = False
        self.gap_since = None
        self.packets_out += 1
        self.bytes_out += 12 + n
        self.last_timestamp = ts
        self.last_emit = now
        next_due = self.next_due
        if next_due < now - self.ptime:
            next_due = now - self.ptime
        self.next_due = next_due + self.ptime
        return packet

    def resync(self) -> None:
        """The client's timeline starts over (it re-attached, or a filler stands in for it):
        drop what is buffered; the next frame's timestamp becomes the new base, and the RTP
        toward the gateway continues its own sequence and timestamps (with the marker bit)."""
        self.buf.clear()
        self.frames.clear()
        self.buf_ts = None
        self.gap_since = None

    def _emit(self, now: float, out: list):
        n = self.samples
        ts = (self.buf_ts + self.offset) & 0xFFFFFFFF
        first = 0x80 if self.marker else 0
        out.append(_HEADER.pack(0x80, first | self.payload_type, self.sequence, ts, self.ssrc)
                   + bytes(self.buf[:n]))
        del self.buf[:n]
        self.buf_ts = (self.buf_ts + n) & 0xFFFFFFFF
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.marker = False
        self.packets_out += 1
        self.bytes_out += 12 + n
        self.last_timestamp = ts
        self.last_emit = now
        self.next_due = max(self.next_due, now - self.ptime) + self.ptime

    def _backlog(self) -> int:
        return len(self.buf) + sum(len(f) for f in self.frames.values())

    def backlog_samples(self) -> int:
        """Samples received and not yet sent (what a call's end leaves behind)."""
        return self._backlog()

    def pull(self, now: float) -> list[bytes]:
        """The RTP packets to send at ``now`` (possibly none)."""
        out = []
        if self.buf_ts is None:
            return out
        n = self.samples
        slack = self.ptime / 2
        frames = self.frames
        while True:
            cursor = self.cursor
            while cursor in frames:
                self.buf += frames.pop(cursor)
                cursor = self.cursor
                self.gap_since = None
            if len(self.buf) >= n:
                if self.next_due > now + slack and self._backlog() <= self.max_backlog:
                    break
                self._emit(now, out)
                continue
            if frames:
                nearest = min(frames, key=lambda ts: _rel(ts, cursor))
                gap = _rel(nearest, cursor)
                if gap < 0:  # overlaps what we already hold: keep its tail only
                    payload = frames.pop(nearest)
                    if len(payload) + gap > 0:
                        frames[cursor] = payload[-gap:]
                    continue
                if self.gap_since is None:
                    self.gap_since = now
                if now - self.gap_since < self.ptime * self.depth and len(frames) < self.depth:
                    break
                self.gap_since = None
                if gap > self.max_fill:
                    # a pause: send what we hold, padded, then jump to the next frame
                    if self.buf:
                        self._pad()
                        continue
                    self.buf_ts = nearest
                    self.marker = True
                    continue
                self.buf += bytes((self.silence,)) * gap
                self.samples_filled += gap
                continue
            if self.buf and now - self.last_push >= self.ptime:
                self._pad()
                continue
            break
        return out

    def _pad(self):
        short = -len(self.buf) % self.samples
        self.buf += bytes((self.silence,)) * short
        self.samples_filled += short

    def next_wakeup(self) -> float | None:
        """When ``pull`` has work again (seconds, same base as ``now``), or None."""
        if self.buf_ts is None:
            return None
        times = []
        if len(self.buf) >= self.samples:
            times.append(self.next_due - self.ptime / 2)
        elif self.buf:
            times.append(self.last_push + self.ptime)
        if self.frames:
            since = self.gap_since if self.gap_since is not None else self.last_push
            times.append(since + self.ptime * self.depth)
        return min(times) if times else None
