"""Shared test helpers: free loopback ports, a config on them, a gateway started safely."""
from __future__ import annotations

import socket

from twisted.internet import defer

from callgw import config


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the OS says is free on 127.0.0.1 now (a port nothing listens on, for a test of
    a refused connection). Peers started by a test take theirs from ``tests.ports``, which
    retries when a port is taken meanwhile."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(tmp_path, **overrides) -> config.Config:
    """Defaults with every listener on an OS-picked loopback port and the database in tmp_path."""
    values = {
        "general": {"database": str(tmp_path / "callgw.sqlite3"), "reload_interval": 0.2},
        "client": {"udp": "127.0.0.1:0", "tcp": "127.0.0.1:0", "tls": "127.0.0.1:0"},
        "web": {"https": "127.0.0.1:0"},
        "sip": {"udp": "127.0.0.1:0", "tcp": "127.0.0.1:0"},
        "mgcp": {"udp": "127.0.0.1:0"},
        "manhole": {"telnet": "127.0.0.1:0"},
    }
    for section, keys in overrides.items():
        values.setdefault(section, {}).update(keys)
    return config.from_dict(values)


@defer.inlineCallbacks
def started(gw, timeout: float = 30.0):
    """``gw.startService()``; fires with ``gw`` once ``gw.ready`` fired. When the start fails
    (a listener could not bind, ...) whatever did start is stopped before the failure is
    raised: a half-started gateway left by a failed test keeps its store's thread, which held
    whole runs at interpreter exit."""
    from twisted.internet import reactor
    gw.startService()
    try:
        yield gw.ready
    except BaseException:
        yield defer.maybeDeferred(gw.stopService).addTimeout(timeout, reactor)
        raise
    return gw
