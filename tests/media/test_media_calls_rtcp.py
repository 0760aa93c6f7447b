"""RTCP from a real peer reaches the CDR: baresip (a real SIP user agent that sends RTCP) is
the gateway, answering automatically and playing a 1 kHz tone; ``callgw-dial`` plays a tone
in relayed mode. The relay sends the gateway RTCP sender reports; baresip's receiver reports
come back, so the CDR's media statistics carry what the gateway reported (loss, jitter) and
the round-trip time, and the client heard baresip's tone.
"""
from __future__ import annotations

import shutil
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol

from test_media_calls import (dial, free_port, prepare_db, read_samples, settled_cdr, start,
                              tone_frames, url, within, write_tone)

BARESIP = shutil.which("baresip")
pytestmark = pytest.mark.skipif(BARESIP is None, reason="baresip is not installed")


class Baresip(ProcessProtocol):
    """baresip on 127.0.0.1 with its own config dir; ``ready`` fires once it says so;
    ``stop()`` ends only this process (by its pid)."""

    def __init__(self, tmp_path, tone, seconds=40):
        self.dir = tmp_path / "baresip"
        self.dir.mkdir()
        self.sip_port = free_port(socket.SOCK_DGRAM)
        rtp = free_port(even=True)
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll", f"sip_listen 127.0.0.1:{self.sip_port}", "sip_trans_def udp",
            f"audio_source aufile,{tone}", f"audio_alert aufile,{tone}",
            f"rtp_ports {rtp}-{rtp + 3}", "rtcp_mux no",
            "module_path /usr/lib/baresip/modules",
            "module g711.so", "module aufile.so", "module account.so", ""]))
        (self.dir / "accounts").write_text(
            "<sip:+4930123456@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU\n")
        self.seconds = seconds
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.output = b""

    def start(self):
        reactor.spawnProcess(self, BARESIP, [BARESIP, "-f", str(self.dir), "-n", "127.0.0.1",
                                             "-t", str(self.seconds)], env=None)
        return within(self.ready, 15)

    def outReceived(self, data):
        self.output += data
        if b"baresip is ready" in self.output and not self.ready.called:
            self.ready.callback(self)

    errReceived = outReceived

    def processEnded(self, reason):
        if not self.ready.called:
            self.ready.errback(RuntimeError(self.output.decode(errors="replace")))
        self.ended.callback(None)

    def stop(self):
        if not self.ended.called:
            try:
                self.transport.signalProcess("TERM")
            except Exception:       # already gone
                pass
        return within(self.ended, 15)


@pytest_twisted.inlineCallbacks
def test_rtcp_from_a_real_peer_reaches_the_cdr(tmp_path):
    tone = tmp_path / "tone.wav"
    write_tone(tone, seconds=30.0)
    heard = tmp_path / "heard.wav"
    peer = Baresip(tmp_path, tone)
    yield peer.start()
    prepare_db(tmp_path, gateways=[("gw1", peer.sip_port, ["+49"], {})])
    gw = yield start(tmp_path)
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--duration", "12", "--play", str(tone),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out + peer.output.decode(errors="replace")[-2000:]
        hits, frames, strength = tone_frames(read_samples(heard))
        cdr = (yield settled_cdr(gw, "alice"))[0]
        media = cdr["stats"]["media"]
        print(f"heard baresip: {hits}/{frames} tone frames, {strength:.1f} dB; "
              f"reported {media['reported']}, rtt {media['rtt_ms']} ms")
        assert hits >= 0.95 * frames and frames >= 500          # 10 s of baresip's tone
        reported = media["reported"].get("gateway")
        assert reported is not None, media                     # baresip's RR/SR blocks
        assert reported["cumulative_lost"] == 0 and reported["fraction_lost"] == 0
        assert media["rtt_ms"] is not None and 0 <= media["rtt_ms"] < 200
    finally:
        yield gw.stopService()
        yield peer.stop()
