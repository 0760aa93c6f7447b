"""``callgw admin``, run as a real process: the password from CALLGW_PASSWORD or stdin (never
the command line), stored as a scrypt-derived credential; list, passwd, remove."""
import os
import subprocess
import sys
from pathlib import Path

from callgw import passwords
from callgw.store.db import Database

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path, *args, stdin=None, password=None):
    cfg = tmp_path / "callgw.toml"
    cfg.write_text(f'[general]\ndatabase = "{tmp_path / "db.sqlite3"}"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CALLGW_PASSWORD", None)
    if password is not None:
        env["CALLGW_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "callgw.cli", "--config", str(cfg), *args],
                          env=env, input=stdin, capture_output=True, text=True, timeout=60)


def _credentials(tmp_path):
    db = Database(str(tmp_path / "db.sqlite3"))
    try:
        return db.admin_credentials()
    finally:
        db.close()


def test_admin_add_list_passwd_remove(tmp_path):
    r = _run(tmp_path, "admin", "add", "root", password="first-password")
    assert r.returncode == 0 and "admin root added" in r.stdout, r.stderr
    r = _run(tmp_path, "admin", "add", "ops", "--password", "-", stdin="second-password\n")
    assert r.returncode == 0, r.stderr
    listing = _run(tmp_path, "admin", "list").stdout
    assert "root" in listing and "ops" in listing and "password" not in listing.split("\n", 1)[1]
    creds = _credentials(tmp_path)
    assert passwords.verify_password(creds["root"], "first-password")
    assert passwords.verify_password(creds["ops"], "second-password")
    assert all("password" not in c for c in creds.values())
    r = _run(tmp_path, "admin", "passwd", "root", password="changed-password")
    assert r.returncode == 0, r.stderr
    assert passwords.verify_password(_credentials(tmp_path)["root"], "changed-password")
    r = _run(tmp_path, "admin", "remove", "ops")
    assert r.returncode == 0 and set(_credentials(tmp_path)) == {"root"}


def test_admin_refusals_are_one_line_and_exit_2(tmp_path):
    no_password = _run(tmp_path, "admin", "add", "root", stdin="")
    assert no_password.returncode == 2 and "CALLGW_PASSWORD" in no_password.stderr
    short = _run(tmp_path, "admin", "add", "root", password="short")
    assert short.returncode == 2 and "at least 8" in short.stderr
    # a password on the command line itself is not accepted (it would show in ps)
    inline = _run(tmp_path, "admin", "add", "root", "--password", "on-the-command-line")
    assert inline.returncode == 2
    assert _run(tmp_path, "admin", "add", "root", password="good-password").returncode == 0
    dup = _run(tmp_path, "admin", "add", "root", password="good-password")
    assert dup.returncode == 2 and "exists" in dup.stderr and dup.stderr.count("\n") == 1
    missing = _run(tmp_path, "admin", "remove", "nobody")
    assert missing.returncode == 2 and "no admin 'nobody'" in missing.stderr
