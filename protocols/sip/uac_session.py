"""The caller's side of an INVITE session (RFC 3261 sections 9.1, 13.2, 22.2; RFC 3325).

``UacSession`` places one call: it builds the INVITE (the gateway's rewritten number in
Request-URI and To, caller identity in From and P-Asserted-Identity per RFC 3325), takes the
responses its client transactions deliver, and once a 2xx confirmed the dialog hands over to the
dialog and re-INVITE tables of ``protocols.sip.dialog``. Its own table, ``UAC_ROWS``:

- Idle -> Calling (INVITE sent) -> Proceeding (a 1xx; ``Progress``, with SDP for early media)
  -> Confirmed (a 2xx: ACK sent outside any transaction, ``Answered``), or Terminated (a final
  non-2xx, Timer B or a transport error: ``Rejected`` with 4xx-6xx, 408 or 503).
- Delayed offer: an INVITE without SDP whose 2xx carries an offer goes to Accepted; the ACK
  waits for our answer (``acknowledge``), 64*T1 at most (13.2.2.4).
- Release before answer (9.1): CANCEL only after a provisional response; asked earlier, the
  session waits in CancelPending and cancels at the first 1xx. Cancelling ends at the final
  response, or 64*T1 after the CANCEL (the INVITE transaction is then abandoned).
- No half-answered call: a 2xx that crosses our CANCEL (or arrives while the CANCEL waits for a
  1xx) is ACKed and the dialog ended with a BYE at once; each retransmitted 2xx is ACKed again
  (13.2.2.4, RFC 6026).
- Forking: a 2xx with another To tag is ACKed and its dialog ended with a BYE (13.2.2.4).
- Digest: a 401/407 is answered once per realm (twice for ``stale=true``) with a new CSeq.

Tests: tests/sip/test_session.py (and tests/sip/test_sip_leg.py, tests/sip/test_sipp.py).
"""
from __future__ import annotations

from protocols.sip.dialog import Dialog, DialogSession
from protocols.sip.message import Headers, Request, parse_name_addr
from protocols.sip.keepalive import invite_headers, min_se, negotiated_by_2xx
from protocols.sip.session import (Abandon, Answered, Ended, Input, Progress,
                                   Rejected, SendAck, SendRequest, State, bracket, build_table,
                                   reason_cause, token)
from protocols.sip.transaction import StartTimer, StopTimer
from protocols.sip.uri import SipParseError

S, I = State, Input
_BEFORE_2XX = (S.CALLING, S.PROCEEDING, S.CANCEL_PENDING, S.CANCELLING)


class UacSession(DialogSession):
    """One outgoing call's INVITE session (UAC side of the dialog)."""

    TIMERS = {"cancel": I.TIMER_CANCEL, "answer": I.TIMER_ANSWER}

    def __init__(self, profile, target, caller=None, privacy=False, call_id=None, token=token):
        """``target`` is the already rewritten user part of the Request-URI; ``caller`` the
        caller's number (or None); ``privacy`` asks for ``Privacy: id`` (RFC 3325)."""
        local_tag = token()
        call_id = call_id or f"{token()}@{profile.local_host}"
        gw = bracket(profile.gateway_host)
        default = 5061 if profile.transport == "tls" else 5060
        port = "" if profile.gateway_port == default else f":{profile.gateway_port}"
        scheme, tparam = profile.scheme, profile.uri_transport
        if target[:1] in "+0123456789":
            self.request_uri = f"{scheme}:{target}@{gw}{port};user=phone{tparam}"
        else:
            self.request_uri = f"{scheme}:{target}@{gw}{port}{tparam}"
        self.to_header = f"<{scheme}:{target}@{gw}{port};user=phone>"
        local = profile.local
        if privacy or not caller:
            from_ = "\"Anonymous\" <sip:anonymous@anonymous.invalid>"
        else:
            from_ = f"<sip:{caller}@{local};user=phone>"
        self.from_header = f"{from_};tag={local_tag}"
        self.identity = [] if not caller else [
            ("P-Asserted-Identity", f"<sip:{caller}@{local};user=phone>")]
        if privacy:
            self.identity.append(("Privacy", "id"))
        routes = [f"<sip:{profile.proxy};lr>"] if profile.proxy else []
        dialog = Dialog(profile, call_id, local_tag, self.from_header, self.to_header,
                        self.request_uri, token, route_set=routes)
        super().__init__(profile, dialog, token)
        self.invite = None          # the current INVITE (after any auth retry)
        self.ack = None             # ACK for the 2xx, resent for retransmitted 2xx
        self.cancel = None
        self.cancel_wanted = None   # Q.850 cause of a release asked for before any 1xx
        self._forks = {}            # To tag of another fork's 2xx -> (ACK, hop)
        self.answer_2xx = None      # the 2xx whose offer waits for our answer
        self._tried_422 = False

    @property
    def awaiting_answer(self):
        """True while the 2xx's offer waits for our answer (delayed offer)."""
        return self.state is S.ACCEPTED

    @property
    def contact(self):
        return self.dialog.contact

    # ---- the layer above ----
    def start(self, sdp):
        """Send the INVITE with offer ``sdp`` (bytes or None for a delayed offer)."""
        return self._step(I.START, sdp)

    def acknowledge(self, sdp):
        """Send the ACK for a delayed offer's 2xx with our answer ``sdp`` (None: no usable
        answer, so the ACK goes empty and a BYE with cause 88 follows)."""
        if self.state is not S.ACCEPTED:
            return []
        return self._step(I.ANSWER if sdp is not None else I.NO_ANSWER, sdp)

    # ---- classification of the INVITE's responses ----
    def _is_initial(self, number):
        return self.invite is not None and number == self.invite.cseq[0]

    def _initial_response(self, response):
        status = response.status
        if status < 200:
            return self._step(I.R_1XX, response)
        if status < 300:
            if self.state in _BEFORE_2XX:
                offer = not self.invite.body and response.body
                return self._step(I.R_2XX_OFFER if offer else I.R_2XX, response)
            tag = response.to_tag
            if tag is not None and tag == self.dialog.remote_tag:
                return self._step(I.R_2XX_AGAIN, response)
            return self._step(I.R_2XX_FORK, response)
        if status in (401, 407) and self.state in (S.CALLING, S.PROCEEDING):
            retry = self._auth_retry(self.invite, response)
            if retry:
                return self._step(I.R_CHALLENGE, retry)
        if status == 422 and self.state in (S.CALLING, S.PROCEEDING):
            retry = self._retry_422(response)
            if retry:
                return self._step(I.R_CHALLENGE, retry)
        return self._step(I.R_FAILURE, response)

    def _retry_422(self, response):
        """RFC 4028 7.4: our Session-Expires was too small: once again with the Min-SE the
        422 names (a new CSeq and branch, as for a challenge)."""
        least = min_se(response)
        if self._tried_422 or least is None or self.profile.keepalive.mode != "session-timer":
            return None
        self._tried_422 = True
        value = max(least, self.profile.keepalive.session_expires)
        self.dialog.local_cseq += 1
        headers = self.invite.headers.copy()
        headers.set("Via", self.dialog.via())
        headers.set("CSeq", f"{self.dialog.local_cseq} INVITE")
        headers.set("Session-Expires", str(value))
        headers.set("Min-SE", str(least))
        retry = Request("INVITE", self.invite.uri, headers, self.invite.body)
        return [SendRequest(retry, self.profile.first_hop())]

    def _other_failure(self, request, status, reason):
        if request is self.invite:
            inp = I.TIMEOUT if status == 408 else I.TRANSPORT_ERROR
            return self._step(inp, (status, reason))
        return []

    def _request_hop(self, request):
        if request is self.invite:
            return self.profile.first_hop()
        return self.dialog.hop()

    # ---- actions ----
    def _send_invite(self, sdp):
        self.local_sdp = sdp
        extra = list(self.identity) + [("Allow", self.profile.allow),
                                       ("User-Agent", self.profile.user_agent)]
        extra += invite_headers(self.profile.keepalive)
        self.invite = self.dialog.request("INVITE", cseq=self.dialog.local_cseq, body=sdp or b"",
                                          extra=extra, uri=self.request_uri)
        return [SendRequest(self.invite, self.profile.first_hop())]

    def _progress(self, response):
        return [Progress(response.status, response.reason, response.body or None)]

    def _cancel_later(self, q850):
        self.cancel_wanted = q850
        return []

    def _send_cancel(self, q850):
        inv = self.invite
        h = [("Via", inv.headers.get_all("Via")[0]), ("Max-Forwards", "70")]
        h += [("Route", r) for r in inv.headers.get_all("Route")]
        h += [("From", inv.headers.get("From")), ("To", inv.headers.get("To")),
              ("Call-ID", self.call_id), ("CSeq", f"{inv.cseq[0]} CANCEL"),
              ("Reason", f"Q.850;cause={q850}"), ("Content-Length", "0")]
        if self.cancel_wanted is None:
            self.cancel_wanted = q850
        self.cancel = Request("CANCEL", inv.uri, Headers(h))
        # RFC 3261 9.1: without a final response 64*T1 after the CANCEL, give up
        return [SendRequest(self.cancel, self.profile.first_hop()),
                StartTimer("cancel", self.profile.timers.long)]

    def _send_cancel_now(self, response):
        return self._send_cancel(self.cancel_wanted)

    def _answered(self, response):
        self.dialog.confirm(response)
        self.ack = self.dialog.request("ACK", cseq=self.invite.cseq[0])
        return [SendAck(self.ack, self.dialog.hop()), Answered(response.body or None)] + \
            self._start_keepalive(negotiated_by_2xx(self.profile.keepalive, response), response)

    def _offered(self, response):
        # delayed offer (RFC 3264 / 3261 13.2.1): the ACK carries our answer, which the layer
        # above gives to ``acknowledge``; until then 2xx copies wait
        self.dialog.confirm(response)
        self.answer_2xx = response
        return [StartTimer("answer", self.profile.timers.long), Answered(response.body or None)]

    def _answered_late(self, response):
        # the 2xx crossed our CANCEL (or came before the 1xx the CANCEL waited for): the call
        # is answered but nobody wants it: ACK it and end it at once (RFC 3261 9.1, 15)
        self.dialog.confirm(response)
        self.ack = self.dialog.request("ACK", cseq=self.invite.cseq[0])
        return [StopTimer("cancel"), SendAck(self.ack, self.dialog.hop())] + \
            self._send_bye(self.cancel_wanted or 16)

    def _ack_again(self, response):
        if self.ack is None:
            return []
        return [SendAck(self.ack, self.dialog.hop())]     # a retransmitted 2xx (13.2.2.4)

    def _fork_2xx(self, response):
        """A 2xx from another fork (13.2.2.4): ACK it, then end that dialog with a BYE."""
        tag = response.to_tag
        if not tag:
            return []
        fork = self._forks.get(tag)
        if fork is not None:
            return [SendAck(fork[0], fork[1])]             # its retransmission: ACK again
        routes = list(reversed(response.headers.get_all("Record-Route")))
        contact = response.headers.get("Contact")
        try:
            target = str(parse_name_addr(contact).uri) if contact else self.request_uri
        except SipParseError:
            target = self.request_uri
        to = f"{self.to_header};tag={tag}"
        hop = self.dialog.hop(routes=routes, target=target)
        ack = self.dialog.request("ACK", cseq=self.invite.cseq[0], uri=target, to=to,
                                  routes=routes)
        bye = self.dialog.request("BYE", uri=target, to=to, routes=routes)
        self._forks[tag] = (ack, hop)
        return [SendAck(ack, hop), SendRequest(bye, hop)]

    def _rejected(self, response):
        return [Rejected(response.status, response.reason, reason_cause(response))] + \
            self._close()

    def _failed(self, why):
        status, reason = why
        return [Rejected(status, reason)] + self._close()

    def _retry_invite(self, retry):
        self.invite = retry[0].request
        return retry

    def _gave_up(self, _):
        return [StopTimer("cancel")] + self._close()

    def _abandon(self, _):
        return [Abandon(self.invite)] + self._close()

    def _ack_with(self, sdp):
        self.ack = self.dialog.request("ACK", cseq=self.invite.cseq[0], body=sdp or b"")
        return [StopTimer("answer"), SendAck(self.ack, self.dialog.hop())]

    def _ack_answer(self, sdp):
        response = self.answer_2xx
        return self._ack_with(sdp) + self._start_keepalive(
            negotiated_by_2xx(self.profile.keepalive, response), response)

    def _ack_no_answer(self, _):
        return self._ack_with(None) + self._send_bye(88)

    def _ack_and_bye(self, q850):
        return self._ack_with(None) + self._send_bye(q850)

    def _answer_timeout(self, _):
        return self._ack_no_answer(None) + [Ended("local", 88, "no answer for the offer")]


UAC_ROWS = [
    (S.IDLE, I.START, "_send_invite", S.CALLING),
    (S.IDLE, I.HANGUP, "_close", S.TERMINATED),
    (S.CALLING, I.HANGUP, "_cancel_later", S.CANCEL_PENDING),
    (S.PROCEEDING, I.HANGUP, "_send_cancel", S.CANCELLING),
    ((S.CANCEL_PENDING, S.CANCELLING), I.HANGUP, "_absorb", None),
    (S.ACCEPTED, I.HANGUP, "_ack_and_bye", S.TERMINATING),
    ((S.CALLING, S.PROCEEDING), I.R_1XX, "_progress", S.PROCEEDING),
    (S.CANCEL_PENDING, I.R_1XX, "_send_cancel_now", S.CANCELLING),
    ((S.CALLING, S.PROCEEDING), I.R_2XX, "_answered", S.CONFIRMED),
    ((S.CALLING, S.PROCEEDING), I.R_2XX_OFFER, "_offered", S.ACCEPTED),
    ((S.CANCEL_PENDING, S.CANCELLING), I.R_2XX, "_answered_late", S.TERMINATING),
    ((S.CANCEL_PENDING, S.CANCELLING), I.R_2XX_OFFER, "_answered_late", S.TERMINATING),
    ((S.CONFIRMED, S.TERMINATING, S.TERMINATED), I.R_2XX_AGAIN, "_ack_again", None),
    (S.ACCEPTED, I.R_2XX_AGAIN, "_absorb", None),
    ((S.ACCEPTED, S.CONFIRMED, S.TERMINATING, S.TERMINATED), I.R_2XX_FORK, "_fork_2xx", None),
    ((S.CALLING, S.PROCEEDING), I.R_FAILURE, "_rejected", S.TERMINATED),
    ((S.CALLING, S.PROCEEDING), I.R_CHALLENGE, "_retry_invite", S.CALLING),
    ((S.CANCEL_PENDING, S.CANCELLING), I.R_FAILURE, "_gave_up", S.TERMINATED),
    ((S.CALLING, S.PROCEEDING), I.TIMEOUT, "_failed", S.TERMINATED),
    ((S.CALLING, S.PROCEEDING), I.TRANSPORT_ERROR, "_failed", S.TERMINATED),
    ((S.CANCEL_PENDING, S.CANCELLING), I.TIMEOUT, "_gave_up", S.TERMINATED),
    ((S.CANCEL_PENDING, S.CANCELLING), I.TRANSPORT_ERROR, "_gave_up", S.TERMINATED),
    (S.CANCELLING, I.TIMER_CANCEL, "_abandon", S.TERMINATED),
    (S.ACCEPTED, I.ANSWER, "_ack_answer", S.CONFIRMED),
    (S.ACCEPTED, I.NO_ANSWER, "_ack_no_answer", S.TERMINATING),
    (S.ACCEPTED, I.TIMER_ANSWER, "_answer_timeout", S.TERMINATING),
]

build_table(UacSession, UAC_ROWS, base=DialogSession.DIALOG)
