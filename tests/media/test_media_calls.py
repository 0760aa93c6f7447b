"""Audio through whole calls: ``callgw-dial`` (a subprocess running the code under test) ->
callgw (GatewayService with the call path and the built-in relay) -> sipp as the PSTN gateway,
echoing RTP (``-rtp_echo``) on 127.0.0.1.

The client plays a 1 kHz tone WAV and records what it hears; the recording is judged frame by
frame with a Goertzel filter (the tone must dominate every other test frequency by 20 dB), so
what is asserted is what a user hears, not a byte count.
"""
from __future__ import annotations

import math
import os
import sys
import wave
from array import array
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.callpath.callgw_env import (Sipp, free_port, prepare_db, settled_cdr,
                                       sleep, within)
from tests.helpers import make_config, started

pytestmark = pytest.mark.peers("sipp")

ROOT = str(Path(__file__).resolve().parent.parent.parent)
SCENARIOS = Path(__file__).parent / "scenarios"
PASSWORD = "correct horse"
TONE_SECONDS = 3.0
OTHER_FREQUENCIES = (400.0, 700.0, 1300.0, 1700.0, 2500.0)


# -- tools ------------------------------------------------------------------------------------
def write_tone(path, seconds=TONE_SECONDS, hz=1000.0, amplitude=8000) -> int:
    """A mono 16-bit 8 kHz WAV of a sine (Python's wave module); returns its 20 ms frames."""
    n = int(8000 * seconds)
    samples = array("h", (int(amplitude * math.sin(2 * math.pi * hz * i / 8000))
                          for i in range(n)))
    if sys.byteorder != "little":
        samples.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    return n // 160


def goertzel(samples, freq, rate=8000):
    k = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def tone_frames(samples, freq=1000.0):
    """``(frames holding the tone, all frames, median tone-to-rest ratio in dB)`` over 20 ms
    frames of ``samples``: a frame holds the tone when ``freq`` dominates every other test
    frequency by 20 dB and carries most of the frame's energy (not silence, not noise)."""
    ratios, hits = [], 0
    frames = len(samples) // 160
    for i in range(frames):
        chunk = samples[i * 160:(i + 1) * 160]
        main = goertzel(chunk, freq)
        other = max(goertzel(chunk, f) for f in OTHER_FREQUENCIES)
        energy = sum(x * x for x in chunk) * 80.0 or 1e-9     # N/2 * sum x^2: a pure tone's
        share = min(main / energy, 1.0 - 1e-6)                 # Goertzel power equals it
        ratios.append(10 * math.log10(max(share, 1e-9) / (1.0 - share)))
        if main > 100 * other and share > 0.5 and main > 1e9:
            hits += 1
    ratios.sort()
    return hits, frames, ratios[len(ratios) // 2] if ratios else 0.0


def read_samples(path):
    with wave.open(str(path), "rb") as w:
        samples = array("h", w.readframes(w.getnframes()))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def dial(*args, password=PASSWORD, timeout=60):
    """Run callgw-dial; fires with (exit code, output text)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT,
           "CALLGW_PASSWORD": password}
    d = getProcessOutputAndValue(sys.executable, ["-m", "callgw.client.dial", *args],
                                 env=env, path=ROOT, reactor=reactor)
    d.addCallback(lambda r: (r[2], (r[0] + r[1]).decode("utf-8", "replace")))
    return d.addTimeout(timeout, reactor)


def rtp_range(size=40):
    """A free even..odd RTP port range of ``size`` ports in 25000-26999."""
    low = free_port(even=True)
    return f"{low}-{low + size - 1}"


@defer.inlineCallbacks
def start(tmp_path, web=False, **overrides):
    """A started GatewayService with the call path and the relay (``[media]`` from the test)."""
    from callgw.service import GatewayService
    media = {"rtp_ports": rtp_range()}
    media.update(overrides.pop("media", {}))
    calls = {"setup_timeout": 2.0, "no_answer_timeout": 3.0, "health_interval": 0}
    calls.update(overrides.pop("calls", {}))
    config = make_config(tmp_path, calls=calls, media=media,
                         web={"https": "127.0.0.1:0" if web else "off"}, **overrides)
    gw = GatewayService(config, reactor)
    yield started(gw)
    return gw


def url(gw, scheme):
    host, port = gw.client.address("https" if scheme == "wss" else scheme)
    return f"{scheme}://{host}:{port}"


def sipp_gateway(tmp_path, scenario="uas_answer.xml", extra=(), echo=True):
    """sipp answering calls and (``echo``) echoing RTP: the gateway of these tests."""
    path = SCENARIOS / scenario
    if not path.exists():
        path = Path(ROOT) / "tests" / "sip" / "scenarios" / scenario
    return Sipp(str(path), tmp_path, extra=(["-rtp_echo"] if echo else []) + list(extra)).start()


# -- tests ------------------------------------------------------------------------------------
@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "wss", "tcp", "https"])
def test_relayed_tone_comes_back_through_an_echoing_gateway(tmp_path, scheme):
    """Relayed mode over UDP and WebSocket (and TCP, HTTP+SSE): what the client hears is the 1 kHz tone it played,
    echoed by sipp, with under 1% of its 20 ms frames missing; the CDR has the relay's
    per-direction statistics."""
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, web=scheme in ("wss", "https"))
    try:
        extra = ["--cacert", gw.client.cert.cert_path] if scheme in ("wss", "https") else []
        code, out = yield dial("--server", url(gw, scheme), "--user", "alice", *extra,
                               "--duration", str(TONE_SECONDS + 1.0), "--play", str(source),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        hits, frames, strength = tone_frames(read_samples(heard))
        missing = (played - hits) / played
        print(f"{scheme}: {hits}/{played} tone frames heard ({frames} recorded), "
              f"missing {100 * missing:.2f}%, median tone-to-rest {strength:.1f} dB")
        assert missing < 0.01, out
        assert strength > 20
        cdr = (yield settled_cdr(gw, "alice"))[0]
        media = cdr["stats"]["media"]
        assert media["mode"] == "relayed"
        up, down = media["client_to_gateway"], media["gateway_to_client"]
        assert up["packets"] >= 0.99 * played and down["packets"] >= 0.99 * played
        assert down["lost"] == 0 and down["mos"] > 4.0
        assert gw.callpath.frontend.media_frames_dropped == 0
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_frames_with_a_wrong_key_or_another_sessions_key_are_dropped_and_counted(tmp_path):
    """Only frames with the call's key from the call's own session reach the gateway: a
    random key, and the key of another session's call, are dropped and counted."""
    from callgw.client.links import connect
    from protocols.client import framing as fr
    from test_media_calls_wire import Capture, port_filter, rtp_packets
    sipp = sipp_gateway(tmp_path, extra=["-m", "2"])
    prepare_db(tmp_path, users=("alice", "bob"), gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    capture = Capture(tmp_path / "keys.pcapng", port_filter(gw, sipp))
    alice = bob = None
    try:
        yield capture.start()
        alice = yield connect(url(gw, "udp"), reactor)
        yield alice.login("alice", PASSWORD)
        bob = yield connect(url(gw, "udp"), reactor)
        yield bob.login("bob", PASSWORD)
        a_call, b_call = alice.call("+4930123456"), bob.call("+4930123457")
        yield within(a_call.connected)
        yield within(b_call.connected)
        assert a_call.key != b_call.key
        frontend = gw.callpath.frontend
        for seq in range(10):                       # wrong keys: nothing may reach a gateway
            bob.link.send_media(fr.encode_media(fr.MediaFrame(a_call.key, 0, seq, seq * 160,
                                                              b"\x7f" * 160)))
            bob.link.send_media(fr.encode_media(fr.MediaFrame(os.urandom(16), 0, seq,
                                                              seq * 160, b"\x7f" * 160)))
        for seq in range(5):                        # the right key from the right session
            alice.link.send_media(fr.encode_media(fr.MediaFrame(a_call.key, 0, seq, seq * 160,
                                                                b"\xff" * 160)))
        waited = 0.0
        while frontend.media_frames_dropped < 20 or gw.callpath.media.frames_in < 5:
            assert waited < 10, (frontend.media_frames_dropped, gw.callpath.media.frames_in)
            yield sleep(0.05)
            waited += 0.05
        yield sleep(0.3)                            # let the relay pace its packets out
        assert frontend.media_frames_dropped == 20 and gw.callpath.media.frames_in == 5
        a_call.hangup()
        b_call.hangup()
        yield within(a_call.disconnected)
        yield within(b_call.disconnected)
        yield capture.stop()
        toward = [r for r in (yield rtp_packets(capture.path)) if r[1] == sipp.media_port]
        assert 1 <= len(toward) <= 5                # alice's frames only (bob's call: none)
        assert len({r[0] for r in toward}) == 1
    finally:
        yield capture.stop()
        for session in (alice, bob):
            if session is not None:
                session.close()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_an_alaw_client_is_served_in_alaw_through_a_mulaw_gateway(tmp_path):
    """A client preferring PCMA gets ``connected`` naming PCMA, its A-law frames are converted
    for sipp's PCMU-only answer, and the echoed tone comes back to it in A-law."""
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    sipp = sipp_gateway(tmp_path)                 # sipp's built-in answer: RTP/AVP 0 only
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice", "--codec", "PCMA",
                               "--duration", str(TONE_SECONDS + 1.0), "--play", str(source),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out
        hits, frames, strength = tone_frames(read_samples(heard))
        assert (played - hits) / played < 0.01, out
        assert strength > 20
        assert gw.callpath.frontend.media_frames_dropped == 0   # every frame was PCMA (PT 8)
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["stats"]["media"]["client_codec"] == "PCMA"
    finally:
        yield gw.stopService()
        sipp.stop()
