"""G.711 tables against audioop, exhaustively (all 65,536 samples, all 256 codes).

audioop is the stdlib module up to Python 3.12 and the ``audioop-lts`` package (same module
name, same output) from 3.13, installed by the ``test`` extra: the reference is never skipped."""
import struct
import warnings

import pytest

from protocols.rtp import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = struct.pack("=65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_on_every_sample():
    assert g711.ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES, 2)


def test_alaw_encode_matches_audioop_on_every_sample():
    assert g711.alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES, 2)


def test_ulaw_decode_matches_audioop_on_every_code():
    assert g711.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_on_every_code():
    assert g711.alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_transcoding_tables_equal_decode_then_encode():
    assert g711.ulaw_to_alaw(ALL_CODES) == audioop.lin2alaw(audioop.ulaw2lin(ALL_CODES, 2), 2)
    assert g711.alaw_to_ulaw(ALL_CODES) == audioop.lin2ulaw(audioop.alaw2lin(ALL_CODES, 2), 2)


def test_generic_encode_decode_and_samples():
    assert g711.encode("PCMA", ALL_SAMPLES) == g711.alaw_encode(ALL_SAMPLES)
    assert g711.decode("PCMU", ALL_CODES) == g711.ulaw_decode(ALL_CODES)
    samples = g711.decode_samples("PCMA", ALL_CODES)
    assert samples.tobytes() == g711.alaw_decode(ALL_CODES)
    assert g711.decode_samples("PCMU", bytes([g711.SILENCE["PCMU"]]))[0] == 0
    assert g711.decode_samples("PCMA", bytes([g711.SILENCE["PCMA"]]))[0] == 8


def test_translation_lookup():
    assert g711.translation("PCMU", "PCMU") is None
    assert g711.translation("PCMU", "PCMA") is g711.ULAW_TO_ALAW
    assert g711.translation("PCMA", "PCMU") is g711.ALAW_TO_ULAW
    with pytest.raises(ValueError):
        g711.translation("PCMU", "G729")


def test_odd_length_pcm_is_refused():
    with pytest.raises(ValueError):
        g711.ulaw_encode(b"\x00")
