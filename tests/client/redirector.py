"""A *fixture* front end for the redirect tests (tests only, not callgw's front-end role).

``Redirector`` is an ``IFrontEnd`` given to a ``GatewayService`` (``frontend=``): that gateway's
real client listeners and session code verify each login against its store as usual, and where
callgw's front end would welcome the user, this answers ``redirect`` (docs/protocol.md,
"Redirect") to the address in ``targets`` for the session's framing (``udp``, ``tcp``, ``tls``,
``wss``, ``https``) -- another gateway's listener of the same kind, or anything a test wants
(itself, for a loop). It never takes a call. ``redirected`` lists ``(framing, user)`` per
redirect sent.

Used by tests/client/test_redirect_live.py.
"""
from __future__ import annotations

from zope.interface import implementer

from callgw.interfaces import IFrontEnd
from protocols.client import messages as m
from protocols.client.errors import ErrorCode


@implementer(IFrontEnd)
class Redirector:
    def __init__(self, text: str = "fixture: use gateway 2"):
        self.targets: dict[str, tuple[str, int]] = {}
        self.text = text
        self.redirected: list[tuple[str, str]] = []

    def session_opened(self, conn):
        address, port = self.targets[conn.framing]
        self.redirected.append((conn.framing, conn.username))
        conn.send(m.Redirect(address=address, port=port, text=self.text))
        return {}

    def client_message(self, conn, message):
        conn.send(m.Error(code=ErrorCode.INTERNAL, text="fixture front end: no calls here",
                          re=message.command))

    def client_media(self, conn, frame):
        pass

    def session_closed(self, conn, reason):
        pass
