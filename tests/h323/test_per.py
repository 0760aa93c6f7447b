"""protocols/h323/per.py: the compiled H.225.0/H.245 specification, the X.691 extension-addition
correction (vectors worked out by hand from X.691), validation before encoding, decoding that only
ever fails with CodecError, and pycrate as a second-opinion decoder of what we encode."""
import asn1tools
import pytest
from hypothesis import given, strategies as st

from protocols.h323 import h225, per

MINIMAL = """M DEFINITIONS AUTOMATIC TAGS ::= BEGIN
S ::= SEQUENCE {a BOOLEAN, ..., n NULL OPTIONAL, b BOOLEAN OPTIONAL}
C ::= CHOICE {x BOOLEAN, ..., e NULL, y BOOLEAN}
END"""


@pytest.fixture(scope="module")
def minimal():
    spec = asn1tools.compile_string(MINIMAL, "per")
    per._correct_additions(spec)
    return spec


# X.691: extension bit, root (a), normally-small length of the bitmap (2 additions: 000001 = 1),
# the bitmap, align; then each present addition as an open type: a length octet and its
# outermost encoding. A NULL's outermost encoding is empty and so is sent as one 0x00 octet
# (10.1.3); a BOOLEAN is one bit padded to an octet.
#   {a TRUE, n NULL, b TRUE}:  1 1 000001 11 | 00000001 | 00000000 | 00000001 | 10000000
VECTORS = [
    ({"a": True, "n": None, "b": True}, "c0e0010001 80"),
    ({"a": True, "n": None, "b": False}, "c0e0010001 00"),
    ({"a": True, "b": True}, "c0a00180"),
    ({"a": True, "n": None}, "c0c00100"),
    ({"a": False}, "00"),
]


@pytest.mark.parametrize("value,hexa", VECTORS)
def test_null_extension_additions_follow_x691(minimal, value, hexa):
    wire = bytes.fromhex(hexa.replace(" ", ""))
    assert minimal.encode("S", value) == wire
    assert minimal.decode("S", wire) == value


def test_unmodified_asn1tools_has_the_defect_we_correct():
    """If asn1tools fixes the NULL addition upstream, this test tells us the correction can go."""
    raw = asn1tools.compile_string(MINIMAL, "per")
    assert raw.encode("S", {"a": True, "n": None, "b": True}) != bytes.fromhex("c0e001000180")


def test_unknown_and_longer_open_types_are_skipped_to_their_end(minimal):
    # n carried in a 2-octet open type (a later version could put anything there), then b;
    # then a third, unknown addition: each is skipped to its end.
    wire = bytes.fromhex("c1 70 0200 00 0180 02abcd".replace(" ", ""))
    assert minimal.decode("S", wire) == {"a": True, "n": None, "b": True}


def test_null_choice_extension_alternative_is_one_zero_octet(minimal):
    # extension bit 1, normally small index 0 (0000000), align, length 1, contents 0x00
    assert minimal.encode("C", ("e", None)) == bytes.fromhex("800100")
    assert minimal.decode("C", bytes.fromhex("800100")) == ("e", None)
    # index 1, length 1, a BOOLEAN TRUE padded to an octet
    assert minimal.encode("C", ("y", True)) == bytes.fromhex("810180")


def test_specification_is_compiled_once():
    assert per.specification() is per.specification()
    assert set(per.specification().modules) == {per.H225, per.H245, "H235-SECURITY-MESSAGES"}


def rrq():
    return ("registrationRequest", {
        "requestSeqNum": 1, "protocolIdentifier": per.H225_PROTOCOL_ID,
        "discoveryComplete": False,
        "callSignalAddress": [h225.transport_address("127.0.0.1", 1720)],
        "rasAddress": [h225.transport_address("127.0.0.1", 1719)],
        "terminalType": h225.endpoint_type(), "endpointVendor": h225.VENDOR,
        "timeToLive": 60, "keepAlive": False, "willSupplyUUIEs": False,
        "maintainConnection": False, "supportsAltGK": None, "multipleCalls": False,
        "supportsAssignedGK": False,
    })


def test_rrq_with_supports_alt_gk_round_trips_and_pycrate_agrees():
    wire = per.encode(per.H225, "RasMessage", rrq())
    assert per.decode(per.H225, "RasMessage", wire) == rrq()
    from pycrate_asn1dir import H225
    second = H225.H323_MESSAGES.RasMessage
    second.from_aper(wire)
    name, value = second.get_val()
    assert name == "registrationRequest"
    # the additions after supportsAltGK land where they belong: no shift
    assert value["supportsAltGK"] == 0 and value["multipleCalls"] is False
    assert value["supportsAssignedGK"] is False and value["timeToLive"] == 60


def test_empty_body_round_trips_and_pycrate_agrees():
    pdu = h225.uu_pdu("empty", None, tunnelling=True, h245_control=[b"\x01\x02"])
    wire = per.encode(per.H225, "H323-UserInformation", pdu)
    assert per.decode(per.H225, "H323-UserInformation", wire) == pdu
    from pycrate_asn1dir import H225
    second = H225.H323_MESSAGES.H323_UserInformation
    second.from_aper(wire)
    body = second.get_val()["h323-uu-pdu"]
    assert body["h323-message-body"] == ("empty", 0) and body["h245Tunnelling"] is True


def test_missing_mandatory_addition_is_refused():
    name, value = rrq()
    del value["keepAlive"]
    with pytest.raises(per.CodecError, match="keepAlive"):
        per.encode(per.H225, "RasMessage", (name, value))


@pytest.mark.parametrize("change", [
    {"requestSeqNum": 0},                                   # RequestSeqNum is 1..65535
    {"rasAddress": [("ipAddress", {"ip": b"\x7f\0\0\1", "port": 70000})]},
    {"timeToLive": "sixty"},
    {"protocolIdentifier": 4},
])
def test_invalid_values_are_refused_before_encoding(change):
    name, value = rrq()
    value.update(change)
    with pytest.raises(per.CodecError):
        per.encode(per.H225, "RasMessage", (name, value))


@pytest.mark.parametrize("type_name", ["H323-UserInformation", "RasMessage"])
def test_truncated_pdus_fail_as_codec_errors(type_name):
    wire = per.encode(per.H225, "RasMessage", rrq())
    for cut in range(len(wire)):
        try:
            per.decode(per.H225, type_name, wire[:cut])
        except per.CodecError:
            pass


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_h225_decoder(data):
    for type_name in ("H323-UserInformation", "RasMessage"):
        try:
            per.decode(per.H225, type_name, data)
        except per.CodecError:
            pass


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_h245_decoder(data):
    for type_name in ("MultimediaSystemControlMessage", "OpenLogicalChannel"):
        try:
            per.decode(per.H245, type_name, data)
        except per.CodecError:
            pass
