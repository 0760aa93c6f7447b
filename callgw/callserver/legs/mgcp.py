"""The MGCP call slave: one call through one endpoint of an MGCP gateway, as an ``ICallLeg``.

callgw is the gateway's call agent (RFC 3435); the leg drives one endpoint through the
provider's ``protocols.mgcp.adapter.CallAgentEndpoint`` (``callgw.callserver.legs.mgcp_provider``)
and speaks the neutral events of ``callgw.callserver.events`` to the call handler:

- **lines** ``aaln/...`` (RFC 3660 line package): ``send(Setup)`` creates a connection (CRCX,
  ``M: recvonly``, callgw's SDP from ``Setup.media``: the relay's port in relay mode, the
  client's own RTP address in direct mode); its 200 is ``Proceeding``; the line rings with an
  RQNT ``S: L/rg`` asking for ``R: L/hd`` and its 200 is ``Alerting``; the gateway's
  ``NTFY O: L/hd`` (off-hook) is the answer: MDCX to ``sendrecv``, an RQNT for ``L/hu``, and
  ``Connect`` with the gateway's SDP; a later ``NTFY O: L/hu`` (on-hook) is the far end hanging
  up: DLCX and ``Release(16)``. Released before the answer, the leg stops the ringing with an
  empty RQNT and deletes the connection;
- **bridges** ``rtpbridge/...`` (media gateways such as osmo-mgw, whose signalling lives
  elsewhere): ``Connect`` as soon as the CRCX 200 brings the gateway's SDP; no number is
  carried anywhere;
- ``send(Hold)``, ``send(MediaOffer)`` (the move from direct to relayed media) and
  ``send(MediaAnswer)`` (after a CRCX made without our SDP) become an MDCX, always with a
  session description (osmo-mgw answers 527 without one); its answer comes back as
  ``MediaAnswer``; ``send(Dtmf)`` is an RQNT playing the RFC 3660 ``D/<digit>`` signal when the
  gateway's ``dtmf`` is ``signal`` (lines by default), and left to RFC 4733 in the media path
  otherwise (bridges);
- ``send(Release)`` deletes the connection (DLCX); the ``P:`` statistics of its answer (or of
  the gateway's own DLCX) are ``statistics()`` for the CDR; a return code that refuses the
  call and the reason code of a gateway's DLCX become Q.850 causes through ``callgw.causes``;
  a command the gateway never answers fails the call before the answer with cause 102 (the
  handler fails over) and, after it, makes ``liveness()`` report the gateway gone;
- the provider tells the leg what RSIP did to its endpoint (``endpoint_lost``), what the audit
  after a ``disconnected`` RSIP found (``connection_lost``) and what the gateway notified
  (``notified``); every MGCP message of the call is reported to the sink as a ``Trace``.

Tests: tests/mgcp/test_leg.py (the fixture gateway, end to end through callgw),
tests/mgcp/test_mgcp_calls.py (osmo-mgw, a call from callgw-dial with the tone heard).
"""
from __future__ import annotations

import uuid

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from callgw import causes
from callgw.callserver.events import (Alerting, Connect, Dtmf, Hold, MediaAnswer,
                                      MediaDescription, MediaOffer, Proceeding, Release, Setup,
                                      Trace)
from callgw.interfaces import ICallLeg
from protocols.mgcp.endpoint import EndpointName
from protocols.mgcp.message import Command, summary
from protocols.mgcp.params import parse_connection_parameters
from protocols.sip import sdp as sdplib

log = Logger(namespace="callgw.mgcp.leg")

LINE, BRIDGE, TRUNK = "line", "bridge", "trunk"
_KINDS = {"aaln": LINE, "rtpbridge": BRIDGE, "ds": TRUNK}
#: Seconds ``statistics()`` waits for the DLCX answer before the CDR goes without it (below
#: the provider's ``shutdown_grace``, so calls released at shutdown keep their statistics).
STATS_WAIT = 0.8


def endpoint_kind(name: EndpointName) -> str | None:
    """``line`` (aaln/), ``bridge`` (rtpbridge/), ``trunk`` (ds/) or None."""
    return _KINDS.get(name.local[0].lower()) if name.local else None


def _local_options(media: MediaDescription | None) -> str:
    if media is None:
        return "p:20, a:PCMU"
    return f"p:{media.ptime}, a:{(media.codecs or ('PCMU',))[0]}"


@implementer(ICallLeg)
class MgcpLeg:
    """One call on one endpoint of ``gateway`` (the provider's gateway record: ``name``,
    ``dtmf``). ``requested`` is the endpoint name the CRCX goes to (specific, or the
    gateway's "any" wildcard); ``channel`` is the provider (``command``, ``respond``,
    ``bind``, ``unbind``); ``clock`` an IReactorTime."""

    name = "mgcp"

    def __init__(self, channel, gateway, requested: EndpointName, clock):
        self.channel = channel
        self.gateway = gateway
        self.requested = requested
        self.kind = endpoint_kind(requested)
        self.clock = clock
        self.sink = None
        self.state = "idle"          # idle, creating, ringing, connected, released
        self.call_id = None
        self.mgcp_call_id = uuid.uuid4().hex.upper()
        self.endpoint: str | None = None        # the specific name, once known
        self.connection_id: str | None = None
        self.request_id: str | None = None
        self.local_media: MediaDescription | None = None
        self.remote_media: MediaDescription | None = None
        self.sdp_version = 1
        self._requests = 0
        self._gone: str | None = None
        self._stats: dict | None = None
        self._stats_known = False
        self._stats_waiting: list = []
        self._deleting = False

    # ---- ICallLeg ----
    def attach(self, sink):
        """Deliver this leg's events to ``sink(leg, event)`` from now on."""
        self.sink = sink

    def send(self, event):
        """Act on a neutral event from the other leg; failures come back as ``Release``."""
        try:
            kind = type(event)
            if kind is Setup:
                self._setup(event)
            elif kind is Release:
                self._release(event)
            elif kind is Hold:
                self._modify("recvonly" if event.on else "sendrecv",
                             "sendonly" if event.on else None, answer=True)
            elif kind is MediaOffer or kind is MediaAnswer:
                self.local_media = event.media
                self._modify("sendrecv", None, answer=kind is MediaOffer)
            elif kind is Dtmf:
                self._dtmf(event)
            else:
                log.debug("MGCP leg ignores {event!r}", event=event)
        except Exception:  # noqa: BLE001 - ICallLeg.send never raises for a protocol reason
            log.failure("MGCP leg failed on {event!r} for {call_id}", event=event,
                        call_id=self.call_id)
            self._fail(causes.TEMPORARY_FAILURE, "local failure")

    def close(self):
        """Nothing outlives the call but the DLCX in flight, which finishes on its own."""
        if self.state != "released":
            self.state = "released"
            self.channel.unbind(self)
            self._stats_ready(None)

    def liveness(self):
        """None while the gateway keeps the connection; the reason once it is gone (the
        gateway deleted it, restarted, lost it, or stopped answering)."""
        return self._gone

    def recovery(self):
        """The connection, for a DLCX from the next start should this process die
        (``MgcpLegProvider.release_orphan``); None before answer."""
        if self.state != "connected" or self.connection_id is None:
            return None
        return {"protocol": "mgcp", "gateway": self.gateway.name, "endpoint": self.endpoint,
                "connection_id": self.connection_id, "call_id": self.mgcp_call_id}

    def statistics(self):
        """Fires with the connection's statistics (the DLCX answer's ``P:``: packets, octets,
        loss, jitter, latency, with the endpoint and connection id) or None; waits at most
        ``STATS_WAIT`` seconds for a DLCX still in flight."""
        if self._stats_known:
            return defer.succeed(self._stats)
        if self.connection_id is None and self.state != "creating":
            return defer.succeed(None)
        d = defer.Deferred()
        timer = self.clock.callLater(STATS_WAIT, self._stats_timeout, d)
        self._stats_waiting.append((d, timer))
        return d

    # ---- outgoing ----
    def _setup(self, setup: Setup):
        if self.state != "idle":
            raise ValueError("Setup on a leg that is not idle")
        self.call_id = setup.call_id
        self.local_media = setup.media
        self.state = "creating"
        params = [("C", self.mgcp_call_id), ("L", _local_options(setup.media)),
                  ("M", "recvonly" if self.kind == LINE else "sendrecv")]
        d = self._command(Command("CRCX", 0, str(self.requested), tuple(params), self._sdp()))
        d.addCallbacks(self._created, self._crcx_failed)
        d.addErrback(self._bug, "CRCX")

    def _sdp(self, direction=None):
        media = self.local_media
        if media is None:
            return None
        self.sdp_version += 1
        return sdplib.make_offer(media.address, media.port, list(media.codecs),
                                 media.telephone_event, media.ptime,
                                 direction or media.direction,
                                 int(self.mgcp_call_id[:8], 16), self.sdp_version)

    def _command(self, command: Command):
        return self.channel.command(self, self.gateway.name, command)

    def _next_request(self) -> str:
        self._requests += 1
        self.request_id = f"{self.mgcp_call_id[:12]}{self._requests:04X}"
        return self.request_id

    def _rqnt(self, requested: str, signals: str | None = None):
        params = [("X", self._next_request()), ("R", requested)]
        if signals is not None:
            params.append(("S", signals))
        return self._command(Command("RQNT", 0, self.endpoint, tuple(params)))

    def _modify(self, mode: str, direction: str | None, answer: bool):
        """MDCX to ``mode`` with our SDP; ``answer``: its answer goes to the other leg as
        ``MediaAnswer`` (for Hold and MediaOffer)."""
        if self.state != "connected" or self.connection_id is None:
            return
        params = (("C", self.mgcp_call_id), ("I", self.connection_id), ("M", mode))
        d = self._command(Command("MDCX", 0, self.endpoint, params, self._sdp(direction)))
        d.addCallbacks(self._modified, self._failed_while_connected, callbackArgs=(answer,),
                       errbackArgs=("MDCX",))
        d.addErrback(self._bug, "MDCX")

    def _dtmf(self, event: Dtmf):
        if self.state != "connected" or self.gateway.dtmf != "signal":
            log.debug("DTMF {digit} for {call_id}: carried by RFC 4733 in the media path",
                      digit=event.digit, call_id=self.call_id)
            return
        requested = "L/hu(N)" if self.kind == LINE else ""
        d = self._rqnt(requested, f"D/{event.digit}")
        d.addCallbacks(self._checked, self._failed_while_connected,
                       callbackArgs=("RQNT D/" + event.digit,), errbackArgs=("RQNT",))
        d.addErrback(self._bug, "RQNT")

    def _release(self, release: Release):
        was, self.state = self.state, "released"
        if was in ("idle", "released"):
            self._stats_ready(self._stats if self._stats_known else None)
            return
        if was == "creating":
            return                      # the CRCX answer, when it comes, is deleted
        if was == "ringing":
            self._stop_ringing()
        self._delete()

    def _stop_ringing(self):
        d = self._rqnt("", "")
        d.addErrback(lambda f: log.info("RQNT stopping the ringing of {endpoint} for {call_id}: "
                                        "{error}", endpoint=self.endpoint, call_id=self.call_id,
                                        error=f.getErrorMessage()))

    def _delete(self):
        if self._deleting or self.connection_id is None:
            return
        self._deleting = True
        params = (("C", self.mgcp_call_id), ("I", self.connection_id))
        d = self._command(Command("DLCX", 0, self.endpoint, params))
        d.addCallbacks(self._deleted, self._delete_failed)
        d.addErrback(self._bug, "DLCX")

    # ---- answers ----
    def _created(self, result):
        response = result.response
        if response.success:
            self.endpoint = result.endpoint
            self.connection_id = response.param("I")
            self.channel.bind(self, EndpointName.parse(self.endpoint))
        if self.state == "released":
            self._delete()              # released while the CRCX was on its way
            if self.connection_id is None:
                self._finished(None)
            return
        if not response.success:
            self._refused(response, "CRCX")
            return
        self.remote_media = self._media(response.sdp)
        if self.remote_media is None and self.local_media is not None:
            self._fail(causes.INTERWORKING, "CRCX answer without a usable session description")
            return
        if self.kind == LINE:
            self.state = "ringing"
            d = self._rqnt("L/hd(N)", "L/rg")
            d.addCallbacks(self._ringing, self._failed_before_answer, errbackArgs=("RQNT",))
            d.addErrback(self._bug, "RQNT")
            self._emit(Proceeding())
            return
        self.state = "connected"
        self._emit(Connect(self.remote_media))

    def _crcx_failed(self, failure):
        failure.trap(Exception)
        self._finished(None)
        if self.state != "released":
            self.state = "released"
            self._emit(Release(causes.RECOVERY_ON_TIMER_EXPIRY,
                               f"gateway {self.gateway.name}: {failure.getErrorMessage()}"))

    def _ringing(self, result):
        if self.state != "ringing":
            return
        if not result.response.success:
            self._refused(result.response, "RQNT")
            return
        self._emit(Alerting())

    def _refused(self, response, verb):
        cause = causes.mgcp_to_q850(response.code)
        self._fail(cause, f"{verb} {response.code} {response.comment}".strip())

    def _failed_before_answer(self, failure, verb):
        failure.trap(Exception)
        if self.state == "released":
            return
        self._gone = f"gateway {self.gateway.name} did not answer {verb}"
        self._fail(causes.RECOVERY_ON_TIMER_EXPIRY, self._gone)

    def _failed_while_connected(self, failure, verb):
        failure.trap(Exception)
        log.info("MGCP {verb} for {call_id} on {endpoint}: {error}", verb=verb,
                 call_id=self.call_id, endpoint=self.endpoint, error=failure.getErrorMessage())
        if self.state == "connected":
            self._gone = f"gateway {self.gateway.name} did not answer {verb}"

    def _checked(self, result, what):
        if not result.response.success:
            log.info("MGCP {what} for {call_id} refused: {code} {comment}", what=what,
                     call_id=self.call_id, code=result.response.code,
                     comment=result.response.comment)

    def _modified(self, result, answer: bool):
        response = result.response
        if self.state != "connected":
            return
        if not response.success:
            self._checked(result, "MDCX")
            return
        media = self._media(response.sdp) or self.remote_media
        self.remote_media = media
        if media is not None and answer:
            self._emit(MediaAnswer(media))

    def _deleted(self, result):
        response = result.response
        stats = None
        if response.success and response.param("P"):
            try:
                stats = parse_connection_parameters(response.param("P"))
            except ValueError as exc:
                log.info("MGCP DLCX answer for {call_id}: bad P: {error}", call_id=self.call_id,
                         error=exc)
        elif not response.success:
            log.info("MGCP DLCX for {call_id} on {endpoint} refused: {code} {comment}",
                     call_id=self.call_id, endpoint=self.endpoint, code=response.code,
                     comment=response.comment)
        self._finished(stats)

    def _delete_failed(self, failure):
        failure.trap(Exception)
        log.info("MGCP DLCX for {call_id} on {endpoint}: {error}", call_id=self.call_id,
                 endpoint=self.endpoint, error=failure.getErrorMessage())
        self._finished(None)

    def _bug(self, failure, verb):
        log.failure("MGCP leg: handling the answer to {verb} for {call_id}", failure, verb=verb,
                    call_id=self.call_id)

    # ---- from the provider ----
    def notified(self, event):
        """The gateway's NTFY for our endpoint (``protocols.mgcp.events.Notified``)."""
        self.channel.respond(event.key, 200)
        if event.request_id != self.request_id:
            log.info("MGCP NTFY for {call_id} with request {got}, not ours ({ours}): ignored",
                     call_id=self.call_id, got=event.request_id, ours=self.request_id)
            return
        offhook = any(e.is_("L", "hd") for e in event.events)
        onhook = any(e.is_("L", "hu") for e in event.events)
        if self.state == "ringing" and offhook:
            self.state = "connected"
            self._modify("sendrecv", None, answer=False)
            d = self._rqnt("L/hu(N)")
            d.addCallbacks(self._checked, self._failed_while_connected,
                           callbackArgs=("RQNT L/hu",), errbackArgs=("RQNT",))
            d.addErrback(self._bug, "RQNT")
            self._emit(Connect(self.remote_media))
        elif self.state in ("ringing", "connected") and onhook:
            self.state = "released"
            self._delete()
            self._emit(Release(causes.NORMAL_CLEARING, "on-hook at the line"))

    def connection_deleted(self, event):
        """The gateway deleted our connection itself (its DLCX, already answered)."""
        self._stats_ready(_stats_dict(self, event.stats))
        self._deleting = True
        self.channel.unbind(self)
        reason = "" if event.reason_code is None else f" (reason {event.reason_code:03d})"
        self._gone = f"gateway {self.gateway.name} deleted the connection{reason}"
        if self.state != "released":
            self.state = "released"
            self._emit(Release(causes.mgcp_reason_to_q850(event.reason_code), self._gone))

    def connection_lost(self, code: int):
        """The audit after an RSIP ``disconnected`` found our connection gone."""
        self._lost(f"gateway {self.gateway.name} lost the connection (AUCX {code})",
                   causes.TEMPORARY_FAILURE)

    def endpoint_lost(self, reason: str, reason_code: int | None):
        """An RSIP (forced, restart, a drained graceful, a failed audit) ended our endpoint's
        connections."""
        self._lost(f"gateway {self.gateway.name}: {reason}",
                   causes.mgcp_reason_to_q850(reason_code))

    def _lost(self, text: str, cause: int):
        self._deleting = True
        self._finished(None)
        self._gone = text
        if self.state != "released":
            self.state = "released"
            self._emit(Release(cause, text))

    def trace(self, direction: str, message):
        """The provider sent or read ``message`` for this call."""
        endpoint = message.endpoint if isinstance(message, Command) else self.endpoint
        self._emit(Trace("mgcp", direction, summary(message),
                         {"call_id": self.call_id, "gateway": self.gateway.name,
                          "endpoint": endpoint or str(self.requested),
                          "mgcp_call_id": self.mgcp_call_id, "tid": message.tid}))

    # ---- helpers ----
    def _media(self, sdp):
        if not sdp:
            return None
        try:
            m = sdplib.media_from_sdp(sdp)
        except sdplib.SdpError as exc:
            log.info("bad SDP from MGCP gateway {gateway} for {call_id}: {error}",
                     gateway=self.gateway.name, call_id=self.call_id, error=exc)
            return None
        return MediaDescription(m["address"], m["port"], tuple(m["codecs"]),
                                m.get("telephone_event"), m.get("ptime") or 20,
                                m.get("direction") or "sendrecv")

    def _emit(self, event):
        if self.sink is not None:
            self.sink(self, event)

    def _fail(self, cause: int, text: str):
        if self.state == "released":
            return
        was, self.state = self.state, "released"
        if was == "ringing":
            self._stop_ringing()
        if was != "creating":
            self._delete()
        if self.connection_id is None and was != "creating":
            self._finished(None)
        self._emit(Release(cause, text))

    def _finished(self, stats):
        """The connection is gone (or was never made): free the endpoint, keep ``stats``."""
        self.channel.unbind(self)
        self._stats_ready(_stats_dict(self, stats))

    def _stats_ready(self, value):
        if self._stats_known:
            return
        self._stats, self._stats_known = value, True
        waiting, self._stats_waiting = self._stats_waiting, []
        for d, timer in waiting:
            if timer.active():
                timer.cancel()
            d.callback(value)

    def _stats_timeout(self, d):
        self._stats_waiting = [(w, t) for w, t in self._stats_waiting if w is not d]
        d.callback(None)


def _stats_dict(leg: MgcpLeg, stats) -> dict | None:
    if stats is None:
        return None
    out = {"endpoint": leg.endpoint, "connection_id": leg.connection_id,
           "gateway": leg.gateway.name}
    out.update(stats.as_dict())
    return out
