"""SIP over TLS toward a real peer: baresip (a real SIP user agent, Debian ``baresip``) as the
gateway, taking calls over TLS with a certificate from a throwaway CA (tests/sip/tlscerts.py).

The SIP leg calls it with ``transport = tls``: the certificate is checked by default against
the gateway's CA file (by address, and by name through ``localhost``), a CA that did not sign
it fails the call at once (not after Timer B), and ``tls_verify = False`` skips the check.
baresip answers automatically; the call connects, and our BYE ends it.
"""
from __future__ import annotations

import math
import struct
import wave

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from callgw.callserver.events import Connect, MediaDescription, Release, Setup, Trace
from callgw.callserver.legs.sip import SipLeg
from protocols.sip.adapter import SipEndpoint
from tests.sip import tlscerts
from tests.sip.baresip import Baresip

pytestmark = pytest.mark.peers("baresip")

MEDIA = MediaDescription("127.0.0.1", 26996, ("PCMU",), 101, 20, "sendrecv")


def write_tone(path, seconds=1.0):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i * 2 * math.pi / 20)))
                               for i in range(int(8000 * seconds))))


class Sink:
    def __init__(self):
        self.events, self.traces = [], []
        self.waiting = {}

    def __call__(self, leg, event):
        if isinstance(event, Trace):
            self.traces.append(event)
            return
        self.events.append(event)
        d = self.waiting.pop(type(event), None)
        if d is not None:
            d.callback(event)

    def wait_for(self, kind, timeout=10):
        for event in self.events:
            if isinstance(event, kind):
                return defer.succeed(event)
        d = self.waiting[kind] = defer.Deferred()
        return d.addTimeout(timeout, reactor)


@pytest.fixture
def certs(tmp_path):
    return tlscerts.make(tmp_path / "certs")


@pytest.fixture
def peer(tmp_path, certs):
    tone = tmp_path / "tone.wav"
    write_tone(tone)
    baresip = Baresip(tmp_path, tone, seconds=30, certificate=certs.gateway)
    pytest_twisted.blockon(baresip.start())
    yield baresip
    pytest_twisted.blockon(baresip.stop())


@pytest.fixture
def endpoint():
    ep = SipEndpoint(reactor, "127.0.0.1", 0)
    ep.start()
    yield ep
    pytest_twisted.blockon(ep.stop())


def call(endpoint, peer, **gw):
    record = {"address": "127.0.0.1", "port": peer.tls_port, "transport": "tls",
              "no_answer_timeout": 20}
    record.update(gw)
    leg = SipLeg(endpoint, record, reactor)
    sink = Sink()
    leg.attach(sink)
    leg.send(Setup("tls-1", "+4930123456", caller="+4940555", media=MEDIA))
    return leg, sink


@pytest_twisted.inlineCallbacks
def test_call_over_tls_with_the_gateways_ca(endpoint, peer, certs):
    leg, sink = call(endpoint, peer, tls_ca_file=str(certs.ca))
    connect = yield sink.wait_for(Connect)
    assert connect.media.codecs[0] == "PCMU"
    invite = [t for t in sink.traces if t.summary.startswith("INVITE")][0]
    assert invite.summary.endswith(";transport=tls")
    assert [key[0] for key in endpoint.transports.streams] == ["tls"]
    leg.send(Release(16))
    yield _until(lambda: not endpoint.listeners)
    summaries = [t.summary for t in sink.traces]
    assert "200 OK (BYE)" in summaries and "200 Answering (INVITE)" in summaries


@pytest_twisted.inlineCallbacks
def test_call_over_tls_by_name(endpoint, peer, certs):
    # "localhost" is resolved by the reactor's resolver and checked against DNS:localhost
    leg, sink = call(endpoint, peer, address="localhost", tls_ca_file=str(certs.ca))
    yield sink.wait_for(Connect)
    leg.send(Release(16))
    yield _until(lambda: not endpoint.listeners)


@pytest_twisted.inlineCallbacks
def test_a_certificate_the_ca_did_not_sign_fails_the_call_at_once(endpoint, peer, certs):
    started = reactor.seconds()
    leg, sink = call(endpoint, peer, tls_ca_file=str(certs.other_ca))
    release = yield sink.wait_for(Release)
    assert release.cause == 41 and release.text.startswith("503")
    assert reactor.seconds() - started < 10                      # not Timer B's 32 s
    assert not [t for t in sink.traces if t.direction == "in"]


@pytest_twisted.inlineCallbacks
def test_verification_off_accepts_any_certificate(endpoint, peer, certs):
    leg, sink = call(endpoint, peer, tls_ca_file=str(certs.other_ca), tls_verify=False)
    yield sink.wait_for(Connect)
    leg.send(Release(16))
    yield _until(lambda: not endpoint.listeners)


@defer.inlineCallbacks
def _until(check, limit=10.0):
    waited = 0.0
    while not check():
        if waited >= limit:
            raise AssertionError("condition not met in time")
        d = defer.Deferred()
        reactor.callLater(0.05, d.callback, None)
        yield d
        waited += 0.05


@pytest_twisted.inlineCallbacks
def test_sips_uris(endpoint, peer, certs):
    # RFC 5630: sips: Request-URI, To and Contact instead of sip:...;transport=tls
    leg, sink = call(endpoint, peer, tls_ca_file=str(certs.ca), sips=True)
    yield sink.wait_for(Connect)
    invite = [t for t in sink.traces if t.summary.startswith("INVITE")][0]
    assert invite.summary.startswith("INVITE sips:+4930123456@127.0.0.1:")
    assert "transport=" not in invite.summary
    leg.send(Release(16))
    yield _until(lambda: not endpoint.listeners)
    assert "200 OK (BYE)" in [t.summary for t in sink.traces]
