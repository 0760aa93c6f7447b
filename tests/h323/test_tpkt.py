"""protocols/h323/tpkt.py: RFC 1006 framing, whole and byte by byte, keep-alives, bad streams."""
import pytest
from hypothesis import given, strategies as st

from protocols.h323 import tpkt


def test_frame_has_version_3_and_total_length():
    assert tpkt.frame(b"abc") == b"\x03\x00\x00\x07abc"


def test_payloads_come_out_whole_however_the_stream_is_split():
    stream = tpkt.frame(b"one") + tpkt.frame(b"") + tpkt.frame(b"x" * 300)
    framer = tpkt.Framer()
    out = []
    for i in range(len(stream)):
        out += framer.feed(stream[i:i + 1])
    assert out == [b"one", b"", b"x" * 300]
    assert framer.pending == 0


@pytest.mark.parametrize("bad", [b"\x01\x00\x00\x05x", b"\x03\x00\x00\x02"])
def test_a_stream_that_is_not_tpkt_is_refused_and_stays_refused(bad):
    framer = tpkt.Framer()
    with pytest.raises(tpkt.TPKTError):
        framer.feed(bad)
    with pytest.raises(tpkt.TPKTError):
        framer.feed(tpkt.frame(b"ok"))


def test_oversized_payload_is_refused():
    with pytest.raises(ValueError):
        tpkt.frame(b"x" * 65532)


@given(st.lists(st.binary(max_size=200), max_size=5), st.integers(1, 50))
def test_round_trip(payloads, chunk):
    stream = b"".join(tpkt.frame(p) for p in payloads)
    framer = tpkt.Framer()
    out = []
    for i in range(0, len(stream), chunk):
        out += framer.feed(stream[i:i + chunk])
    assert out == payloads


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_tpkt_error(data):
    try:
        tpkt.Framer().feed(data)
    except tpkt.TPKTError:
        pass
