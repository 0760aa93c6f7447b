"""RTP receiver statistics (RFC 3550 A.1, A.3, A.8, 6.4) and an E-model MOS estimate, sans-I/O.

``ReceiverStats`` follows one source: the extended highest sequence number with the A.1
probation and resynchronisation rules, cumulative loss and the interval fraction lost (A.3),
interarrival jitter (A.8) and the report block it would send (6.4.1), with LSR/DLSR taken from
the last SR heard. ``round_trip_time`` turns a received report block into an RTT (6.4.1).
``mos_estimate`` is a simplified ITU-T G.107 E-model for G.711: R = 93.2 - Id - Ie,eff with the
delay impairment of Cole and Rosenbluth's simplification and the G.107 packet-loss formula.
Callers pass ``now`` (seconds, any monotonic base) everywhere: no clock is read here.

Tests: tests/rtp/test_rtp_stats.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocols.rtp.packet import ReportBlock, ntp_middle32

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


class ReceiverStats:
    """Statistics of one RTP source as seen by a receiver (RFC 3550 A.1, A.3, A.8)."""

    def __init__(self, clock_rate: int = 8000, probation: int = MIN_SEQUENTIAL):
        self.clock_rate = clock_rate
        self.ssrc = None
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = probation
        self._initial_probation = probation
        self.received = 0
        self.octets = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.transit = None
        self.jitter = 0.0  # in timestamp units, not scaled by 16
        self.last_sr = 0
        self.last_sr_arrival = None

    def _init_seq(self, seq: int):
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 ``update_seq`` (with its first-packet set-up): True when valid."""
        if not self.started:
            self.started = True
            if self.probation:
                self._init_seq(seq)
                self.max_seq = (seq - 1) & 0xFFFF
            else:
                self._init_seq(seq)
                self.received = 1
                return True
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == ((self.max_seq + 1) & 0xFFFF):
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)  # the source restarted: resynchronise
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        self.received += 1
        return True

    started = False

    def receive(self, seq: int, timestamp: int, now: float, size: int = 0,
                ssrc: int | None = None) -> bool:
        """Account for one packet that arrived at ``now`` (seconds); True when valid."""
        if ssrc is not None and self.ssrc is not None and ssrc != self.ssrc:
            self.__init__(self.clock_rate, self._initial_probation)
        if ssrc is not None:
            self.ssrc = ssrc
        if not self.update_seq(seq):
            return False
        self.octets += size
        arrival = int(now * self.clock_rate)
        transit = (arrival - timestamp) & 0xFFFFFFFF
        if self.transit is not None:
            d = transit - self.transit
            if d > 0x7FFFFFFF:
                d -= 1 << 32
            elif d < -0x7FFFFFFF:
                d += 1 << 32
            self.jitter += (abs(d) - self.jitter) / 16.0
        self.transit = transit
        return True

    @property
    def extended_max(self) -> int:
        """The extended highest sequence number received."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected so far (A.3)."""
        if self.received == 0:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """Packets lost so far (negative when duplicates arrived), clamped to 24 bits signed."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter in milliseconds."""
        return self.jitter * 1000.0 / self.clock_rate

    def loss_fraction(self) -> float:
        """Cumulative loss as a fraction of expected packets (0.0 when none expected)."""
        expected = self.expected
        return max(0, expected - self.received) / expected if expected > 0 else 0.0

    def fraction_lost(self) -> int:
        """The 8-bit fraction lost since the previous call (A.3); starts a new interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    def sender_report_received(self, ntp: int, now: float):
        """Note an SR from this source (its 64-bit NTP time) for LSR/DLSR (6.4.1)."""
        self.last_sr = ntp_middle32(ntp)
        self.last_sr_arrival = now

    def report_block(self, now: float) -> ReportBlock:
        """The reception report block for this source at ``now`` (starts a new interval)."""
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = int((now - self.last_sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(ssrc=self.ssrc or 0, fraction_lost=self.fraction_lost(),
                           cumulative_lost=self.cumulative_lost,
                           highest_sequence=self.extended_max & 0xFFFFFFFF,
                           jitter=int(self.jitter) & 0xFFFFFFFF, lsr=self.last_sr, dlsr=dlsr)


def round_trip_time(block: ReportBlock, ntp_now: int) -> float | None:
    """RTT in seconds from a report block about our stream, received at NTP time ``ntp_now``.

    RFC 3550 6.4.1: RTT = A - LSR - DLSR in 1/65536 s. None when the peer heard no SR yet.
    """
    if block.lsr == 0:
        return None
    rtt = (ntp_middle32(ntp_now) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt > 0x7FFFFFFF:
        return 0.0
    return rtt / 65536.0


@dataclass(frozen=True)
class Codec:
    """E-model codec constants: equipment impairment Ie and packet-loss robustness Bpl."""
    ie: float
    bpl: float


G711 = Codec(ie=0.0, bpl=4.3)
"""G.711 without packet-loss concealment (G.113 Appendix I)."""
G711_PLC = Codec(ie=0.0, bpl=25.1)
"""G.711 with packet-loss concealment (G.113 Appendix I)."""


def r_factor(loss: float, jitter_ms: float, latency_ms: float, codec: Codec = G711,
             burst_ratio: float = 1.0) -> float:
    """A simplified G.107 R factor.

    ``loss`` is a fraction (0..1), ``latency_ms`` the one-way delay; jitter counts double in
    the effective delay (a jitter buffer of twice the jitter) plus 10 ms of codec delay.
    """
    delay = latency_ms + 2.0 * jitter_ms + 10.0
    idd = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    ppl = max(0.0, min(1.0, loss)) * 100.0
    ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_ratio + codec.bpl)
    return 93.2 - idd - ie_eff


def mos_from_r(r: float) -> float:
    """G.107 Annex B: the MOS (conversational quality, estimated) for an R factor."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


def mos_estimate(loss: float, jitter_ms: float, latency_ms: float, codec: Codec = G711) -> float:
    """MOS estimate (1.0-4.5) from loss fraction, jitter and one-way latency."""
    return round(mos_from_r(r_factor(loss, jitter_ms, latency_ms, codec)), 2)
