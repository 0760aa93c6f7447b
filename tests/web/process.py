"""A real callgw process (``twistd -n callgw``, running the code under test) on 127.0.0.1 for the
attack tests: its log in a file, its listeners' ports read from that log, its pid to watch
file descriptors and to stop it."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LISTENING = re.compile(r"listening: (\S+) (\w+) 127\.0\.0\.1:(\d+)")


def cli(tmp_path, *args, password: str | None = None) -> subprocess.CompletedProcess:
    """``callgw --config ... ARGS`` as a subprocess (the admin command line)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CALLGW_PASSWORD", None)
    if password is not None:
        env["CALLGW_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "callgw.cli", "--config",
                           str(tmp_path / "callgw.toml"), *args],
                          env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def write_config(tmp_path, extra: str = "", general: str = "", sip: bool = False) -> Path:
    """Every client listener and the site on OS-picked loopback ports; SIP and MGCP off (these
    tests place no calls; ``sip`` turns SIP on). ``general``: more lines for ``[general]``;
    ``extra``: more sections."""
    path = tmp_path / "callgw.toml"
    path.write_text(
        f'[general]\ndatabase = "{tmp_path / "db.sqlite3"}"\n{general}'
        '[client]\nudp = "127.0.0.1:0"\ntcp = "127.0.0.1:0"\ntls = "127.0.0.1:0"\n'
        '[web]\nhttps = "127.0.0.1:0"\n[mgcp]\nudp = "off"\n'
        + ('[sip]\nudp = "127.0.0.1:0"\ntcp = "127.0.0.1:0"\n' if sip else
           '[sip]\nudp = "off"\ntcp = "off"\n')
        + extra)
    return path


class Callgw:
    """``twistd -n callgw --config tmp_path/callgw.toml``; ``ports["web-https"]``,
    ``ports["sip tcp"]`` etc."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.log_path = tmp_path / "callgw.log"
        self.tmpdir = tmp_path / "tmp"          # the process's TMPDIR: what it spools shows here
        self.tmpdir.mkdir(exist_ok=True)
        self.proc = None
        self.ports: dict[str, int] = {}

    def start(self, timeout: float = 60.0) -> "Callgw":
        env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(self.tmpdir))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                 "-n", "--pidfile=", "callgw", "--config", str(self.tmp_path / "callgw.toml")],
                cwd=self.tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while "callgw ready" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("callgw did not start:\n" + self.log())
            time.sleep(0.1)
        for name, proto, port in LISTENING.findall(self.log()):
            self.ports[name] = self.ports[f"{name} {proto}"] = int(port)
        return self

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def tracebacks(self) -> list[str]:
        """The log's tracebacks, less the telnet manhole's own about options a client refused
        (Twisted logs those as critical; the manhole tests' client refuses some)."""
        blocks = re.findall(r"Traceback \(most recent call last\):\n(?:\t[^\n]*\n)*", self.log())
        return [b for b in blocks if "telnet.OptionRefused" not in b]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> int | None:
        """SIGTERM, bounded; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
