"""GatewayService embedded in a Twisted program, and `twistd -n callgw` as a real process."""
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from callgw.service import GatewayService
from tests.helpers import make_config, started

ROOT = Path(__file__).resolve().parent.parent


@pytest_twisted.inlineCallbacks
def test_embedded_service_starts_uses_its_store_and_stops(tmp_path):
    gw = GatewayService(make_config(tmp_path), reactor)
    gw.startService()
    try:
        yield gw.ready
        yield gw.store.run("ensure_default_tenant", 1.0)
        tenant = yield gw.store.run("get_tenant", "default")
        assert tenant["timezone"] == "UTC"
    finally:
        yield gw.stopService()
    assert not gw.running and not gw.store.pool.started
    assert (tmp_path / "callgw.sqlite3").exists()


@pytest_twisted.inlineCallbacks
def test_json_log_file(tmp_path):
    log_path = tmp_path / "log.jsonl"
    gw = GatewayService(make_config(tmp_path, general={"log_json": str(log_path)}), reactor)
    yield started(gw)
    yield gw.stopService()
    text = log_path.read_text()
    assert '"log_format": "callgw ready: node {node}"' in text


def _read_until(proc, needle: str, timeout: float) -> str:
    """Read the process's output until ``needle`` appears (bounded); returns what was read."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            chunk = os.read(proc.stdout.fileno(), 65536).decode("utf-8", "replace")
            if not chunk:
                break
            seen += chunk
    return seen


def test_twistd_runs_the_plugin_and_stops_on_sigterm(tmp_path):
    cfg = tmp_path / "callgw.toml"
    cfg.write_text(
        f'[general]\ndatabase = "{tmp_path / "db.sqlite3"}"\n'
        '[client]\nudp = "127.0.0.1:0"\ntcp = "127.0.0.1:0"\ntls = "127.0.0.1:0"\n'
        '[web]\nhttps = "127.0.0.1:0"\n[sip]\nudp = "127.0.0.1:0"\ntcp = "127.0.0.1:0"\n'
        '[mgcp]\nudp = "127.0.0.1:0"\n[manhole]\ntelnet = "127.0.0.1:0"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # run the code under test, not an install
    proc = subprocess.Popen(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
         "-n", "--pidfile=", "callgw", "--config", str(cfg)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = _read_until(proc, "callgw ready", 60)
        assert "callgw ready" in out, out
        assert "manhole off" in out
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        out += rest.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # twistd re-raises the signal after a clean shutdown, so the status reports SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Server Shut Down." in out
    assert "callgw stopped" in out
    assert "Traceback" not in out


def test_twistd_stops_when_a_listener_cannot_bind(tmp_path):
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    cfg = tmp_path / "callgw.toml"
    cfg.write_text(
        f'[general]\ndatabase = "{tmp_path / "db.sqlite3"}"\n'
        f'[client]\nudp = "127.0.0.1:0"\ntcp = "127.0.0.1:{port}"\ntls = "127.0.0.1:0"\n'
        '[web]\nhttps = "127.0.0.1:0"\n[sip]\nudp = "127.0.0.1:0"\ntcp = "127.0.0.1:0"\n'
        '[mgcp]\nudp = "127.0.0.1:0"\n[manhole]\ntelnet = "127.0.0.1:0"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", "callgw", "--config", str(cfg)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    out = proc.stdout + proc.stderr
    assert "callgw failed to start" in out, out
    assert "callgw ready" not in out
    assert "Server Shut Down." in out
