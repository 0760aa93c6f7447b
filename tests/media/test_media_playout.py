"""Relayed-mode playout: client frames to paced RTP with continuous sequence and timestamps."""
from protocols.rtp import g711
from protocols.rtp.packet import parse_rtp

from callgw.media.playout import Playout


def make(**kw):
    args = dict(in_codec="PCMU", out_codec="PCMU", payload_type=0, ssrc=77, ptime_ms=20,
                sequence=65534, timestamp_offset=1000, depth=2)
    args.update(kw)
    return Playout(**args)


def frame(i, size=160):
    return bytes([i % 200]) * size


def run(playout, events, until, step=0.001):
    """events: list of (time, payload, seq, ts). Returns [(time, RtpPacket)]."""
    out = []
    events = sorted(events, key=lambda e: e[0])
    t = 0.0
    while t <= until + 1e-9:
        while events and events[0][0] <= t + 1e-9:
            _, payload, seq, ts = events.pop(0)
            playout.push(payload, seq, ts, t)
        out += [(round(t, 3), parse_rtp(p)) for p in playout.pull(t)]
        t = round(t + step, 6)
    return out


def assert_continuous(packets, samples=160):
    for (_, a), (_, b) in zip(packets, packets[1:]):
        assert b.sequence == (a.sequence + 1) & 0xFFFF
        assert b.timestamp == (a.timestamp + samples) & 0xFFFFFFFF


def test_in_order_frames_leave_at_once_with_continuous_numbers():
    p = make()
    events = [(i * 0.02, frame(i), 500 + i, 8000 + 160 * i) for i in range(10)]
    out = run(p, events, 0.3)
    assert [t for t, _ in out] == [round(i * 0.02, 3) for i in range(10)]  # no added delay
    assert [pkt.payload for _, pkt in out] == [frame(i) for i in range(10)]
    assert out[0][1].marker and not any(pkt.marker for _, pkt in out[1:])
    assert out[0][1].sequence == 65534 and out[2][1].sequence == 0
    assert out[0][1].timestamp == 9000 and out[0][1].ssrc == 77
    assert_continuous(out)


def test_reordered_frames_are_put_back_in_order():
    p = make()
    order = [0, 2, 1, 3, 5, 4, 6, 7]
    events = [(n * 0.02, frame(i), i, 160 * i) for n, i in enumerate(order)]
    out = run(p, events, 0.3)
    assert [pkt.payload for _, pkt in out] == [frame(i) for i in range(8)]
    assert_continuous(out)


def test_a_lost_frame_is_filled_with_silence_after_the_buffer_depth():
    p = make()
    events = [(i * 0.02, frame(i), i, 160 * i) for i in range(8) if i != 3]
    out = run(p, events, 0.3)
    payloads = [pkt.payload for _, pkt in out]
    assert payloads[3] == bytes([g711.ULAW_SILENCE]) * 160
    assert payloads[:3] + payloads[4:] == [frame(i) for i in range(8) if i != 3]
    assert_continuous(out)
    assert p.samples_filled == 160


def test_a_pause_jumps_the_timestamp_and_sets_the_marker():
    p = make()
    events = [(i * 0.02, frame(i), i, 160 * i) for i in range(3)]
    events += [(1.0 + i * 0.02, frame(i), 3 + i, 160 * (50 + i)) for i in range(3)]
    out = run(p, events, 1.2)
    assert len(out) == 6
    second = out[3][1]
    assert second.marker and second.sequence == (out[2][1].sequence + 1) & 0xFFFF
    assert second.timestamp == (1000 + 160 * 50) & 0xFFFFFFFF
    assert out[3][0] == 1.0  # no wait for the "missing" pause


def test_duplicates_and_late_frames_are_dropped():
    p = make()
    events = [(i * 0.02, frame(i), i, 160 * i) for i in range(5)]
    events += [(0.05, frame(1), 1, 160), (0.09, frame(4), 4, 640)]
    out = run(p, events, 0.2)
    assert [pkt.payload for _, pkt in out] == [frame(i) for i in range(5)]
    assert p.frames_late + p.frames_duplicate == 2


def test_repacketizes_20ms_frames_into_30ms_packets_and_converts():
    p = make(out_codec="PCMA", payload_type=8, ptime_ms=30)
    events = [(i * 0.02, frame(i), i, 160 * i) for i in range(6)]  # 120 ms
    out = run(p, events, 0.3)
    assert [len(pkt.payload) for _, pkt in out] == [240] * 4
    assert all(pkt.payload_type == 8 for _, pkt in out)
    stream = b"".join(frame(i) for i in range(6))
    assert b"".join(pkt.payload for _, pkt in out) == g711.ulaw_to_alaw(stream)
    assert_continuous(out, samples=240)
    gaps = [b[0] - a[0] for a, b in zip(out, out[1:])]
    assert all(g >= 0.014 for g in gaps)  # paced: never more than half a ptime early


def test_a_burst_is_paced_out():
    p = make()
    events = [(0.0, frame(i), i, 160 * i) for i in range(4)]
    out = run(p, events, 0.2)
    times = [t for t, _ in out]
    assert len(times) == 4 and times[0] == 0.0
    assert all(b - a >= 0.009 for a, b in zip(times, times[1:]))
    assert p.next_wakeup() is None


def test_a_short_tail_is_padded_after_one_ptime():
    p = make()
    out = run(p, [(0.0, frame(1, 100), 1, 0)], 0.1)
    assert len(out) == 1 and out[0][0] == 0.02
    assert out[0][1].payload == frame(1, 100) + bytes([g711.ULAW_SILENCE]) * 60


def test_next_wakeup_reports_pending_work():
    p = make(ptime_ms=30)
    p.push(frame(0), 0, 0, 0.0)
    assert p.pull(0.0) == []
    assert abs(p.next_wakeup() - 0.03) < 1e-9


def test_push_in_order_is_push_then_pull_for_the_steady_state():
    """The fast path (``push_in_order``) gives the packets and counters ``push`` + ``pull``
    give, over in-order, early, out-of-order, odd-sized and paused frames (PCMU to PCMA, so
    the translation runs too); where it declines it changes nothing."""
    import random
    rng = random.Random(5)
    slow, fast = make(out_codec="PCMA", payload_type=8), make(out_codec="PCMA", payload_type=8)
    t, ts, fast_hits = 0.0, 0, 0
    for i in range(400):
        t += rng.choice([0.02, 0.02, 0.02, 0.019, 0.005, 0.035])
        size = 160 if rng.random() > 0.05 else 80
        if rng.random() < 0.03:
            ts += 160 * 3                             # a few frames never sent
        if rng.random() < 0.03 and i:
            order = [(ts + 160, 2), (ts, 1)]          # two frames swapped
        else:
            order = [(ts, 1)]
        for stamp, seq in order:
            payload = frame(i, size)
            slow.push(payload, seq, stamp, t)
            expected = slow.pull(t)
            packet = fast.push_in_order(payload, stamp, t)
            if packet is None:
                fast.push(payload, seq, stamp, t)
                got = fast.pull(t)
            else:
                fast_hits += 1
                got = [packet]
            assert got == expected
        ts += size if len(order) == 1 else size + 160
        later = t + 0.015
        assert fast.pull(later) == slow.pull(later)
        t = later
    for name in ("frames_in", "frames_late", "frames_duplicate", "samples_filled",
                 "packets_out", "bytes_out", "sequence", "next_due"):
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast_hits > 100                   # the fast path took a good share
