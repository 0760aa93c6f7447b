"""The admin command line, run as a real process: adds and lists; bad input exits 2."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callgw import passwords
from callgw.store.db import Database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(tmp_path):
    cfg = tmp_path / "callgw.toml"
    cfg.write_text(f'[general]\ndatabase = "{tmp_path / "db.sqlite3"}"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CALLGW_PASSWORD", None)

    def run(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "callgw.cli", "--config", str(cfg), *args],
                              env=env, input=stdin, capture_output=True, text=True, timeout=60)
    run.db_path = str(tmp_path / "db.sqlite3")
    run.cfg = cfg
    return run


def test_users_gateways_rules_and_book(cli):
    assert cli("init").returncode == 0
    r = cli("user", "add", "alice", "--password", "-", "--number", "+4930111", stdin="pw1\n")
    assert r.returncode == 0, r.stderr
    assert "alice" in cli("user", "list").stdout
    r = cli("gateway", "add", "gw1", "--protocol", "sip", "--address", "127.0.0.1:25060",
            "--prefix", "+1", "--prefix", "+4930", "--capacity", "20", "--strip", "1")
    assert r.returncode == 0, r.stderr
    listing = cli("gateway", "list").stdout
    assert "gw1" in listing and "+1,+4930" in listing and "127.0.0.1:25060" in listing
    r = cli("rule", "add", "block", "+4930999", "--user", "alice", "--note", "test")
    assert r.returncode == 0, r.stderr
    assert "+4930999" in cli("rule", "list", "--user", "alice").stdout
    assert "+1900" in cli("rule", "list", "--tenant", "default").stdout
    assert cli("book", "add", "alice", "mum", "+441234567").returncode == 0
    assert "+441234567" in cli("book", "list", "alice").stdout
    assert cli("book", "remove", "alice", "mum").returncode == 0
    r = cli("gateway", "drain", "gw1")
    assert r.returncode == 0 and "draining" in r.stdout, r.stderr
    db = Database(cli.db_path)
    assert db.get_gateway("gw1")["enabled"] is False
    db.close()
    assert "draining" in cli("gateway", "list").stdout
    assert cli("gateway", "enable", "gw1").returncode == 0
    r = cli("gateway", "drain", "nope")
    assert r.returncode == 2 and "no gateway 'nope'" in r.stderr, r.stderr
    assert cli("gateway", "remove", "gw1").returncode == 0
    assert cli("user", "disable", "alice").returncode == 0

    db = Database(cli.db_path)
    user = db.get_user("alice")
    assert user["enabled"] == 0 and passwords.verify_password(user["password"], "pw1")
    assert db.list_gateways() == []
    db.close()
    assert "(none)" in cli("calls").stdout
    assert "(none)" in cli("cdr").stdout


def test_tenant_disable_and_enable(cli):
    assert cli("init").returncode == 0
    r = cli("user", "add", "bob", "--password", "-", stdin="pw\n")
    assert r.returncode == 0, r.stderr
    db = Database(cli.db_path)
    serial = db.change_serial()
    r = cli("tenant", "disable", "default")
    assert r.returncode == 0 and "disabled" in r.stdout, r.stderr
    assert db.change_serial() > serial                   # running gateways notice
    assert db.get_user("bob")["tenant_enabled"] == 0
    assert db.disabled_accounts(["bob", "ghost"]) == {"bob": "tenant disabled",
                                                      "ghost": "user removed"}
    assert "no" in cli("tenant", "list").stdout
    assert cli("tenant", "enable", "default").returncode == 0
    assert db.disabled_accounts(["bob"]) == {}
    db.set_enabled("bob", False)
    assert db.disabled_accounts(["bob"]) == {"bob": "user disabled"}
    db.close()
    r = cli("tenant", "disable", "nosuch")
    assert r.returncode != 0 and "nosuch" in r.stderr


@pytest.mark.parametrize("args, message", [
    (("gateway", "add", "g", "--protocol", "iax", "--address", "h:1", "--prefix", "+1"),
     "protocol 'iax' is not available in this callgw (available: h323, mgcp, sip)"),
    (("gateway", "add", "g", "--protocol", "h323", "--address", "127.0.0.1", "--prefix", "+1",
      "--gatekeeper", "gk:rasport"), "--gatekeeper: 'gk:rasport': expected HOST[:PORT]"),
    (("gateway", "add", "g", "--protocol", "h323", "--address", "127.0.0.1", "--prefix", "+1",
      "--fast-start", "maybe"), "--fast-start: 'maybe': expected on or off"),
    (("gateway", "add", "g", "--protocol", "h323", "--address", "127.0.0.1", "--prefix", "+1",
      "--transport", "tcp"), "--transport is not an option of h323 gateways"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "no-such-host.invalid",
      "--prefix", "+1"), "host name 'no-such-host.invalid' does not resolve"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "127.0.0.1:99999",
      "--prefix", "+1"), "expected HOST[:PORT]"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "127.0.0.1:1", "--prefix", "49"),
     "prefix '49'"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "127.0.0.1", "--prefix", "+1",
      "--transport", "sctp"), "--transport: 'sctp': expected one of"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "127.0.0.1", "--prefix", "+1",
      "--keepalive", "ping"), "--keepalive: 'ping'"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "127.0.0.1", "--prefix", "+1",
      "--probe", "auep"), "--probe: 'auep': sip gateways take options or off"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "127.0.0.1", "--prefix", "+1",
      "--probe-interval", "0.1"), "probe interval 0.1: expected 1-3600 seconds"),
    (("gateway", "add", "g", "--protocol", "mgcp", "--address", "127.0.0.1", "--prefix", "+1"),
     "mgcp gateways need at least one --endpoint LOCAL@DOMAIN"),
    (("gateway", "add", "g", "--protocol", "mgcp", "--address", "127.0.0.1", "--prefix", "+1",
      "--endpoint", "ds/ds1-1/$@tgw"), "--endpoint ds/ds1-1/$@tgw: ds/ trunk endpoints need "
                                       "CAS signalling (RFC 3064)"),
    (("gateway", "add", "g", "--protocol", "mgcp", "--address", "127.0.0.1", "--prefix", "+1",
      "--endpoint", "aaln/1"), "--endpoint: 'aaln/1' is not local@domain"),
    (("gateway", "add", "g", "--protocol", "mgcp", "--address", "127.0.0.1", "--prefix", "+1",
      "--endpoint", "rtpbridge/$@mgw"), "osmo-mgw refuses '$' in rtpbridge/$@mgw"),
    (("gateway", "add", "g", "--protocol", "mgcp", "--address", "127.0.0.1", "--prefix", "+1",
      "--endpoint", "aaln/*@gw"), "'*' means every endpoint"),
    (("gateway", "add", "g", "--protocol", "sip", "--address", "127.0.0.1", "--prefix", "+1",
      "--endpoint", "aaln/1@gw"), "--endpoint is not an option of sip gateways"),
    (("user", "add", "bob", "--password", "x", "--number", "12345"), "not E.164"),
    (("user", "passwd", "nobody", "--password", "x"), "no user 'nobody'"),
    (("rule", "add", "max-concurrent", "lots"), "whole number"),
    (("rule", "remove", "999"), "no rule 999"),
    (("frobnicate",), "invalid choice"),
    (("user", "add", "bob"), "a password is needed"),
])
def test_bad_input_exits_2_with_a_message(cli, args, message):
    r = cli(*args)
    assert r.returncode == 2
    assert message in r.stderr


def test_config_show_round_trips_and_redacts(cli, tmp_path):
    shown = cli("config", "show")
    assert shown.returncode == 0
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)
    r = subprocess.run([sys.executable, "-m", "callgw.cli", "--config", str(again), "config",
                        "show"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == shown.stdout
    cli.cfg.write_text(cli.cfg.read_text() +
                       '[security]\ntoken_keys = ["k1:supersecretvalue1234"]\n')
    assert "supersecretvalue1234" in cli("config", "show").stdout
    assert "supersecretvalue1234" not in cli("config", "show", "--redact").stdout


def test_bad_config_file_exits_2_naming_the_key(cli):
    cli.cfg.write_text('[sip]\nbogus = 1\n')
    r = cli("user", "list")
    assert r.returncode == 2 and "unknown key [sip] bogus" in r.stderr


def test_hash_password_makes_a_manhole_credential(cli):
    r = cli("hash-password", "--password", "-", stdin="s3cret\n")
    assert r.returncode == 0
    assert passwords.verify_password(r.stdout.strip(), "s3cret")


def test_gateway_options_are_the_protocols_own(cli):
    assert cli("init").returncode == 0
    r = cli("gateway", "add", "tls-gw", "--protocol", "sip", "--address", "localhost",
            "--prefix", "+49", "--transport", "tls", "--proxy", "127.0.0.1:25070",
            "--auth-user", "u1", "--auth-password", "secret", "--keepalive", "options")
    assert r.returncode == 0, r.stderr
    db = Database(cli.db_path)
    row = db.get_gateway("tls-gw")
    db.close()
    assert row["host"] == "localhost" and row["port"] == 5060      # SIP's default port
    assert row["options"] == {"transport": "tls", "proxy": "127.0.0.1:25070",
                              "auth_user": "u1", "auth_password": "secret",
                              "keepalive": "options"}
    listing = cli("gateway", "list").stdout
    assert "transport=tls" in listing and "keepalive=options" in listing
    assert "secret" not in listing                      # credentials stay out of listings


def test_h323_gateway_with_a_gatekeeper(cli):
    assert cli("init").returncode == 0
    r = cli("gateway", "add", "h323-gw", "--protocol", "h323", "--address", "127.0.0.1",
            "--prefix", "+49", "--gatekeeper", "127.0.0.1", "--tunnelling", "off")
    assert r.returncode == 0, r.stderr
    db = Database(cli.db_path)
    row = db.get_gateway("h323-gw")
    db.close()
    assert row["protocol"] == "h323" and row["port"] == 1720      # H.225.0's default port
    assert row["options"] == {"gatekeeper": "127.0.0.1:1719", "fast_start": "on",
                              "tunnelling": "off"}
    assert "gatekeeper=127.0.0.1:1719" in cli("gateway", "list").stdout


def test_migration_moves_sip_settings_into_options(tmp_path):
    import sqlite3

    from callgw.store.schema import MIGRATIONS
    path = str(tmp_path / "old.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    for sql in MIGRATIONS[0]:                           # a database of schema 1
        conn.execute(sql)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO gateways VALUES ('old', 'sip', '127.0.0.1', 5070, 'tcp', "
                 "'[\"+1\"]', 5, 10, 100, 'up', NULL, '127.0.0.1:5080', 'u', 'p', 1, '', 1, "
                 "'pass', 1, 1.0)")
    conn.close()
    db = Database(path)
    assert db.migrate() == len(MIGRATIONS)
    row = db.get_gateway("old")
    db.close()
    assert row["options"] == {"transport": "tcp", "proxy": "127.0.0.1:5080",
                              "auth_user": "u", "auth_password": "p"}
    assert "transport" not in row and row["strip_digits"] == 1


def test_mgcp_gateways_take_endpoints_and_refuse_trunks(cli):
    """``--endpoint`` is repeatable; the port defaults to MGCP's 2427; the dialect follows the
    endpoints unless given; trunks (ds/) are refused until CAS signalling exists."""
    assert cli("init").returncode == 0
    r = cli("gateway", "add", "lines", "--protocol", "mgcp", "--address", "127.0.0.1",
            "--prefix", "+4930", "--endpoint", "aaln/1@rgw.example", "--endpoint",
            "aaln/2@rgw.example")
    assert r.returncode == 0, r.stderr
    r = cli("gateway", "add", "mgw", "--protocol", "mgcp", "--address", "127.0.0.1:2428",
            "--prefix", "+4940", "--endpoint", "rtpbridge/*@mgw", "--dtmf", "signal")
    assert r.returncode == 0, r.stderr
    db = Database(cli.db_path)
    lines, mgw = db.get_gateway("lines"), db.get_gateway("mgw")
    db.close()
    assert (lines["protocol"], lines["port"]) == ("mgcp", 2427)
    assert lines["options"] == {"endpoints": ["aaln/1@rgw.example", "aaln/2@rgw.example"]}
    assert mgw["port"] == 2428 and mgw["options"] == {"endpoints": ["rtpbridge/*@mgw"],
                                                      "dtmf": "signal"}
    assert lines["probe"] == "auep"                         # MGCP's health probe by default
    listing = cli("gateway", "list").stdout
    assert "mgw" in listing and "rtpbridge/*@mgw" in listing
    r = cli("gateway", "add", "trunk", "--protocol", "mgcp", "--address", "127.0.0.1",
            "--prefix", "+1", "--endpoint", "aaln/1@gw", "--endpoint", "ds/ds1-1/1@gw")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "RFC 3064" in r.stderr


def test_init_names_a_postgresql_database_without_its_password(tmp_path, pg_url):
    """`callgw init` output ends up in terminals and provisioning logs: the URL's password is
    masked as in the gateway's own log line."""
    url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:Pw-never-shown@", 1)
    assert url != pg_url
    cfg = tmp_path / "pg.toml"
    cfg.write_text(f'[general]\ndatabase = "{url}"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "callgw.cli", "--config", str(cfg), "init"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "database ready: postgresql://postgres:***@127.0.0.1:" in r.stdout
    assert "Pw-never-shown" not in r.stdout + r.stderr
