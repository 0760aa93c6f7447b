"""``twistd -n callgw`` that cannot start says why in one line naming it and exits non-zero: a
listener whose address is taken (TCP and UDP), a certificate that is missing, a JSON log file
that cannot be written, a database that cannot be opened. (It used to print a traceback and
exit 0.) The code under test runs in the subprocess (PYTHONPATH)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.internet.error import CannotListenError
from twisted.python.failure import Failure

from callgw.startup import StartupError, describe

ROOT = Path(__file__).resolve().parent.parent


def twistd(tmp_path, **sections):
    """Run twistd on a config (every listener on port 0, MGCP and the manhole off) with
    ``sections`` ({"client": {"tcp": "..."}}) merged in; returns (exit status, output)."""
    values = {"general": {"database": str(tmp_path / "db.sqlite3")},
              "client": {"udp": "127.0.0.1:0", "tcp": "127.0.0.1:0", "tls": "127.0.0.1:0"},
              "web": {"https": "127.0.0.1:0"}, "sip": {"udp": "127.0.0.1:0",
                                                       "tcp": "127.0.0.1:0"},
              "mgcp": {"udp": "off"}, "manhole": {"telnet": "off"}}
    for section, keys in sections.items():
        values.setdefault(section, {}).update(keys)
    cfg = tmp_path / "callgw.toml"
    cfg.write_text("".join(f"[{section}]\n" + "".join(f'{k} = "{v}"\n' for k, v in keys.items())
                           for section, keys in values.items()))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                           "-n", "--pidfile=", "callgw", "--config", str(cfg)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    return proc.returncode, proc.stdout + proc.stderr


def the_line(out: str) -> str:
    lines = [line for line in out.splitlines() if "callgw failed to start" in line]
    assert len(lines) == 1, out
    assert "Traceback" not in out, out
    assert "callgw ready" not in out and "Server Shut Down." in out
    return lines[0].split("callgw failed to start: ", 1)[1]


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_a_taken_listener_address(tmp_path, kind):
    busy = socket.socket(socket.AF_INET,
                         socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    if kind == "tcp":
        busy.listen(1)
    port = busy.getsockname()[1]
    try:
        code, out = twistd(tmp_path, client={kind: f"127.0.0.1:{port}"})
    finally:
        busy.close()
    assert code == 1, out
    assert the_line(out) == f"cannot listen: client-{kind} on 127.0.0.1:{port}: " \
                            "Address already in use"


def test_a_missing_certificate(tmp_path):
    code, out = twistd(tmp_path, web={"cert": str(tmp_path / "nope.pem")})
    assert code == 1, out
    assert the_line(out) == f"[web] cert/key {tmp_path / 'nope.pem'}: No such file or directory"


def test_an_unwritable_log_file(tmp_path):
    code, out = twistd(tmp_path, general={"log_json": str(tmp_path / "no" / "log.json")})
    assert code == 1, out
    assert the_line(out) == (f"[general] log_json {tmp_path / 'no' / 'log.json'}: cannot "
                             "write it: No such file or directory")


def test_a_database_that_cannot_be_opened(tmp_path):
    folder = tmp_path / "db-is-a-folder.sqlite3"
    folder.mkdir()
    code, out = twistd(tmp_path, general={"database": str(folder)},
                       client={"tls": "off"}, web={"https": "off"})
    assert code == 1, out
    assert the_line(out).startswith(f"[general] database {folder}: cannot open it: ")


def test_describe_names_start_up_problems_and_leaves_bugs_alone():
    assert describe(Failure(StartupError("[web] cert x: gone"))) == "[web] cert x: gone"
    err = CannotListenError("127.0.0.1", 7060, OSError(98, "Address already in use"))
    assert describe(Failure(err)) == "cannot listen on 127.0.0.1:7060: Address already in use"
    assert describe(Failure(FileNotFoundError(2, "No such file or directory", "/x"))) == \
        "/x: No such file or directory"
    assert describe(Failure(KeyError("bug"))) is None
