"""The front end of the role ``frontend``: each logged-in client is sent to a call server.

Owned by operations (docs/operations.md, "Roles"). ``RedirectingFrontEnd(balancer, logger)`` is
the ``IFrontEnd`` the client listeners hand authenticated sessions to in a front-end process.
Client sessions and media frames never cross the cluster link: once a client proved its login,
the balancer (fed by ``ClusterPool``) picks a call server that is alive, not draining, below
capacity and admitting calls, and the session is answered with the protocol's ``redirect`` to
that call server's own listener for the same framing (UDP to its UDP listener, WebSocket to its
web listener, ...); the client logs in there and calls. A client that comes back to re-attach
a call lands on any call server and is sent on to the one holding the call by that call
server's front end (``callgw.frontend.server``, by the call's re-attach key). With no call
server to send it to, the session gets ``error`` 500 "no call server available" and ends.
Why redirect rather than carry calls over the link: measured in docs/performance.md
("Roles"), the front end's work per call is the login alone, and media never takes an extra
hop.

Tests: tests/cluster/test_roles.py (real processes).
"""
from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from callgw.interfaces import IFrontEnd
from protocols.client import messages as m
from protocols.client.errors import ErrorCode


@implementer(IFrontEnd)
class RedirectingFrontEnd:
    """Sends every authenticated session to a call server; see the module docstring."""

    log = Logger()

    def __init__(self, balancer, metrics=None):
        self.balancer = balancer
        self.metrics = metrics
        self.redirected = 0
        self.turned_away = 0

    def session_opened(self, conn) -> dict:
        framing = conn.framing
        server = self.balancer.pick()
        where = server.listener(framing) if server is not None else None
        if where is None:
            self.turned_away += 1
            reason = ("congestion: every call server refuses new calls for its load"
                      if server is None and self.balancer.congested else
                      f"no call server available for {framing}")
            self.log.warn("user {user} peer {host}:{port}: {reason}", user=conn.username,
                          host=conn.peer[0], port=conn.peer[1], reason=reason)
            conn.send(m.Error(code=ErrorCode.INTERNAL, text="no call server available"))
            conn.close("no call server available")
            return {}
        self.redirected += 1
        conn.send(m.Redirect(address=where[0], port=where[1], text=f"call server {server.name}"))
        return {}

    def client_message(self, conn, message) -> None:
        conn.send(m.Error(code=ErrorCode.OUT_OF_ORDER, text="this front end places no calls",
                          re=message.command))

    def client_media(self, conn, frame) -> None:
        return None

    def session_closed(self, conn, reason) -> None:
        return None
