"""RTCP from a real peer reaches the CDR: baresip (a real SIP user agent that sends RTCP) is
the gateway, answering automatically and playing a 1 kHz tone; ``callgw-dial`` plays a tone
in relayed mode. The relay sends the gateway RTCP sender reports; baresip's receiver reports
come back, so the CDR's media statistics carry what the gateway reported (loss, jitter) and
the round-trip time, and the client heard baresip's tone.
"""
from __future__ import annotations

import pytest
import pytest_twisted

from test_media_calls import (dial, prepare_db, read_samples, settled_cdr, start, tone_frames,
                              url, write_tone)
from tests.sip.baresip import Baresip

pytestmark = pytest.mark.peers("baresip")


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
