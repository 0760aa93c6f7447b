"""The v1 message model and JSON codec: round trips, strict validation, error codes."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.client import messages as m
from protocols.client.errors import ErrorCode, LocalProtocolError, ProtocolError

from .strategies import ALL_MESSAGES, any_message, message_of


def _round_trip_test(cls):
    # One generated test per message: pytest-twisted 1.14 breaks @given combined with
    # @pytest.mark.parametrize ("blockon cannot be called from the twisted greenlet").
    @given(message_of(cls))
    def test(msg):
        wire = m.encode(msg)
        assert len(wire) <= m.MAX_MESSAGE
        assert m.decode(wire, sender=cls.sender) == msg
        assert m.decode(wire.decode("utf-8")) == msg
        obj = json.loads(wire)
        assert obj["v"] == 1 and obj["cmd"] == cls.command
        assert b"\n" not in wire
    test.__name__ = f"test_round_trip_{cls.command}"
    return test


for _cls in ALL_MESSAGES:
    globals()[f"test_round_trip_{_cls.command}"] = _round_trip_test(_cls)


@given(any_message, st.integers(1, 2 ** 31), st.lists(st.integers(1, 2 ** 31), max_size=32))
def test_envelope_round_trips(msg, mid, acks):
    env = m.decode_envelope(m.encode(msg, mid=mid, acks=tuple(acks)))
    assert env == m.Envelope(msg, mid, tuple(acks))


def test_bare_ack():
    assert m.decode_envelope(m.encode_ack((3, 4))) == m.Envelope(None, None, (3, 4))
    with pytest.raises(ProtocolError) as e:
        m.decode(m.encode_ack((3,)))
    assert e.value.code == ErrorCode.UNKNOWN_COMMAND


@given(st.binary(max_size=5000))
def test_random_bytes_raise_only_protocol_errors(data):
    try:
        m.decode_envelope(data)
    except ProtocolError:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4), max_leaves=20)


@given(st.sampled_from(sorted(m.BY_COMMAND)), st.dictionaries(
    st.sampled_from(["user", "nonce", "proof", "token", "call", "number", "mode", "port",
                     "address", "code", "branding", "codecs", "digits", "cause", "x", "id"]),
    _json, max_size=6))
def test_random_json_objects_raise_only_protocol_errors(cmd, fields):
    data = json.dumps({"v": 1, "cmd": cmd, **fields}).encode()
    try:
        msg = m.decode(data)
    except ProtocolError as e:
        assert 100 <= e.code <= 599
    else:
        assert m.decode(m.encode(msg)) == msg


@given(any_message, st.integers(0, 400), st.integers(0, 255))
def test_mutated_messages_raise_only_protocol_errors(msg, pos, byte):
    wire = bytearray(m.encode(msg))
    wire[pos % len(wire)] = byte
    try:
        m.decode_envelope(bytes(wire))
    except ProtocolError:
        pass


def _code(data, sender=None) -> int:
    with pytest.raises(ProtocolError) as e:
        m.decode(data, sender=sender)
    return e.value.code


CALL = {"v": 1, "cmd": "call", "call": "c1", "number": "+4930123456", "mode": "relay"}


def _with(**kw):
    obj = dict(CALL)
    for k, v in kw.items():
        if v is None:
            obj.pop(k)
        else:
            obj[k] = v
    return json.dumps(obj)


@pytest.mark.parametrize("data,code", [
    ("not json", ErrorCode.MALFORMED),
    ("[1,2]", ErrorCode.MALFORMED),
    (b"\xff\xfe", ErrorCode.MALFORMED),
    ('{"v":1,"v":1,"cmd":"ping"}', ErrorCode.MALFORMED),
    ('{"v":1,"cmd":"dtmf","call":"c1","digits":"1","duration":NaN}', ErrorCode.MALFORMED),
    ("[" * 3000 + "]" * 3000, ErrorCode.TOO_LARGE),
    ("[" * 2000 + "]" * 2000, ErrorCode.MALFORMED),
    ('{"cmd":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
    ('{"v":2,"cmd":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
    ('{"v":true,"cmd":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
    ('{"v":1.0,"cmd":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
    ('{"v":1,"cmd":"dance"}', ErrorCode.UNKNOWN_COMMAND),
    ('{"v":1,"cmd":7}', ErrorCode.UNKNOWN_COMMAND),
    ('{"v":1}', ErrorCode.UNKNOWN_COMMAND),
    (_with(call=None), ErrorCode.MISSING_FIELD),
    (_with(port="5060"), ErrorCode.BAD_FIELD),
    (_with(port=True), ErrorCode.BAD_FIELD),
    (_with(port=70000), ErrorCode.BAD_FIELD),
    (_with(mode="carrier-pigeon"), ErrorCode.BAD_FIELD),
    (_with(extra=1), ErrorCode.UNKNOWN_FIELD),
    (_with(number="4930123456"), ErrorCode.BAD_NUMBER),
    (_with(number="+0301234"), ErrorCode.BAD_NUMBER),
    (_with(number="+1234567890123456"), ErrorCode.BAD_NUMBER),
    (_with(number=4930123), ErrorCode.BAD_NUMBER),
    (_with(contact="Mum"), ErrorCode.BAD_SHAPE),
    (_with(mode="direct"), ErrorCode.BAD_SHAPE),
    (_with(address="010.0.0.1", port=4000, mode="direct"), ErrorCode.BAD_FIELD),
    (_with(call="c 1"), ErrorCode.BAD_FIELD),
    (_with(codecs=[]), ErrorCode.BAD_FIELD),
    ('{"v":1,"cmd":"login","user":"bob","nonce":"short"}', ErrorCode.BAD_FIELD),
    ('{"v":1,"cmd":"login","token":"abc","user":"bob"}', ErrorCode.BAD_SHAPE),
    ('{"v":1,"cmd":"login"}', ErrorCode.BAD_SHAPE),
    ('{"v":1,"cmd":"ping","id":0}', ErrorCode.BAD_FIELD),
    ('{"v":1,"cmd":"ping","ack":[1,"2"]}', ErrorCode.BAD_FIELD),
    ('{"v":1,"cmd":"status","info":"held","text":"a\\u0000b"}', ErrorCode.BAD_FIELD),
    ('{"v":1,"cmd":"status","info":"held","text":"\\ud800"}', ErrorCode.BAD_FIELD),
])
def test_bad_input_gets_its_code(data, code):
    assert _code(data) == code


def test_oversized_message():
    big = '{"v":1,"cmd":"status","info":"x","text":"' + "a" * m.MAX_MESSAGE + '"}'
    assert _code(big) == ErrorCode.TOO_LARGE


def test_direction_is_checked():
    assert _code(m.encode(m.Pong()), sender=m.CLIENT) == ErrorCode.UNKNOWN_COMMAND
    assert _code(m.encode(m.Ping()), sender=m.SERVER) == ErrorCode.UNKNOWN_COMMAND
    assert m.decode(m.encode(m.Ping()), sender=m.CLIENT) == m.Ping()


def test_binary_fields_are_canonical_base64url():
    salt = m.b64e(b"12345678")
    assert m.decode('{"v":1,"cmd":"challenge","nonce":"%s","salt":"%s","n":16384,"r":8,"p":1}'
                    % ("a" * 32, salt)).salt == b"12345678"
    for bad in (salt + "=", salt[:-1] + "/", "!!!!!!!!!!!"):
        assert _code('{"v":1,"cmd":"challenge","nonce":"%s","salt":"%s","n":16384,"r":8,"p":1}'
                     % ("a" * 32, bad)) == ErrorCode.BAD_FIELD


def test_scrypt_limits_protect_the_client():
    heavy = m.Challenge(nonce="a" * 32, salt=b"s" * 16, n=2 ** 20, r=8, p=1)
    with pytest.raises(LocalProtocolError):
        m.encode(heavy)
    wire = json.dumps({"v": 1, "cmd": "challenge", "nonce": "a" * 32, "salt": m.b64e(b"s" * 16),
                       "n": 2 ** 20, "r": 8, "p": 1})
    assert _code(wire) == ErrorCode.BAD_SHAPE


@pytest.mark.parametrize("bad", [
    m.Call(call="c1", number="+12", mode="relay", port=5),
    m.Call(call="c1", number="12", mode="relay"),
    m.Welcome(user="b", token="t", expires=1, address="1.2.3.4", port=0, ping=30),
    m.Call(call="c1", number="+4930", mode="relay", codecs=["PCMU"]),
    m.Status(info="x", text="y" * 300),
])
def test_encoding_an_invalid_message_is_a_local_error(bad):
    with pytest.raises(LocalProtocolError):
        m.encode(bad)


def test_examples_read_like_the_spec():
    assert m.encode(m.Ping()) == b'{"v":1,"cmd":"ping"}'
    assert m.encode(m.Hangup(call="c1"), mid=7) == b'{"v":1,"cmd":"hangup","call":"c1","id":7}'
    assert m.decode(b'{"v":1,"cmd":"dtmf","call":"c1","digits":"12#"}') == m.Dtmf(
        call="c1", digits="12#")
