"""The SIP call slave: one call toward a PSTN gateway, as an ``ICallLeg``.

Translates between the neutral events of ``callgw.callserver.events`` and one
``protocols.sip.uac_session.UacSession`` run by a ``protocols.sip.adapter.SipEndpoint``:

- ``send(Setup)`` places the INVITE (the gateway's number rewriting applied to Request-URI and
  To, caller identity in From and P-Asserted-Identity, ``Privacy: id`` when withheld) with an
  SDP offer made from ``Setup.media``; a no-answer timer (gateway ``no_answer_timeout``,
  default 90 s) cancels the call with cause 19.
- The gateway's answers come back as ``Proceeding`` (100, 18x without SDP other than 180),
  ``Alerting`` (180, or 183 with SDP as early media), ``Connect(media)`` and ``Release(cause)``,
  the cause mapped from the SIP status by ``callgw.causes`` (RFC 3398) unless the gateway sent
  an RFC 3326 Reason header.
- ``send(Release)`` sends CANCEL before answer, BYE after; ``send(Hold)`` and
  ``send(MediaOffer)`` send a re-INVITE (sendonly / sendrecv); its answer comes back as
  ``MediaAnswer``. A re-INVITE from the gateway is answered here and reported as ``Hold``.
- ``Setup.media`` None makes a delayed offer: the INVITE goes without SDP, ``Connect`` carries
  the gateway's offer from the 2xx, and the master's ``MediaAnswer`` goes out in the ACK.
- ``send(Dtmf)`` (a digit the media path does not carry: direct mode) sends SIP INFO with
  ``application/dtmf-relay`` (RFC 6086); a refusal comes back as ``DtmfResult``. In relay mode
  digits travel as RFC 4733 events in the media path (protocols/rtp) and never reach the leg.
- Every SIP message sent or received for the call is reported to the sink as a ``Trace``.
- Liveness: the gateway record's ``keepalive`` (``off`` | ``options`` | ``session-timer``,
  ``keepalive_interval`` seconds for OPTIONS) goes to the session (``protocols.sip.keepalive``);
  when the gateway stops answering or lets the session expire the session reports
  ``Vanished``: ``liveness()`` then names the reason, and the call is released with cause 41
  (keepalive) or 102 (session expired) and a BYE.

``options_ping(endpoint, gateway)`` is the proxy's health poll: a Deferred firing with the
round-trip in seconds.

Tests: tests/sip/test_sip_leg.py, tests/sip/test_sipp.py, tests/sip/test_keepalive.py.
"""
from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from callgw import causes, numbers
from callgw.callserver.events import (Alerting, Connect, Dtmf, DtmfResult, Hold, MediaAnswer,
                                      MediaDescription, MediaOffer, Proceeding, Release,
                                      Setup, Trace)
from callgw.interfaces import ICallLeg
from protocols.sip import sdp as sdplib
from protocols.sip import session as sess
from protocols.sip.message import Request
from protocols.sip.uac_session import UacSession

log = Logger(namespace="callgw.sip.leg")

NO_ANSWER_TIMEOUT = 90.0


def _tls_policy(gateway):
    """The certificate check for a TLS gateway: ``tls_verify`` (default on) against
    ``tls_ca_file`` (PEM; default the system's trust store); None for other transports."""
    if (gateway.get("transport") or "udp").lower() != "tls":
        return None
    return sess.TlsPolicy(verify=bool(gateway.get("tls_verify", True)),
                          ca_file=gateway.get("tls_ca_file") or None)


def _profile(endpoint, gateway):
    proxy = gateway.get("outbound_proxy") or None
    user = gateway.get("username")
    transport = (gateway.get("transport") or "udp").lower()
    host, port = endpoint.local_address(transport)
    return sess.Profile(
        local_host=gateway.get("local_address") or host,
        local_port=port,
        gateway_host=gateway["address"],
        gateway_port=int(gateway.get("port") or 5060),
        transport=transport,
        proxy=proxy,
        credentials=(user, gateway.get("password") or "") if user else None,
        timers=endpoint.timers,
        tls=_tls_policy(gateway),
        sips=bool(gateway.get("sips", False)),
        keepalive=sess.KeepaliveConfig(
            mode=(gateway.get("keepalive") or "off").lower(),
            interval=float(gateway.get("keepalive_interval") or 30.0)),
        user_agent=endpoint.user_agent)


def gateway_hop(gateway):
    """The first hop toward ``gateway`` (its outbound proxy when it has one)."""
    transport = (gateway.get("transport") or "udp").lower()
    proxy = gateway.get("outbound_proxy")
    if proxy:
        host, _, port = proxy.rpartition(":")
        return sess.Hop(transport, host.strip("[]"), int(port), _tls_policy(gateway))
    return sess.Hop(transport, gateway["address"], int(gateway.get("port") or 5060),
                    _tls_policy(gateway))


def options_ping(endpoint, gateway, timeout=None):
    """Send OPTIONS to ``gateway`` (a gateway record dict) through ``endpoint``.

    Returns a Deferred firing with the round-trip in seconds (any final response: a gateway
    that answers is alive), failing with ``protocols.sip.adapter.PingError`` (status 408 on
    timeout, 503 when the transport failed).
    """
    host = gateway["address"]
    if ":" in host:
        host = f"[{host}]"
    hop = gateway_hop(gateway)
    tparam = ";transport=tls" if hop.transport == "tls" else ""
    uri = f"sip:{host}:{int(gateway.get('port') or 5060)}{tparam}"
    return endpoint.ping(hop, uri, timeout)


def _summary(message):
    if isinstance(message, Request):
        return f"{message.method} {message.uri}"
    return f"{message.status} {message.reason} ({message.cseq[1]})"


@implementer(ICallLeg)
class SipLeg:
    """The SIP call slave for one call toward one gateway.

    ``endpoint`` is a started ``SipEndpoint``; ``gateway`` the gateway record (address, a
    host name or an address, port, transport 'udp'|'tcp'|'tls', for TLS tls_verify (True),
    tls_ca_file and sips (False), outbound_proxy 'host:port', username, password,
    strip_digits, prepend, keep_plus, presentation 'allowed'|'restricted', local_address,
    no_answer_timeout); ``clock`` an IReactorTime for the no-answer timer.
    """

    name = "sip"

    def __init__(self, endpoint, gateway, clock):
        self.endpoint = endpoint
        self.gateway = gateway
        self.clock = clock
        self.sink = None
        self.session = None
        self.state = "idle"          # idle, calling, alerting, connected, released
        self.local_media = None
        self.remote_media = None
        self.sdp_version = 1
        self.sdp_session_id = None
        self.call_id = None
        self._no_answer = None
        self._proceeding = False
        self._held_by_remote = False
        self._delayed_offer = None
        self._vanished = None
        self._dtmf_pending: list[str] = []

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
                self._modify(self._offer(direction="sendonly" if event.on else "sendrecv"))
            elif kind is MediaAnswer:
                self._acknowledge(event.media)
            elif kind is MediaOffer:
                self.local_media = event.media
                self._modify(self._offer())
            elif kind is Dtmf:
                self._dtmf(event)
            else:
                log.debug("SIP leg ignores {event!r}", event=event)
        except Exception:  # noqa: BLE001 - ICallLeg.send never raises for a protocol reason
            log.failure("SIP leg failed on {event!r} for {call_id}", event=event,
                        call_id=self.call_id)
            self._fail(causes.TEMPORARY_FAILURE, "local failure")

    def close(self):
        """Drop what would outlive the call, without signalling the gateway: the no-answer
        timer; the session only when it was never released (a released session finishes its
        CANCEL or BYE, and ACKs and BYEs a 2xx that crosses a CANCEL, before it closes)."""
        self._stop_no_answer()
        if self.session is not None:
            if self.state == "released":
                self.endpoint.detach(self.session)     # it finishes alone; we hear no more
            else:
                self.endpoint.forget(self.session, transactions=True)
        self.state = "released"

    def statistics(self):
        """Nothing of its own for the CDR (the media statistics come from the relay)."""
        return None

    def liveness(self):
        """None while the gateway is alive; the reason once its keepalive failed."""
        return self._vanished

    def recovery(self):
        """What another process needs to release the gateway's side should this one die (see
        ``callgw.callserver.legs.sip_provider.release_orphan``): once answered the dialog,
        for a BYE; while the INVITE is unanswered (``state`` ``early``) the INVITE's
        Request-URI, top Via, From, To, Call-ID, CSeq, routes and first hop, for a CANCEL
        (RFC 3261 9.1); None before the INVITE and after the end."""
        s = self.session
        if s is None:
            return None
        if self.state in ("calling", "alerting") and s.invite is not None:
            inv = s.invite
            hop = s.profile.first_hop()
            return {"protocol": "sip", "gateway": self.gateway["name"], "state": "early",
                    "call_id": inv.headers.get("Call-ID"), "uri": str(inv.uri),
                    "via": inv.headers.get_all("Via")[0], "from": inv.headers.get("From"),
                    "to": inv.headers.get("To"), "cseq": inv.cseq[0],
                    "route_set": list(inv.headers.get_all("Route")),
                    "hop": [hop.transport, hop.host, hop.port]}
        if self.state != "connected" or not s.remote_tag:
            return None
        d = s.dialog
        p = d.profile
        return {"protocol": "sip", "gateway": self.gateway["name"], "call_id": d.call_id,
                "from": d.local_header, "to": d.to(), "remote_target": d.remote_target,
                "route_set": list(d.route_set), "cseq": d.local_cseq,
                "transport": p.transport, "proxy": p.proxy}

    # ---- outgoing ----
    def _setup(self, setup):
        if self.state != "idle":
            raise ValueError("Setup on a leg that is not idle")
        gw = self.gateway
        target = numbers.rewrite(setup.target, int(gw.get("strip_digits") or 0),
                                 gw.get("prepend") or "", bool(gw.get("keep_plus", True)))
        privacy = setup.privacy or gw.get("presentation") == "restricted"
        self.session = UacSession(_profile(self.endpoint, gw), target, setup.caller, privacy)
        self.call_id = setup.call_id
        self.sdp_session_id = int.from_bytes(self.session.local_tag[:8].encode(), "big") \
            % 10 ** 12
        self.local_media = setup.media
        self.state = "calling"
        self.endpoint.register(self.session, self)
        timeout = float(gw.get("no_answer_timeout") or NO_ANSWER_TIMEOUT)
        self._no_answer = self.clock.callLater(timeout, self._no_answer_expired)
        offer = self._offer() if setup.media is not None else None
        self.endpoint.execute(self.session, self.session.start(offer))

    def _offer(self, direction=None):
        media = self.local_media
        if media is None:
            return None
        self.sdp_version += 1
        return sdplib.make_offer(media.address, media.port, list(media.codecs),
                                 media.telephone_event, media.ptime,
                                 direction or media.direction, self.sdp_session_id,
                                 self.sdp_version)

    def _dtmf(self, dtmf):
        """A digit the media path does not carry (direct mode): SIP INFO with
        ``application/dtmf-relay`` (the form gateways accept most widely); a refusal goes back
        as ``DtmfResult(delivered=False)``."""
        if self.state != "connected":
            self._emit(DtmfResult(dtmf.digit, False, "the call is not connected"))
            return
        body = f"Signal={dtmf.digit}\r\nDuration={int(dtmf.duration_ms)}\r\n".encode()
        self._dtmf_pending.append(dtmf.digit)
        self.endpoint.execute(self.session, self.session.info(body, "application/dtmf-relay"))

    def _on_InfoAnswered(self, event):
        digit = self._dtmf_pending.pop(0) if self._dtmf_pending else "?"
        if event.status >= 300:
            log.info("DTMF {digit} for {call_id}: the gateway answered INFO with {status}",
                     digit=digit, call_id=self.call_id, status=event.status)
            self._emit(DtmfResult(digit, False,
                                  f"the gateway refused SIP INFO ({event.status} {event.reason})"))

    def _modify(self, offer):
        if self.state != "connected" or offer is None:
            return
        self.endpoint.execute(self.session, self.session.modify(offer))

    def _release(self, release):
        if self.state in ("idle", "released"):
            self.state = "released"
            return
        self.state = "released"
        self._stop_no_answer()
        self.endpoint.execute(self.session, self.session.hangup(release.cause))

    def _no_answer_expired(self):
        self._no_answer = None
        if self.state in ("calling", "alerting"):
            self.state = "released"
            self.endpoint.execute(self.session, self.session.hangup(causes.NO_ANSWER))
            self._emit(Release(causes.NO_ANSWER, "no answer"))

    def _stop_no_answer(self):
        if self._no_answer is not None and self._no_answer.active():
            self._no_answer.cancel()
        self._no_answer = None

    def _emit(self, event):
        if self.sink is not None:
            self.sink(self, event)

    def _fail(self, cause, text):
        if self.state == "released":
            return
        was = self.state
        self.state = "released"
        self._stop_no_answer()
        if self.session is not None and was != "idle":
            self.endpoint.execute(self.session, self.session.hangup(cause))
        self._emit(Release(cause, text))

    # ---- from the endpoint ----
    def sip_message(self, direction, message):
        """The endpoint sent or received ``message`` for this call: trace it."""
        self._emit(Trace("sip", direction, _summary(message),
                         {"call_id": self.call_id, "sip_call_id": message.call_id}))

    def session_event(self, session, event):
        """An event from our ``InviteSession``."""
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is not None:
            handler(event)

    def _media(self, sdp):
        if not sdp:
            return None
        try:
            m = sdplib.media_from_sdp(sdp)
        except sdplib.SdpError as exc:
            log.info("bad SDP from the gateway for {call_id}: {error}", call_id=self.call_id,
                     error=exc)
            return None
        return MediaDescription(m["address"], m["port"], tuple(m["codecs"]),
                                m.get("telephone_event"), m.get("ptime") or 20,
                                m.get("direction") or "sendrecv")

    def _on_Progress(self, event):
        if self.state not in ("calling", "alerting"):
            return
        media = self._media(event.sdp)
        if event.status == 180 or media is not None:
            if self.state == "alerting" and media is None:
                return
            self.state = "alerting"
            if media is not None:
                self.remote_media = media
            self._emit(Alerting(media))
        elif not self._proceeding:
            self._proceeding = True
            self._emit(Proceeding())

    def _on_Answered(self, event):
        if self.state not in ("calling", "alerting"):
            return
        self._stop_no_answer()
        media = self._media(event.sdp)
        if self.session.awaiting_answer:
            # delayed offer: the 2xx carries the gateway's offer; our MediaAnswer goes in the ACK
            self._delayed_offer = event.sdp
            self.state = "connected"
            self.remote_media = media
            self._emit(Connect(media))
            return
        if media is None and self.local_media is not None:
            self.state = "released"
            self.endpoint.execute(self.session, self.session.hangup(causes.INTERWORKING))
            self._emit(Release(causes.INTERWORKING, "2xx without a usable SDP answer"))
            return
        self.state = "connected"
        self.remote_media = media
        self._emit(Connect(media))

    def _on_Rejected(self, event):
        if self.state == "released":
            return
        self.state = "released"
        self._stop_no_answer()
        cause = event.q850 if event.q850 is not None else causes.sip_to_q850(event.status)
        self._emit(Release(cause, f"{event.status} {event.reason}"))

    def _on_Ended(self, event):
        if self.state == "released":
            return
        self.state = "released"
        self._stop_no_answer()
        cause = event.q850 if event.q850 is not None else causes.NORMAL_CLEARING
        self._emit(Release(cause, f"{event.by} {event.text}".strip()))

    def _acknowledge(self, media):
        if self._delayed_offer is None or not self.session.awaiting_answer:
            return
        self.local_media = media
        self.sdp_version += 1
        try:
            answer = sdplib.make_answer(self._delayed_offer, media.address, media.port,
                                        list(media.codecs), media.telephone_event, media.ptime,
                                        media.direction, self.sdp_session_id, self.sdp_version)
        except sdplib.SdpError:
            answer = None
        self._delayed_offer = None
        self.endpoint.execute(self.session, self.session.acknowledge(answer))
        if answer is None and self.state != "released":
            self.state = "released"
            self._emit(Release(88, "no acceptable answer to the gateway's offer"))

    def _on_ModifyAnswered(self, event):
        media = self._media(event.sdp)
        if media is not None:
            self.remote_media = media
            self._emit(MediaAnswer(media))

    def _on_ModifyFailed(self, event):
        log.info("re-INVITE for {call_id} failed with {status}", call_id=self.call_id,
                 status=event.status)

    def _on_RemoteModify(self, event):
        media = self._media(event.sdp)
        answer = None
        local = self.local_media
        if local is not None and event.sdp is not None:
            self.sdp_version += 1
            try:
                answer = sdplib.make_answer(event.sdp, local.address, local.port,
                                            list(local.codecs), local.telephone_event,
                                            local.ptime, local.direction, self.sdp_session_id,
                                            self.sdp_version)
            except sdplib.SdpError:
                answer = None                      # answered 488
        elif local is not None:
            answer = self._offer()                 # an offerless re-INVITE: our offer
        self.endpoint.execute(self.session, self.session.answer_modify(event.request, answer))
        if media is not None and answer is not None:
            self.remote_media = media
            held = media.direction in ("sendonly", "inactive")
            if held != self._held_by_remote:
                self._held_by_remote = held
                self._emit(Hold(held))

    def _on_Vanished(self, event):
        # the gateway stopped answering in-dialog keepalives, or let the session expire; the
        # session's Ended (and our BYE) follow at once and release the call
        self._vanished = event.reason

    def _on_Closed(self, event):
        self._stop_no_answer()
        if self.state != "released":
            self.state = "released"
            self._emit(Release(causes.NORMAL_CLEARING, "session closed"))
