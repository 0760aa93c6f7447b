"""Whole H.323 calls: ``callgw-dial`` (a subprocess running the code under test) -> callgw
(GatewayService: the call path, the relay, the H.323 leg provider) -> the scripted H.323 gateway
FIXTURE (tests/h323/gateway.py, echoing RTP like ``sipp -rtp_echo``).

In both modes (fastStart accepted with tunnelling; fastStart refused with a separate H.245
channel at the gateway's h245Address) the client plays a 1 kHz tone and must hear it back
through the gateway (judged per 20 ms frame with a Goertzel filter: audio crossed both ways),
its DTMF must reach the gateway as H.245 UserInputIndications, and hang-up works from the client
and from the gateway. dumpcap captures the signalling: tshark must decode every TPKT as
Q.931/H.225.0 or H.245 with no "Malformed" and no expert warning. Direct mode: the client's own
RTP address goes in the fastStart proposals and the gateway echoes to it; the relay stays unused.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from callgw.store.db import Database
from tests.callpath.callgw_env import prepare_db, settled_cdr, within
from tests.h323 import wire
from tests.h323.gateway import Script, ScriptedGateway
from tests.helpers import free_port
from tests.media.test_media_calls import (TONE_SECONDS, dial, read_samples, start, tone_frames,
                                          url, write_tone)

MODES = {
    "fast-start": dict(fast_start=True, tunnelling=True),
    "separate-h245": dict(fast_start=False, tunnelling=False),
}


def add_gateway(tmp_path, port, **options):
    prepare_db(tmp_path)
    db = Database(str(tmp_path / "callgw.sqlite3"))
    opts = {"fast_start": "on", "tunnelling": "on"}
    opts.update(options)
    db.add_gateway("h323gw", "h323", "127.0.0.1", port, ["+49"], 1.0, options=opts)
    db.close()


def _clean(cap):
    assert cap.problems() == []
    layers = cap.layers()
    assert layers["TPKT"] == layers["Q.931"] + layers["H.245"], layers
    assert layers["Q.931"] == layers["H.225.0 CS"] >= 4, layers
    return layers


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest_twisted.inlineCallbacks
def test_relayed_call_audio_both_ways_dtmf_client_hangs_up(tmp_path, mode):
    wire.require_tshark()
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    h245_port = free_port()
    fixture = ScriptedGateway(reactor, Script(h245_port=h245_port, **MODES[mode]), echo=True)
    port = fixture.start()
    add_gateway(tmp_path, port, fast_start="on" if MODES[mode]["fast_start"] else "off",
                tunnelling="on" if MODES[mode]["tunnelling"] else "off")
    gw = yield start(tmp_path)
    try:
        with wire.capture([port, h245_port]) as cap:
            code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                                   "--duration", str(TONE_SECONDS + 1.0), "--play", str(source),
                                   "--record", str(heard), "--dtmf", "12#", "+4930123456")
            assert code == 0, out
            gw_call = fixture.calls[0]
            cause = yield within(gw_call.record.released, 10)
        layers = _clean(cap)
        hits, frames, strength = tone_frames(read_samples(heard))
        missing = (played - hits) / played
        print(f"{mode}: {hits}/{played} tone frames heard back through the H.323 gateway, "
              f"median tone-to-rest {strength:.1f} dB; signalling {layers}")
        assert missing < 0.01, out
        assert strength > 20
        assert gw_call.record.digits == "12#"
        assert cause == 16
        assert fixture.echo.received >= 0.99 * played
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "h323gw" and cdr["cause"] == 16
        assert cdr["stats"]["media"]["mode"] == "relayed"
        h323 = cdr["stats"]["legs"]["h323"]
        assert h323["fast_start"] is (mode == "fast-start") and h323["codec"] == "PCMU"
        assert h323["h245"] == ("tunnelled" if mode == "fast-start" else "separate")
        if mode == "separate-h245":
            assert layers["H.245"] >= 8 and "openLogicalChannel" in gw_call.record.h245
        else:
            assert layers["H.245"] == 0 and "openLogicalChannel" not in gw_call.record.h245
    finally:
        yield gw.stopService()
        yield fixture.stop()


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest_twisted.inlineCallbacks
def test_gateway_hangs_up(tmp_path, mode):
    wire.require_tshark()
    h245_port = free_port()
    fixture = ScriptedGateway(reactor, Script(h245_port=h245_port, hangup_after=1.5,
                                              **MODES[mode]), echo=True)
    port = fixture.start()
    add_gateway(tmp_path, port, fast_start="on" if MODES[mode]["fast_start"] else "off",
                tunnelling="on" if MODES[mode]["tunnelling"] else "off")
    gw = yield start(tmp_path)
    try:
        with wire.capture([port, h245_port]) as cap:
            started = reactor.seconds()
            code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                                   "--duration", "20", "+4930123456")
            took = reactor.seconds() - started
        _clean(cap)
        assert code == 0, out
        assert "disconnected: normal" in out, out
        assert took < 15
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 16 and cdr["answered"]
    finally:
        yield gw.stopService()
        yield fixture.stop()


@pytest_twisted.inlineCallbacks
def test_direct_media_goes_between_client_and_gateway(tmp_path):
    wire.require_tshark()
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    fixture = ScriptedGateway(reactor, Script(), echo=True)
    port = fixture.start()
    add_gateway(tmp_path, port)
    gw = yield start(tmp_path)
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice", "--media",
                               "direct", "--no-media-after", "0",
                               "--duration", str(TONE_SECONDS + 1.0), "--play", str(source),
                               "--record", str(heard), "--dtmf", "5", "+4930123456")
        assert code == 0, out
        gw_call = fixture.calls[0]
        yield within(gw_call.record.released, 10)
        hits, _, _ = tone_frames(read_samples(heard))
        assert (played - hits) / played < 0.01, out
        low, high = (int(x) for x in gw.config["media"]["rtp_ports"].split("-"))
        assert not low <= gw_call.record.send_to[1] <= high     # the client's own address
        assert gw_call.record.digits == "5"
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["media_mode"] == "direct"
    finally:
        yield gw.stopService()
        yield fixture.stop()


@pytest_twisted.inlineCallbacks
def test_call_admitted_by_a_gatekeeper_goes_to_the_acf_address(tmp_path):
    """The gateway row names a gatekeeper and an address nothing listens on: callgw registers
    (RRQ), asks admission (ARQ), places the call where the ACF says, and disengages (DRQ) after
    the hang-up; the tone comes back, and tshark decodes the RAS and the call signalling."""
    from tests.h323.gatekeeper import ScriptedGatekeeper
    wire.require_tshark()
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    fixture = ScriptedGateway(reactor, Script(), echo=True)
    port = fixture.start()
    gk = ScriptedGatekeeper(route_to=("127.0.0.1", port))
    gk_port = gk.start(reactor)
    prepare_db(tmp_path)
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.add_gateway("h323gk", "h323", "127.0.0.1", free_port(), ["+49"], 1.0,
                   options={"gatekeeper": f"127.0.0.1:{gk_port}", "fast_start": "on",
                            "tunnelling": "on"})
    db.close()
    gw = yield start(tmp_path)
    try:
        with wire.capture([port, gk_port], ras_ports=[gk_port]) as cap:
            code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                                   "--duration", str(TONE_SECONDS + 1.0), "--play", str(source),
                                   "--record", str(heard), "+4930123456")
            assert code == 0, out
            yield within(gk.wait_for("disengageRequest"), 10)
        assert cap.problems() == []
        layers = cap.layers()
        hits, _, _ = tone_frames(read_samples(heard))
        assert (played - hits) / played < 0.01, out
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "h323gk" and cdr["stats"]["legs"]["h323"]["gatekeeper"]
    finally:
        yield gw.stopService()
        yield fixture.stop()
        yield gk.stop()
    kinds = [k for k, _ in gk.received]
    assert kinds[:2] == ["registrationRequest", "admissionRequest"]
    assert "disengageRequest" in kinds
    assert layers["H.225.0 RAS"] >= 6 and layers["Q.931"] >= 4


@pytest_twisted.inlineCallbacks
def test_health_poller_marks_h323_gateways_up_and_down(tmp_path):
    """callgw's health poller probes an H.323 gateway without a gatekeeper by TCP + Status
    Enquiry: up while the fixture answers, down once nothing listens."""
    from tests.callpath.callgw_env import sleep
    fixture = ScriptedGateway(reactor, Script())
    port = fixture.start()
    prepare_db(tmp_path)
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.add_gateway("h323gw", "h323", "127.0.0.1", port, ["+49"], 1.0,
                   options={"fast_start": "on", "tunnelling": "on"}, probe="status",
                   probe_interval=1, down_after=1, up_after=1)
    db.close()
    gw = yield start(tmp_path, calls={"health_interval": 0.3})
    try:
        status = gw.callpath.directory.status
        waited = 0.0
        while status.get("h323gw") != "up" and waited < 15:
            yield sleep(0.1)
            waited += 0.1
        assert status.get("h323gw") == "up"
        assert fixture.enquiries >= 1
        yield fixture.stop()
        waited = 0.0
        while status.get("h323gw") != "down" and waited < 15:
            yield sleep(0.1)
            waited += 0.1
        assert status.get("h323gw") == "down"
    finally:
        yield gw.stopService()
        yield fixture.stop()
