"""The front-end server: client sessions from every listener meet the call path here.

Owned by the call path (ARCHITECTURE.md, "Front-end server"). The client listeners
(callgw/frontend/udp.py, stream.py, the WebSocket and HTTP ones) authenticate each session and
then call the four methods of ``FrontEnd``:

- ``session_opened(conn)``: registers the device with the registrar and returns the extra
  ``welcome`` fields (``{"branding": {...}}``, a dict or a Deferred of one);
- ``client_message(conn, message)``: ``call`` (new call: the balancer picks a call server, which
  authorizes and launches it), ``hangup``/``dtmf``/``hold``/``resume``/``reject``/``answer`` (to
  the call's ``ClientLeg``);
- ``client_media(conn, frame)``: media frames (the media issue routes them to the relay);
- ``session_closed(conn, reason)``: every call of the session is released with the reason
  (the client vanished), and the registration removed.

A ``ClientConnection`` provides ``username``, ``user`` (store row), ``tenant`` (row or name),
``peer`` (host, port), ``framing``, ``send(message)``, ``send_media(frame)``, ``close(reason)``.
While a session is open its registration is refreshed every ``registration_ttl / 2`` seconds
(the listeners close sessions that stop pinging). A full or unhealthy call-server pool, or one
whose measured load refuses new calls (admission control), answers the call with
``disconnected`` cause ``congestion``.

Tests: tests/callpath/test_frontend.py.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import os

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver import events as ev
from callgw.callserver.legs.client import ClientLeg
from callgw.interfaces import CallRequest, IFrontEnd
from protocols.client import messages as m
from protocols.client.errors import ErrorCode

SHUTDOWN_CAUSE = 41
NETWORK_ERROR = 38          # Q.850 "network out of order": the client's cause network-error
#: Why a session ends without its client saying so: its answered relayed calls wait for an
#: ``attach`` for ``reattach_grace`` seconds instead of ending.
LOST_SESSION_REASONS = frozenset({"connection lost", "idle timeout", "unreachable"})


@implementer(IFrontEnd)
class FrontEnd(Service):
    """Turns client sessions and their commands into call requests and leg input."""

    log = Logger()
    name = "frontend"

    def __init__(self, balancer, clock, logger, registrar=None, branding=None, store=None,
                 node: str = "callgw-1", registration_ttl: float = 180.0, metrics=None,
                 media=None, reattach_grace: float = 30.0, locate=None):
        """``locate(username, key_digest)``: fires with the call-servers row of the node
        holding a call this one does not (the role ``callserver``), or None."""
        self.balancer = balancer
        self.clock = clock
        self.logger = logger
        self.registrar = registrar
        self.branding = branding
        self.store = store
        self.node = node
        self.registration_ttl = registration_ttl
        self.metrics = metrics
        self.sessions: dict[int, tuple] = {}            # id(conn) -> (conn, {call: leg})
        self._ids = itertools.count(1)
        self._id_prefix = f"{node}-{os.urandom(3).hex()}-"
        self._loop: LoopingCall | None = None
        self.media_frames_dropped = 0
        self.media = media      # callgw.callserver.media.CallMedia: routes frames by call key
        self.reattach_grace = reattach_grace
        self.detached: dict[bytes, tuple] = {}      # call key -> (leg, username, grace timer)
        self.locate = locate

    # -- lifecycle ----------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        if self.registrar is not None:
            self._loop = LoopingCall(self._refresh)
            self._loop.clock = self.clock
            self._loop.start(self.registration_ttl / 2, now=False).addErrback(
                lambda f: self.log.failure("registration refresh stopped", f))

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _refresh(self) -> None:
        for conn, _ in list(self.sessions.values()):
            self._register(conn)

    def _register(self, conn) -> None:
        host, port = _peer(conn)
        framing = getattr(conn, "framing", "udp")
        self.registrar.register(conn.username, f"{framing}:{host}:{port}",
                                self.registration_ttl, framing)

    # -- the listener contract ----------------------------------------------------------------
    def session_opened(self, conn):
        """Fires with (or returns) the extra ``welcome`` fields: ``{"branding": {...}}``."""
        self.sessions[id(conn)] = (conn, {})
        _no_delay(conn)
        if self.registrar is not None:
            self._register(conn)
        tenant = getattr(conn, "tenant", None)
        if self.branding is None:
            return {}
        if isinstance(tenant, dict) or self.store is None:
            return {"branding": self.branding.branding_for(tenant)}
        cached = self.branding.cached(tenant or "default")
        if cached is not None:
            return {"branding": cached}
        d = self.store.run("get_tenant", tenant or "default")
        d.addCallback(lambda row: {"branding": self.branding.branding_for(row)})
        d.addErrback(self._welcome_failed, conn)
        return d

    def _welcome_failed(self, failure, conn) -> dict:
        self.log.failure("branding for {user} peer {peer}", failure, user=conn.username,
                         peer=_peer(conn))
        return {}

    def client_message(self, conn, message) -> None:
        """One call command from an authenticated session."""
        entry = self.sessions.get(id(conn))
        if entry is None:
            entry = self.sessions[id(conn)] = (conn, {})
        calls = entry[1]
        kind = type(message)
        if kind is m.Call:
            self._call(conn, calls, message)
            return
        if kind is m.Attach:
            self._attach(conn, calls, message)
            return
        leg = calls.get(getattr(message, "call", None))
        if leg is None or leg.released:
            conn.send(m.Error(code=ErrorCode.UNKNOWN_CALL, text="no such call",
                              call=getattr(message, "call", None), re=message.command))
            return
        leg.from_client(message)

    def client_media(self, conn, frame) -> None:
        """A media frame: to the relay of the session's call whose key it carries; dropped and
        counted when the key belongs to no call of this session."""
        if self.media is None or not self.media.client_frame(conn, frame):
            self.media_frames_dropped += 1

    def session_closed(self, conn, reason) -> None:
        """Release every call of the session; drop its registration."""
        entry = self.sessions.pop(id(conn), None)
        if entry is None:
            return
        for leg in list(entry[1].values()):
            if reason == "shutdown":
                leg.client_gone("shutdown", SHUTDOWN_CAUSE, "callgw shutting down")
            elif reason == "logout":            # a normal release; the client was told
                leg.client_gone("logout", 16, "client logged out")
            elif reason in LOST_SESSION_REASONS and self.reattach_grace > 0 and \
                    leg.key is not None and not leg.released and leg.sink is not None:
                self._detach(conn, leg, reason)
            else:
                leg.client_gone(str(reason) if reason else "session closed")
        if self.registrar is not None:
            host, port = _peer(conn)
            self.registrar.unregister(conn.username,
                                      f"{getattr(conn, 'framing', 'udp')}:{host}:{port}")

    # -- re-attach ----------------------------------------------------------------------------
    def _detach(self, conn, leg, reason: str) -> None:
        """``leg``'s session was lost: the call waits ``reattach_grace`` seconds for an
        ``attach`` with its key from the same user."""
        key = bytes(leg.key)
        timer = self.clock.callLater(self.reattach_grace, self._grace_over, key)
        self.detached[key] = (leg, conn.username, timer)
        leg.detach()
        self.logger.event(leg.call_id, "client-detached", reason=reason,
                          grace=self.reattach_grace)
        self.log.info("call {call} of {user}: session lost ({reason}); waiting "
                      "{grace:g} s for it to re-attach", call=leg.call, user=conn.username,
                      reason=reason, grace=self.reattach_grace)

    def _grace_over(self, key: bytes) -> None:
        entry = self.detached.pop(key, None)
        if entry is None:
            return
        leg = entry[0]
        leg.client_gone("did not re-attach", NETWORK_ERROR,
                        f"client did not come back within {self.reattach_grace:g} s")

    def _attach(self, conn, calls: dict, message) -> None:
        """``attach {call, key}``: the same user's client, holding the call's current key,
        takes a call back, from a lost session or from one it is leaving; a call another call
        server holds (``locate``) sends the client there with ``redirect``."""
        key = bytes(message.key)
        leg = None
        entry = self.detached.get(key)
        if entry is not None and entry[1] == conn.username and not entry[0].released:
            leg = entry[0]
            self.detached.pop(key)
            if entry[2].active():
                entry[2].cancel()
        else:
            leg = self._leg_of_live_session(conn, key)
        if leg is None and self.locate is not None:     # held by another call server?
            d = self.locate(conn.username, hashlib.sha256(key).hexdigest())
            d.addCallback(self._located, conn, message)
            d.addErrback(self._locate_failed, conn, message)
            return
        if leg is None:
            self._no_call_to_attach(conn, message)
            return
        calls[message.call] = leg
        leg.reattach(conn, message.call)
        self.logger.event(leg.call_id, "client-attached", peer="%s:%s" % _peer(conn))

    def _no_call_to_attach(self, conn, message) -> None:
        self.log.info("attach refused: user {user} peer {peer}: no call with that key",
                      user=conn.username, peer=_peer(conn))
        conn.send(m.Disconnected(call=message.call, cause="network-error",
                                 text="no call to attach"))

    def _located(self, node: dict | None, conn, message) -> None:
        """The call is held by call server ``node`` (a row of the call-servers table): the
        client goes there, on the same framing, and attaches again."""
        where = (node or {}).get("listeners", {}).get(conn.framing)
        if node is None or node["name"] == self.node or not where:
            self._no_call_to_attach(conn, message)
            return
        self.log.info("attach: user {user} peer {peer}: the call is held by call server "
                      "{node}: redirected", user=conn.username, peer=_peer(conn),
                      node=node["name"])
        conn.send(m.Redirect(address=where[0], port=int(where[1]),
                             text=f"call server {node['name']} holds the call"))

    def _locate_failed(self, failure, conn, message) -> None:
        self.log.warn("attach: user {user} peer {peer}: finding the call server holding the "
                      "call failed: {why}", user=conn.username, peer=_peer(conn),
                      why=failure.getErrorMessage())
        self._no_call_to_attach(conn, message)

    def _leg_of_live_session(self, conn, key: bytes):
        """A call still held by another live session of the same user (its loss not yet
        noticed): it moves to ``conn``."""
        for other, calls in list(self.sessions.values()):
            if other is conn or other.username != conn.username:
                continue
            for call, leg in list(calls.items()):
                if leg.key is not None and hmac.compare_digest(bytes(leg.key), key) and \
                        not leg.released:
                    del calls[call]
                    return leg
        return None

    # -- calls --------------------------------------------------------------------------------
    def _call(self, conn, calls: dict, message) -> None:
        existing = calls.get(message.call)
        if existing is not None and not existing.released:
            conn.send(m.Error(code=ErrorCode.CALL_EXISTS, text="call id in use",
                              call=message.call, re="call"))
            return
        if len(calls) > 16:
            for key in [k for k, leg in calls.items() if leg.released]:
                del calls[key]
        call_id = self._id_prefix + format(next(self._ids), "x")
        leg = ClientLeg(conn, message.call, message.mode, message.codecs, call_id)
        leg.request_received(message)
        calls[message.call] = leg
        host, port = _peer(conn)
        media = None
        if message.mode == "direct":    # the client's RTP address as callgw sees it (NAT)
            media = ev.MediaDescription(host if host not in ("?", "") else message.address,
                                        message.port,
                                        tuple(message.codecs) if message.codecs
                                        else ("PCMU", "PCMA"))
        tenant = getattr(conn, "tenant", None)
        tenant_name = tenant.get("name") if isinstance(tenant, dict) else (tenant or None)
        user = conn.user
        request = CallRequest(
            call_id=call_id, user=user,
            tenant=tenant_name or user.get("tenant") or "default", number=message.number,
            contact=message.contact, media_mode=message.mode, media=media,
            peer=f"{host}:{port}", requested=self.clock.seconds())
        server = self.balancer.pick()
        if server is None:
            reason = "congestion: call set-ups over the measured load" if \
                self.balancer.congested else "no call server available"
            self.logger.event(request.call_id, "rejected", user=conn.username,
                              reason=reason, peer=request.peer)
            if self.metrics is not None:
                self.metrics.outcome("rejected")
            leg.send(ev.Release(34, reason))
            return
        d = server.launch(request, leg)
        d.addErrback(self._launch_failed, request, leg)

    def _launch_failed(self, failure, request, leg) -> None:
        from callgw.store.errors import StoreUnavailable
        text = "server error"
        if failure.check(StoreUnavailable):     # a cold user's rules during a database fault
            text = f"rules unavailable: {failure.value}"
            self.log.warn("call {call_id} peer {peer}: {text}", call_id=request.call_id,
                          peer=request.peer, text=text)
        else:
            self.log.failure("call {call_id} peer {peer}: launching failed", failure,
                             call_id=request.call_id, peer=request.peer)
        if not leg.released:
            leg.send(ev.Release(41, text))


def _no_delay(conn) -> None:
    """Call status messages are small and come in bursts (trying, ringing, connected): on a
    stream framing, Nagle's algorithm against the client's delayed ACK would hold each second
    message about 40 ms. Turn it off where the transport allows."""
    transport = getattr(getattr(conn, "writer", None), "transport", None)
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except OSError:
            pass


def _peer(conn) -> tuple:
    peer = getattr(conn, "peer", None) or ("?", 0)
    return peer[0], peer[1]
