"""Direct mode in whole calls: ``callgw-dial --media direct`` -> callgw -> sipp (-rtp_echo).

- the slave's offer carries the client's RTP address; the client and sipp exchange RTP
  themselves (dumpcap sees RTP only between the client's port and sipp's), the relay is never
  used (no media statistics in the CDR), and the client hears its tone echoed;
- a gateway the client's RTP cannot reach: after ``--no-media-after`` the client asks callgw to
  carry the media, callgw re-INVITEs the gateway toward its relay without dropping the call,
  and the tone is heard through the relay.
"""
from __future__ import annotations

import re

import pytest
import pytest_twisted
from twisted.internet import reactor

from test_media_calls import (dial, read_samples, settled_cdr, sipp_gateway, start,
                              tone_frames, url, within, write_tone)
from test_media_calls_wire import Capture, port_filter, rtp_packets
from tests.callpath.callgw_env import events_of, prepare_db

pytestmark = pytest.mark.peers("sipp", "dumpcap", "tshark")


@pytest_twisted.inlineCallbacks
def test_direct_media_flows_between_client_and_gateway_only(tmp_path):
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    capture = Capture(tmp_path / "direct.pcapng", port_filter(gw, sipp))
    try:
        yield capture.start()
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--media", "direct", "--no-media-after", "0",
                               "--duration", "4", "--play", str(source),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out
        assert f"direct media with 127.0.0.1:{sipp.media_port}" in out, out
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        yield capture.stop()
        rows = yield rtp_packets(capture.path)
        low, high = (int(x) for x in gw.config["media"]["rtp_ports"].split("-"))
        assert not [r for r in rows if low <= r[0] <= high or low <= r[1] <= high]
        client_ports = {r[0] for r in rows if r[1] == sipp.media_port}
        assert len(client_ports) == 1
        assert all(sipp.media_port in r[:2] and client_ports & set(r[:2]) for r in rows)
        assert len(rows) >= 2 * 0.99 * played
        hits, _, strength = tone_frames(read_samples(heard))
        print(f"direct: {len(rows)} RTP packets client<->sipp only, {hits}/{played} tone "
              f"frames heard, median {strength:.1f} dB")
        assert (played - hits) / played < 0.01
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["media_mode"] == "direct" and cdr["stats"]["media"] == {}
        assert not gw.callpath.media.relay.sessions
    finally:
        yield capture.stop()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_no_media_in_direct_mode_moves_the_call_to_the_relay(tmp_path):
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source, seconds=5.0)
    sipp = sipp_gateway(tmp_path, "uas_direct_blocked.xml")
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--media", "direct", "--no-media-after", "1.0",
                               "--duration", "5.5", "--play", str(source),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out                      # one call, connected to the normal end
        assert "no media arrived in direct mode" in out and "media relayed by callgw" in out
        assert out.count("connected\n") == 1
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()   # took the re-INVITE
        lost_direct = int(re.search(r"direct RTP: sent (\d+)", out).group(1))
        hits, frames, strength = tone_frames(read_samples(heard))
        print(f"after the move to relay: {hits} tone frames heard of {played} played "
              f"({played - lost_direct} after the move), median {strength:.1f} dB")
        assert hits >= 0.99 * (played - lost_direct)    # all the tone played after the move
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 16 and cdr["media_mode"] == "direct"
        media = cdr["stats"]["media"]
        assert media["mode"] == "relayed" and media["gateway_to_client"]["packets"] >= 150
        kinds = yield events_of(gw, cdr["call_id"])
        assert "media-to-relay" in kinds and "media-relayed" in kinds
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scenario, delivered", [("uas_info_dtmf.xml", True),
                                                 ("uas_info_refused.xml", False)])
def test_dtmf_in_direct_mode_goes_as_sip_info_or_the_client_is_told(tmp_path, scenario,
                                                                    delivered):
    """The media does not pass callgw in direct mode, so a digit the client sends with
    ``dtmf`` reaches the gateway as SIP INFO (application/dtmf-relay, RFC 6086); a gateway
    that refuses INFO (415) gets the client a ``status dtmf-failed`` naming why, instead of a
    digit silently dropped."""
    sipp = sipp_gateway(tmp_path, scenario, echo=False)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--media", "direct", "--no-media-after", "0", "--duration", "3",
                               "--dtmf", "5", "+4930123456")
        assert code == 0, out
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        log = (tmp_path / "sipp_messages.log").read_text()
        info = log[log.index("INFO sip:"):]
        assert "Content-Type: application/dtmf-relay" in info and "Signal=5" in info
        failed = re.search(r"status: dtmf-failed 5: the gateway refused SIP INFO \(415", out)
        assert (failed is None) == delivered, out
    finally:
        yield gw.stopService()
        sipp.stop()
