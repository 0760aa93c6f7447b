"""Call continuity: a relayed call survives its client's socket dropping.

The client reaches callgw through a small TCP proxy (a fixture of this test) that the test kills
mid-call: callgw keeps the call up (the gateway, sipp echoing RTP, hears silence meanwhile), the
client logs in again with its token through a new proxy, ``attach``es with the call's key, gets
``connected`` with a new key, and its audio flows through the gateway again. Without an attach
the call ends after the grace period with ``network-error`` in its CDR.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.protocols.portforward import ProxyFactory

from callgw.client.links import connect
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.rtp import g711
from test_media_calls import settled_cdr, sipp_gateway, start, within
from tests.callpath.callgw_env import PASSWORD, events_of, prepare_db

pytestmark = pytest.mark.peers("sipp")

TONE = g711.encode("PCMU", bytes(320))      # 20 ms of silence-level PCM, any payload will do


class Proxy:
    """A fixture: a TCP proxy to callgw's client port that the test can kill and restart."""

    def __init__(self, gw):
        self.factory = TrackedProxyFactory("127.0.0.1", gw.client.address("tcp")[1])
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port
        self.url = f"tcp://127.0.0.1:{self.port}"

    def restart(self):
        """Listen again on the same port (the client's URL stays valid)."""
        self.listening = reactor.listenTCP(self.port, self.factory, interface="127.0.0.1")

    def kill(self):
        """Drop every proxied connection at once, as a network change would."""
        for proto in self.factory.protocols:
            proto.transport.abortConnection()
        return self.listening.stopListening()


class Talker:
    """Sends 20 ms frames on ``call`` with its current key; counts the echoed frames."""

    def __init__(self, session, key):
        self.session, self.key = session, key
        self.sequence = self.timestamp = 0
        self.heard = 0
        session.on_media = self._heard
        self.loop = task.LoopingCall(self._send)
        self.loop.start(0.02)

    def _heard(self, data):
        self.heard += 1

    def _send(self):
        frame = fr.MediaFrame(self.key, 0, self.sequence, self.timestamp, TONE)
        self.sequence += 1
        self.timestamp += 160
        if not self.session.is_closed:
            self.session.link.send_media(fr.encode_media(frame))

    def stop(self):
        if self.loop.running:
            self.loop.stop()


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class TrackedProxyFactory(ProxyFactory):
    """ProxyFactory that remembers its connections (so the fixture can drop them)."""

    def __init__(self, host, port):
        super().__init__(host, port)
        self.protocols = []

    def buildProtocol(self, addr):
        proto = super().buildProtocol(addr)
        self.protocols.append(proto)
        return proto


proxy_to = Proxy


@pytest_twisted.inlineCallbacks
def test_the_call_survives_a_dropped_socket_and_re_attaches(tmp_path):
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    talkers, proxies = [], []
    try:
        first = proxy_to(gw)
        proxies.append(first)
        session = yield connect(first.url)
        yield session.login("alice", PASSWORD)
        token = session.token
        call = session.call("+4930123456")
        connected = yield within(call.connected)
        talker = Talker(session, connected.key)
        talkers.append(talker)
        yield sleep(1.0)
        assert talker.heard > 20                    # sipp echoes our frames back
        yield first.kill()
        lost = yield within(call.disconnected)     # the client side sees its session end
        assert lost.cause == "network-error"
        talker.stop()
        yield sleep(1.0)                            # callgw keeps the call: silence to sipp
        assert gw.callpath.frontend.detached and len(gw.callpath.logger.rows) == 1

        second = proxy_to(gw)
        proxies.append(second)
        again = yield connect(second.url)
        yield again.login_token(token)
        back = again.attach(connected.key)
        reconnected = yield within(back.connected)
        assert reconnected.key and reconnected.key != connected.key
        talker2 = Talker(again, reconnected.key)
        talkers.append(talker2)
        yield sleep(1.0)
        assert talker2.heard > 20                   # the audio goes through the gateway again
        assert not gw.callpath.frontend.detached
        back.hangup()
        end = yield within(back.disconnected)
        assert isinstance(end, m.Disconnected) and end.cause == "normal"
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 16 and cdr["answered"] and cdr["duration"] > 2.5
        kinds = yield events_of(gw, cdr["call_id"])
        assert "client-detached" in kinds and "client-attached" in kinds
        yield again.logout()
    finally:
        for t in talkers:
            t.stop()
        for p in proxies:
            if p.listening.connected:
                yield p.listening.stopListening()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_without_an_attach_the_call_ends_after_the_grace_period(tmp_path):
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, client={"reattach_grace": 1.0})
    try:
        proxy = proxy_to(gw)
        session = yield connect(proxy.url)
        yield session.login("alice", PASSWORD)
        call = session.call("+4930123456")
        yield within(call.connected)
        yield proxy.kill()
        yield sleep(2.0)
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 38 and "did not come back within 1 s" in cdr["cause_text"]
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()   # BYE reached sipp
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_callgw_dial_re_attaches_when_its_connection_drops(tmp_path):
    """callgw-dial through the proxy fixture, which the test kills two seconds into the call
    and brings back on the same port a second later: callgw-dial logs in again with its
    token, re-attaches, and the tone it plays comes back from sipp before and after."""
    from test_media_calls import dial, read_samples, tone_frames, write_tone
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source, seconds=6.0)
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    proxy = proxy_to(gw)
    try:
        running = dial("--server", proxy.url, "--user", "alice", "--duration", "6",
                       "--play", str(source), "--record", str(heard), "+4930123456")
        yield sleep(2.5)
        yield proxy.kill()
        yield sleep(1.0)
        proxy.restart()
        code, out = yield running
        assert code == 0, out
        assert "session lost: re-attaching to the call" in out and "re-attached" in out, out
        hits, _, _ = tone_frames(read_samples(heard))
        print(f"re-attached: {hits} of {played} tone frames heard back")
        assert hits >= 0.6 * played                  # all but the outage and its edges
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 16 and cdr["duration"] >= 5.0
    finally:
        if proxy.listening.connected:
            yield proxy.listening.stopListening()
        yield gw.stopService()
        sipp.stop()
