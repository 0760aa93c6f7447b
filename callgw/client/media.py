"""The client library's media in relay mode: play a WAV file as the microphone, record what
arrives to a WAV file.

Owned by the client library (issue 4: ``callgw-dial`` "can play a WAV file as its microphone
and record what it hears"). Media frames (``protocols.client.framing.MediaFrame``) carry the
per-call key from ``connected``; G.711 (``PCMU`` payload type 0, ``PCMA`` 8) at 8000 Hz in
20 ms frames of 160 samples; the codec is the one ``connected`` names (PCMU by default).
WAV files are mono, 16-bit, 8000 Hz (anything else is refused with ``ValueError``).

``MediaPlayer(session, call, pcm, clock)`` sends one frame every 20 ms on ``clock`` from
``start()`` until the audio ends or ``stop()``; ``MediaRecorder(call)`` collects the frames with
the call's key (``receive(bytes)``, wired to ``session.on_media``) and ``write(path)`` saves them.

Direct mode: ``DirectMedia(pcm, clock, codec)`` is a ``DatagramProtocol`` on the client's own
RTP port: ``start(address, port)`` sends ``pcm`` as 20 ms RTP packets to the gateway's address
from ``connected``; what arrives (RTP of PCMU or PCMA) is decoded into ``chunks``
(``received`` counts packets); ``stop()`` ends the sending.

Tests: tests/client/test_media.py, tests/client/test_dial.py, tests/media/test_media_calls*.py.
"""
from __future__ import annotations

import os
import sys
import wave
from array import array

from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from protocols.client import framing as fr
from protocols.client.errors import ProtocolError
from protocols.rtp import g711
from protocols.rtp.packet import RtpPacket, RtpParseError, parse_rtp

RATE, SAMPLES, PTIME = 8000, 160, 0.02
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
CODECS = {pt: name for name, pt in PAYLOAD_TYPES.items()}
log = Logger()


def _native(pcm: bytes) -> bytes:
    """Little-endian (WAV) 16-bit samples to native order, and back (the same swap)."""
    if sys.byteorder == "little":
        return pcm
    samples = array("h", pcm)
    samples.byteswap()
    return samples.tobytes()


def read_wav(path: str) -> bytes:
    """The 16-bit samples (native order) of a mono 8000 Hz WAV file."""
    with wave.open(path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            raise ValueError(f"{path}: need a mono, 16-bit, {RATE} Hz WAV file")
        return _native(w.readframes(w.getnframes()))


def write_wav(path: str, pcm: bytes) -> None:
    """Write native-order 16-bit samples as a mono 8000 Hz WAV file."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(_native(pcm))


class MediaPlayer:
    """Sends ``pcm`` on ``call`` as 20 ms G.711 frames; ``done`` is True once it all went."""

    def __init__(self, session, call, pcm: bytes, clock, codec: str | None = None):
        self.session, self.call, self.pcm = session, call, pcm
        self.codec = codec if codec in PAYLOAD_TYPES else "PCMU"
        self.clock = clock
        self.offset = self.sequence = self.timestamp = self.sent = 0
        self._loop: LoopingCall | None = None
        self.done = False
        self.waiting = False        # the session was lost: keep time, send nothing, until follow

    def follow(self, session, call) -> None:
        """Go on playing on ``call`` of ``session`` (re-attached after a lost session)."""
        self.session, self.call, self.waiting = session, call, False

    def start(self) -> None:
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(PTIME, now=True).addErrback(
            lambda f: log.failure("client: playing media on {call}", f, call=self.call.id))

    def _tick(self) -> None:
        chunk = self.pcm[self.offset:self.offset + 2 * SAMPLES]
        if (self.waiting or self.session.moving) and len(chunk) == 2 * SAMPLES:
            self.offset += 2 * SAMPLES          # real time goes on while we re-attach
            return
        if len(chunk) < 2 * SAMPLES or self.call.ended or self.session.is_closed:
            self.stop()
            return
        frame = fr.MediaFrame(self.call.key, PAYLOAD_TYPES[self.codec], self.sequence,
                              self.timestamp, g711.encode(self.codec, chunk))
        self.session.link.send_media(fr.encode_media(frame))
        self.offset += 2 * SAMPLES
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES) & 0xFFFFFFFF
        self.sent += 1

    def stop(self) -> None:
        self.done = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()


class MediaRecorder:
    """Collects the decoded audio of the frames carrying ``call``'s key, in sequence order
    as they arrive (no jitter buffer: frames are appended as received). ``missing`` counts the
    frames that never arrived (gaps in the sequence numbers callgw relays from the gateway's
    RTP, RFC 3550 A.1 style), so the client's own figures say what it did not hear."""

    def __init__(self, call):
        self.call = call
        self.chunks: list[bytes] = []
        self.frames = self.dropped = 0
        self._first: int | None = None     # extended sequence numbers seen
        self._highest = 0
        self._key: bytes | None = None
        self._base_frames = 0

    def receive(self, data: bytes) -> None:
        try:
            frame = fr.decode_media(data)
        except ProtocolError:
            self.dropped += 1
            return
        codec = CODECS.get(frame.payload_type)
        if frame.key != self.call.key or codec is None:
            self.dropped += 1
            return
        self.chunks.append(g711.decode(codec, frame.payload))
        self.frames += 1
        self._sequence(frame.sequence, frame.key)

    def _sequence(self, seq: int, key: bytes) -> None:
        if self._first is None or key != self._key:     # a new stream (the key changed)
            self._key = key
            self._first = self._highest = seq
            self._base_frames = self.frames - 1
            return
        delta = (seq - self._highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        if delta > 0:
            self._highest += delta

    @property
    def missing(self) -> int:
        """Frames of the current stream that never arrived (0 before any)."""
        if self._first is None:
            return 0
        expected = self._highest - self._first + 1
        return max(0, expected - (self.frames - self._base_frames))

    @property
    def pcm(self) -> bytes:
        return b"".join(self.chunks)

    def write(self, path: str) -> float:
        """Save what was heard; returns its length in seconds."""
        pcm = self.pcm
        write_wav(path, pcm)
        return len(pcm) / 2 / RATE


class DirectMedia(DatagramProtocol):
    """Direct mode: RTP between the client's own port and the gateway (see the docstring)."""

    def __init__(self, pcm: bytes, clock, codec: str = "PCMU"):
        self.pcm = pcm or b""
        self.clock = clock
        self.codec = codec if codec in PAYLOAD_TYPES else "PCMU"
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.sequence = int.from_bytes(os.urandom(2), "big")
        self.timestamp = int.from_bytes(os.urandom(4), "big")
        self.offset = self.sent = self.received = 0
        self.chunks: list[bytes] = []
        self.destination: tuple[str, int] | None = None
        self._loop: LoopingCall | None = None

    def start(self, address: str, port: int) -> None:
        self.destination = (address, port)
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(PTIME, now=True).addErrback(
            lambda f: log.failure("client: direct RTP to {to}", f, to=self.destination))

    def _tick(self) -> None:
        chunk = self.pcm[self.offset:self.offset + 2 * SAMPLES]
        if len(chunk) < 2 * SAMPLES or self.transport is None:
            self.stop()
            return
        packet = RtpPacket(PAYLOAD_TYPES[self.codec], self.sequence, self.timestamp, self.ssrc,
                           g711.encode(self.codec, chunk), marker=self.sent == 0)
        try:
            self.transport.write(packet.to_bytes(), self.destination)
        except OSError:
            pass                # unreachable now: counted as sent, like a lost packet
        self.offset += 2 * SAMPLES
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES) & 0xFFFFFFFF
        self.sent += 1

    def datagramReceived(self, data: bytes, addr) -> None:
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            return
        codec = CODECS.get(packet.payload_type)
        if codec is not None:
            self.received += 1
            self.chunks.append(g711.decode(codec, packet.payload))

    @property
    def pcm_heard(self) -> bytes:
        return b"".join(self.chunks)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
