"""Nodes of the real roles in one process for the cluster tests: a ``GatewayService`` with
``[cluster] role`` on the test's shared SQLite file, the echo number answered by callgw itself,
every listener on an OS-picked loopback port unless turned off.

Used by tests/cluster/test_reattach_roles.py, test_browser_roles.py and
test_dashboard_roles.py.
"""
from __future__ import annotations

from twisted.internet import reactor

from callgw.service import GatewayService
from tests.helpers import make_config

ECHO = "+4930999999"
SECRET = "cluster-secret-for-the-test"
TOKEN_KEYS = ["k1:0123456789abcdef0123"]        # shared: a token verifies on every node
#: client listeners of one kind: the client protocol over TCP, no web listener
TCP_ONLY = {"client": {"udp": "off", "tls": "off"}, "web": {"https": "off"}}


def node(tmp_path, name: str, role: str, **sections) -> GatewayService:
    """Node ``name`` of ``role``; ``sections`` override the configuration (e.g. ``web=``)."""
    directory = tmp_path / name
    directory.mkdir()
    values = {
        "general": {"database": str(tmp_path / "callgw.sqlite3"), "node": name,
                    "reload_interval": 0.2},
        "cluster": {"role": role, "secret": SECRET, "amp": "127.0.0.1:0", "heartbeat": 0.2},
        "manhole": {"telnet": "off"}, "mgcp": {"udp": "off"},
        "security": {"token_keys": TOKEN_KEYS},
        "calls": {"echo_number": ECHO, "health_interval": 0}}
    for section, keys in sections.items():
        values.setdefault(section, {}).update(keys)
    return GatewayService(make_config(directory, **values), reactor)
