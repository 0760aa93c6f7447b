"""Receiver statistics (RFC 3550 A.1, A.3, A.8), RTT from LSR/DLSR, and the E-model."""
import pytest

from protocols.rtp import stats
from protocols.rtp.packet import ReportBlock, ntp_middle32, ntp_timestamp


def feed(rs, seqs, jitter_of=lambda i: 0.0, start=0.0):
    for i, seq in enumerate(seqs):
        rs.receive(seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, start + i * 0.02 + jitter_of(i))


def test_in_order_stream_has_no_loss_and_no_jitter():
    rs = stats.ReceiverStats(probation=0)
    feed(rs, range(100, 200))
    assert rs.received == 100 and rs.expected == 100
    assert rs.cumulative_lost == 0 and rs.fraction_lost() == 0
    assert rs.jitter == pytest.approx(0, abs=1)


def test_loss_and_fraction_lost_per_interval():
    rs = stats.ReceiverStats(probation=0)
    feed(rs, [s for s in range(0, 100) if s % 10 != 5])  # 10 of 100 lost
    assert rs.expected == 100 and rs.cumulative_lost == 10
    assert rs.fraction_lost() == (10 << 8) // 100
    feed(rs, range(100, 150), start=2.0)
    assert rs.fraction_lost() == 0  # a new interval without loss
    assert rs.loss_fraction() == pytest.approx(10 / 150)


def test_sequence_wrap_extends_the_highest_sequence():
    rs = stats.ReceiverStats(probation=0)
    feed(rs, range(65500, 65600))
    assert rs.extended_max == 65599 and rs.cycles == 65536
    assert rs.cumulative_lost == 0


def test_duplicates_make_loss_negative_and_misordered_packets_count():
    rs = stats.ReceiverStats(probation=0)
    feed(rs, [1, 2, 3, 3, 5, 4, 6])
    assert rs.expected == 6 and rs.received == 7 and rs.cumulative_lost == -1


def test_probation_needs_two_sequential_packets():
    rs = stats.ReceiverStats()
    assert not rs.receive(10, 0, 0.0)
    assert rs.receive(11, 160, 0.02)
    assert rs.received == 1 and rs.base_seq == 11


def test_big_jump_resynchronises_on_second_packet():
    rs = stats.ReceiverStats(probation=0)
    feed(rs, range(0, 10))
    assert not rs.receive(40000, 0, 1.0)
    assert rs.receive(40001, 160, 1.02)
    assert rs.base_seq == 40001 and rs.received == 1


def test_jitter_converges_to_mean_deviation():
    rs = stats.ReceiverStats(probation=0)
    # arrival alternates +-2 ms around the 20 ms grid: |D| = 4 ms = 32 samples
    feed(rs, range(0, 2000), jitter_of=lambda i: 0.002 if i % 2 else -0.002)
    assert rs.jitter == pytest.approx(32, rel=0.05)
    assert rs.jitter_ms == pytest.approx(4.0, rel=0.05)


def test_new_ssrc_restarts_the_statistics():
    rs = stats.ReceiverStats(probation=0)
    for i in range(5):
        rs.receive(i, i * 160, i * 0.02, ssrc=1)
    rs.receive(900, 0, 1.0, ssrc=2)
    assert rs.ssrc == 2 and rs.received == 1


def test_report_block_and_round_trip_time():
    rs = stats.ReceiverStats(probation=0)
    feed(rs, range(0, 50))
    sr_ntp = ntp_timestamp(1000.0)
    rs.sender_report_received(sr_ntp, now=5.0)
    block = rs.report_block(now=5.25)
    assert block.lsr == ntp_middle32(sr_ntp)
    assert block.dlsr == int(0.25 * 65536)
    assert block.highest_sequence == 49
    # the SR sender gets the block back 0.40 s after it sent the SR: RTT = 0.40 - 0.25
    rtt = stats.round_trip_time(block, ntp_timestamp(1000.40))
    assert rtt == pytest.approx(0.15, abs=1e-3)
    assert stats.round_trip_time(ReportBlock(1), ntp_timestamp(1.0)) is None


def test_e_model_mos():
    assert stats.mos_estimate(0.0, 0.0, 0.0) == pytest.approx(4.41, abs=0.02)
    assert stats.mos_estimate(0.0, 0.0, 0.0) > stats.mos_estimate(0.01, 0, 0)
    assert stats.mos_estimate(0.05, 0, 0) > stats.mos_estimate(0.05, 0, 0, codec=stats.G711) - 1e-9
    assert stats.mos_estimate(0.05, 0, 0, codec=stats.G711_PLC) > stats.mos_estimate(0.05, 0, 0)
    assert stats.mos_estimate(0.0, 30.0, 150.0) < stats.mos_estimate(0.0, 0.0, 20.0)
    assert stats.mos_estimate(0.0, 0.0, 400.0) < 3.7
    assert stats.mos_estimate(1.0, 0.0, 0.0) == 1.0
    assert stats.mos_from_r(120) == 4.5 and stats.mos_from_r(-5) == 1.0
