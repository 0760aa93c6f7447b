"""Framings: media frames, TCP length prefixes (any split), WebSocket, HTTP bodies and SSE."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, LocalProtocolError, ProtocolError

from .strategies import any_message, media_frame

payload = st.one_of(any_message.map(m.encode), media_frame.map(fr.encode_media))


@given(media_frame)
def test_media_frame_round_trips(frame):
    data = fr.encode_media(frame)
    assert data[0] == fr.MEDIA_V1 and len(data) == 24 + len(frame.payload)
    assert fr.decode_media(data) == frame
    assert fr.kind_of(data) == fr.MEDIA


@given(st.binary(max_size=2000))
def test_random_media_bytes_raise_only_protocol_errors(data):
    try:
        fr.decode_media(data)
    except ProtocolError:
        pass


def test_media_frame_limits():
    key = bytes(16)
    with pytest.raises(LocalProtocolError):
        fr.encode_media(fr.MediaFrame(key, 128, 0, 0, b""))
    with pytest.raises(LocalProtocolError):
        fr.encode_media(fr.MediaFrame(b"short", 0, 0, 0, b""))
    big = fr.encode_media(fr.MediaFrame(key, 0, 0, 0, bytes(fr.MAX_MEDIA_PAYLOAD))) + b"x"
    with pytest.raises(ProtocolError) as e:
        fr.decode_media(big)
    assert e.value.code == ErrorCode.FRAME_TOO_LARGE
    with pytest.raises(ProtocolError):
        fr.kind_of(b"\x02abc")


@given(st.lists(payload, min_size=1, max_size=5), st.data())
def test_tcp_frames_round_trip_in_any_split(payloads, data):
    stream = b"".join(fr.tcp_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    deframer, out, last = fr.TcpDeframer(), [], 0
    for cut in cuts + [len(stream)]:
        out += deframer.receive_data(stream[last:cut])
        last = cut
    assert out == payloads and deframer.pending == 0


def test_tcp_one_byte_at_a_time():
    wire = fr.tcp_frame(m.encode(m.Ping()))
    assert wire[:2] == b"\x00\x14"
    deframer = fr.TcpDeframer()
    out = [p for b in wire for p in deframer.receive_data(bytes([b]))]
    assert out == [b'{"v":1,"cmd":"ping"}']


@pytest.mark.parametrize("prefix,code", [(b"\x00\x00", ErrorCode.BAD_FRAME),
                                         (b"\xff\xff", ErrorCode.FRAME_TOO_LARGE)])
def test_tcp_unrecoverable_framing_is_fatal_and_stays_so(prefix, code):
    deframer = fr.TcpDeframer()
    for _ in range(2):
        with pytest.raises(ProtocolError) as e:
            deframer.receive_data(prefix + b"{}")
        assert e.value.code == code and e.value.fatal


@given(st.binary(max_size=300))
def test_tcp_random_stream_raises_only_protocol_errors(data):
    try:
        fr.TcpDeframer().receive_data(data)
    except ProtocolError:
        pass


@given(payload)
def test_websocket_kinds(p):
    binary = fr.websocket_frame_kind(p)
    assert fr.websocket_payload(p, binary) == p
    with pytest.raises(ProtocolError):
        fr.websocket_payload(p, not binary)


@given(payload)
def test_http_body_checked_against_content_type(p):
    ctype = fr.HTTP_CONTENT_TYPES[fr.kind_of(p)]
    assert fr.http_payload(p, ctype + "; charset=utf-8") == p
    other = [c for c in fr.HTTP_CONTENT_TYPES.values() if c != ctype][0]
    with pytest.raises(ProtocolError):
        fr.http_payload(p, other)


@given(st.lists(st.tuples(payload, st.none() | st.integers(0, 10 ** 6)), min_size=1,
                max_size=4), st.integers(1, 50), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_sse_round_trips(items, chunk, eol):
    stream = b": comment\n\n" + b"".join(fr.sse_event(p, i) for p, i in items)
    stream = stream.replace(b"\n", eol)
    parser, events = fr.SseParser(), []
    for i in range(0, len(stream), chunk):
        events += parser.receive_data(stream[i:i + chunk])
    if eol == b"\r":
        events += parser.receive_data(b"\n")
    assert [fr.sse_payload(e) for e in events] == [p for p, _ in items]
    for (p, i), e in zip(items, events):
        assert e.event == ("media" if fr.kind_of(p) == fr.MEDIA else "message")
        if i is not None:
            assert e.id == str(i)


def test_sse_examples():
    assert fr.sse_event(b'{"v":1,"cmd":"pong"}', 4) == b'id: 4\ndata: {"v":1,"cmd":"pong"}\n\n'
    assert fr.sse_session_event("abc") == b"event: session\ndata: abc\n\n"
    ev = fr.SseParser().receive_data(fr.sse_session_event("abc"))
    assert ev == [fr.SseEvent("session", "abc", None)]


def test_sse_parser_memory_is_bounded():
    parser = fr.SseParser(max_event=100)
    with pytest.raises(ProtocolError) as e:
        for _ in range(20):
            parser.receive_data(b"data: " + b"x" * 10 + b"\n")
    assert e.value.fatal
    with pytest.raises(ProtocolError):
        fr.SseParser(max_event=100).receive_data(b"y" * 101)


@given(st.binary(max_size=400))
def test_random_sse_streams_raise_only_protocol_errors(data):
    try:
        for event in fr.SseParser().receive_data(data):
            fr.sse_payload(event)
    except ProtocolError:
        pass


def test_tcp_frames_before_a_fatal_length_are_still_delivered():
    deframer = fr.TcpDeframer()
    good = fr.tcp_frame(b'{"v":1,"cmd":"ping"}')
    assert deframer.receive_data(good + b"\x00\x00{}") == [b'{"v":1,"cmd":"ping"}']
    assert deframer.broken is not None and deframer.broken.code == ErrorCode.BAD_FRAME
    with pytest.raises(ProtocolError):
        deframer.receive_data(good)
