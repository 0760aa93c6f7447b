"""The MGCP codec (protocols/mgcp/message.py, codes.py): RFC 3435's examples read and written,
bad messages turned into errors carrying the code to answer with, piggy-backed datagrams, and
Hypothesis: any bytes parse without an exception, and parse(encode(m)) == m."""
from __future__ import annotations

from hypothesis import given, strategies as st

from protocols.mgcp import codes
from protocols.mgcp.message import (Command, MgcpParseError, Response, encode, encode_datagram,
                                    make_response, parse_datagram, parse_message, summary)
from tests.mgcp import builders as b


def one(data):
    items = parse_datagram(data)
    assert len(items) == 1, items
    return items[0]


# ---- RFC 3435's examples -------------------------------------------------------------------

def test_crcx_example_reads_as_written():
    cmd = one(b.crcx())
    assert isinstance(cmd, Command)
    assert (cmd.verb, cmd.tid, cmd.endpoint, cmd.version) == ("CRCX", 1204, b.LINE, "1.0")
    assert cmd.param("C") == b.CALL_ID and cmd.param("c") == b.CALL_ID
    assert cmd.param("L") == "p:10, a:PCMU" and cmd.param("M") == "recvonly"
    assert cmd.sdp is None and not cmd.has("K")


def test_response_with_session_description():
    rsp = one(b.crcx_ok())
    assert isinstance(rsp, Response)
    assert (rsp.code, rsp.tid, rsp.comment, rsp.param("I")) == (200, 1204, "OK", "FDE234C8")
    assert rsp.sdp == b.SDP_GATEWAY and rsp.success and rsp.final


def test_crlf_and_lf_read_alike():
    assert one(b.crcx_ok().replace(b"\n", b"\r\n")).params == one(b.crcx_ok()).params


def test_response_codes_with_package_and_without_comment():
    rsp = one(b"801 1204 /L Line is busy\n")
    assert (rsp.code, rsp.package, rsp.comment) == (801, "L", "Line is busy")
    assert one(b"000 1204\n") == Response(0, 1204)
    assert one(b"200 17\nK:\n").param("K") == ""
    assert codes.code_class(801) is codes.CodeClass.PACKAGE
    assert codes.code_class(100) is codes.CodeClass.PROVISIONAL
    assert codes.describe(515) == "Incorrect connection-id"


def test_verbs_are_case_insensitive_and_profiles_kept():
    cmd = one(b"crcx 5 aaln/1@gw mgcp 1.0 NCS 1.0\nC: 1\n")
    assert (cmd.verb, cmd.profile) == ("CRCX", "NCS 1.0")
    assert encode(cmd).startswith(b"CRCX 5 aaln/1@gw MGCP 1.0 NCS 1.0\r\n")


def test_piggybacked_messages_split_at_period_lines():
    data = b.crcx_ok(tid=10, k=True) + b".\n" + b.rqnt_ring(tid=11) + b".\n" + b"000 9\n"
    items = parse_datagram(data)
    assert [type(i) for i in items] == [Response, Command, Response]
    assert items[0].sdp == b.SDP_GATEWAY and items[1].param("S") == "L/rg"
    assert items[2].code == 0


# ---- bad messages ---------------------------------------------------------------------------

def test_bad_parameter_line_is_510_with_the_transaction_id():
    err = one(b"NTFY 77 aaln/1@gw MGCP 1.0\nthis is no parameter\n")
    assert isinstance(err, MgcpParseError)
    assert (err.code, err.tid, err.is_command) == (510, 77, True)


def test_other_major_versions_are_528():
    err = one(b"AUEP 12 aaln/1@gw MGCP 2.0\n")
    assert (err.code, err.tid) == (528, 12)


def test_unreadable_lines_and_encodings():
    assert one(b"hello\n") == MgcpParseError("bad command line 'hello'", tid=None)
    err = one(b"NTFY 9 aaln/1@gw MGCP 1.0\nX: \xff\xfe\n")
    assert (err.code, err.tid) == (510, 9) and "UTF-8" in err.reason
    err = one(b"NTFY 9 aaln/1@gw MGCP 1.0\nX: a\x01b\n")
    assert err.code == 510
    err = one(b"200 x OK\n")
    assert not err.is_command
    assert parse_datagram(b"") == [] and parse_datagram(b"\r\n \r\n") == []


def test_one_bad_message_does_not_spoil_its_neighbours():
    items = parse_datagram(b"garbage\n.\n" + b.ok(5))
    assert isinstance(items[0], MgcpParseError) and items[1] == Response(200, 5, "OK")


# ---- writing --------------------------------------------------------------------------------

def test_encode_writes_crlf_and_empty_k():
    cmd = Command("AUEP", 7, "rtpbridge/1@mgw", (("F", "A"), ("K", "")))
    assert encode(cmd) == b"AUEP 7 rtpbridge/1@mgw MGCP 1.0\r\nF: A\r\nK:\r\n"
    rsp = make_response(cmd, 200, params=(("I", "1"),), sdp=b.SDP_CALLGW)
    assert encode(rsp) == b"200 7 OK\r\nI: 1\r\n\r\n" + b.SDP_CALLGW
    assert make_response(cmd, 515).comment == "Incorrect connection-id"
    assert summary(cmd) == "AUEP 7 rtpbridge/1@mgw" and summary(rsp) == "200 7 OK"


def test_encode_refuses_what_would_not_read_back():
    for bad in (Command("AUEP", 1, "a b@gw"), Command("AUEP", 1, "a@gw", (("F", "x\ny"),)),
                Command("AUEP", 1, "a@gw", (("F:", "x"),)), Command("AU", 1, "a@gw"),
                Response(200, 1, "/looks like a package"), Response(1000, 1),
                Response(200, 1, sdp=b"v=0\r\n.\r\n")):
        try:
            encode(bad)
        except ValueError:
            continue
        raise AssertionError(f"encoded {bad!r}")


def test_piggybacked_datagram_round_trips():
    msgs = [Response(200, 3, "OK", (("I", "A1"),), b.SDP_CALLGW), Response(0, 2),
            Command("RQNT", 4, "aaln/1@gw", (("X", "1"), ("R", "L/hd(N)")))]
    assert parse_datagram(encode_datagram(msgs)) == msgs


# ---- Hypothesis -----------------------------------------------------------------------------

_visible = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                   max_size=12)
_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF,
                               blacklist_characters="\x7f"),
                 max_size=30).map(lambda s: s.strip(" \t"))
_name = _visible.filter(lambda s: ":" not in s)
_params = st.lists(st.tuples(_name, _value), max_size=6).map(tuple)
_sdp_line = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                    max_size=30).filter(lambda s: s.strip() not in (".", "") and
                                        not s.startswith("."))
_sdp = st.one_of(st.none(), st.lists(_sdp_line, min_size=1, max_size=5).map(
    lambda ls: ("\r\n".join(ls) + "\r\n").encode()))
_endpoint = st.builds(lambda a, d: f"{a}@{d}", _visible.filter(lambda s: "@" not in s),
                      _visible.filter(lambda s: "@" not in s))
_tid = st.integers(0, 999_999_999)

commands = st.builds(
    Command, st.from_regex(r"[A-Z][A-Z0-9]{3}", fullmatch=True), _tid, _endpoint, _params, _sdp,
    st.sampled_from(["1.0", "1.1"]),
    st.one_of(st.just(""), st.from_regex(r"[A-Z]{2,4} 1\.0", fullmatch=True)))
responses = st.builds(
    Response, st.integers(0, 999), _tid,
    _value.filter(lambda s: not s.startswith("/")), _params, _sdp,
    st.one_of(st.just(""), st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,5}", fullmatch=True)))


@given(st.one_of(commands, responses))
def test_round_trip(message):
    assert parse_message(encode(message)) == message
    assert parse_datagram(encode(message)) == [message]


@given(st.lists(st.one_of(commands, responses), min_size=1, max_size=4))
def test_piggyback_round_trip(messages):
    assert parse_datagram(encode_datagram(messages)) == messages


@given(st.binary(max_size=600))
def test_any_bytes_parse_without_exception(data):
    for item in parse_datagram(data):
        assert isinstance(item, (Command, Response, MgcpParseError))


@given(st.one_of(commands, responses), st.data())
def test_mutated_messages_parse_without_exception(message, data):
    raw = bytearray(encode_datagram([message, message]))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    for item in parse_datagram(bytes(raw)):
        assert isinstance(item, (Command, Response, MgcpParseError))
