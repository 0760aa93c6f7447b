"""protocols/h323/q931.py: message layout, call reference flag, IEs (bearer capability, party
numbers, cause, progress, display, user-user with its two-octet length), and bad input."""
import pytest
from hypothesis import given, strategies as st

from protocols.h323 import q931
from protocols.h323.q931 import IE, MessageType


def test_setup_layout_matches_q931():
    m = q931.Message(MessageType.SETUP, 0x1234, False, (
        (IE.SENDING_COMPLETE, b""),
        (IE.BEARER_CAPABILITY, q931.bearer_capability()),
        (IE.CALLED_PARTY_NUMBER, q931.party_number("123", type_of_number=2)),
        (IE.USER_USER, q931.user_user(b"\x20\x00")),
    ))
    assert m.encode() == bytes.fromhex("08 02 1234 05 a1 04 03 8090a2 70 04 a1 313233 7e 0003 05 2000"
                                       .replace(" ", ""))
    assert q931.parse(m.encode()) == m


def test_call_reference_flag_marks_the_destination_side():
    m = q931.Message(MessageType.CONNECT, 5, True)
    assert m.encode()[2:4] == b"\x80\x05"
    back = q931.parse(m.encode())
    assert back.call_reference == 5 and back.from_destination


def test_ies():
    assert q931.parse_cause(q931.cause(16)) == {"location": 0, "value": 16, "diagnostics": b""}
    assert q931.parse_cause(bytes((0x02, 0x80, 0x80 | 17)))["value"] == 17  # with octet 3a
    calling = q931.parse_party_number(q931.party_number("100", presentation=1, screening=3))
    assert calling == {"type": 0, "plan": 1, "presentation": 1, "screening": 3, "digits": "100"}
    assert q931.parse_party_number(q931.party_number("4930"))["presentation"] is None
    assert q931.parse_progress(q931.progress(q931.Progress.INBAND_AVAILABLE))["description"] == 8
    assert q931.parse_bearer_capability(q931.bearer_capability(alaw=True))["layer1"] == 3
    assert q931.parse_display(q931.display("callgw")) == "callgw"
    with pytest.raises(ValueError):
        q931.party_number("12a")


@pytest.mark.parametrize("bad", [
    b"\x08", b"\x09\x02\x00\x01\x05", b"\x08\x03\x00\x00\x01\x05", b"\x08\x02\x00\x01\x85",
    b"\x08\x02\x00\x01\x05\x04\x09\x80", b"\x08\x02\x00\x01\x05\x7e\x00",
])
def test_malformed_messages_raise_q931_error(bad):
    with pytest.raises(q931.Q931Error):
        q931.parse(bad)


def test_user_user_must_carry_x208():
    with pytest.raises(q931.Q931Error):
        q931.parse_user_user(b"\x04abc")


@given(st.binary(max_size=120))
def test_arbitrary_bytes_only_raise_q931_error(data):
    try:
        m = q931.parse(data)
    except q931.Q931Error:
        return
    assert q931.parse(m.encode()) == m
