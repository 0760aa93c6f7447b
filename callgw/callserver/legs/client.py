"""The client leg: neutral call events <-> client-protocol messages on one ClientConnection.

Owned by the call path. A ``ClientLeg`` is one call of one client session (the listeners'
``ClientConnection``: ``send(message)``, ``close(reason)``, ``username``, ``peer``). It
implements ``ICallLeg`` (name ``"client"``) and is direction-free: for an outbound call it
reports the client's request as ``Setup`` (built by the front end) and turns the other leg's
``Proceeding``/``Alerting``/``Connect``/``Release`` into ``trying``/``ringing``/``connected``/
``disconnected``; client commands (``hangup``, ``dtmf``, ``hold``, ``resume``) become
``Release``/``Dtmf``/``Hold``. As the called side (leg b of an inbound call) it turns ``Setup``
into ``incoming``, the client's ``answer`` into ``Connect`` (its RTP address in direct mode)
and ``reject`` into ``Release``. Every message sent or received is reported as a ``Trace``.

Relay mode: ``connected`` carries a fresh 16-byte per-call media key (the media issue checks it
on media frames); direct mode: the gateway's RTP address from ``Connect.media``.

Causes: the client protocol's block of ``callgw.causes`` maps Q.850 cause values to the
``disconnected`` causes (protocols/client/messages.py ``CAUSES``) and back for ``reject``.

Tests: tests/callpath/test_frontend.py (fake connections: what the client is sent) and
tests/callpath/test_sipp_calls.py (real calls through sipp).
"""
from __future__ import annotations

import hashlib
import os

from twisted.logger import Logger
from zope.interface import implementer

from callgw import causes
from callgw.callserver import events as ev
from callgw.interfaces import ICallLeg
from protocols.client import messages as m

CLIENT_CAUSES = causes.Q850_TO_CLIENT
Q850_OF_CLIENT = causes.CLIENT_TO_Q850
client_cause = causes.client_cause


@implementer(ICallLeg)
class ClientLeg:
    """One call on a client session."""

    log = Logger()
    name = "client"
    __slots__ = ("conn", "call", "mode", "codec", "sink", "key", "released", "gone", "_trying",
                 "media", "relay", "_incoming", "detached", "remote", "call_id", "_early")

    def __init__(self, conn, call: str, mode: str = "relay", codecs=None, call_id: str = ""):
        self.conn = conn
        self.call = call
        self.call_id = call_id  # the call path's id of the call (events, CDR)
        self.mode = mode
        # relayed mode: the client's media frames carry its first G.711 choice (PCMU default)
        self.codec = next((c for c in codecs or () if c in ("PCMU", "PCMA")), "PCMU")
        self.sink = None
        self.key: bytes | None = None
        self.released = False
        self.gone: str | None = None
        self._trying = False
        self.media = None       # relay mode: the call's CallMediaSession (callgw.callserver.media)
        self.relay = None       # direct mode: relay(leg) moves the call's media to the relay
        self._incoming = False  # this leg was sent a Setup (it is the called side)
        self.detached = False   # the session was lost; the call waits for an attach
        self.remote = None      # direct mode: the far end's media, for a re-attach
        self._early: list = []  # traces before the handler attached (the call request)

    # -- ICallLeg -----------------------------------------------------------------------------
    def attach(self, sink) -> None:
        self.sink = sink
        early, self._early = self._early, []
        for trace in early:                     # the request that made the call, first
            sink(self, trace)

    def request_received(self, message) -> None:
        """The client's request that made this call (``call``): the first message of the
        call's ladder, reported once the handler attaches."""
        self._trace("in", f"{message.command} {message.number or message.contact or ''}"
                    f" ({message.mode})")

    def send(self, event) -> None:
        kind = type(event)
        if self.released:
            return
        if kind is ev.Proceeding:
            if not self._trying:
                self._trying = True
                self._out(m.Trying(call=self.call))
        elif kind is ev.Alerting:
            self._out(m.Ringing(call=self.call))
        elif kind is ev.Connect:
            self._connected(event)
        elif kind is ev.Release:
            self.released = True
            self._out(m.Disconnected(call=self.call, cause=client_cause(event.cause),
                                     q850=event.cause if 1 <= event.cause <= 127 else None,
                                     text=_text(event.text)))
        elif kind is ev.Hold:
            if self.media is not None:
                self.media.hold(event.on, by="gateway")     # its silence is expected too
            self._out(m.Status(info="remote-held" if event.on else "remote-resumed",
                               call=self.call))
        elif kind is ev.Dtmf:
            self._out(m.Status(info="dtmf", call=self.call, text=event.digit))
        elif kind is ev.DtmfResult and not event.delivered:
            self._out(m.Status(info="dtmf-failed", call=self.call,
                               text=_text(f"{event.digit}: {event.text}")))
        elif kind is ev.MediaAnswer and self.media is not None:
            moved = self.mode == "direct"   # the gateway took the relay: media frames now
            self.media.gateway_answered(event.media, moved)
            if moved:
                self.mode = "relay"
                self._connected(ev.Connect(None))
        elif kind is ev.Setup:
            self._incoming = True
            codecs = event.media.codecs if event.media is not None else None
            self._out(m.Incoming(call=self.call, caller=None if event.privacy else event.caller,
                                 number=event.target, codecs=codecs))

    def close(self) -> None:
        self.released = True
        self.sink = None

    def recovery(self) -> None:
        """Nothing: a client session does not outlive callgw's process."""
        return None

    def use_media(self, session) -> None:
        """Relay mode: ``session`` (the call's ``CallMediaSession``) carries this call's media
        frames, DTMF and hold from now on."""
        self.media = session

    def use_relay(self, move) -> None:
        """Direct mode: ``move(leg)`` moves the call's media to the relay when the client says
        no media reached it."""
        self.relay = move

    # -- what the front end hands over --------------------------------------------------------
    def from_client(self, message) -> None:
        """A call command from the client for this call."""
        self._trace("in", message.command)
        if self.released or self.sink is None:
            return
        kind = type(message)
        if kind is m.Hangup:
            self._out(m.Disconnected(call=self.call, cause="normal", q850=16, text="hung up"))
            self.released = True
            self.sink(self, ev.Release(16, "client hung up"))
        elif kind is m.Dtmf:
            for digit in message.digits:
                if self.media is not None and self.key is not None and \
                        self.media.carries_dtmf():
                    self.media.dtmf(digit, message.duration or 100)     # RFC 4733 in the relay
                else:
                    self.sink(self, ev.Dtmf(digit, message.duration or 100))
        elif kind is m.Answer and self._incoming:
            self._incoming = False          # the called client answers: Connect, its media
            self.mode = message.mode
            media = None
            if message.mode == "direct" and message.address and message.port:
                media = ev.MediaDescription(message.address, message.port,
                                            tuple(message.codecs or ("PCMU", "PCMA")))
            self.sink(self, ev.Connect(media))
            if media is None:
                self._connected(ev.Connect(None))   # relay: the key for its media frames
        elif kind is m.Answer and message.mode == "relay" and self.mode == "direct":
            if self.relay is not None and self.key is None:
                self.relay(self)        # no media reached the client: re-INVITE via the relay
        elif kind is m.Hold or kind is m.Resume:
            if self.media is not None:
                self.media.hold(kind is m.Hold)     # no inactivity reaping while held
            self.sink(self, ev.Hold(kind is m.Hold))
        elif kind is m.Reject:
            self.released = True
            cause = Q850_OF_CLIENT.get(message.cause or "busy", 17)
            self.sink(self, ev.Release(cause, "client rejected"))

    def client_gone(self, reason: str, cause: int = 41, text: str | None = None) -> None:
        """The session ended under the call (closed, expired without pings, shutdown)."""
        self.gone = reason or "session closed"
        if not self.released and self.sink is not None:
            self.released = True
            self.sink(self, ev.Release(cause, text or f"client vanished: {self.gone}"))

    def refuse(self, code: int, text: str) -> None:
        """The director refused the call: ``unauthorized`` with its reason."""
        self.released = True
        self._out(m.Unauthorized(code=code, text=_text(text), call=self.call))

    def statistics(self):
        """Nothing of its own for the CDR (the media statistics come from the relay)."""
        return None

    def liveness(self) -> str | None:
        """None while the client session lives (or, detached, may still come back); the
        reason once it is gone."""
        if self.gone:
            return "client vanished: " + self.gone
        if self.conn.closed and not self.detached:
            return "client vanished: session closed"
        return None

    # -- re-attach (docs/protocol.md, "Re-attach after a lost session") ------------------------
    def detach(self) -> None:
        """The session holding this answered call was lost: keep the call, silence to the
        gateway (relay), wait for ``reattach``."""
        self.detached = True
        self._trace("out", "detached (session lost)")
        if self.media is not None:
            self.media.client_detached()

    def reattach(self, conn, call: str) -> None:
        """The user's client is back on ``conn`` as ``call``: a fresh ``connected`` (relay: a
        new key, the old one retired)."""
        self.conn = conn
        self.call = call
        self.detached = False
        self._trace("in", "attach")
        if self.media is not None:
            self.media.client_reattached(self)
        self._connected(ev.Connect(self.remote))

    # -- helpers ------------------------------------------------------------------------------
    def _connected(self, event) -> None:
        media = event.media
        self.remote = media
        if self.mode == "direct" and media is not None:
            message = m.Connected(call=self.call, address=media.address, port=media.port,
                                  codec=media.codecs[0] if media.codecs else None)
        else:
            self.key = os.urandom(16)
            if self.sink is not None:   # where a client coming back on another node is sent
                self.sink(self, ev.AttachKey(hashlib.sha256(self.key).hexdigest()))
            if self.media is not None:
                self.media.client_connected(self)
            message = m.Connected(call=self.call, key=self.key, codec=self.codec)
        self._out(message)

    def _out(self, message) -> None:
        self._trace("out", message.command)
        try:
            self.conn.send(message)
        except Exception:
            self.log.failure("call {call} peer {peer}: sending {cmd}", call=self.call,
                             peer=getattr(self.conn, "peer", None), cmd=message.command)

    def _trace(self, direction: str, summary: str) -> None:
        trace = ev.Trace("client", direction, summary)
        if self.sink is not None:
            self.sink(self, trace)
        elif len(self._early) < 8:
            self._early.append(trace)


def _text(text: str | None) -> str | None:
    if not text:
        return None
    return "".join(c if c >= " " else " " for c in text)[:256]
