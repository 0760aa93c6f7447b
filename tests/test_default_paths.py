"""The admin CLI and the gateway open the same database wherever each is run from: the default
(``var/callgw.sqlite3``) is anchored at ``callgw.config.home()`` (``$CALLGW_HOME``, else the
folder holding the virtualenv), a relative path in a config file at that file's folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from callgw import config

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd, home=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CALLGW_HOME", None)
    if home is not None:
        env["CALLGW_HOME"] = str(home)
    r = subprocess.run([sys.executable, "-m", "callgw.cli", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def database_of(show: str) -> str:
    for line in show.splitlines():
        if line.strip().startswith("database ="):
            return line.split("=", 1)[1].split("#", 1)[0].strip().strip('"')
    raise AssertionError(show)


def test_the_default_database_is_the_same_from_any_folder(tmp_path):
    a, b, home = tmp_path / "a", tmp_path / "b", tmp_path / "home"
    for d in (a, b):
        d.mkdir()
    out_a = cli("init", cwd=a, home=home)
    assert f"database ready: {home / 'var' / 'callgw.sqlite3'}" in out_a
    cli("tenant", "list", cwd=b, home=home)                  # from elsewhere: the same file
    assert not (a / "var").exists() and not (b / "var").exists()
    # without CALLGW_HOME, in the virtualenv: next to it, from whatever folder (nothing made)
    venv_default = Path(sys.prefix).resolve().parent / "var" / "callgw.sqlite3"
    assert database_of(cli("config", "show", cwd=a)) == str(venv_default)
    assert database_of(cli("config", "show", cwd=b)) == str(venv_default)


def test_a_relative_path_in_a_config_file_is_relative_to_that_file(tmp_path, monkeypatch):
    conf = tmp_path / "etc" / "callgw.toml"
    conf.parent.mkdir()
    conf.write_text('[general]\ndatabase = "data/gw.sqlite3"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert config.load(str(conf))["general"]["database"] == \
        str(tmp_path / "etc" / "data" / "gw.sqlite3")
    monkeypatch.setenv("CALLGW_HOME", str(tmp_path / "h"))
    assert config.defaults()["general"]["database"] == str(tmp_path / "h" / "var" /
                                                           "callgw.sqlite3")
    assert config.load(None)["general"]["database"] == config.defaults()["general"]["database"]
    for fixed in ("/srv/callgw.sqlite3", "postgresql://u@127.0.0.1/callgw"):
        conf.write_text(f'[general]\ndatabase = "{fixed}"\n')
        assert config.load(str(conf))["general"]["database"] == fixed
