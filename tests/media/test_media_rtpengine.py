"""rtpengine as the media backend: ``callgw-dial --media direct`` -> callgw -> sipp (-rtp_echo),
with ``[media] backend = "rtpengine"`` and a real userspace rtpengine started by the test.

- the gateway is offered rtpengine's address, the client is given rtpengine's address in
  ``connected``; dumpcap sees RTP between the client and rtpengine and between rtpengine and
  sipp, never between the client and sipp; the client hears its tone echoed;
- the CDR has rtpengine's statistics (``stats.media``, mode ``rtpengine``), and rtpengine holds
  no call after the release (``delete`` was sent);
- relayed-mode calls keep the built-in relay with the rtpengine backend configured.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from rtpengine_peer import RtpengineDaemon
from test_media_calls import (dial, read_samples, settled_cdr, sipp_gateway, start,
                              tone_frames, url, within, write_tone)
from test_media_calls_wire import Capture, rtp_packets
from tests.callpath.callgw_env import prepare_db

pytestmark = pytest.mark.peers("rtpengine", "sipp", "dumpcap", "tshark")


@pytest.fixture
def rtpengine(tmp_path):
    daemon = RtpengineDaemon(tmp_path).start()
    yield daemon
    daemon.stop()


@pytest_twisted.inlineCallbacks
def test_direct_media_is_anchored_in_rtpengine(tmp_path, rtpengine):
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, media={"backend": "rtpengine", "rtpengine": rtpengine.address})
    low, high = rtpengine.ports
    capture = Capture(tmp_path / "rtpengine.pcapng",
                      f"udp and (portrange {low}-{high} or port {sipp.media_port})")
    try:
        yield capture.start()
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--media", "direct", "--no-media-after", "0",
                               "--duration", "4", "--play", str(source),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        yield capture.stop()
        anchor = int(out.split("direct media with 127.0.0.1:")[1].split()[0])
        assert low <= anchor <= high, out           # the client was given rtpengine's address
        rows = yield rtp_packets(capture.path)      # (other work may use ports in the range)
        inside = lambda port: low <= port <= high   # noqa: E731
        to_client = [r for r in rows if anchor in r[:2]]
        client_ports = {r[0] if r[1] == anchor else r[1] for r in to_client}
        assert len(client_ports) == 1, to_client[:5]
        client_port = client_ports.pop()
        assert not inside(client_port) and client_port != sipp.media_port
        to_sipp = [r for r in rows if sipp.media_port in r[:2]]
        assert all(inside(r[0] if r[1] == sipp.media_port else r[1]) for r in to_sipp)
        assert not [r for r in rows if client_port in r[:2] and sipp.media_port in r[:2]]
        assert len(to_sipp) >= 2 * 0.99 * played and len(to_client) >= 2 * 0.99 * played
        hits, _, strength = tone_frames(read_samples(heard))
        print(f"rtpengine: {len(to_client)} RTP packets client<->rtpengine, {len(to_sipp)} "
              f"rtpengine<->sipp, {hits}/{played} tone frames heard, median {strength:.1f} dB")
        assert (played - hits) / played < 0.01
        cdr = (yield settled_cdr(gw, "alice"))[0]
        media = cdr["stats"]["media"]
        print("CDR media:", media)
        assert cdr["media_mode"] == "direct" and media["mode"] == "rtpengine"
        assert media["rtpengine"] == rtpengine.address
        assert media["client_to_gateway"]["packets"] >= 0.99 * played
        assert media["gateway_to_client"]["packets"] >= 0.99 * played
        assert media["gateway"] == f"127.0.0.1:{sipp.media_port}"
        assert media["client"] == f"127.0.0.1:{client_port}"
        assert not gw.callpath.media.relay.sessions and not gw.callpath.media.anchor.sessions
        assert "Received command 'delete'" in rtpengine.log()
    finally:
        yield capture.stop()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_relayed_mode_stays_with_the_built_in_relay(tmp_path, rtpengine):
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, media={"backend": "rtpengine", "rtpengine": rtpengine.address})
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--duration", "4", "--play", str(source),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        hits, _, _ = tone_frames(read_samples(heard))
        assert (played - hits) / played < 0.01
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["stats"]["media"]["mode"] == "relayed"
        assert "Received command 'offer'" not in rtpengine.log()
    finally:
        yield gw.stopService()
        sipp.stop()
