"""The neutral call events exchanged by a call's two legs.

Owned by the call path: every leg (client, SIP, later H.323 and MGCP) translates between its
own protocol and these frozen dataclasses, and the call handler relays them between the call
master and the call slave. Nothing here knows a protocol. Direction-free: either leg may send
``Setup``. Release causes are Q.850 cause values (see ``callgw.causes``).

Tests: tests/callpath/test_handler.py (the events through the handler) and tests/callpath/test_frontend.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MediaDescription:
    """One side's audio: where it receives RTP and what it can take.

    ``codecs`` are encoding names in preference order (``"PCMU"``, ``"PCMA"``);
    ``telephone_event`` is the RFC 4733 payload type, or None when not offered.
    ``direction`` is an RFC 3264 attribute: sendrecv, sendonly, recvonly, inactive.
    """
    address: str
    port: int
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    telephone_event: int | None = 101
    ptime: int = 20
    direction: str = "sendrecv"


@dataclass(frozen=True)
class Setup:
    """A new call toward ``target`` (E.164 with its "+"), from ``caller``.

    ``caller`` is the caller's E.164 number or None; ``privacy`` withholds it from the far end.
    ``media`` is the offer, or None when the leg must make its own (delayed offer).
    """
    call_id: str
    target: str
    caller: str | None = None
    privacy: bool = False
    media: MediaDescription | None = None


@dataclass(frozen=True)
class Proceeding:
    """The far side accepted the request and is working on it (SIP 100, Q.931 CALL PROCEEDING)."""


@dataclass(frozen=True)
class Alerting:
    """The far end rings. ``media`` is set for early media (SIP 183 with SDP)."""
    media: MediaDescription | None = None


@dataclass(frozen=True)
class Connect:
    """The far end answered; ``media`` is its answer (or offer, for a delayed offer)."""
    media: MediaDescription | None = None


@dataclass(frozen=True)
class Release:
    """The call ends. ``cause`` is a Q.850 cause value; ``text`` says why for logs and CDRs."""
    cause: int = 16
    text: str = ""


@dataclass(frozen=True)
class MediaOffer:
    """A new offer during the call (hold, resume, a move between direct and relayed media)."""
    media: MediaDescription


@dataclass(frozen=True)
class MediaAnswer:
    """The answer to a ``MediaOffer``."""
    media: MediaDescription


@dataclass(frozen=True)
class Dtmf:
    """One DTMF digit (0-9, *, #, A-D) lasting ``duration_ms``."""
    digit: str
    duration_ms: int = 100


@dataclass(frozen=True)
class DtmfResult:
    """What became of a ``Dtmf`` a leg could not carry as asked: ``delivered`` False with the
    reason in ``text`` (e.g. the gateway refused SIP INFO); goes back to the leg that sent it."""
    digit: str
    delivered: bool
    text: str = ""


@dataclass(frozen=True)
class Hold:
    """Put the call on hold (``on=True``) or resume it (``on=False``)."""
    on: bool = True


@dataclass(frozen=True)
class Trace:
    """One protocol message a leg sent or received, for the call's message trace.

    ``direction`` is ``"in"`` or ``"out"``; ``summary`` is a one-line description
    (``"INVITE sip:+4930123@gw"``, ``"180 Ringing"``).
    """
    leg: str
    direction: str
    summary: str
    detail: dict = field(default_factory=dict, compare=False)


CallEvent = Setup | Proceeding | Alerting | Connect | Release | MediaOffer | MediaAnswer | Dtmf | Hold


@dataclass(frozen=True)
class AttachKey:
    """The client leg gave its client a new re-attach key (``connected`` in relayed mode):
    ``digest`` (SHA-256, hex) lets another node find the call when the client comes back
    there. A bookkeeping note for the call logger, like ``Trace``, not a call event."""
    digest: str
