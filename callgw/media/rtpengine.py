"""rtpengine as the media backend of direct-mode calls: the ng client and one session per call.

Owned by the media issue (issue 16, item 3; docs/media.md, "rtpengine as the media backend").
With ``[media] backend = "rtpengine"`` the call server gives every direct-mode call a
``RtpengineSession`` (an ``IAnchoredMedia``) instead of letting its media pass untouched: the
handler anchors the client's offer (``anchor("a", ...)``: an ng ``offer``, whose rewritten SDP
is the address the gateway is sent), then the gateway's answer (``anchor("b", ...)``: an ng
``answer``, whose SDP is the address the client gets in ``connected``); ``close`` sends
``delete`` and fires with rtpengine's statistics for the CDR (``stats.media``, mode
``rtpengine``). Relayed-mode calls keep the built-in relay (rtpengine does not speak the
client protocol's media frames).

While the call is up (from the first anchored answer of ``b``) the session asks rtpengine for
the call's figures with an ng ``query`` every ``poll_interval`` seconds on the injected clock
(at most a quarter of ``inactivity_timeout``), one query at a time, the next one scheduled when
the last one is answered or failed, and none after ``close``. ``statistics()`` then gives the
last figures in the relay's keys (per direction ``packets``, ``octets``, ``lost``, ``loss``,
``jitter_ms``, ``mos``; the last four None unless rtpengine derived them from RTCP); a failed
query is one log line and keeps the figures it had. ``liveness()`` says ``media inactive``
once rtpengine's packet counters of both directions stood still for ``inactivity_timeout``
seconds, unless the call is held (``hold``) or was resumed less than that long ago.

``NgClient`` is the thin Twisted adapter over ``protocols.ng.codec``: one UDP socket, a
Deferred per request, retransmission with the same cookie every ``timeout`` seconds
(rtpengine answers a duplicate with its first reply) and a clear failure after ``retries``.
A reply that is malformed, or matches no request, is logged in one line and dropped.

Tests: tests/media/test_media_rtpengine.py (a real userspace rtpengine), tests/media/
test_ng_codec.py (the codec and this adapter over a fake transport and clock).
"""
from __future__ import annotations

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver import events as ev
from callgw.interfaces import IAnchoredMedia
from protocols.ng import codec as ng
from protocols.sip import sdp as sdplib

#: The call's roles as ng tags: ``a`` sent the Setup (the client, the offerer), ``b`` places it.
TAGS = {"a": "a", "b": "b"}


def parse_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (the ``[media] rtpengine`` setting) as ``(host, port)``."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected \"HOST:PORT\" for rtpengine's ng address, got {text!r}")
    return host.strip("[]"), int(port)


class NgClient(DatagramProtocol):
    """Requests to one rtpengine over its ng UDP port (see the module docstring)."""

    log = Logger()

    def __init__(self, reactor, address: tuple[str, int], timeout: float = 1.0,
                 retries: int = 3, clock=None):
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self.codec = ng.NgCodec()
        self.pending: dict[bytes, list] = {}    # cookie -> [Deferred, datagram, tries, timer]
        self.port = None
        self.dropped = 0

    def command(self, message: dict) -> Deferred:
        """Send ``message``; fires with rtpengine's reply dictionary (``NgError`` when it
        answered an error, or never answered)."""
        if self.port is None:
            self.port = self.reactor.listenUDP(0, self, interface=self.address[0])
        cookie, datagram = self.codec.request(message)
        d = Deferred()
        self.pending[cookie] = [d, datagram, 0, None]
        self._send(cookie)
        return d.addCallback(ng.result)

    def _send(self, cookie: bytes) -> None:
        entry = self.pending.get(cookie)
        if entry is None:
            return
        d, datagram, tries, _ = entry
        if tries > self.retries:
            del self.pending[cookie]
            d.errback(ng.NgError(f"no answer from rtpengine at {self._peer()} after "
                                 f"{tries} tries"))
            return
        entry[2] = tries + 1
        entry[3] = self.clock.callLater(self.timeout, self._send, cookie)
        self.transport.write(datagram, self.address)

    def datagramReceived(self, datagram: bytes, addr) -> None:
        try:
            cookie, reply = self.codec.reply(datagram)
        except ng.NgError as exc:
            self.dropped += 1
            self.log.warn("rtpengine peer {peer}: malformed ng reply dropped: {reason}",
                          peer=f"{addr[0]}:{addr[1]}", reason=exc)
            return
        entry = self.pending.pop(cookie, None)
        if entry is None:
            self.dropped += 1       # a late duplicate of a reply already taken
            return
        if entry[3] is not None and entry[3].active():
            entry[3].cancel()
        entry[0].callback(reply)

    def close(self):
        """Fail what is pending and close the socket."""
        pending, self.pending = self.pending, {}
        for d, _, _, timer in pending.values():
            if timer is not None and timer.active():
                timer.cancel()
            d.errback(ng.NgError("the rtpengine client closed"))
        port, self.port = self.port, None
        return port.stopListening() if port is not None else succeed(None)

    def _peer(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"


class Rtpengine:
    """The rtpengine backend of one process: its ng client and the per-call sessions."""

    def __init__(self, reactor, address: tuple[str, int], timeout: float = 1.0, clock=None,
                 inactivity_timeout: float = 30.0, poll_interval: float = 5.0):
        self.client = NgClient(reactor, address, timeout=timeout, clock=clock)
        self.clock = clock if clock is not None else reactor
        self.inactivity_timeout = float(inactivity_timeout)
        limits = [float(poll_interval)] + ([self.inactivity_timeout / 4.0]
                                           if self.inactivity_timeout else [])
        self.poll_interval = max(0.05, min(limits))
        self.sessions: dict[str, RtpengineSession] = {}

    def session(self, call_id: str) -> "RtpengineSession":
        """The media session of a new direct-mode call (the call server's anchor factory)."""
        return RtpengineSession(self, call_id)

    def close(self):
        """Delete every call still anchored, then close the client; fires with
        ``{call_id: final statistics}``."""
        sessions = list(self.sessions.values())
        d = gatherResults([s.close() for s in sessions])
        d.addCallback(lambda finals: dict(zip((s.call_id for s in sessions), finals)))

        def closed(finals):
            return self.client.close().addCallback(lambda _: finals)
        return d.addCallback(closed)


@implementer(IAnchoredMedia)
class RtpengineSession:
    """One direct-mode call anchored in rtpengine (``a`` offers, ``b`` answers)."""

    log = Logger()

    def __init__(self, owner: Rtpengine, call_id: str):
        self.owner = owner
        self.call_id = call_id
        self.anchored = False
        self.closed = False
        self.final: dict = {}
        self.live: dict = {}            # the last query's figures
        self.queries = self.queries_failed = 0
        self.inactive: str | None = None
        self.holders: set[str] = set()  # who holds the call: "client", "gateway"
        self.resumed_at: float | None = None
        self._chain = succeed(None)     # one ng request at a time, answered in order
        self._poll = None               # the next query's timer (None: not polling)
        self._packets: int | None = None
        self._moved_at: float | None = None     # when the counters last grew

    # -- IAnchoredMedia --------------------------------------------------------------------------
    def anchor(self, side, media):
        """``side``'s media is ``media``: ``a`` is offered, ``b`` answers; fires with the
        ``MediaDescription`` (rtpengine's address) to give the other side."""
        if self.closed:
            return fail(ng.NgError("the call's rtpengine session is closed"))
        sdp = sdplib.make_offer(media.address, media.port, media.codecs or ("PCMU",),
                                media.telephone_event, media.ptime, media.direction)
        if side == "a":
            message = ng.offer(self.call_id, TAGS["a"], sdp)
            self.owner.sessions[self.call_id] = self
        else:
            message = ng.answer(self.call_id, TAGS["a"], TAGS["b"], sdp)
        result = Deferred()

        def run(_):
            d = self.owner.client.command(message)
            d.addCallback(self._offered if side == "a" else self._answered)
            d.addCallback(lambda reply: _media(reply, media))
            d.chainDeferred(result)         # the chain goes on; result has any failure
        self._chain.addCallback(run)
        return result

    def allocate(self, side):
        return fail(ng.NgError("rtpengine anchors direct-mode media only: no relay-mode ports"))

    def connect(self, side, media):
        self.anchor(side, media).addErrback(self._failed, f"connecting side {side}")

    def statistics(self) -> dict:
        """The final figures after ``close``; before, those of the last ``query``."""
        return dict(self.final or self.live)

    def hold(self, on: bool, by: str = "client") -> None:
        """``by`` (the client or the gateway) held the call, or resumed it: silence is expected
        while either holds it and for ``inactivity_timeout`` seconds after the last resume."""
        if on:
            self.holders.add(by)
            return
        self.holders.discard(by)
        if not self.holders:
            self.resumed_at = self.owner.clock.seconds()

    def close(self):
        if self.closed:
            return succeed(self.statistics())
        self.closed = True
        if self._poll is not None and self._poll.active():
            self._poll.cancel()
        self._poll = None
        result = Deferred()

        def run(_):
            if not self.anchored:           # rtpengine never took the offer: nothing to delete
                self.owner.sessions.pop(self.call_id, None)
                result.callback({})
                return
            d = self.owner.client.command(ng.delete(self.call_id, TAGS["a"]))
            d.addCallbacks(self._deleted, self._delete_failed)
            d.chainDeferred(result)
        self._chain.addCallback(run)
        return result

    def liveness(self) -> str | None:
        """None while rtpengine's counters grow (or silence is expected); the reason once
        both directions stood still for ``inactivity_timeout`` seconds."""
        return self.inactive

    def attach_client(self, deliver, codec="PCMU", ptime=20):
        raise NotImplementedError("relayed-mode media stays with the built-in relay")

    def client_frame(self, payload, sequence, timestamp):
        raise NotImplementedError("relayed-mode media stays with the built-in relay")

    def send_dtmf(self, digit, duration_ms):
        return fail(NotImplementedError("direct-mode DTMF goes through the native leg"))

    # -- helpers ----------------------------------------------------------------------------------
    def _offered(self, reply: dict) -> dict:
        self.anchored = True
        return reply

    def _answered(self, reply: dict) -> dict:
        if self._poll is None and not self.closed:      # the first answer: media may flow
            self._moved_at = self.owner.clock.seconds()
            self._schedule()
        return reply

    # -- live figures: one ng query at a time -----------------------------------------------------
    def _schedule(self) -> None:
        self._poll = self.owner.clock.callLater(self.owner.poll_interval, self._query)

    def _query(self) -> None:
        if self.closed:
            return
        d = self.owner.client.command(ng.query(self.call_id))
        d.addCallbacks(self._queried, self._query_failed)
        d.addErrback(self._failed, "reading a query reply")
        d.addBoth(lambda _: None if self.closed else self._schedule())

    def _queried(self, reply: dict) -> None:
        if self.closed:
            return
        self.queries += 1
        self.live = _figures(reply, self.owner.client._peer())
        self._watch(self.owner.clock.seconds())

    def _query_failed(self, failure) -> None:
        if self.closed:
            return
        self.queries_failed += 1
        self.log.warn("call {call_id} peer {peer}: rtpengine query failed, keeping the last "
                      "figures: {reason}", call_id=self.call_id,
                      peer=self.owner.client._peer(), reason=failure.getErrorMessage())

    def _watch(self, now: float) -> None:
        """Both directions' packet counters against the inactivity timeout."""
        packets = sum(self.live.get(d, {}).get("packets", 0)
                      for d in ("client_to_gateway", "gateway_to_client"))
        if self._packets is None or packets > self._packets:
            self._packets, self._moved_at = packets, now
            return
        timeout = self.owner.inactivity_timeout
        resumed = self.resumed_at
        if not timeout or self.inactive is not None or self.holders or (
                resumed is not None and now - resumed < timeout):
            return
        idle = now - max(self._moved_at, resumed or self._moved_at)
        if idle >= timeout:
            self.inactive = f"media inactive: nothing from either side for {idle:.1f} s"
            self.log.info("call {call_id} peer {peer}: {reason} (rtpengine's counters)",
                          call_id=self.call_id, peer=self.owner.client._peer(),
                          reason=self.inactive)

    def _deleted(self, reply) -> dict:
        self.owner.sessions.pop(self.call_id, None)
        self.final = _figures(reply, self.owner.client._peer())
        return self.statistics()

    def _delete_failed(self, failure) -> dict:
        self.owner.sessions.pop(self.call_id, None)
        self._failed(failure, "delete")
        self.final = dict(self.live, mode="rtpengine", rtpengine=self.owner.client._peer(),
                          error=str(failure.value))     # the last query's figures, if any
        return self.statistics()

    def _failed(self, failure, what: str) -> None:
        self.log.failure("call {call_id} peer {peer}: rtpengine {what}", failure,
                         call_id=self.call_id, peer=self.owner.client._peer(), what=what)


def _direction(side: dict) -> dict:
    """What rtpengine received from one side, in the relay's keys (``callgw.media.quality``):
    ``loss``/``jitter_ms``/``mos`` come only from rtpengine's RTCP-derived SSRC figures."""
    rtp, quality = side.get("rtp", {}), side.get("quality")
    out = {"packets": rtp.get("packets", 0), "octets": rtp.get("bytes", 0),
           "errors": rtp.get("errors", 0), "ssrc": side.get("ssrc"),
           "lost": None, "loss": None, "jitter_ms": None, "mos": None}
    if quality:
        out.update(loss=quality["loss"], jitter_ms=quality["jitter_ms"], mos=quality["mos"],
                   rtt_ms=quality["rtt_ms"])
    return out


def _figures(reply: dict, peer: str) -> dict:
    """A ``query`` or ``delete`` reply as the call's media statistics."""
    stats = ng.media_stats(reply)
    tags = stats["tags"]
    a, b = tags.get(TAGS["a"], {}), tags.get(TAGS["b"], {})
    return {"mode": "rtpengine", "rtpengine": peer,
            "client_to_gateway": _direction(a), "gateway_to_client": _direction(b),
            "client_rtcp": a.get("rtcp", {}), "gateway_rtcp": b.get("rtcp", {}),
            "client": a.get("endpoint"), "gateway": b.get("endpoint"),
            "latched": {"client": a.get("endpoint"), "gateway": b.get("endpoint")},
            "local": {"client": a.get("local"), "gateway": b.get("local")},
            "totals": stats["totals"]}


def _media(reply: dict, original) -> "ev.MediaDescription":
    """rtpengine's rewritten SDP as the MediaDescription to give the other side."""
    sdp = reply.get("sdp")
    if not isinstance(sdp, bytes):
        raise ng.NgError("rtpengine's reply has no SDP")
    try:
        m = sdplib.media_from_sdp(sdp)
    except sdplib.SdpError as exc:
        raise ng.NgError(f"rtpengine's SDP: {exc}") from None
    return ev.MediaDescription(m["address"], m["port"], tuple(m["codecs"]) or original.codecs,
                               m.get("telephone_event"), m.get("ptime") or original.ptime,
                               m.get("direction") or original.direction)
