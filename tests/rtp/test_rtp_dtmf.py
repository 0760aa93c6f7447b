"""RFC 4733 telephone events: payload codec, sender packet sequences, receiver de-duplication."""
import pytest
from hypothesis import given, settings, strategies as st

from protocols.rtp import dtmf
from protocols.rtp.packet import RtpPacket, parse_rtp


@settings(deadline=None)
@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(event, end, volume, duration):
    ev = dtmf.TelephoneEvent(event, end, volume, duration)
    assert dtmf.parse_event(ev.to_bytes()) == ev


def test_payload_layout_matches_rfc_4733_figure():
    # event 5, E=1, volume 10, duration 800 samples
    assert dtmf.TelephoneEvent(5, True, 10, 800).to_bytes() == bytes.fromhex("058a0320")


def test_digit_codes():
    assert [dtmf.event_code(d) for d in ("0", "9", "*", "#", "A", "d")] == [0, 9, 10, 11, 12, 15]
    assert dtmf.event_digit(11) == "#" and dtmf.event_digit(16) is None
    with pytest.raises(dtmf.DtmfError):
        dtmf.event_code("x")
    with pytest.raises(dtmf.DtmfError):
        dtmf.parse_event(b"\x01\x02")


def test_sender_sequence_for_100ms_at_20ms_ptime():
    sender = dtmf.DtmfSender(payload_type=101, ssrc=9, ptime=20)
    out = sender.packets("5", 100, sequence=65534, timestamp=1000)
    offsets = [o for o, _ in out]
    packets = [parse_rtp(pkt.to_bytes()) for _, pkt in out]
    events = [dtmf.parse_event(pkt.payload) for pkt in packets]
    # 5 duration updates (160..800), the last one an end packet, sent three times
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5}
    assert [pkt.marker for pkt in packets] == [True] + [False] * 6
    assert {pkt.timestamp for pkt in packets} == {1000}
    assert [pkt.sequence for pkt in packets] == [65534, 65535, 0, 1, 2, 3, 4]
    assert offsets == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12])


def test_sender_short_and_long_durations():
    sender = dtmf.DtmfSender(101, 1, ptime=30)
    short = sender.packets("#", 10, 0, 0)
    assert [dtmf.parse_event(p.payload).duration for _, p in short] == [240] * 3
    long = sender.packets("1", 20000, 0, 0)
    assert dtmf.parse_event(long[-1][1].payload).duration == 0xFFFF


def _feed(receiver, packets):
    out = []
    for _, pkt in packets:
        out += receiver.receive(pkt)
    return out


def test_receiver_reports_once_despite_retransmitted_ends():
    sender = dtmf.DtmfSender(101, 1)
    receiver = dtmf.DtmfReceiver()
    out = _feed(receiver, sender.packets("7", 100, 0, 160))
    out += _feed(receiver, sender.packets("#", 60, 7, 2000))
    assert out == [dtmf.DtmfEvent("7", 100), dtmf.DtmfEvent("#", 60)]


def test_receiver_reports_event_whose_ends_were_lost():
    sender = dtmf.DtmfSender(101, 1)
    receiver = dtmf.DtmfReceiver()
    first = [p for p in sender.packets("3", 100, 0, 160) if not dtmf.parse_event(p[1].payload).end]
    out = _feed(receiver, first)
    assert out == []
    out = _feed(receiver, sender.packets("4", 40, 10, 5000))
    assert out == [dtmf.DtmfEvent("3", 80, ended=False), dtmf.DtmfEvent("4", 40)]


def test_receiver_ignores_non_dtmf_events():
    receiver = dtmf.DtmfReceiver()
    pkt = RtpPacket(101, 0, 0, 1, dtmf.TelephoneEvent(70, True, 10, 800).to_bytes())
    assert receiver.receive(pkt) == []
