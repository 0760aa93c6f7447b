"""A fixture helper to run baresip (a real SIP user agent, Debian ``baresip``) on 127.0.0.1.

``Baresip(tmp_path, tone).start()`` writes a config dir (SIP on UDP, G.711, auto answer, the
WAV ``tone`` as its microphone, RTCP on) and fires once baresip says it is ready; with
``certificate`` (a PEM with certificate and key) it also takes SIP over TLS on ``tls_port``;
a SIP or RTP port taken meanwhile means new ports and another try (``tests.ports``).
``stop()`` ends only the process it started, by its pid.
Used by tests/media/test_media_calls_rtcp.py, tests/sip/test_baresip_tls.py and
tests/test_ports.py.
"""
from __future__ import annotations

import shutil
import socket

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol

from tests.peers import require_peer
from tests.ports import PortTaken, free_port, port_taken, retry_ports_deferred

BARESIP = shutil.which("baresip")


def within(d, seconds):
    d.addTimeout(seconds, reactor)
    return d


class Baresip(ProcessProtocol):
    """baresip on 127.0.0.1 with its own config dir; ``start()`` fires once it says it is
    ready (its SIP or RTP port taken meanwhile: new ports, another try, through
    ``tests.ports``); ``stop()`` ends only this process (by its pid)."""

    def __init__(self, tmp_path, tone, seconds=40, certificate=None):
        self.dir = tmp_path / "baresip"
        self.dir.mkdir()
        self.tone = tone
        self.seconds = seconds
        self.certificate = certificate
        self.ended = defer.succeed(None)
        self._configure()

    def _configure(self):
        if self.certificate is None:
            self.sip_port = free_port(socket.SOCK_DGRAM)
            tls = []
        else:
            # baresip listens for TLS on sip_listen's port + 1
            self.sip_port = free_port(both=True, count=2)
            self.tls_port = self.sip_port + 1
            tls = [f"sip_certificate {self.certificate}"]
        rtp = free_port(even=True)
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll", f"sip_listen 127.0.0.1:{self.sip_port}", *tls,
            "sip_trans_def udp",
            f"audio_source aufile,{self.tone}", f"audio_alert aufile,{self.tone}",
            f"rtp_ports {rtp}-{rtp + 3}", "rtcp_mux no",
            "module_path /usr/lib/baresip/modules",
            "module g711.so", "module aufile.so", "module account.so", ""]))
        (self.dir / "accounts").write_text(
            "<sip:+4930123456@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU\n")

    def start(self):
        require_peer("baresip")
        first = [True]

        def once():
            if not first[0]:
                self._configure()
            first[0] = False
            self.ready, self.ended, self.output = defer.Deferred(), defer.Deferred(), b""
            reactor.spawnProcess(self, BARESIP, [BARESIP, "-f", str(self.dir), "-n",
                                                 "127.0.0.1", "-t", str(self.seconds)], env=None)
            return within(self.ready, 15)
        return retry_ports_deferred(once)

    def outReceived(self, data):
        self.output += data
        if b"baresip is ready" in self.output and not self.ready.called:
            self.ready.callback(self)

    errReceived = outReceived

    def processEnded(self, reason):
        # this process's own Deferreds: failing ``ready`` with PortTaken starts the next try at
        # once, which gives the protocol new ones (and a new process) before this call returns
        ready, ended = self.ready, self.ended
        ended.callback(None)
        if not ready.called:
            text = self.output.decode(errors="replace")
            ready.errback(PortTaken(text) if port_taken(text) else RuntimeError(text))

    def stop(self):
        if not self.ended.called:
            try:
                self.transport.signalProcess("TERM")
            except Exception:       # already gone
                pass
        return within(self.ended, 15)
