"""Test helpers for the client framings: a running GatewayService with users, a fake front end.

Used by tests/frontend, tests/web and tests/client.
"""
from __future__ import annotations

import os

from twisted.internet import defer, reactor

from callgw import passwords
from callgw.frontend.connection import MinimalFrontEnd
from callgw.service import GatewayService
from protocols.client import messages as m
from tests.helpers import make_config

PASSWORD = "correct horse"
BUSY = "+15550000486"


class FakeFrontEnd:
    """Answers ``call`` with trying, ringing, connected (``BUSY``: disconnected busy), hangup
    with disconnected normal, dtmf/hold/resume with a status; echoes media frames; records
    every hook call."""

    def __init__(self):
        self.opened, self.closed, self.messages, self.media = [], [], [], []

    def session_opened(self, conn):
        self.opened.append(conn)
        return defer.succeed({"branding": {"display_name": "Test Tel", "logo": ""}})

    def client_message(self, conn, message):
        self.messages.append((conn, message))
        if isinstance(message, m.Call):
            conn.send(m.Trying(call=message.call))
            if message.number == BUSY:
                conn.send(m.Disconnected(call=message.call, cause="busy", q850=17))
                return
            conn.send(m.Ringing(call=message.call))
            conn.send(m.Connected(call=message.call, key=os.urandom(16), codec="PCMU"))
        elif isinstance(message, m.Hangup):
            conn.send(m.Disconnected(call=message.call, cause="normal", q850=16))
        else:
            conn.send(m.Status(info=message.command, call=message.call))

    def client_media(self, conn, frame):
        """Recorded and echoed back (a call that hears itself)."""
        self.media.append((conn, frame))
        conn.send_media(frame)

    def session_closed(self, conn, reason):
        self.closed.append((conn, reason))


@defer.inlineCallbacks
def start_gateway(tmp_path, frontend=None, users=("alice",), **overrides):
    """A started GatewayService on OS-picked loopback ports with ``users`` (password
    ``PASSWORD``); the front end replaced by ``frontend`` when given (``"minimal"``: the
    built-in one used before the call path existed)."""
    gw = GatewayService(make_config(tmp_path, **overrides), reactor)
    if frontend == "minimal":
        gw.client.frontend = MinimalFrontEnd(gw.store)
    elif frontend is not None:
        gw.client.frontend = frontend
    gw.startService()
    yield gw.ready
    yield gw.store.run("ensure_default_tenant", 1.0)
    for i, name in enumerate(users):
        cred = passwords.hash_password(PASSWORD, n=1024)
        yield gw.store.run("add_user", name, cred, 1.0, number=f"+4930100{i:03d}")
    return gw


def stop_gateway(gw):
    """``gw.stopService()``, bounded: a stop that hangs fails the test instead."""
    return defer.maybeDeferred(gw.stopService).addTimeout(30, reactor)


def url(gw, scheme: str) -> str:
    """``scheme://host:port`` of the listener for ``scheme`` (wss and https: the web site)."""
    host, port = gw.client.address("https" if scheme == "wss" else scheme)
    return f"{scheme}://{host}:{port}"


def cert_path(gw) -> str:
    return gw.client.cert.cert_path
