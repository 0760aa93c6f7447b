"""The UAC INVITE session and its dialog (RFC 3261 sections 9, 12, 13, 14, 15, 22; RFC 3325).

A sans-I/O core for one outgoing call. ``InviteSession`` builds the INVITE (caller identity per
RFC 3325, the gateway's rewritten number in Request-URI and To), then takes the responses its
client transactions deliver and the in-dialog requests the adapter routes to it. It returns
effects: a request for a new client transaction (``SendRequest``), an ACK for a 2xx sent outside
any transaction (``SendAck``), a response to a received request (``Respond``), timers
(``StartTimer``/``StopTimer``, shared with ``protocols.sip.transaction``) and session events for
the layer above (``Progress``, ``Answered``, ``Rejected``, ``Ended``, ``ModifyAnswered``,
``ModifyFailed``, ``RemoteModify``, ``Closed``).

Covered: dialog state from the 2xx (tags, route set from Record-Route reversed, remote target
from Contact, 12.1.2); in-dialog requests and their CSeq (12.2.1.1); ACK for the 2xx and again
for each retransmitted 2xx (13.2.2.4, RFC 6026); CANCEL only after a provisional response (9.1);
BYE either side (15); re-INVITE for hold and resume (14), a crossing re-INVITE answered 491;
183 with SDP (early media); digest retry on 401/407 (22.2; one retry per challenge, a stale
nonce once more); a dialog ended by 481 or 408 to an in-dialog request (12.2.1.2).

Tests: tests/sip/test_session.py.
"""
from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field

from protocols.sip import digest
from protocols.sip.message import Headers, Request, make_response, parse_name_addr
from protocols.sip.transaction import RemoteProtocolError, StartTimer, StopTimer, TimerConfig
from protocols.sip.uri import SipParseError, parse_uri

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
USER_AGENT = "callgw"


# ---- effects and events ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Hop:
    """Where a request goes next: transport ('udp'|'tcp'), host, port."""
    transport: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send ``request`` to ``hop`` in a new client transaction."""
    request: Request
    hop: Hop


@dataclass(frozen=True, slots=True)
class SendAck:
    """Send the ACK for a 2xx to ``hop``, outside any transaction."""
    request: Request
    hop: Hop


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer ``request`` (received in this dialog) with ``response``."""
    request: Request
    response: object


@dataclass(frozen=True, slots=True)
class Progress:
    """A provisional response to the INVITE; ``sdp`` is set for early media."""
    status: int
    reason: str
    sdp: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    """The INVITE got a 2xx; the dialog is confirmed. ``sdp`` is the answer."""
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The call failed before answer: a final non-2xx, a timeout (408) or transport error (503).

    ``q850`` is the cause from an RFC 3326 Reason header, when the response had one.
    """
    status: int
    reason: str
    q850: int | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """The confirmed call ended; ``by`` is 'remote' (their BYE) or 'local' (a failed dialog)."""
    by: str
    q850: int | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class ModifyAnswered:
    """Our re-INVITE got a 2xx with ``sdp``."""
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class ModifyFailed:
    """Our re-INVITE failed with ``status`` (the call goes on unless the dialog ended)."""
    status: int


@dataclass(frozen=True, slots=True)
class RemoteModify:
    """The far end sent a re-INVITE with ``sdp``: call ``answer_modify(request, sdp)``."""
    request: Request
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: forget it (dialog tables, timers)."""


_CLOSED = Closed()


class SessionState(enum.Enum):
    IDLE = "Idle"
    CALLING = "Calling"
    EARLY = "Early"
    CONFIRMED = "Confirmed"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


# ---- helpers -------------------------------------------------------------------------------------

def rewrite_number(number, strip_digits=0, prepend="", keep_plus=True):
    """Apply a gateway's number rewriting to an E.164 ``number`` ("+4930123").

    The "+" is removed unless ``keep_plus``; then ``strip_digits`` leading digits are
    removed and ``prepend`` is put in front ("+4930123", 2, "0", False -> "030123").
    """
    plus = number.startswith("+")
    digits = number[1:] if plus else number
    if strip_digits:
        digits = digits[strip_digits:]
    out = prepend + digits
    if plus and keep_plus and not prepend:
        out = "+" + out
    return out


_REASON_RE = re.compile(r"Q\.850\s*;(?:[^,]*?;)?\s*cause\s*=\s*(\d+)", re.I)


def reason_cause(message):
    """The Q.850 cause of an RFC 3326 Reason header in ``message``, or None."""
    value = message.headers.get("Reason")
    if not value:
        return None
    match = _REASON_RE.search(value)
    return int(match.group(1)) if match else None


def _token():
    return os.urandom(8).hex()


def hop_for(uri_text, transport):
    """The hop for a SIP URI: its host and port (5060 default), its transport parameter wins."""
    uri = parse_uri(uri_text)
    port = uri.port or 5060
    return Hop(uri.transport or transport, uri.host.strip("[]"), port)


@dataclass
class Profile:
    """What a session needs to know about us and the gateway.

    ``local_host``/``local_port`` go into Via and Contact; ``transport`` is 'udp' or 'tcp';
    ``proxy`` is an outbound proxy 'host:port' or None; ``credentials`` a (username, password)
    pair or None; ``identity`` the caller's URI for P-Asserted-Identity or None.
    """
    local_host: str
    local_port: int
    gateway_host: str
    gateway_port: int = 5060
    transport: str = "udp"
    proxy: str | None = None
    credentials: tuple | None = None
    timers: TimerConfig = field(default_factory=TimerConfig)


class InviteSession:
    """One outgoing call's INVITE session (UAC side of the dialog)."""

    def __init__(self, profile, target, caller=None, privacy=False, call_id=None, token=_token):
        """``target`` is the already rewritten user part of the Request-URI; ``caller`` the
        caller's number (or None); ``privacy`` asks for ``Privacy: id`` (RFC 3325)."""
        self.profile = profile
        self.token = token
        self.state = SessionState.IDLE
        self.call_id = call_id or f"{token()}@{profile.local_host}"
        self.local_tag = token()
        self.remote_tag = None
        self.local_cseq = 1
        self.remote_cseq = None
        gw = profile.gateway_host
        if ":" in gw and not gw.startswith("["):
            gw = f"[{gw}]"
        port = "" if profile.gateway_port == 5060 else f":{profile.gateway_port}"
        tparam = ";transport=tcp" if profile.transport == "tcp" else ""
        self.request_uri = f"sip:{target}@{gw}{port};user=phone{tparam}" if \
            target[:1] in "+0123456789" else f"sip:{target}@{gw}{port}{tparam}"
        self.remote_target = self.request_uri
        self.to_header = f"<sip:{target}@{gw}{port};user=phone>"
        local = profile.local_host
        if ":" in local and not local.startswith("["):
            local = f"[{local}]"
        self._local = f"{local}:{profile.local_port}"
        if privacy or not caller:
            from_ = "\"Anonymous\" <sip:anonymous@anonymous.invalid>"
        else:
            from_ = f"<sip:{caller}@{self._local};user=phone>"
        self.from_header = f"{from_};tag={self.local_tag}"
        self.identity = [] if not caller else [
            ("P-Asserted-Identity", f"<sip:{caller}@{self._local};user=phone>")]
        if privacy:
            self.identity.append(("Privacy", "id"))
        self.contact = f"<sip:callgw@{self._local}{tparam}>"
        self.route_set = [f"<sip:{profile.proxy};lr>"] if profile.proxy else []
        self.invite = None          # the current INVITE (after any auth retry)
        self.ack = None             # ACK for the 2xx, resent for retransmitted 2xx
        self.bye = None
        self.reinvite = None        # our pending re-INVITE
        self.reinvite_ack = None
        self.remote_reinvite = None  # their re-INVITE we answered 2xx, waiting for ACK
        self.local_sdp = None
        self.cancel_wanted = None   # Q.850 cause once release is asked before a 1xx
        self.cancelled = False
        self.got_provisional = False
        self._auth_tries = {}
        self.awaiting_answer = False   # delayed offer: the 2xx came, our ACK waits
        self._forks = {}            # To tag of another fork's 2xx -> (ACK, hop, BYE CSeq)
        self._retry_sdp = None      # the re-INVITE to try again after a 491
        self._reinvite_2xx = None
        self._reinvite_interval = profile.timers.t1

    # ---- building requests ----
    def _hop(self, initial=False, routes=None, target=None):
        p = self.profile
        routes = self.route_set if routes is None else routes
        if routes:
            route = parse_name_addr(routes[0]).uri
            return Hop(p.transport, route.host.strip("[]"), route.port or 5060)
        if initial or p.proxy:
            host = p.proxy or f"{p.gateway_host}:{p.gateway_port}"
            name, _, port = host.rpartition(":")
            return Hop(p.transport, name.strip("[]"), int(port))
        return hop_for(target or self.remote_target, p.transport)

    def _via(self):
        t = "TCP" if self.profile.transport == "tcp" else "UDP"
        return f"SIP/2.0/{t} {self._local};branch=z9hG4bK{self.token()};rport"

    def _request(self, method, cseq=None, body=b"", extra=(), uri=None, to=None, routes=None):
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        h = [("Via", self._via()), ("Max-Forwards", "70")]
        h += [("Route", r) for r in (self.route_set if routes is None else routes)]
        h += [("From", self.from_header), ("To", to or self._to()), ("Call-ID", self.call_id),
              ("CSeq", f"{cseq} {method}")]
        if method == "INVITE":
            h.append(("Contact", self.contact))
        h += list(extra)
        if body:
            h.append(("Content-Type", "application/sdp"))
        h.append(("Content-Length", str(len(body))))
        return Request(method, uri or self.remote_target, Headers(h), body)

    def _to(self):
        if self.remote_tag:
            return f"{self.to_header};tag={self.remote_tag}"
        return self.to_header

    # ---- actions from the layer above ----
    def start(self, sdp):
        """Send the INVITE with offer ``sdp`` (bytes or None for a delayed offer)."""
        if self.state is not SessionState.IDLE:
            raise ValueError("session already started")
        self.state = SessionState.CALLING
        self.local_sdp = sdp
        extra = list(self.identity) + [("Allow", ALLOW), ("User-Agent", USER_AGENT)]
        self.invite = self._request("INVITE", cseq=self.local_cseq, body=sdp or b"",
                                    extra=extra, uri=self.request_uri)
        return [SendRequest(self.invite, self._hop(initial=True))]

    def hangup(self, q850=16):
        """Release: CANCEL before answer, BYE after it; effects (maybe none)."""
        st = self.state
        if st is SessionState.CALLING or st is SessionState.EARLY:
            if self.cancelled:
                return []
            if not self.got_provisional:
                self.cancel_wanted = q850
                return []
            return self._cancel(q850)
        if st is SessionState.CONFIRMED:
            if self.awaiting_answer:
                self.awaiting_answer = False
                self.ack = self._request("ACK", cseq=self.invite.cseq[0])
                return [StopTimer("answer"), SendAck(self.ack, self._hop())] + self._bye(q850)
            return self._bye(q850)
        if st is SessionState.IDLE:
            self.state = SessionState.TERMINATED
            return [_CLOSED]
        return []

    def _cancel(self, q850):
        self.cancelled = True
        inv = self.invite
        h = [("Via", inv.headers.get_all("Via")[0]), ("Max-Forwards", "70")]
        h += [("Route", r) for r in inv.headers.get_all("Route")]
        h += [("From", inv.headers.get("From")), ("To", inv.headers.get("To")),
              ("Call-ID", self.call_id), ("CSeq", f"{inv.cseq[0]} CANCEL"),
              ("Reason", f"Q.850;cause={q850}"), ("Content-Length", "0")]
        cancel = Request("CANCEL", inv.uri, Headers(h))
        # RFC 3261 9.1: without a final response 64*T1 after the CANCEL, give up
        return [SendRequest(cancel, self._hop(initial=True)),
                StartTimer("cancel", self.profile.timers.long)]

    def _bye(self, q850):
        self.state = SessionState.TERMINATING
        self.bye = self._request("BYE", extra=[("Reason", f"Q.850;cause={q850}")])
        return [SendRequest(self.bye, self._hop())]

    def modify(self, sdp):
        """Send a re-INVITE with ``sdp`` (hold: sendonly; resume: sendrecv)."""
        if self.state is not SessionState.CONFIRMED or self.reinvite is not None or \
                self.awaiting_answer:
            return [ModifyFailed(491)]
        self.local_sdp = sdp
        self._retry_sdp = None
        self.reinvite = self._request("INVITE", body=sdp, extra=[("Allow", ALLOW)])
        return [StopTimer("491"), SendRequest(self.reinvite, self._hop())]

    def answer_modify(self, request, sdp):
        """Answer the far end's re-INVITE with our ``sdp`` (None refuses it with 488)."""
        if sdp is None:
            return [Respond(request, self._response(request, 488))]
        response = self._response(request, 200, body=sdp)
        self._reinvite_2xx = response
        self.remote_reinvite = request
        self._reinvite_interval = self.profile.timers.t1
        out = [Respond(request, response), StartTimer("2xx-stop", self.profile.timers.long)]
        if self.profile.transport == "udp":
            out.append(StartTimer("2xx", self._reinvite_interval))
        return out

    def _response(self, request, status, body=b"", extra=()):
        h = [("Contact", self.contact)] if request.method == "INVITE" and status < 300 else []
        h += list(extra)
        if body:
            h.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=self.local_tag, headers=h)
        response.body = body
        return response

    # ---- input from the transaction layer ----
    def receive_response(self, response):
        """A response delivered by one of our client transactions (or a stray 2xx)."""
        number, method = response.cseq
        if method == "INVITE":
            if self.invite is not None and number == self.invite.cseq[0]:
                return self._invite_response(response)
            if self.reinvite is not None and number == self.reinvite.cseq[0]:
                return self._reinvite_response(response)
            if self.reinvite_ack is not None and number == self.reinvite_ack.cseq[0] \
                    and response.status < 300:
                return [SendAck(self.reinvite_ack, self._hop())]
            return []
        if response.status < 200:
            return []
        if method == "BYE":
            if self.bye is None or number != self.bye.cseq[0]:
                return []                               # a forked dialog's BYE, or stale
            if response.status in (401, 407) and self.state is SessionState.TERMINATING:
                retry = self._auth_retry(self.bye, response)
                if retry:
                    self.bye = retry[0].request
                    return retry
            return self._close()
        return []

    def _invite_response(self, response):
        status = response.status
        st = self.state
        if status < 200:
            if st is not SessionState.CALLING and st is not SessionState.EARLY:
                return []
            self.got_provisional = True
            self.state = SessionState.EARLY
            out = []
            if self.cancel_wanted is not None and not self.cancelled:
                return self._cancel(self.cancel_wanted)
            if not self.cancelled:
                out.append(Progress(status, response.reason, response.body or None))
            return out
        if status < 300:
            return self._invite_2xx(response)
        if st is not SessionState.CALLING and st is not SessionState.EARLY:
            return []
        if status in (401, 407) and not self.cancelled and self.cancel_wanted is None:
            retry = self._auth_retry(self.invite, response)
            if retry:
                self.invite = retry[0].request
                self.state = SessionState.CALLING
                self.got_provisional = False
                return retry
        self.state = SessionState.TERMINATED
        out = [StopTimer("cancel")]
        if not self.cancelled and self.cancel_wanted is None:
            out.append(Rejected(status, response.reason, reason_cause(response)))
        return out + [_CLOSED]

    def _invite_2xx(self, response):
        st = self.state
        if st is SessionState.CALLING or st is SessionState.EARLY:
            self.remote_tag = response.to_tag
            rr = response.headers.get_all("Record-Route")
            if rr:
                self.route_set = list(reversed(rr))
            contact = response.headers.get("Contact")
            if contact:
                try:
                    self.remote_target = str(parse_name_addr(contact).uri)
                except SipParseError:
                    pass
            self.state = SessionState.CONFIRMED
            releasing = self.cancelled or self.cancel_wanted is not None
            if self.invite.body or releasing or not response.body:
                self.ack = self._request("ACK", cseq=self.invite.cseq[0])
                out = [StopTimer("cancel"), SendAck(self.ack, self._hop())]
            else:
                # delayed offer (RFC 3264 / 3261 13.2.1): the ACK carries our answer, which
                # the layer above gives to ``acknowledge``; until then 2xx copies wait
                self.awaiting_answer = True
                out = [StopTimer("cancel"), StartTimer("answer", self.profile.timers.long)]
            if releasing:
                # the 2xx crossed our CANCEL (or came before the 1xx we waited for)
                return out + self._bye(self.cancel_wanted or 16)
            return out + [Answered(response.body or None)]
        if self.ack is not None and response.to_tag == self.remote_tag:
            return [SendAck(self.ack, self._hop())]   # a retransmitted 2xx (13.2.2.4)
        if self.awaiting_answer and response.to_tag == self.remote_tag:
            return []
        return self._forked_2xx(response)

    def acknowledge(self, sdp):
        """Send the ACK for a delayed offer's 2xx with our answer ``sdp`` (None: no usable
        answer, so the ACK goes empty and a BYE with cause 88 follows)."""
        if not self.awaiting_answer:
            return []
        self.awaiting_answer = False
        self.ack = self._request("ACK", cseq=self.invite.cseq[0], body=sdp or b"")
        out = [StopTimer("answer"), SendAck(self.ack, self._hop())]
        if sdp is None and self.state is SessionState.CONFIRMED:
            out += self._bye(88)
        return out

    def _forked_2xx(self, response):
        """A 2xx from another fork (13.2.2.4): ACK it, then end that dialog with a BYE."""
        tag = response.to_tag
        if not tag:
            return []
        fork = self._forks.get(tag)
        if fork is not None:
            return [SendAck(fork[0], fork[1])]         # its retransmission: ACK again
        routes = list(reversed(response.headers.get_all("Record-Route")))
        contact = response.headers.get("Contact")
        try:
            target = str(parse_name_addr(contact).uri) if contact else self.request_uri
        except SipParseError:
            target = self.request_uri
        to = f"{self.to_header};tag={tag}"
        hop = self._hop(routes=routes, target=target)
        ack = self._request("ACK", cseq=self.invite.cseq[0], uri=target, to=to, routes=routes)
        bye = self._request("BYE", uri=target, to=to, routes=routes)
        self._forks[tag] = (ack, hop, bye.cseq[0])
        return [SendAck(ack, hop), SendRequest(bye, hop)]

    def _reinvite_response(self, response):
        status = response.status
        if status < 200:
            return []
        request, self.reinvite = self.reinvite, None
        if status < 300:
            self._retry_sdp = None
            self.reinvite_ack = self._request("ACK", cseq=request.cseq[0])
            return [SendAck(self.reinvite_ack, self._hop()), ModifyAnswered(response.body or None)]
        if status in (401, 407):
            retry = self._auth_retry(request, response)
            if retry:
                self.reinvite = retry[0].request
                return retry
        if status in (481, 408):
            return [ModifyFailed(status)] + self._fail_dialog(status)
        if status == 491 and self._retry_sdp is None:
            # RFC 3261 14.1: we own the Call-ID, so wait 2.1-4 s (10 ms steps), then again
            self._retry_sdp = request.body
            wait = 2.1 + (int.from_bytes(os.urandom(2), "big") % 191) / 100
            return [StartTimer("491", wait)]
        self._retry_sdp = None
        return [ModifyFailed(status)]

    def _fail_dialog(self, status):
        if self.state is not SessionState.CONFIRMED:
            return []
        return [Ended("local", None, f"{status} to an in-dialog request")] + self._bye(16)

    def _auth_retry(self, request, response):
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
        self.local_cseq += 1
        headers = request.headers.copy()
        headers.set("Via", self._via())
        headers.set("CSeq", f"{self.local_cseq} {request.method}")
        headers.remove("Authorization")
        headers.remove("Proxy-Authorization")
        headers.add(name, authz)
        retry = Request(request.method, request.uri, headers, request.body)
        initial = request is self.invite
        return [SendRequest(retry, self._hop(initial=initial))]

    def request_timeout(self, request):
        """A client transaction of ours timed out (Timer B or F): RFC 3261 8.1.3.1's 408."""
        return self._failure(request, 408, "Request Timeout")

    def transport_failed(self, request):
        """The transport could not carry ``request``: a 503 (RFC 3261 8.1.3.1)."""
        return self._failure(request, 503, "Service Unavailable")

    def _failure(self, request, status, reason):
        method = request.method
        if method == "INVITE" and request is self.invite:
            if self.state in (SessionState.CALLING, SessionState.EARLY):
                self.state = SessionState.TERMINATED
                out = [] if (self.cancelled or self.cancel_wanted is not None) else [
                    Rejected(status, reason)]
                return [StopTimer("cancel")] + out + [_CLOSED]
            return []
        if method == "INVITE" and request is self.reinvite:
            self.reinvite = None
            return [ModifyFailed(status)] + self._fail_dialog(status)
        if method == "BYE":
            return self._close()
        return []

    def timer_fired(self, name):
        """A timer this session asked for expired."""
        if name == "cancel":
            if self.state in (SessionState.CALLING, SessionState.EARLY):
                self.state = SessionState.TERMINATED
                return [_CLOSED]
            return []
        if name == "answer":
            if not self.awaiting_answer:
                return []
            return self.acknowledge(None) + [Ended("local", 88, "no answer for the offer")]
        if name == "491":
            sdp, self._retry_sdp = self._retry_sdp, None
            if sdp and self.state is SessionState.CONFIRMED and self.reinvite is None:
                out = self.modify(sdp)
                self._retry_sdp = b"" if sdp is None else sdp   # one retry only
                return out
            return []
        if name == "2xx" and self._reinvite_2xx is not None:
            self._reinvite_interval = min(2 * self._reinvite_interval, self.profile.timers.t2)
            return [Respond(self.remote_reinvite, self._reinvite_2xx),
                    StartTimer("2xx", self._reinvite_interval)]
        if name == "2xx-stop" and self._reinvite_2xx is not None:
            # RFC 3261 14.2 / 13.3.1.4: no ACK for our 2xx within 64*T1: end the dialog
            self._reinvite_2xx = None
            return [StopTimer("2xx")] + self._fail_dialog(408)
        return []

    def _close(self):
        if self.state is SessionState.TERMINATED:
            return []
        self.state = SessionState.TERMINATED
        return [StopTimer("2xx"), StopTimer("2xx-stop"), _CLOSED]

    # ---- requests the far end sends in our dialog ----
    def receive_request(self, request):
        """An in-dialog request (its To tag is ours).

        Raises ``RemoteProtocolError`` (with the status to answer) when the far end broke the
        dialog's rules; the adapter answers it.
        """
        method = request.method
        if method == "ACK":
            if self._reinvite_2xx is not None and self.remote_reinvite is not None and \
                    request.cseq[0] == self.remote_reinvite.cseq[0]:
                self._reinvite_2xx = None
                return [StopTimer("2xx"), StopTimer("2xx-stop")]
            return []
        number = request.cseq[0]
        if self.remote_cseq is not None and number <= self.remote_cseq:
            raise RemoteProtocolError("CSeq out of order", 500)       # 12.2.2
        self.remote_cseq = number
        if method == "BYE":
            if self.state not in (SessionState.CONFIRMED, SessionState.TERMINATING):
                return [Respond(request, self._response(request, 481))]   # no dialog yet
            was = self.state
            out = [Respond(request, self._response(request, 200))]
            out += self._close()
            if was is SessionState.CONFIRMED:
                out.insert(1, Ended("remote", reason_cause(request), "BYE"))
            return out
        if method == "INVITE":
            if self.state is not SessionState.CONFIRMED:
                return [Respond(request, self._response(request, 481))]
            if self.reinvite is not None or self._reinvite_2xx is not None:
                return [Respond(request, self._response(request, 491))]
            return [RemoteModify(request, request.body or None)]
        if method == "OPTIONS":
            return [Respond(request, self._response(request, 200, extra=[("Allow", ALLOW)]))]
        return [Respond(request, self._response(request, 405, extra=[("Allow", ALLOW)]))]
