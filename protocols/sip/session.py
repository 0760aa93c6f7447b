"""The INVITE session's shared vocabulary and table machinery (RFC 3261 sections 12-15).

An INVITE session is split in three sans-I/O cores, each a table
``(state, input) -> (action, next_state)`` named after the RFC, as ``protocols.sip.transaction``
does for section 17:

- ``protocols.sip.dialog``: the dialog (section 12), BYE (15) and the re-INVITE offer/answer
  exchange (14), shared by both sides;
- ``protocols.sip.uac_session``: the caller's side of the initial INVITE (13.2, CANCEL 9.1,
  digest 22.2, forking 13.2.2.4, delayed offer);
- ``protocols.sip.uas_session``: the callee's side (13.3, CANCEL received 9.2, 2xx retransmission
  until ACK 13.3.1.4), ready for inbound calls.

Liveness (``protocols.sip.keepalive``): the layer above asks for it per call with
``Profile.keepalive = KeepaliveConfig(mode, interval, session_expires, min_se)``, mode ``off``
(the default: nothing is sent, since sipp and many gateways end a call on an in-dialog request
they do not expect), ``options`` (an in-dialog OPTIONS every ``interval`` seconds) or
``session-timer`` (RFC 4028, running only when the 2xx carries Session-Expires). It learns the
far end vanished from the ``Vanished(reason, q850)`` event, which ``Ended("local", q850,
reason)`` and a BYE with that cause follow at once.

This module holds what the three share: the effects a session returns for the adapter
(``SendRequest``, ``SendAck``, ``Respond``, ``Abandon``, and ``StartTimer``/``StopTimer`` from
``protocols.sip.transaction``), the session events for the layer above (``Progress``,
``Answered``, ``Rejected``, ``Ended``, ``ModifyAnswered``, ``ModifyFailed``, ``RemoteModify``,
``Confirmed``, ``Cancelled``, ``Vanished``, ``Closed``), the ``State``/``Input`` names of the
tables, the ``Profile`` (who we are, who the peer is, which transport, which keepalive) and
``KeepaliveConfig``, and ``TableMachine``, the table walk.

Pairs a table does not list: a network or timer input is absorbed (a late copy, a response to a
request already settled); a call from the layer above raises ``LocalProtocolError``. Every pair
that does something is listed, and ``docs/protocols/sip-sessions.md`` draws the tables with
``mermaid``.

Tests: tests/sip/test_session.py (UAC), tests/sip/test_uas_session.py (UAS),
tests/sip/test_dialog.py (tables, dialog), tests/sip/test_keepalive.py (liveness).
"""
from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field

from protocols.sip.transaction import LocalProtocolError, TimerConfig
from protocols.sip.uri import parse_uri

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
USER_AGENT = "callgw"


# ---- effects ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """How a TLS hop is checked: ``verify`` the peer's certificate against ``ca_file`` (PEM;
    None: the system's trust store) for ``server_name`` (None: the hop's host)."""
    verify: bool = True
    ca_file: str | None = None
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class Hop:
    """Where a request goes next: transport ('udp'|'tcp'|'tls'), host, port, and for TLS the
    certificate policy."""
    transport: str
    host: str
    port: int
    tls: TlsPolicy | None = None


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send ``request`` to ``hop`` in a new client transaction."""
    request: object
    hop: Hop


@dataclass(frozen=True, slots=True)
class SendAck:
    """Send the ACK for a 2xx to ``hop``, outside any transaction."""
    request: object
    hop: Hop


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer ``request`` (received in this session) with ``response``."""
    request: object
    response: object


@dataclass(frozen=True, slots=True)
class Abandon:
    """Consider the client transaction of ``request`` terminated (RFC 3261 9.1: no final
    response 64*T1 after our CANCEL)."""
    request: object


# ---- events for the layer above -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Progress:
    """A provisional response to our INVITE; ``sdp`` is set for early media."""
    status: int
    reason: str
    sdp: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    """Our INVITE got a 2xx; the dialog is confirmed. ``sdp`` is the answer (or, when our
    INVITE had no offer, the far end's offer: answer it with ``acknowledge``)."""
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
    """The confirmed call ended; ``by`` is 'remote' (their BYE) or 'local' (a failed dialog:
    481/408 to an in-dialog request, no ACK, no answer, a session that expired)."""
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
class InfoAnswered:
    """Our INFO (RFC 6086) got its final answer: ``status`` (408/503 when none came)."""
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class RemoteModify:
    """The far end sent a re-INVITE with ``sdp``: call ``answer_modify(request, sdp)``."""
    request: object
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class Confirmed:
    """(UAS) The ACK for our 2xx arrived; ``sdp`` is the answer it carried (delayed offer)."""
    sdp: bytes | None = None


@dataclass(frozen=True, slots=True)
class Cancelled:
    """(UAS) The caller cancelled before we answered (RFC 3261 9.2); we answered 487.
    ``q850`` is the CANCEL's RFC 3326 Reason cause, if any."""
    q850: int | None = None


@dataclass(frozen=True, slots=True)
class Vanished:
    """The far end is gone: its in-dialog keepalives failed (``q850`` 41) or it let the RFC
    4028 session expire (102). ``Ended`` and a BYE with that cause follow at once."""
    reason: str
    q850: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: forget it (dialog tables, timers)."""


CLOSED = Closed()


# ---- table names ----------------------------------------------------------------------------

class State(enum.Enum):
    """States of the INVITE session tables (uac_session, uas_session, dialog)."""
    IDLE = "Idle"
    CALLING = "Calling"                     # UAC: INVITE sent, nothing back yet
    PROCEEDING = "Proceeding"               # UAC: a 1xx came; UAS: INVITE taken, 100 sent
    CANCEL_PENDING = "CancelPending"        # UAC: release asked before any 1xx (9.1)
    CANCELLING = "Cancelling"               # UAC: CANCEL sent, waiting for the final response
    EARLY = "Early"                         # UAS: a 1xx with our To tag went out (12.1.1)
    ACCEPTED = "Accepted"                   # UAC: 2xx came, ACK waits for our answer;
    #                                         UAS: 2xx sent, waiting for the ACK (13.3.1.4)
    ACCEPTED_BYE = "AcceptedByePending"     # UAS: released before the ACK came (15)
    CONFIRMED = "Confirmed"                 # the dialog (12)
    TERMINATING = "Terminating"             # our BYE is out (15.1.1)
    TERMINATED = "Terminated"
    # the re-INVITE exchange of a confirmed dialog (14)
    STABLE = "Stable"
    OFFER_SENT = "OfferSent"                # our re-INVITE is out
    RETRY_WAIT = "RetryWait"                # it got 491: wait 2.1-4 s (14.1)
    OFFER_RECEIVED = "OfferReceived"        # theirs is up with the layer above
    ANSWER_SENT = "AnswerSent"              # our 2xx to theirs waits for the ACK
    # the keepalive of a confirmed dialog (protocols.sip.keepalive)
    OFF = "Off"
    PROBING = "Probing"                     # our OPTIONS or refresh is out
    WATCHING = "Watching"                   # the far end refreshes the session
    ENDED = "Ended"


class Input(enum.Enum):
    """Inputs of the session tables: network, timers and the layer above (``LOCAL``)."""
    START = "start"
    HANGUP = "hangup"
    ANSWER = "answer"                       # UAC: our answer for the ACK / UAS: send 2xx
    NO_ANSWER = "no answer"                 # UAC: no usable answer for the 2xx's offer
    RING = "send 1xx"
    REJECT = "send 300-699"
    R_1XX = "1xx"
    R_2XX = "2xx"
    R_2XX_OFFER = "2xx with offer"
    R_2XX_AGAIN = "2xx again"
    R_2XX_FORK = "2xx of another fork"
    R_FAILURE = "300-699"
    R_CHALLENGE = "401/407/422 to retry"
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport error"
    CANCEL = "CANCEL"
    ACK = "ACK"
    BYE = "BYE"
    REQUEST = "other request"
    BYE_FINAL = "BYE final"
    BYE_CHALLENGE = "BYE 401/407"
    BYE_FAILED = "BYE timeout"
    DIALOG_FAILED = "481/408"
    TIMER_CANCEL = "cancel timer"
    TIMER_ANSWER = "answer timer"
    TIMER_2XX = "2xx timer"
    TIMER_2XX_STOP = "64*T1"
    # re-INVITE exchange
    MODIFY = "modify"
    REINVITE = "re-INVITE"
    ANSWER_MODIFY = "answer re-INVITE"
    REFUSE_MODIFY = "refuse re-INVITE"
    RE_2XX = "re-INVITE 2xx"
    RE_2XX_AGAIN = "re-INVITE 2xx again"
    RE_491 = "re-INVITE 491"
    RE_CHALLENGE = "re-INVITE 401/407"
    RE_FAILURE = "re-INVITE 300-699"
    RE_FATAL = "re-INVITE 481/408/503"
    TIMER_491 = "491 timer"
    TIMER_RE2XX = "re-2xx timer"
    TIMER_RE2XX_STOP = "re-2xx 64*T1"


LOCAL = frozenset({Input.START, Input.HANGUP, Input.ANSWER, Input.NO_ANSWER, Input.RING,
                   Input.REJECT, Input.MODIFY, Input.ANSWER_MODIFY, Input.REFUSE_MODIFY})


def build_table(cls, rows, attr="TABLE", base=None):
    """Set ``cls.<attr>`` from ``(states, input, action_name, next_state)`` rows.

    ``states`` is one State or a tuple of them; ``next_state`` None keeps the state. A pair
    may be defined once only. ``base`` is a table to extend (the dialog's rows).
    """
    table = dict(base or {})
    listed = []
    for states, inp, action, nxt in rows:
        for state in states if isinstance(states, tuple) else (states,):
            key = (state, inp)
            if key in table:
                raise LocalProtocolError(f"{cls.__name__}: {state.value}/{inp.value} twice")
            table[key] = (getattr(cls, action), nxt or state)
            listed.append((state, inp, action, nxt or state))
    setattr(cls, attr, table)
    setattr(cls, attr + "_ROWS", listed)
    return cls


class TableMachine:
    """The walk over one table: ``_step(table, state_attr, input, message)``."""

    def _walk(self, table, attr, inp, message=None):
        state = getattr(self, attr)
        row = table.get((state, inp))
        if row is None:
            if inp in LOCAL:
                raise LocalProtocolError(
                    f"{type(self).__name__}: {inp.value} not allowed in {state.value}")
            return []                                  # a late or duplicate input: absorbed
        action, nxt = row
        setattr(self, attr, nxt)
        return action(self, message)

    def _absorb(self, message):
        return []


def mermaid(rows, initial, quiet=("_absorb",), final=True):
    """A Mermaid state diagram of table ``rows`` (a class's ``*_ROWS``); self-loops whose action
    is in ``quiet`` are left out (the page lists them in words). ``diagrams()`` gives every
    session table's; docs/protocols/sip-sessions.md embeds them and tests/sip/test_dialog.py
    checks the page matches the code."""
    lines = ["stateDiagram-v2", f"    [*] --> {initial.value}"]
    for state, inp, action, nxt in rows:
        if action in quiet and nxt is state:
            continue
        lines.append(f"    {state.value} --> {nxt.value}: {inp.value} / {action.strip('_')}")
    if final:
        lines.append("    Terminated --> [*]")
    return "\n".join(lines)


def diagrams():
    """Title -> Mermaid diagram of each INVITE session table (``python -m
    protocols.sip.session`` prints them for the docs)."""
    from protocols.sip.dialog import DialogSession
    from protocols.sip.keepalive import Keepalive
    from protocols.sip.uac_session import UacSession
    from protocols.sip.uas_session import UasSession
    return {
        "UAC INVITE session (13.2, 9.1)": mermaid(UacSession.TABLE_ROWS, State.IDLE),
        "UAS INVITE session (13.3, 9.2)": mermaid(UasSession.TABLE_ROWS, State.IDLE),
        "Dialog (12, 15)": mermaid(DialogSession.DIALOG_ROWS, State.CONFIRMED,
                                   quiet=("_absorb", "_answer_request", "_no_dialog")),
        "re-INVITE (14)": mermaid(DialogSession.OFFER_ROWS, State.STABLE, final=False),
        "Keepalive (RFC 4028, in-dialog OPTIONS)": mermaid(Keepalive.TABLE_ROWS, State.OFF,
                                                           final=False),
    }


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


def token():
    """A random tag / branch part."""
    return os.urandom(8).hex()


_token = token


def hop_for(uri_text, transport, tls=None):
    """The hop for a SIP URI: its host and port, its transport parameter wins; a sips: URI
    goes over TLS (RFC 3261 26.2.2, RFC 5630); default ports 5060 / 5061 for TLS."""
    uri = parse_uri(uri_text)
    if getattr(uri, "scheme", "sip").lower() == "sips":
        transport = "tls"
    else:
        transport = (uri.transport or transport).lower()
    port = uri.port or (5061 if transport == "tls" else 5060)
    return Hop(transport, uri.host.strip("[]"), port, tls if transport == "tls" else None)


def bracket(host):
    """``host`` as it goes into a URI or Via (IPv6 references in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


KEEPALIVE_MODES = ("off", "options", "session-timer")


@dataclass(frozen=True, slots=True)
class KeepaliveConfig:
    """How a confirmed dialog checks the far end is there (``protocols.sip.keepalive``):
    ``mode`` off | options | session-timer; ``interval`` the OPTIONS period (s);
    ``session_expires`` the session interval we ask for and ``min_se`` the least we accept
    (RFC 4028 4 and 5; 90 s is the RFC's floor, tests use less)."""
    mode: str = "off"
    interval: float = 30.0
    session_expires: int = 1800
    min_se: int = 90

    def __post_init__(self):
        if self.mode not in KEEPALIVE_MODES:
            raise ValueError(f"keepalive mode {self.mode!r}: expected one of "
                             f"{', '.join(KEEPALIVE_MODES)}")


@dataclass
class Profile:
    """What a session needs to know about us and the peer.

    ``local_host``/``local_port`` go into Via and Contact; ``transport`` is 'udp', 'tcp' or
    'tls'; ``proxy`` is an outbound proxy 'host:port' or None; ``credentials`` a (username,
    password) pair or None; ``tls`` the certificate policy of a TLS hop; ``sips`` makes the
    Request-URI, To and Contact sips: URIs (RFC 5630: TLS on every hop) instead of sip: over
    TLS to the first hop only; ``keepalive`` the dialog's liveness check (default off);
    ``user_agent`` our User-Agent header value.
    """
    local_host: str
    local_port: int
    gateway_host: str = ""
    gateway_port: int = 5060
    transport: str = "udp"
    proxy: str | None = None
    credentials: tuple | None = None
    timers: TimerConfig = field(default_factory=TimerConfig)
    tls: TlsPolicy | None = None
    sips: bool = False
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)
    user_agent: str = USER_AGENT        # our User-Agent in requests ([sip] user_agent)

    @property
    def allow(self):
        """Our Allow header: UPDATE too when RFC 4028 refreshes may come that way."""
        return ALLOW + ", UPDATE" if self.keepalive.mode == "session-timer" else ALLOW

    @property
    def via_transport(self):
        return self.transport.upper()

    @property
    def scheme(self):
        return "sips" if self.sips and self.transport == "tls" else "sip"

    @property
    def uri_transport(self):
        """The ;transport= parameter for our Contact and the Request-URI ('' for UDP/sips)."""
        if self.transport == "tcp":
            return ";transport=tcp"
        if self.transport == "tls" and not self.sips:
            return ";transport=tls"
        return ""

    @property
    def local(self):
        return f"{bracket(self.local_host)}:{self.local_port}"

    def first_hop(self):
        """The hop of an out-of-dialog request: the outbound proxy, else the gateway."""
        tls = self.tls if self.transport == "tls" else None
        if self.proxy:
            host, _, port = self.proxy.rpartition(":")
            return Hop(self.transport, host.strip("[]"), int(port), tls)
        return Hop(self.transport, self.gateway_host.strip("[]"), self.gateway_port, tls)


if __name__ == "__main__":
    for title, diagram in diagrams().items():
        print(f"### {title}\n\n```mermaid\n{diagram}\n```\n")
