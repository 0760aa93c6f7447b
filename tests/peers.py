"""The real peers the tests need (sipp, tshark/dumpcap, baresip, sox, ...): one place that says
whether a test may run, and what a missing peer means.

``require_peer("sipp", "tshark")`` in a test or fixture returns the path of the first command
when every one is installed. When one is missing the test is skipped, with the reason and the
Debian package to install; with ``CI=true`` (any of true/1/yes) it fails instead, since a CI run
that skipped its peers proved nothing. For a whole module::

    pytestmark = pytest.mark.peers("sipp", "dumpcap", "tshark")

does the same before each test of the module (the top-level conftest.py calls
``require_peer`` for the marker).

Tests: tests/test_peers.py.
"""
from __future__ import annotations

import os
import shutil

import pytest

#: command -> the Debian package that installs it (the Makefile's TEST_SYSTEM_DEPS installs them)
PACKAGES = {
    "sipp": "sip-tester",
    "tshark": "tshark",
    "dumpcap": "wireshark-common",
    "baresip": "baresip-core",
    "sox": "sox",
    "kamailio": "kamailio",
    "osmo-mgw": "osmo-mgw",
    "chromium": "chromium",
    "psql": "postgresql-client",
    "pg_ctl": "postgresql",
    "rtpengine": "rtpengine-daemon",
    "systemd-analyze": "systemd",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_peers(*commands: str) -> list[str]:
    return [c for c in commands if _which(c) is None]


def _which(command: str) -> str | None:
    found = shutil.which(command)
    if found is None and command == "pg_ctl":        # Debian keeps it out of PATH
        import glob
        found = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)),
                     None)
    return found


def require_peer(*commands: str) -> str:
    """The path of ``commands[0]`` when all are installed; else skip the test (fail it when
    ``CI=true``) naming what is missing and its Debian package."""
    if not commands:
        raise TypeError("require_peer needs at least one command")
    missing = missing_peers(*commands)
    if missing:
        names = ", ".join(f"{c} (Debian {PACKAGES[c]})" if c in PACKAGES else c
                          for c in missing)
        reason = f"real peer not installed: {names}"
        if in_ci():
            pytest.fail(f"{reason}; with CI=true a missing peer fails the test "
                        "(make test installs them)", pytrace=False)
        pytest.skip(reason)
    return _which(commands[0])


# -- the marker (registered and applied by the top-level conftest.py) -----------------------
def pytest_configure(config):
    config.addinivalue_line(
        "markers", "peers(*commands): the test needs these real peers installed (skipped "
                   "without them; with CI=true failed)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("peers"):
        require_peer(*mark.args)
