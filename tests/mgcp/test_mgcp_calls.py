"""A call through a real MGCP media gateway: ``callgw-dial`` (a subprocess running the code
under test) -> callgw (relay mode) -> osmo-mgw 1.10 -> sipp echoing RTP (``-rtp_echo``).

The gateway entry is made as an operator would (``callgw gateway add mgw --protocol mgcp
--endpoint rtpbridge/1@mgw``, or ``rtpbridge/*@mgw`` to let osmo-mgw pick). The test plays the rest of the network: as another call agent it
makes the second connection on the same osmo-mgw endpoint, toward sipp's echoing RTP port, so
osmo-mgw bridges callgw's connection to sipp. osmo-mgw keeps one call id per endpoint, so the
test sends its CRCX with the call id of callgw's, right behind it (it reads callgw's CRCX from
the call agent's message feed, ``IMgcpListener.mgcp_message``, through a listener placed in
front of the provider). callgw's CRCX is answered with osmo-mgw's SDP and
the bridge leg connects at once (no number travels); the client's 1 kHz tone crosses the bridge
twice and is judged frame by frame as in tests/media/test_media_calls.py; the DLCX statistics
osmo-mgw returns reach the CDR.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from zope.interface import implementer

from callgw import passwords
from callgw.store.db import Database
from protocols.mgcp.adapter import CallAgentEndpoint, IMgcpListener
from protocols.mgcp.endpoint import OSMO_MGW as DIALECT
from protocols.mgcp.endpoint import EndpointName
from protocols.mgcp.events import Gateway
from protocols.mgcp.message import Command, Response
from protocols.mgcp.params import parse_connection_parameters
from protocols.mgcp.transaction import Timers
from protocols.sip.sdp import make_offer
from tests.callpath.callgw_env import settled_cdr, within
from tests.media.test_media_calls import (PASSWORD, ROOT, TONE_SECONDS, dial, read_samples,
                                          sipp_gateway, start, tone_frames, url, write_tone)
from tests.mgcp.osmo_mgw import OsmoMgw

pytestmark = pytest.mark.peers("osmo-mgw", "sipp")
ENDPOINT = "rtpbridge/1@mgw"
FAST = Timers(initial=0.05, maximum=0.2, max1=2, max2=3, t_max=5.0)


def cli(tmp_path, *args):
    """The admin CLI on the test's database (a separate process, as an operator runs it)."""
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[general]\ndatabase = "{tmp_path / "callgw.sqlite3"}"\n')
    return subprocess.run([sys.executable, "-m", "callgw.cli", "--config", str(cfg), *args],
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                          text=True, timeout=60)


@implementer(IMgcpListener)
class FarSide:
    """The rest of the network: makes the second connection on callgw's endpoint (same call
    id) toward sipp's RTP echo, right behind callgw's CRCX (a specific endpoint) or as soon as
    osmo-mgw's answer names the endpoint it picked (``Z:``, a wildcard)."""

    def __init__(self, provider, agent, rtp_port):
        self.provider, self.agent, self.rtp_port = provider, agent, rtp_port
        self.call_id = self.tid = self.endpoint = None
        self.created = defer.Deferred()
        provider.endpoint.listener = self

    def mgcp_event(self, event):
        self.provider.mgcp_event(event)

    def mgcp_message(self, direction, peer, message):
        self.provider.mgcp_message(direction, peer, message)
        if direction == "out" and isinstance(message, Command) and message.verb == "CRCX" \
                and self.call_id is None:
            self.call_id, self.tid = message.param("C"), message.tid
            if "*" not in message.endpoint:
                self._connect(message.endpoint)
        elif direction == "in" and isinstance(message, Response) and message.tid == self.tid \
                and self.endpoint is None and message.param("Z"):
            self._connect(message.param("Z"))

    def _connect(self, endpoint):
        self.endpoint = endpoint
        d = self.agent.send("mgw", Command(
            "CRCX", 0, endpoint, (("C", self.call_id), ("L", "p:20, a:PCMU"),
                                  ("M", "sendrecv")),
            make_offer("127.0.0.1", self.rtp_port, ["PCMU"], None)))
        d.chainDeferred(self.created)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("configured", [ENDPOINT, "rtpbridge/*@mgw"])
def test_a_call_through_osmo_mgw_hears_its_tone_and_the_cdr_has_the_dlcx_statistics(
        tmp_path, configured):
    """``--endpoint rtpbridge/1@mgw`` (a specific endpoint) and ``rtpbridge/*@mgw`` (osmo-mgw's
    "any free endpoint": its Z: names the one used from then on)."""
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source)
    osmo = OsmoMgw(tmp_path)
    yield osmo.start()
    sipp = other = gw = None
    try:
        sipp = sipp_gateway(tmp_path)        # never called: only its RTP echo is used
        other = CallAgentEndpoint(reactor, "127.0.0.1", 0, timers=FAST)
        other.start()
        other.add_gateway(Gateway("mgw", "127.0.0.1", osmo.port,
                                  (EndpointName.parse("rtpbridge/*@mgw"),), DIALECT))

        db = Database(str(tmp_path / "callgw.sqlite3"))
        db.migrate()
        db.ensure_default_tenant(1.0)
        db.add_user("alice", passwords.hash_password(PASSWORD, n=1024), 1.0,
                    number="+4930100000")
        db.close()
        r = cli(tmp_path, "gateway", "add", "mgw", "--protocol", "mgcp", "--address",
                f"127.0.0.1:{osmo.port}", "--prefix", "+49", "--endpoint", configured)
        assert r.returncode == 0, r.stderr
        gw = yield start(tmp_path, mgcp={"udp": "127.0.0.1:0", "retransmit": 0.05})
        far = FarSide(gw.callpath.providers["mgcp"], other, sipp.media_port)
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--duration", str(TONE_SECONDS + 1.0), "--play", str(source),
                               "--record", str(heard), "+4930123456")
        assert code == 0, out + osmo.log()
        hits, frames, strength = tone_frames(read_samples(heard))
        missing = (played - hits) / played
        print(f"osmo-mgw: {hits}/{played} tone frames heard ({frames} recorded), "
              f"missing {100 * missing:.2f}%, median tone-to-rest {strength:.1f} dB")
        assert missing < 0.01, out
        assert strength > 20

        assert far.created.called
        created = yield far.created
        assert created.response.code == 200 and created.endpoint == far.endpoint
        assert configured == ENDPOINT or far.endpoint.startswith("rtpbridge/")
        [cdr] = yield settled_cdr(gw, "alice")
        assert cdr["gateway"] == "mgw" and cdr["answered"] is not None and cdr["cause"] == 16
        stats = cdr["stats"]["legs"]["mgcp"]
        assert stats["endpoint"] == far.endpoint and stats["gateway"] == "mgw"
        # osmo-mgw counted the client's tone in and the echo out on callgw's connection
        assert stats["packets_received"] >= 0.99 * played
        assert stats["packets_sent"] >= 0.99 * played
        assert stats["octets_received"] >= 160 * stats["packets_received"]
        trace = yield gw.store.run("call_trace", cdr["call_id"])
        assert [t["summary"].split()[0] for t in trace if t["leg"] == "mgcp"] == [
            "CRCX", "200", "DLCX", "250"]
        media = cdr["stats"]["media"]
        assert media["mode"] == "relayed" and media["gateway_to_client"]["lost"] == 0

        gone = yield within(other.send("mgw", Command(
            "DLCX", 0, far.endpoint, (("C", far.call_id),
                                      ("I", created.response.param("I"))))), 10)
        assert gone.response.code == 250
        echoed = parse_connection_parameters(gone.response.param("P"))
        assert echoed.packets_received >= 0.99 * played      # sipp's echo crossed the bridge
    finally:
        if gw is not None:
            yield gw.stopService()
        if other is not None:
            yield other.stop()
        if sipp is not None:
            sipp.stop()
        yield osmo.stop()
