"""protocols/h323/h225.py: H.225.0 messages inside Q.931, their IEs, and bad input from a peer."""
import pytest
from hypothesis import given, strategies as st

from protocols.h323 import h225, per, q931
from protocols.h323.q931 import IE, MessageType

CID = bytes(range(16))


def test_setup_carries_bearer_capability_numbers_and_the_v4_protocol_identifier():
    body = h225.setup_body(CID, CID, source_aliases=[("h323-ID", "callgw")], dest_number="123",
                           source_address=("127.0.0.1", 5000))
    data = h225.encode_message("setup", body, 9, False, ies=[
        (IE.BEARER_CAPABILITY, q931.bearer_capability()),
        (IE.CALLED_PARTY_NUMBER, q931.party_number("123"))])
    signal = h225.decode_message(data)
    assert signal.q931.type == MessageType.SETUP and signal.body_name == "setup"
    assert signal.body["protocolIdentifier"] == per.H225_PROTOCOL_ID == "0.0.8.2250.0.4"
    assert signal.body["destinationAddress"] == [("dialledDigits", "123")]
    assert h225.host_port(signal.body["sourceCallSignalAddress"]) == ("127.0.0.1", 5000)
    ies = [i for i, _ in signal.q931.ies]
    assert ies == [IE.BEARER_CAPABILITY, IE.CALLED_PARTY_NUMBER, IE.USER_USER]


@pytest.mark.parametrize("name", ["callProceeding", "alerting", "progress", "connect"])
def test_answers_round_trip(name):
    body = h225.response_body(name, CID, h245_address=("127.0.0.1", 7000), conference_id=CID,
                              fast_connect_refused=True)
    signal = h225.decode_message(h225.encode_message(name, body, 9, True, tunnelling=True))
    assert signal.body_name == name and signal.tunnelling
    assert signal.body["fastConnectRefused"] is None
    assert signal.q931.from_destination


def test_tunnelled_h245_rides_an_empty_facility():
    data = h225.encode_message("empty", None, 3, False, tunnelling=True,
                               h245_control=[b"\x02\x00", b"\x03"])
    signal = h225.decode_message(data)
    assert signal.q931.type == MessageType.FACILITY and signal.body_name == "empty"
    assert signal.h245_control == [b"\x02\x00", b"\x03"]


def test_release_complete_reason_and_cause_table():
    body = h225.release_complete_body(CID, "inConf")
    signal = h225.decode_message(h225.encode_message("releaseComplete", body, 3, True))
    assert signal.body["reason"] == ("inConf", None)
    assert h225.REASON_TO_CAUSE["inConf"] == 17


def test_unknown_transport_kinds_are_an_error_not_a_crash():
    with pytest.raises(h225.H225Error):
        h225.host_port(("netBios", b"x" * 16))
    assert h225.host_port(h225.transport_address("::1", 1720)) == ("::1", 1720)


def test_message_without_user_user_is_plain_q931():
    data = q931.Message(MessageType.STATUS_ENQUIRY, 4, True).encode()
    signal = h225.decode_message(data)
    assert signal.body_name is None and signal.h245_control == []


@pytest.mark.parametrize("uu", [b"\x05\xff\xff", b"\x04\x00", b"\x05"])
def test_bad_user_user_is_h225_error_with_a_cause(uu):
    data = q931.Message(MessageType.ALERTING, 4, True, ((IE.USER_USER, uu),)).encode()
    with pytest.raises(h225.H225Error) as err:
        h225.decode_message(data)
    assert err.value.cause == 100


def test_version_2_shape_leaves_out_v4_additions_only_when_asked():
    body = h225.response_body("alerting", CID)
    del body["multipleCalls"], body["maintainConnection"]
    with pytest.raises(per.CodecError):
        h225.encode_message("alerting", body, 1, True)
    data = h225.encode_message("alerting", body, 1, True, require_additions=False)
    assert "multipleCalls" not in h225.decode_message(data).body


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_h225_error(data):
    try:
        h225.decode_message(data)
    except h225.H225Error:
        pass


@given(st.binary(min_size=1, max_size=200))
def test_arbitrary_user_user_only_raises_h225_error(uu):
    data = q931.Message(MessageType.CONNECT, 4, True, ((IE.USER_USER, b"\x05" + uu),)).encode()
    try:
        h225.decode_message(data)
    except h225.H225Error:
        pass
