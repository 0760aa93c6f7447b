"""``callgw-dial`` when things go wrong, as a real subprocess against a running callgw: bad
targets and an unwritable ``--record`` refused before connecting (exit 2, one line), TLS
refusals explained with the ``--cacert`` hint, a UDP server where nothing listens or that never
answers reported within the timeout, and ``logout`` sent when the run is interrupted."""
from __future__ import annotations

import os
import signal
import socket
import sys

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol

from tests.client.test_dial import ROOT, dial
from tests.frontend.gateway import FakeFrontEnd, start_gateway, stop_gateway, url
from tests.helpers import free_port


def one_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return lines[0]


@pytest_twisted.inlineCallbacks
def test_bad_targets_and_an_unwritable_record_file_are_refused_before_connecting(tmp_path):
    front = FakeFrontEnd()
    gw = yield start_gateway(tmp_path, front)
    try:
        server = url(gw, "tcp")
        for target in ("", "x" * 100, "+49 30 123", "+0123"):
            code, out = yield dial("--server", server, "--user", "alice", target)
            assert code == 2, (target, out)
            assert "is not an E.164 number" in one_line(out)
        code, out = yield dial("--server", server, "--user", "alice", "--record",
                               str(tmp_path / "no" / "such" / "folder" / "heard.wav"),
                               "+4930123456")
        assert code == 2 and "--record" in one_line(out) and "No such file" in out, out
        code, out = yield dial("--server", server, "--user", "alice", "--record",
                               str(tmp_path), "+4930123456")
        assert code == 2 and "is a folder" in one_line(out), out
        assert front.opened == [] and front.messages == []      # nobody logged in
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["tls", "wss", "https"])
def test_an_untrusted_certificate_is_explained_with_the_cacert_hint(tmp_path, scheme):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        code, out = yield dial("--server", url(gw, scheme), "--user", "alice", "+4930123456")
        line = one_line(out)
        assert code == 4, out
        assert "certificate is not trusted" in line and "--cacert FILE" in line, line
        assert "--insecure" in line
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_a_udp_port_where_nothing_listens_is_reported_at_once():
    code, out = yield dial("--server", f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                           "--user", "alice", "--timeout", "30", "+4930123456")
    assert code == 4, out
    assert "connection refused: nothing listens at udp 127.0.0.1" in one_line(out)


@pytest_twisted.inlineCallbacks
def test_a_udp_server_that_never_answers_is_reported_after_the_timeout():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # bound, reads nothing
    silent.bind(("127.0.0.1", 0))
    try:
        code, out = yield dial("--server", f"udp://127.0.0.1:{silent.getsockname()[1]}",
                               "--user", "alice", "--timeout", "2", "+4930123456")
    finally:
        silent.close()
    assert code == 5, out
    line = one_line(out)
    assert "no answer from udp://127.0.0.1" in line and "within 2 s (--timeout)" in line


class Dial(ProcessProtocol):
    def __init__(self):
        self.out = b""
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.out += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(reason.value.exitCode)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_an_interrupted_run_logs_out_so_the_call_ends_normally(tmp_path, sig):
    front = FakeFrontEnd()
    gw = yield start_gateway(tmp_path, front)
    proc = Dial()
    try:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT,
               "CALLGW_PASSWORD": "correct horse"}
        transport = reactor.spawnProcess(
            proc, sys.executable, [sys.executable, "-m", "callgw.client.dial", "--server",
                                   url(gw, "tcp"), "--user", "alice", "--duration", "60",
                                   "+4930123456"], env=env, path=ROOT)
        for _ in range(200):                      # until the call is up
            if b"connected" in proc.out:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert b"connected" in proc.out, proc.out
        transport.signalProcess(sig)
        yield proc.ended.addTimeout(20, reactor)
        for _ in range(100):
            if front.closed:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert [reason for _, reason in front.closed] == ["logout"], (front.closed, proc.out)
    finally:
        if not proc.ended.called:
            os.kill(transport.pid, signal.SIGKILL)
        yield stop_gateway(gw)
