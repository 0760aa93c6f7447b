"""The twistd plugin is found and builds the expected service tree."""
import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage

from callgw import tap
from callgw.service import GatewayService
from tests.helpers import make_config


def test_plugin_is_discovered():
    makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
    assert "callgw" in makers, "run `make install` (a regular install) so twistd finds callgw"
    assert makers["callgw"].module == "callgw.tap"


def test_make_service_builds_the_tree(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[general]\ndatabase = "{tmp_path / "db.sqlite3"}"\n')
    options = tap.Options()
    options.parseOptions(["--config", str(cfg_file)])
    svc = tap.makeService(options)
    assert isinstance(svc, GatewayService)
    assert svc.child("store") is not None
    assert svc.child("manhole") is None  # no credential configured
    assert svc.store.path == str(tmp_path / "db.sqlite3")


def test_bad_config_stops_option_parsing_with_the_key(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[web]\nhttps = "everywhere"\n')
    with pytest.raises(usage.UsageError, match=r"\[web\] https"):
        tap.Options().parseOptions(["--config", str(cfg_file)])


def test_manhole_joins_the_tree_with_a_credential(tmp_path):
    from callgw import passwords
    cfg = make_config(tmp_path, manhole={"password_hash": passwords.hash_password("x", n=1024)})
    svc = GatewayService(cfg)
    assert svc.child("manhole") is not None
