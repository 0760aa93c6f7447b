"""A *fixture* front end for the redirect tests (tests only, not callgw's front-end role), and
the two gateways those tests run.

``Redirector`` is an ``IFrontEnd`` given to a ``GatewayService`` (``frontend=``): that gateway's
real client listeners and session code verify each login against its store as usual, and where
callgw's front end would welcome the user, this answers ``redirect`` (docs/protocol.md,
"Redirect") to the address in ``targets`` for the session's framing (``udp``, ``tcp``, ``tls``,
``wss``, ``https``) -- another gateway's listener of the same kind, or anything a test wants
(itself, for a loop). After ``redirect_on("attach")`` it welcomes logins instead and answers
an ``attach`` with the redirect (the call is held elsewhere). It never takes a call.
``redirected`` lists ``(framing, user)`` per redirect sent.

``two_gateways(tmp_path)`` starts the pair: ``front`` (this fixture as its front end) and
``gw2`` (a plain callgw answering the echo number), alice in both stores with one stored
credential, one shared token key, and one self-signed certificate (both databases sit in
tmp_path, where callgw makes it).

Used by tests/client/test_redirect_live.py and tests/web/test_browser_redirect.py.
"""
from __future__ import annotations

from twisted.internet import defer, reactor
from zope.interface import implementer

from callgw import passwords
from callgw.interfaces import IFrontEnd
from callgw.service import GatewayService
from callgw.store.db import Database
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.helpers import make_config, started
from tests.ports import free_port

PASSWORD = "correct horse"
ECHO = "+4930999999"
SECURITY = {"token_keys": ["k1:a token key both gateways share, for the redirect tests"]}
LISTENER = {"udp": "udp", "tcp": "tcp", "tls": "tls", "wss": "https", "https": "https"}
WAIT = 30.0


@implementer(IFrontEnd)
class Redirector:
    def __init__(self, text: str = "fixture: use gateway 2"):
        self.targets: dict[str, tuple[str, int]] = {}
        self.text = text
        self.redirected: list[tuple[str, str]] = []
        self._when = "login"

    def redirect_on(self, when: str) -> None:
        """``"login"``: answer every login with the redirect; ``"attach"``: welcome logins
        and answer ``attach`` with it."""
        assert when in ("login", "attach")
        self._when = when

    def _redirect(self, conn) -> None:
        address, port = self.targets[conn.framing]
        self.redirected.append((conn.framing, conn.username))
        conn.send(m.Redirect(address=address, port=port, text=self.text))

    def session_opened(self, conn):
        if self._when == "login":
            self._redirect(conn)
        return {}

    def client_message(self, conn, message):
        if self._when == "attach" and isinstance(message, m.Attach):
            self._redirect(conn)
            return
        conn.send(m.Error(code=ErrorCode.INTERNAL, text="fixture front end: no calls here",
                          re=message.command, call=getattr(message, "call", None)))

    def client_media(self, conn, frame):
        pass

    def session_closed(self, conn, reason):
        pass


def within(d, seconds=WAIT):
    return d.addTimeout(seconds, reactor)


def prepare(tmp_path) -> None:
    """alice, with the same stored credential in both gateways' stores (one salt: the client
    derives its key once)."""
    stored = passwords.hash_password(PASSWORD, n=1024)
    for name in ("front.sqlite3", "gw2.sqlite3"):
        db = Database(str(tmp_path / name))
        db.migrate()
        db.ensure_default_tenant(1.0)
        db.add_user("alice", stored, 1.0)
        db.close()


@defer.inlineCallbacks
def two_gateways(tmp_path):
    """(front, gw2, fixture): started; the fixture sends every login to gw2. Both databases
    sit in tmp_path, so both gateways use the one self-signed certificate made there."""
    prepare(tmp_path)
    fixture = Redirector()
    front = GatewayService(make_config(
        tmp_path, general={"database": str(tmp_path / "front.sqlite3"), "node": "front"},
        security=SECURITY), reactor, frontend=fixture)
    low = free_port(even=True)
    gw2 = GatewayService(make_config(
        tmp_path, general={"database": str(tmp_path / "gw2.sqlite3"), "node": "gw2"},
        security=SECURITY, calls={"echo_number": ECHO, "health_interval": 0},
        media={"rtp_ports": f"{low}-{low + 39}"}), reactor)
    yield started(front)
    try:
        yield started(gw2)
    except BaseException:
        yield front.stopService()
        raise
    for framing, listener in LISTENER.items():
        fixture.targets[framing] = gw2.client.address(listener)
    return front, gw2, fixture


def url(gw, scheme: str) -> str:
    host, port = gw.client.address(LISTENER[scheme])
    return f"{scheme}://{host}:{port}"


@defer.inlineCallbacks
def stop(*gateways):
    for gw in gateways:
        yield within(defer.maybeDeferred(gw.stopService))


def redirect_session(gw, user: str, address: str, port: int, text: str = "draining"):
    """Make ``gw`` redirect ``user``'s logged-in session (as a drained call server would):
    through the session's public ``send``, the way a front end sends one."""
    [conn] = [c for c in gw.client.manager.connections
              if c.username == user and not c.closed]
    conn.send(m.Redirect(address=address, port=port, text=text))


@defer.inlineCallbacks
def until(condition, seconds=WAIT, every=0.05):
    """Poll ``condition`` until true; AssertionError after ``seconds``."""
    from twisted.internet import task
    waited = 0.0
    while not condition():
        assert waited < seconds, f"still not so after {seconds} s"
        yield task.deferLater(reactor, every, lambda: None)
        waited += every
