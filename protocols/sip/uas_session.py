"""The callee's side of an INVITE session (RFC 3261 sections 9.2, 12.1.1, 13.3, 15).

``UasSession`` answers one INVITE that arrived outside any dialog (an inbound call). The adapter
makes it when its ``inbound`` hook accepts the INVITE; the layer above reads ``offer`` (the SDP,
None for a delayed offer), ``caller`` and ``target``, then drives it. Its table, ``UAS_ROWS``:

- Idle -> Proceeding (``start``: 100 Trying at once, 17.2.1) -> Early (``ring``: 180, or 183
  with SDP for early media; To tag, Contact and Record-Route as 12.1.1 asks) -> Accepted
  (``answer``: 200 with SDP, retransmitted T1 doubling to T2 on UDP until the ACK, 13.3.1.4)
  -> Confirmed (the ACK: ``Confirmed``, with the answer when the INVITE had no offer).
- ``reject(status)`` / ``hangup`` before the answer: a final non-2xx (hangup: 480 with an
  RFC 3326 Reason); the server transaction retransmits it and absorbs its ACK.
- CANCEL before the answer (9.2): the adapter answers the CANCEL 200, the session answers the
  INVITE 487 and reports ``Cancelled``; a BYE on the early dialog does the same (15.1.2).
- No ACK within 64*T1: the dialog is confirmed but the session ends with a BYE (13.3.1.4).
  A release asked for before the ACK waits for it (15: no BYE before the ACK or the 2xx's
  last retransmission).
- Then the dialog and re-INVITE tables of ``protocols.sip.dialog``: BYE either way, hold and
  resume by re-INVITE (glare: as the callee we wait 0-2 s after a 491, 14.1).

Tests: tests/sip/test_uas_session.py (tables) and tests/sip/test_sipp.py (sipp as the caller).
"""
from __future__ import annotations

from protocols.sip.dialog import Dialog, DialogSession
from protocols.sip.keepalive import answer_for
from protocols.sip.message import make_response, parse_name_addr
from protocols.sip.session import (Cancelled, Confirmed, Ended, Input, Respond, State,
                                   build_table, reason_cause, token)
from protocols.sip.transaction import StartTimer, StopTimer
from protocols.sip.uri import SipParseError

S, I = State, Input


def _without_tag(value):
    try:
        addr = parse_name_addr(value)
    except SipParseError:
        return value
    addr.params.pop("tag", None)
    return str(addr)


class UasSession(DialogSession):
    """One incoming call's INVITE session (UAS side of the dialog).

    ``profile`` names our address and the transport the INVITE came on; ``invite`` is the
    request (its server transaction is the adapter's).
    """

    TIMERS = {"2xx": I.TIMER_2XX, "2xx-stop": I.TIMER_2XX_STOP}
    _owns_call_id = False

    def __init__(self, profile, invite, token=token):
        contact = invite.headers.get("Contact")
        target = invite.from_.uri
        if contact:
            try:
                target = parse_name_addr(contact).uri
            except SipParseError:
                pass
        local_tag = token()
        dialog = Dialog(profile, invite.call_id, local_tag,
                        f"{invite.headers.get('To')};tag={local_tag}",
                        _without_tag(invite.headers.get("From")), str(target), token,
                        route_set=invite.headers.get_all("Record-Route"), local_cseq=0,
                        remote_tag=invite.from_tag, remote_cseq=invite.cseq[0])
        super().__init__(profile, dialog, token)
        self.invite = invite
        self.offer = invite.body or None
        self.caller = invite.from_.uri.user
        try:
            self.target = invite.request_uri.user
        except SipParseError:
            self.target = None
        self.answer_2xx = None
        self._negotiated = None      # RFC 4028: (interval, we refresh) our 2xx agreed to
        self._2xx_interval = profile.timers.t1
        self._bye_cause = 16

    # ---- the layer above ----
    def start(self):
        """Take the INVITE: 100 Trying."""
        return self._step(I.START)

    def ring(self, status=180, sdp=None):
        """Send a provisional response: 180 Ringing, or 183 Session Progress with ``sdp``."""
        return self._step(I.RING, (status, sdp))

    def answer(self, sdp):
        """Answer with 200 and ``sdp`` (our answer, or our offer for an offerless INVITE)."""
        return self._step(I.ANSWER, sdp)

    def reject(self, status, q850=None, reason=None):
        """Refuse the call with a final ``status`` (300-699) and an RFC 3326 cause."""
        return self._step(I.REJECT, (status, q850, reason))

    def receive_cancel(self, cancel):
        """The adapter answered ``cancel`` (for our INVITE) with 200; end the call (9.2)."""
        return self._step(I.CANCEL, cancel)

    # ---- input routing ----
    def _ack_received(self, request):
        if self.state in (S.ACCEPTED, S.ACCEPTED_BYE) and \
                request.cseq[0] == self.invite.cseq[0]:
            return self._step(I.ACK, request)
        return super()._ack_received(request)

    def _other_failure(self, request, status, reason):
        if request is self.invite and status == 503:
            return self._step(I.TRANSPORT_ERROR, (status, reason))
        return []

    # ---- actions ----
    def _trying(self, _):
        return [Respond(self.invite, make_response(self.invite, 100))]

    def _send_provisional(self, what):
        status, sdp = what
        response = self.dialog.response(self.invite, status, body=sdp or b"", record_route=True)
        return [Respond(self.invite, response)]

    def _send_2xx(self, sdp):
        self.local_sdp = sdp
        headers, self._negotiated = answer_for(self.profile.keepalive, self.invite)
        self.answer_2xx = self.dialog.response(
            self.invite, 200, body=sdp or b"", extra=[("Allow", self.profile.allow), *headers],
            record_route=True)
        self._2xx_interval = self.profile.timers.t1
        out = [Respond(self.invite, self.answer_2xx),
               StartTimer("2xx-stop", self.profile.timers.long)]
        if self.profile.transport == "udp":
            out.append(StartTimer("2xx", self._2xx_interval))
        return out

    def _resend_invite_2xx(self, _):
        self._2xx_interval = min(2 * self._2xx_interval, self.profile.timers.t2)
        return [Respond(self.invite, self.answer_2xx), StartTimer("2xx", self._2xx_interval)]

    def _send_final(self, what):
        status, q850, reason = what
        extra = [("Reason", f"Q.850;cause={q850}")] if q850 is not None else []
        response = self.dialog.response(self.invite, status, extra=extra, reason=reason)
        return [Respond(self.invite, response)] + self._close()

    def _decline(self, q850):
        return self._send_final((480, q850, None))

    def _cancelled(self, cancel):
        response = self.dialog.response(self.invite, 487)
        return [Respond(self.invite, response), Cancelled(reason_cause(cancel))] + \
            self._close()

    def _bye_early(self, bye):
        return [Respond(bye, self.dialog.response(bye, 200)),
                Respond(self.invite, self.dialog.response(self.invite, 487)),
                Cancelled(reason_cause(bye))] + self._close()

    def _lost(self, why):
        status, reason = why
        return [Ended("local", None, f"{status} {reason}")] + self._close()

    def _confirmed(self, ack):
        return [StopTimer("2xx"), StopTimer("2xx-stop"), Confirmed(ack.body or None)] + \
            self._start_keepalive(self._negotiated, self.invite)

    def _bye_after_ack(self, q850):
        self._bye_cause = q850
        return []

    def _confirmed_then_bye(self, ack):
        return [StopTimer("2xx"), StopTimer("2xx-stop")] + self._send_bye(self._bye_cause)

    def _no_invite_ack(self, _):
        return [StopTimer("2xx"), Ended("local", None, "no ACK for our 2xx")] + \
            self._send_bye(16)

    def _bye_without_ack(self, _):
        return [StopTimer("2xx")] + self._send_bye(self._bye_cause)


UAS_ROWS = [
    (S.IDLE, I.START, "_trying", S.PROCEEDING),
    ((S.PROCEEDING, S.EARLY), I.RING, "_send_provisional", S.EARLY),
    ((S.PROCEEDING, S.EARLY), I.ANSWER, "_send_2xx", S.ACCEPTED),
    ((S.PROCEEDING, S.EARLY), I.REJECT, "_send_final", S.TERMINATED),
    ((S.PROCEEDING, S.EARLY), I.HANGUP, "_decline", S.TERMINATED),
    ((S.PROCEEDING, S.EARLY), I.CANCEL, "_cancelled", S.TERMINATED),
    (S.EARLY, I.BYE, "_bye_early", S.TERMINATED),
    ((S.PROCEEDING, S.EARLY), I.TRANSPORT_ERROR, "_lost", S.TERMINATED),
    (S.ACCEPTED, I.ACK, "_confirmed", S.CONFIRMED),
    (S.ACCEPTED_BYE, I.ACK, "_confirmed_then_bye", S.TERMINATING),
    ((S.ACCEPTED, S.ACCEPTED_BYE), I.TIMER_2XX, "_resend_invite_2xx", None),
    (S.ACCEPTED, I.TIMER_2XX_STOP, "_no_invite_ack", S.TERMINATING),
    (S.ACCEPTED_BYE, I.TIMER_2XX_STOP, "_bye_without_ack", S.TERMINATING),
    (S.ACCEPTED, I.HANGUP, "_bye_after_ack", S.ACCEPTED_BYE),
    (S.ACCEPTED_BYE, I.HANGUP, "_absorb", None),
    (S.IDLE, I.HANGUP, "_close", S.TERMINATED),
]

build_table(UasSession, UAS_ROWS, base=DialogSession.DIALOG)
