"""The interfaces between callgw's parts; providers are passed into constructors by tap.py.

Owned by the foundation. Every Deferred-returning method says what it fires with.
"""
from __future__ import annotations

from zope.interface import Attribute, Interface


class ICallLeg(Interface):
    """One side of a call, speaking one protocol (client, SIP, H.323, MGCP).

    A leg turns neutral events from ``callgw.callserver.events`` into its protocol and reports
    what its peer does as neutral events to its ``sink``. Legs are symmetric: the handler may
    ask either leg to ``send(Setup(...))``, and either may report a ``Setup`` it received.
    A leg finishes its own state change before it calls the sink (no re-entrancy).
    """

    name = Attribute("Short leg name for traces and logs: 'client', 'sip', 'h323', 'mgcp'.")

    def attach(sink):
        """Deliver this leg's events to ``sink(leg, event)`` from now on."""

    def send(event):
        """Act on a neutral event from the other leg (Setup, Release, Dtmf, Hold, MediaOffer...).

        Never raises for a protocol reason: a failure is reported as ``Release`` to the sink.
        """

    def close():
        """Drop everything the leg holds (timers, transactions) without signalling the peer."""


class ICallEventSink(Interface):
    """Receives a leg's neutral events."""

    def __call__(leg, event):
        """``leg`` is the ``ICallLeg`` that reports ``event``."""


class IMediaSession(Interface):
    """The media of one call: local RTP addresses, the far ends, statistics.

    Filled by the built-in relay in ``callgw.media`` (or an external relay later).
    """

    def allocate(side):
        """Reserve a local RTP/RTCP port pair for ``side`` (``"client"`` or ``"gateway"``).

        Returns a Deferred firing with ``(address, rtp_port)``.
        """

    def connect(side, media):
        """Send ``side``'s media to the far end described by ``media`` (a MediaDescription)."""

    def statistics():
        """Return a dict of per-direction packets, bytes, loss, jitter and MOS estimate."""

    def close():
        """Release the ports; returns a Deferred firing with the final statistics."""

    def attach_client(deliver, codec="PCMU", ptime=20):
        """Relayed mode: the client's media rides the client protocol instead of RTP.

        ``deliver(payload, sequence, timestamp)`` is called for each gateway packet, its
        payload already in the client's ``codec``.
        """

    def client_frame(payload, sequence, timestamp):
        """Relayed mode: one media frame from the client, paced out as RTP to the gateway."""

    def send_dtmf(digit, duration_ms):
        """Relayed mode: an RFC 4733 event toward the gateway; fires with the packet count."""


class IMediaRelay(Interface):
    """Makes one ``IMediaSession`` per call (the built-in relay, or an external one)."""

    def session(call_id, on_inactive=None, on_dtmf=None):
        """A new media session; ``on_inactive(session, side, idle_seconds)`` and
        ``on_dtmf(side, Dtmf)`` report what the media shows."""

    def close():
        """Close every session; fires with ``{call_id: final statistics}``."""


class IStore(Interface):
    """The one storage interface. Every method runs off the reactor thread.

    Each method returns a Deferred; the docstrings on ``callgw.store.db.Database`` say what
    each fires with. Implemented over SQLite (embedded default); PostgreSQL fits behind it.
    """

    def run(method_name, *args, **kwargs):
        """Run ``Database.<method_name>(*args, **kwargs)`` on the store's thread.

        Fires with its result; fails with its exception.
        """


class IDirector(Interface):
    """The call director: authentication and authorization of call requests."""

    def authenticate(username, proof):
        """Fires with the user's record, or fails with ``Unauthorized``."""

    def authorize(user, target=None, contact=None, tenant=None):
        """Check a call request of ``user`` (store row) to ``target`` (a number) or
        ``contact`` (an address-book entry) under ``tenant`` (name; default the user's).

        Fires with an ``Authorization`` (normalized E.164 target, caller identity, privacy,
        maximum duration), or fails with ``callgw.callserver.rules.Refused`` (an ``AuthCode``,
        a reason word and text for the client's ``unauthorized``).
        """

    def call_began(username, tenant):
        """A call of ``username`` started (concurrency counts)."""

    def call_ended(username, tenant):
        """A call of ``username`` ended."""


class IGatewayDirectory(Interface):
    """The proxy server's gateway database and selection."""

    def select(target, protocol=None):
        """Return the ordered list of gateway records to try for ``target`` (E.164)."""


class IRegistrar(Interface):
    """The proxy server's registration database of user devices."""

    def register(username, contact, expires):
        """Record that ``username`` is reachable at ``contact`` until ``expires``."""

    def lookup(username):
        """Return the user's live contacts."""


class ICallLogSink(Interface):
    """Where the call logger's records go (events, traces, CDRs)."""

    def event(call_id, kind, **fields):
        """Record one call event."""

    def trace(call_id, trace):
        """Record one protocol message of a call (a ``Trace`` event)."""

    def cdr(record):
        """Record a finished call's CDR (a dict)."""
