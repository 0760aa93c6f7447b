"""The dialog of an INVITE session, both sides (RFC 3261 sections 12, 14, 15, 22.2).

``Dialog`` holds the dialog state of 12.1 (Call-ID, tags, local and remote URIs, CSeq numbers,
route set, remote target, our Contact) and builds the requests sent in it (12.2.1.1: Route from
the route set, To with the remote tag, increasing CSeq, next hop from the first route, else the
outbound proxy, else the remote target) and the responses to requests received in it.

``DialogSession`` is the base of ``UacSession`` and ``UasSession``: it runs two tables once the
dialog exists, each ``(state, input) -> (action, next_state)``:

- ``DIALOG_ROWS`` (12.2, 15): Confirmed, Terminating (our BYE is out), Terminated. BYE either
  way (a Reason header carries the Q.850 cause, RFC 3326); a 481 or 408 to an in-dialog request
  ends the dialog with a BYE (12.2.1.2); a BYE challenged with 401/407 is retried (22.2);
  in-dialog OPTIONS get 200 with Allow, other methods 405.
- ``OFFER_ROWS`` (14): the re-INVITE exchange, Stable, OfferSent, RetryWait, OfferReceived,
  AnswerSent. One re-INVITE at a time; ours crossing theirs gets 491 (14.2) and a 491 to ours is
  retried once after 2.1-4 s in 10 ms steps (14.1); a second re-INVITE before we answered the
  first gets 500 with Retry-After (14.2); our 2xx to theirs is retransmitted (T1 doubling to T2,
  UDP only) until the ACK, and no ACK in 64*T1 ends the dialog (13.3.1.4).

In-dialog requests must come in CSeq order (12.2.2: a lower or equal CSeq is answered 500 by
the adapter through ``RemoteProtocolError``).

Tests: tests/sip/test_dialog.py, tests/sip/test_session.py, tests/sip/test_uas_session.py.
"""
from __future__ import annotations

import os

from protocols.sip import digest
from protocols.sip.message import Headers, Request, make_response, parse_name_addr
from protocols.sip.keepalive import Keepalive, KeepaliveHooks
from protocols.sip.session import (CLOSED, Ended, InfoAnswered, Input, ModifyAnswered,
                                   ModifyFailed, RemoteModify, Respond, SendAck, SendRequest,
                                   State, TableMachine, build_table, hop_for, reason_cause)
from protocols.sip.transaction import RemoteProtocolError, StartTimer, StopTimer
from protocols.sip.uri import SipParseError

S, I = State, Input


class Dialog:
    """The state of one dialog (RFC 3261 12.1) and the messages built from it.

    ``local_header`` is our From (UAC) / To (UAS) value with our tag; ``remote_base`` the
    peer's URI as a To value without a tag (the tag is ``remote_tag`` once known).
    """

    __slots__ = ("profile", "call_id", "local_tag", "remote_tag", "local_header",
                 "remote_base", "local_cseq", "remote_cseq", "route_set", "remote_target",
                 "contact", "token")

    def __init__(self, profile, call_id, local_tag, local_header, remote_base, remote_target,
                 token, route_set=(), local_cseq=1, remote_tag=None, remote_cseq=None):
        self.profile = profile
        self.call_id = call_id
        self.local_tag = local_tag
        self.local_header = local_header
        self.remote_base = remote_base
        self.remote_target = remote_target
        self.remote_tag = remote_tag
        self.route_set = list(route_set)
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.token = token
        self.contact = f"<{profile.scheme}:callgw@{profile.local}{profile.uri_transport}>"

    # ---- requests (12.2.1.1) ----
    def via(self):
        return (f"SIP/2.0/{self.profile.via_transport} {self.profile.local};"
                f"branch=z9hG4bK{self.token()};rport")

    def to(self):
        if self.remote_tag:
            return f"{self.remote_base};tag={self.remote_tag}"
        return self.remote_base

    def request(self, method, cseq=None, body=b"", extra=(), uri=None, to=None, routes=None,
                content_type="application/sdp"):
        """A request in this dialog; a new CSeq unless ``cseq`` is given (an ACK's)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        h = [("Via", self.via()), ("Max-Forwards", "70")]
        h += [("Route", r) for r in (self.route_set if routes is None else routes)]
        h += [("From", self.local_header), ("To", to or self.to()), ("Call-ID", self.call_id),
              ("CSeq", f"{cseq} {method}")]
        if method in ("INVITE", "UPDATE"):
            h.append(("Contact", self.contact))
        h += list(extra)
        if body:
            h.append(("Content-Type", content_type))
        h.append(("Content-Length", str(len(body))))
        return Request(method, uri or self.remote_target, Headers(h), body)

    def hop(self, routes=None, target=None):
        """The next hop of an in-dialog request: first route, else proxy, else target."""
        p = self.profile
        routes = self.route_set if routes is None else routes
        tls = p.tls if p.transport == "tls" else None
        if routes:
            try:
                return hop_for(str(parse_name_addr(routes[0]).uri), p.transport, tls)
            except SipParseError:
                pass
        if p.proxy:
            return p.first_hop()
        try:
            return hop_for(target or self.remote_target, p.transport, tls)
        except SipParseError:
            return p.first_hop()

    # ---- responses ----
    def response(self, request, status, body=b"", extra=(), reason=None, record_route=False):
        """Our response to ``request``: our To tag; Contact when it makes or refreshes the
        dialog (an INVITE's 1xx/2xx, 12.1.1); Record-Route copied when asked (12.1.1)."""
        h = [("Contact", self.contact)] if request.method in ("INVITE", "UPDATE") and \
            status < 300 and status != 100 else []
        h += list(extra)
        if body:
            h.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, reason, to_tag=self.local_tag, headers=h,
                                 copy_record_route=record_route)
        response.body = body
        return response

    # ---- learning the peer (12.1.2) ----
    def confirm(self, response):
        """UAC: take the remote tag, route set (Record-Route reversed) and remote target
        (Contact) from the 2xx that confirms the dialog."""
        self.remote_tag = response.to_tag
        rr = response.headers.get_all("Record-Route")
        if rr:
            self.route_set = list(reversed(rr))
        self._target_from(response)

    def _target_from(self, message):
        contact = message.headers.get("Contact")
        if contact:
            try:
                self.remote_target = str(parse_name_addr(contact).uri)
            except SipParseError:
                pass

    def check_cseq(self, request):
        """12.2.2: a request in the dialog with a CSeq not above the last one is refused."""
        number = request.cseq[0]
        if self.remote_cseq is not None and number <= self.remote_cseq:
            raise RemoteProtocolError("CSeq out of order", 500)
        self.remote_cseq = number


# every state a session table knows
ALL_STATES = (S.IDLE, S.CALLING, S.PROCEEDING, S.CANCEL_PENDING, S.CANCELLING, S.EARLY,
              S.ACCEPTED, S.ACCEPTED_BYE, S.CONFIRMED, S.TERMINATING, S.TERMINATED)
BEFORE_DIALOG = (S.IDLE, S.CALLING, S.PROCEEDING, S.CANCEL_PENDING, S.CANCELLING)


class DialogSession(KeepaliveHooks, TableMachine):
    """What the UAC and the UAS sessions share: the dialog and re-INVITE tables."""

    TABLE: dict = {}
    OFFER: dict = {}
    OFFER_TIMERS = {"491": I.TIMER_491, "re-2xx": I.TIMER_RE2XX, "re-2xx-stop": I.TIMER_RE2XX_STOP}

    def __init__(self, profile, dialog, token):
        self.profile = profile
        self.token = token
        self.dialog = dialog
        self.state = S.IDLE
        self.offer_state = S.STABLE
        self.local_sdp = None
        self.bye = None
        self.reinvite = None          # our pending re-INVITE
        self.reinvite_ack = None      # the ACK of our last answered re-INVITE
        self.remote_reinvite = None   # theirs, answered or up with the layer above
        self._reinvite_2xx = None
        self._re2xx_interval = profile.timers.t1
        self._retried = False
        self._retry_sdp = None
        self._auth_tries = {}
        self._closed = False
        self.keepalive = Keepalive(profile.keepalive, dialog)
        self._infos: set[int] = set()     # CSeq numbers of our INFOs awaiting an answer

    # ---- the dialog's names ----
    @property
    def call_id(self):
        return self.dialog.call_id

    @property
    def local_tag(self):
        return self.dialog.local_tag

    @property
    def remote_tag(self):
        return self.dialog.remote_tag

    def _step(self, inp, message=None):
        return self._walk(self.TABLE, "state", inp, message)

    def _offer_step(self, inp, message=None):
        return self._walk(self.OFFER, "offer_state", inp, message)

    # ---- the layer above ----
    def hangup(self, q850=16):
        """Release the call: CANCEL, BYE or a final answer, as the state asks (maybe none)."""
        return self._step(I.HANGUP, q850)

    def modify(self, sdp):
        """Send a re-INVITE with ``sdp`` (hold: sendonly; resume: sendrecv)."""
        if self.state is not S.CONFIRMED:
            return [ModifyFailed(491)]
        return self._offer_step(I.MODIFY, sdp)

    def info(self, body: bytes, content_type: str):
        """Send an INFO (RFC 6086) in the confirmed dialog, e.g. a DTMF digit as
        ``application/dtmf-relay``; its answer comes back as ``InfoAnswered`` (a 481 or 408 also
        ends the dialog, RFC 3261 12.2.1.2). Nothing outside a confirmed dialog."""
        if self.state is not S.CONFIRMED:
            return []
        request = self.dialog.request("INFO", body=body, content_type=content_type)
        self._infos.add(request.cseq[0])
        return [SendRequest(request, self.dialog.hop())]

    def _info_answered(self, number, status, reason):
        self._infos.discard(number)
        out = [InfoAnswered(status, reason)]
        if status in (481, 408) and self.state is S.CONFIRMED:
            out += self._dialog_failed(status, f"{status} to our INFO")
        return out

    def answer_modify(self, request, sdp):
        """Answer the far end's re-INVITE with our ``sdp`` (None refuses it with 488)."""
        if request is not self.remote_reinvite:
            return []
        if sdp is None:
            return self._offer_step(I.REFUSE_MODIFY, request)
        return self._offer_step(I.ANSWER_MODIFY, sdp)

    # ---- responses to our in-dialog requests ----
    def receive_response(self, response):
        """A response delivered by one of our client transactions (or a stray 2xx)."""
        number, method = response.cseq
        status = response.status
        if method == "INVITE":
            if self._is_initial(number):
                return self._initial_response(response)
            if self.reinvite is not None and number == self.reinvite.cseq[0]:
                return self._reinvite_response(response)
            if self.reinvite_ack is not None and number == self.reinvite_ack.cseq[0] \
                    and 200 <= status < 300:
                return self._offer_step(I.RE_2XX_AGAIN)
            return []
        if status < 200:
            return []
        if method == "INFO" and number in self._infos:
            return self._info_answered(number, status, response.reason)
        if method == "BYE" and self.bye is not None and number == self.bye.cseq[0]:
            if status in (401, 407):
                retry = self._auth_retry(self.bye, response)
                if retry:
                    return self._step(I.BYE_CHALLENGE, retry)
            return self._step(I.BYE_FINAL, response)
        keepalive = self._keepalive_response(response)
        if keepalive is not None:
            return keepalive
        return self._other_response(response)

    def _other_response(self, response):
        return []                                   # a forked dialog's BYE, or stale

    def _reinvite_response(self, response):
        status = response.status
        if status < 200:
            return []
        if status < 300:
            return self._offer_step(I.RE_2XX, response)
        if status in (401, 407):
            retry = self._auth_retry(self.reinvite, response)
            if retry:
                return self._offer_step(I.RE_CHALLENGE, retry)
        if status in (481, 408):
            return self._offer_step(I.RE_FATAL, status)
        if status == 491 and not self._retried:
            return self._offer_step(I.RE_491, response)
        return self._offer_step(I.RE_FAILURE, status)

    def request_timeout(self, request):
        """A client transaction of ours timed out (Timer B or F): RFC 3261 8.1.3.1's 408."""
        return self._failure(request, 408, "Request Timeout")

    def transport_failed(self, request, reason=None):
        """The transport could not carry ``request``: a 503 (RFC 3261 8.1.3.1); ``reason``
        says why when it is known (a name that does not resolve)."""
        return self._failure(request, 503, reason or "Service Unavailable")

    def _failure(self, request, status, reason):
        if request is self.reinvite:
            return self._offer_step(I.RE_FATAL, status)
        if request.method == "BYE" and request is self.bye:
            return self._step(I.BYE_FAILED, status)
        if request.method == "INFO" and request.cseq[0] in self._infos:
            return self._info_answered(request.cseq[0], status, reason)
        keepalive = self._keepalive_failure(request, status)
        if keepalive is not None:
            return keepalive
        return self._other_failure(request, status, reason)

    def _other_failure(self, request, status, reason):
        return []

    # ---- requests the far end sends in the dialog ----
    def receive_request(self, request):
        """An in-dialog request (its To tag is ours).

        Raises ``RemoteProtocolError`` (with the status to answer) when the far end broke the
        dialog's rules; the adapter answers it.
        """
        method = request.method
        if method == "ACK":
            return self._ack_received(request)
        self.dialog.check_cseq(request)
        if method == "BYE":
            return self._step(I.BYE, request)
        if method == "INVITE":
            if self.state is S.CONFIRMED:
                return self._offer_step(I.REINVITE, request)
            if self.state is S.ACCEPTED:
                return [Respond(request, self.dialog.response(request, 491))]
            return self._no_dialog(request)
        return self._step(I.REQUEST, request)

    def _ack_received(self, request):
        if self.remote_reinvite is not None and request.cseq[0] == self.remote_reinvite.cseq[0]:
            return self._offer_step(I.ACK, request)
        return []

    # ---- timers ----
    def timer_fired(self, name):
        """A timer this session asked for expired."""
        if name in self.KEEPALIVE_TIMERS:
            return self._keepalive(self.keepalive.timer_fired(name))
        inp = self.OFFER_TIMERS.get(name)
        if inp is not None:
            return self._offer_step(inp)
        inp = self.TIMERS.get(name)
        return self._step(inp) if inp is not None else []

    TIMERS: dict = {}

    # ---- dialog actions (12, 15) ----
    def _send_bye(self, q850):
        self.bye = self.dialog.request("BYE", extra=[("Reason", f"Q.850;cause={q850}")])
        return self.keepalive.stop() + [SendRequest(self.bye, self.dialog.hop())]

    def _bye_received(self, request):
        out = [Respond(request, self.dialog.response(request, 200)), *self._stop_offer_timers(),
               Ended("remote", reason_cause(request), "BYE")]
        return out + self._close()

    def _bye_crossed(self, request):
        return [Respond(request, self.dialog.response(request, 200))] + self._close()

    def _no_dialog(self, request):
        return [Respond(request, self.dialog.response(request, 481))]

    def _fail_dialog(self, why):
        status, text, q850 = why
        return [Ended("local", q850, text or f"{status} to an in-dialog request"),
                *self._stop_offer_timers()] + self._send_bye(q850 or 16)

    def _retry_bye(self, retry):
        self.bye = retry[0].request
        return retry

    def _answer_request(self, request):
        allow = [("Allow", self.profile.allow)]
        if request.method == "OPTIONS":
            return [Respond(request, self.dialog.response(request, 200, extra=allow))]
        if request.method == "UPDATE" and self.profile.keepalive.mode == "session-timer" \
                and self.state is S.CONFIRMED:
            return self._answer_update(request)
        return [Respond(request, self.dialog.response(request, 405, extra=allow))]

    def _close(self, _=None):
        if self._closed:
            return []
        self._closed = True
        self.state = S.TERMINATED
        return self.keepalive.stop() + [CLOSED]

    def _stop_offer_timers(self):
        if self.offer_state is S.ANSWER_SENT:
            self._reinvite_2xx = None
            self.offer_state = S.STABLE
            return [StopTimer("re-2xx"), StopTimer("re-2xx-stop")]
        return []

    def _dialog_failed(self, status, text="", q850=None):
        """Feed 'the dialog failed' (12.2.1.2) into the dialog table."""
        return self._step(I.DIALOG_FAILED, (status, text, q850))

    # ---- re-INVITE actions (14) ----
    def _send_reinvite(self, sdp):
        self.local_sdp = sdp
        self._retried = False
        self.reinvite = self.dialog.request("INVITE", body=sdp, extra=[
            ("Allow", self.profile.allow), *self._reinvite_headers()])
        return [StopTimer("491"), SendRequest(self.reinvite, self.dialog.hop())]

    def _modify_busy(self, sdp):
        return [ModifyFailed(491)]

    def _offer_received(self, request):
        self.remote_reinvite = request
        return [RemoteModify(request, request.body or None)]

    def _offer_received_in_wait(self, request):
        self.remote_reinvite = request
        return [StopTimer("491"), ModifyFailed(491), RemoteModify(request, request.body or None)]

    def _glare(self, request):
        return [Respond(request, self.dialog.response(request, 491))]

    def _reinvite_pending(self, request):
        return [Respond(request, self.dialog.response(request, 500,
                                                      extra=[("Retry-After", "1")]))]

    def _answer_offer(self, sdp):
        request = self.remote_reinvite
        headers, refreshed = self._refresh_answer(request)
        response = self.dialog.response(request, 200, body=sdp, extra=headers)
        self._reinvite_2xx = response
        self._re2xx_interval = self.profile.timers.t1
        out = [Respond(request, response), StartTimer("re-2xx-stop", self.profile.timers.long)]
        if self.profile.transport == "udp":
            out.append(StartTimer("re-2xx", self._re2xx_interval))
        return out + refreshed

    def _refuse_offer(self, request):
        self.remote_reinvite = None
        return [Respond(request, self.dialog.response(request, 488))]

    def _offer_acked(self, ack):
        self._reinvite_2xx = None
        return [StopTimer("re-2xx"), StopTimer("re-2xx-stop")]

    def _resend_2xx(self, _):
        self._re2xx_interval = min(2 * self._re2xx_interval, self.profile.timers.t2)
        return [Respond(self.remote_reinvite, self._reinvite_2xx),
                StartTimer("re-2xx", self._re2xx_interval)]

    def _no_ack(self, _):
        # RFC 3261 14.2 / 13.3.1.4: no ACK for our 2xx within 64*T1: end the dialog
        self._reinvite_2xx = None
        return [StopTimer("re-2xx")] + self._dialog_failed(408, "no ACK for our 2xx")

    def _modify_answered(self, response):
        request, self.reinvite = self.reinvite, None
        self._retried = False
        self.reinvite_ack = self.dialog.request("ACK", cseq=request.cseq[0])
        refresh, effects = self._reinvite_answered(response)
        out = [SendAck(self.reinvite_ack, self.dialog.hop())]
        return out + effects if refresh else out + [ModifyAnswered(response.body or None)] + \
            effects

    def _ack_reinvite_again(self, _):
        return [SendAck(self.reinvite_ack, self.dialog.hop())]

    def _retry_reinvite(self, retry):
        self.reinvite = retry[0].request
        return retry

    def _modify_failed(self, status):
        self.reinvite = None
        refresh, effects = self._reinvite_refused(status, fatal=False)
        return effects if refresh else [ModifyFailed(status)]

    def _modify_fatal(self, status):
        self.reinvite = None
        refresh, effects = self._reinvite_refused(status, fatal=True)
        return effects if refresh else [ModifyFailed(status)] + self._dialog_failed(status)

    def _glare_wait(self, response):
        # RFC 3261 14.1: the Call-ID owner waits 2.1-4 s (10 ms steps), the other 0-2 s
        self._retry_sdp = self.reinvite.body
        self.reinvite = None
        steps = int.from_bytes(os.urandom(2), "big")
        wait = 2.1 + (steps % 191) / 100 if self._owns_call_id else (steps % 201) / 100
        return [StartTimer("491", wait)]

    def _retry_modify(self, _):
        if self.state is not S.CONFIRMED:
            self.offer_state = S.STABLE
            return [ModifyFailed(491)]
        out = self._send_reinvite(self._retry_sdp)
        self._retried = True
        return out

    _owns_call_id = True

    # ---- digest (22.2) ----
    def _auth_retry(self, request, response):
        """The request again with credentials for the challenge in ``response``, as a
        ``[SendRequest]``; None when we cannot or should not answer it."""
        creds = self.profile.credentials
        if not creds:
            return None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        values = response.headers.get_lines(header)
        if not values:
            return None
        try:
            challenge = digest.best_challenge(values)
        except ValueError:        # DigestError: nothing we can answer fails the request
            return None
        key = (request.method, challenge.realm)
        tries = self._auth_tries.get(key, 0)
        if tries >= (2 if challenge.stale else 1):
            return None
        self._auth_tries[key] = tries + 1
        authz = digest.authorization(challenge, request.method, request.uri, creds[0], creds[1],
                                     self.token(), 1, request.body)
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        self.dialog.local_cseq += 1
        headers = request.headers.copy()
        headers.set("Via", self.dialog.via())
        headers.set("CSeq", f"{self.dialog.local_cseq} {request.method}")
        headers.remove("Authorization")
        headers.remove("Proxy-Authorization")
        headers.add(name, authz)
        retry = Request(request.method, request.uri, headers, request.body)
        return [SendRequest(retry, self._request_hop(request))]

    def _request_hop(self, request):
        return self.dialog.hop()

    def _is_initial(self, number):
        return False

    def _initial_response(self, response):
        return []


DIALOG_ROWS = [
    (S.CONFIRMED, I.HANGUP, "_send_bye", S.TERMINATING),
    ((S.TERMINATING, S.TERMINATED), I.HANGUP, "_absorb", None),
    ((S.ACCEPTED, S.CONFIRMED), I.BYE, "_bye_received", S.TERMINATED),
    ((S.TERMINATING, S.ACCEPTED_BYE), I.BYE, "_bye_crossed", S.TERMINATED),
    (BEFORE_DIALOG + (S.TERMINATED,), I.BYE, "_no_dialog", None),
    (S.CONFIRMED, I.DIALOG_FAILED, "_fail_dialog", S.TERMINATING),
    (S.TERMINATING, I.BYE_FINAL, "_close", S.TERMINATED),
    (S.TERMINATING, I.BYE_FAILED, "_close", S.TERMINATED),
    (S.TERMINATING, I.BYE_CHALLENGE, "_retry_bye", None),
    (ALL_STATES, I.REQUEST, "_answer_request", None),
]

OFFER_ROWS = [
    ((S.STABLE, S.RETRY_WAIT), I.MODIFY, "_send_reinvite", S.OFFER_SENT),
    ((S.OFFER_SENT, S.OFFER_RECEIVED, S.ANSWER_SENT), I.MODIFY, "_modify_busy", None),
    (S.STABLE, I.REINVITE, "_offer_received", S.OFFER_RECEIVED),
    (S.RETRY_WAIT, I.REINVITE, "_offer_received_in_wait", S.OFFER_RECEIVED),
    ((S.OFFER_SENT, S.ANSWER_SENT), I.REINVITE, "_glare", None),
    (S.OFFER_RECEIVED, I.REINVITE, "_reinvite_pending", None),
    (S.OFFER_RECEIVED, I.ANSWER_MODIFY, "_answer_offer", S.ANSWER_SENT),
    (S.OFFER_RECEIVED, I.REFUSE_MODIFY, "_refuse_offer", S.STABLE),
    (S.OFFER_SENT, I.RE_2XX, "_modify_answered", S.STABLE),
    (S.OFFER_SENT, I.RE_491, "_glare_wait", S.RETRY_WAIT),
    (S.OFFER_SENT, I.RE_CHALLENGE, "_retry_reinvite", None),
    (S.OFFER_SENT, I.RE_FAILURE, "_modify_failed", S.STABLE),
    (S.OFFER_SENT, I.RE_FATAL, "_modify_fatal", S.STABLE),
    (S.RETRY_WAIT, I.TIMER_491, "_retry_modify", S.OFFER_SENT),
    ((S.STABLE, S.OFFER_SENT, S.RETRY_WAIT, S.OFFER_RECEIVED, S.ANSWER_SENT), I.RE_2XX_AGAIN,
     "_ack_reinvite_again", None),
    (S.ANSWER_SENT, I.ACK, "_offer_acked", S.STABLE),
    (S.ANSWER_SENT, I.TIMER_RE2XX, "_resend_2xx", None),
    (S.ANSWER_SENT, I.TIMER_RE2XX_STOP, "_no_ack", S.STABLE),
]


build_table(DialogSession, DIALOG_ROWS, attr="DIALOG")
build_table(DialogSession, OFFER_ROWS, attr="OFFER")
