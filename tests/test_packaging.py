"""Every package in the tree is installed by a regular install (setup.cfg lists them one by
one: a package left out imports in the tests, from the checkout, but not in `make run`)."""
from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_setup_cfg_lists_every_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("callgw", "protocols") for init in (ROOT / top).rglob("__init__.py")
             if "__pycache__" not in init.parts}
    assert found - listed == set(), "add to setup.cfg [options] packages"
