"""``callgw-dial`` as a real subprocess (running the code under test) against a running callgw:
each URL scheme, exit codes and what it prints."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.frontend.gateway import (BUSY, PASSWORD, FakeFrontEnd, cert_path, start_gateway,
                                   stop_gateway, url)

ROOT = str(Path(__file__).resolve().parent.parent.parent)


def dial(*args, password=PASSWORD):
    """Run callgw-dial; fires with (exit code, output text)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT}
    if password is not None:
        env["CALLGW_PASSWORD"] = password
    d = getProcessOutputAndValue(sys.executable, ["-m", "callgw.client.dial", *args],
                                 env=env, path=ROOT, reactor=reactor)
    d.addCallback(lambda r: (r[2], (r[0] + r[1]).decode("utf-8", "replace")))
    return d.addTimeout(60, reactor)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "tcp", "tls", "wss", "https"])
def test_normal_call_exits_0(tmp_path, scheme):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        code, out = yield dial("--server", url(gw, scheme), "--user", "alice",
                               "--cacert", cert_path(gw), "--duration", "0.2", "+4930123456")
        assert code == 0, out
        lines = [line for line in out.splitlines() if not line.startswith("logged in")]
        assert lines[0].startswith("trying (call c1)")
        assert lines[1:3] == ["ringing", "connected"]
        assert lines[3].startswith("duration ") and lines[4] == "disconnected: normal"
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_unauthorized_busy_unreachable_and_tls_failures(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        tls = url(gw, "tls")
        code, out = yield dial("--server", tls, "--user", "alice", "--cacert", cert_path(gw),
                               "+4930123456", password="wrong")
        assert code == 3 and "unauthorized: 401" in out, out
        code, out = yield dial("--server", tls, "--user", "alice", "+4930123456")
        assert code == 4 and "cannot connect" in out, out
        code, out = yield dial("--server", tls, "--user", "alice", "--insecure",
                               "--duration", "0", "+4930123456")
        assert code == 0 and "warning: --insecure" in out, out
        code, out = yield dial("--server", url(gw, "tcp"), "--user", "alice", BUSY)
        assert code == 1 and "disconnected: busy" in out, out
        code, out = yield dial("--server", url(gw, "tcp"), "--user", "alice", "+4930123",
                               password=None)
        assert code == 2 and "no password" in out, out
        code, out = yield dial("--server", "ftp://x:1", "--user", "alice", "+4930123")
        assert code == 2 and "scheme" in out, out
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_minimal_front_end_call_fails_with_reason(tmp_path):
    gw = yield start_gateway(tmp_path, "minimal")
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice", "+4930123456")
        assert code == 1 and "disconnected: unreachable (no call path yet)" in out, out
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_connection_refused(tmp_path):
    from tests.helpers import free_port
    code, out = yield dial("--server", f"tcp://127.0.0.1:{free_port()}", "--user", "alice",
                           "+4930123456")
    assert code == 4 and "cannot connect" in out, out


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "wss"])
def test_play_and_record_through_an_echo(tmp_path, scheme):
    from callgw.client.media import read_wav, write_wav
    from protocols.rtp import g711
    from tests.client.test_media import tone
    source, heard = str(tmp_path / "tone.wav"), str(tmp_path / "heard.wav")
    pcm = tone(0.4)
    write_wav(source, pcm)
    gw = yield start_gateway(tmp_path, FakeFrontEnd())      # echoes every media frame
    try:
        code, out = yield dial("--server", url(gw, scheme), "--user", "alice",
                               "--cacert", cert_path(gw), "--duration", "1.5",
                               "--play", source, "--record", heard, "+4930123456")
        assert code == 0, out
        assert "played 0.4 s" in out and "recorded" in out
        got = read_wav(heard)
        expected = g711.ulaw_decode(g711.ulaw_encode(pcm))
        assert got and expected.startswith(got)              # in order, nothing altered
    finally:
        yield stop_gateway(gw)
