"""protocols/h323/h245.py: H.245 builders for audio calls, reading capability sets and channels,
fastStart offers and answers, UserInputIndication."""
import pytest
from hypothesis import given, strategies as st

from protocols.h323 import h245

RTP, RTCP = ("127.0.0.1", 4000), ("127.0.0.1", 4001)
GW_RTP, GW_RTCP = ("127.0.0.1", 6000), ("127.0.0.1", 6001)


@pytest.mark.parametrize("message", [
    h245.terminal_capability_set(1), h245.tcs_ack(1), h245.tcs_reject(1),
    h245.msd_request(60, 12345), h245.msd_ack("master"), h245.msd_reject(), h245.msd_release(),
    h245.open_logical_channel(h245.olc_transmit(1, "PCMU", RTCP)), h245.olc_ack(1, RTP, RTCP),
    h245.olc_reject(2), h245.close_logical_channel(1), h245.clc_ack(1), h245.end_session(),
    h245.uii_alphanumeric("12#"), h245.uii_signal("#", 120),
])
def test_messages_round_trip(message):
    assert h245.decode(h245.encode(message)) == message


def test_capability_set_offers_g711_and_user_input():
    tcs = h245.terminal_capability_set(3, ("PCMA", "PCMU"))[1][1]
    assert tcs["protocolIdentifier"] == "0.0.8.245.0.7"
    assert h245.capability_codecs(tcs) == (["PCMA", "PCMU"], True, True)


def test_fast_start_offer_and_answer():
    offer, numbers = h245.fast_start_offer(["PCMU", "PCMA"], RTP, RTCP)
    assert numbers == {1: ("forward", "PCMU"), 2: ("forward", "PCMA"),
                       3: ("reverse", "PCMU"), 4: ("reverse", "PCMA")}
    proposals = [h245.decode_olc(x) for x in offer]
    answer, codec = h245.fast_start_answer(proposals, ["PCMA"], GW_RTP, GW_RTCP)
    assert codec == "PCMA"
    fwd, rev = (h245.channel_media(h245.decode_olc(a)) for a in answer)
    assert fwd == h245.ChannelMedia(2, "forward", "PCMA", GW_RTP, GW_RTCP)
    assert rev == h245.ChannelMedia(4, "reverse", "PCMA", RTP, GW_RTCP)
    assert h245.fast_start_answer(proposals, ["G729"], GW_RTP, GW_RTCP) == ([], None)


def test_channel_media_refuses_what_is_not_h2250_audio():
    olc = h245.olc_transmit(1, "PCMU", RTCP)
    olc["forwardLogicalChannelParameters"]["dataType"] = ("nullData", None)
    with pytest.raises(h245.H245Error):
        h245.channel_media(olc)


def test_ack_media_and_uii_digits():
    ack = h245.olc_ack(5, GW_RTP, GW_RTCP)[1][1]
    assert h245.ack_media(ack) == (GW_RTP, GW_RTCP)
    assert h245.uii_digits(("signal", {"signalType": "7"})) == "7"
    assert h245.uii_digits(("alphanumeric", "1 2x#")) == "12#"


def test_invalid_values_are_refused():
    with pytest.raises(Exception):
        h245.encode(h245.uii_signal("X"))  # signalType is one of 0-9 # * A-D !


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_h245_error(data):
    for fn in (h245.decode, h245.decode_olc):
        try:
            fn(data)
        except h245.H245Error:
            pass
