"""Test helpers for the client framings: a running GatewayService with users, a fake front end.

Used by tests/frontend, tests/web and tests/client.
"""
from __future__ import annotations

import os

from twisted.internet import defer, reactor

from callgw import passwords
from callgw.service import GatewayService
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.helpers import make_config, started

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


class MinimalFrontEnd:
    """A fixture front end: branding in ``welcome`` from the store, and every ``call``
    answered with ``disconnected`` (cause ``unreachable``)."""

    def __init__(self, store):
        self.store = store

    def session_opened(self, conn):
        """Fires with ``{"branding": ...}`` from the user's tenant (empty without one)."""
        d = self.store.run("get_tenant", conn.tenant) if conn.tenant else None
        if d is None:
            return {}
        d.addCallback(lambda t: {"branding": t["branding"]} if t else {})
        return d

    def client_message(self, conn, message) -> None:
        if isinstance(message, m.Call):
            conn.send(m.Disconnected(call=message.call, cause="unreachable",
                                     text="no call path yet"))
        else:
            conn.send(m.Error(code=ErrorCode.UNKNOWN_CALL, text="no such call",
                              call=message.call, re=message.command))

    def client_media(self, conn, frame) -> None:
        """Dropped: no call can be up."""

    def session_closed(self, conn, reason: str) -> None:
        """Nothing to release."""


@defer.inlineCallbacks
def start_gateway(tmp_path, frontend=None, users=("alice",), **overrides):
    """A started GatewayService on OS-picked loopback ports with ``users`` (password
    ``PASSWORD``); the front end replaced by ``frontend`` when given (``"minimal"``: the
    built-in one used before the call path existed)."""
    if frontend == "minimal":
        frontend = MinimalFrontEnd(None)
    gw = GatewayService(make_config(tmp_path, **overrides), reactor, frontend=frontend)
    if isinstance(frontend, MinimalFrontEnd):
        frontend.store = gw.store
    yield started(gw)
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
