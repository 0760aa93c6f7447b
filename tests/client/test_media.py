"""The client's media: WAV in and out, 20 ms G.711 frames on a Clock, recording by key."""
from __future__ import annotations

import math
from array import array

import pytest
from twisted.internet import task

from callgw.client.media import MediaPlayer, MediaRecorder, read_wav, write_wav
from callgw.client.session import ClientSession
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.rtp import g711


def tone(seconds: float, hz: float = 440.0) -> bytes:
    n = int(8000 * seconds)
    return array("h", (int(8000 * math.sin(2 * math.pi * hz * i / 8000))
                       for i in range(n))).tobytes()


class Link:
    deliver = media = lost = None
    sealed = None

    def seal_datagrams(self, action):
        self.sealed = action

    def __init__(self):
        self.sent, self.media_out = [], []

    def send(self, message):
        self.sent.append(message)

    def send_media(self, data):
        self.media_out.append(data)


def test_wav_round_trip_and_refusals(tmp_path):
    pcm = tone(0.1)
    write_wav(str(tmp_path / "t.wav"), pcm)
    assert read_wav(str(tmp_path / "t.wav")) == pcm
    import wave
    with wave.open(str(tmp_path / "s.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0" * 8)
    with pytest.raises(ValueError):
        read_wav(str(tmp_path / "s.wav"))


def test_player_paces_frames_and_recorder_keeps_only_its_key():
    clock = task.Clock()
    link = Link()
    session = ClientSession(link)
    call = session.call("+4930123")
    link.deliver(m.Connected(call=call.id, key=b"K" * 16, codec="PCMA"))
    pcm = tone(0.5)
    player = MediaPlayer(session, call, pcm, clock, "PCMA")
    player.start()
    assert len(link.media_out) == 1
    clock.advance(0.02)
    assert len(link.media_out) == 2
    for _ in range(30):
        clock.advance(0.02)
    assert player.done and player.sent == 25
    frames = [fr.decode_media(d) for d in link.media_out]
    assert [f.sequence for f in frames] == list(range(25))
    assert [f.timestamp for f in frames][:3] == [0, 160, 320]
    assert {f.payload_type for f in frames} == {8} and {f.key for f in frames} == {b"K" * 16}
    recorder = MediaRecorder(call)
    for data in link.media_out:
        recorder.receive(data)
    recorder.receive(fr.encode_media(fr.MediaFrame(b"X" * 16, 0, 0, 0, b"\xff" * 160)))
    recorder.receive(b"\x01short")
    assert recorder.frames == 25 and recorder.dropped == 2
    assert recorder.pcm == g711.alaw_decode(g711.alaw_encode(pcm))


def test_the_recorder_counts_frames_that_never_arrived():
    from callgw.client.media import MediaRecorder
    from protocols.client import framing as fr

    class Call:
        key = b"k" * 16
    rec = MediaRecorder(Call())
    for seq in [65530, 65531, 65533, 65532, 0, 3, 4]:    # 65534, 65535, 1, 2 lost; wrap, reorder
        rec.receive(fr.encode_media(fr.MediaFrame(Call.key, 0, seq, seq * 160, b"\xff" * 160)))
    assert rec.frames == 7 and rec.missing == 4
    rec.receive(fr.encode_media(fr.MediaFrame(b"x" * 16, 0, 5, 0, b"\xff" * 160)))
    assert rec.dropped == 1 and rec.missing == 4
