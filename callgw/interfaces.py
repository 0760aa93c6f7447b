"""The interfaces between callgw's parts; providers are passed into constructors by the
composition root (``callgw/compose.py``).

Owned by the foundation. Every Deferred-returning method says what it fires with. The plain data
that crosses a part boundary (``CallRequest``) lives here too.

Tests: tests/callpath/test_director.py, tests/callpath/test_leg_registry.py and
tests/sip/test_sip_leg.py (``verifyObject`` on the providers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        """Drop everything the leg holds (timers, transactions) without signalling the peer.

        A leg that was sent ``Release`` finishes its own signalling (a CANCEL crossing a 2xx is
        followed by ACK and BYE) even when ``close`` comes after: ``close`` drops only what
        would otherwise outlive the call."""

    def liveness():
        """None while the leg's peer is alive; a short reason once it is gone (the client
        vanished, the gateway stopped answering in-dialog keepalives). The call logger's reaper
        asks every leg of every live call."""

    def recovery():
        """What this leg's provider needs to release the far end should this process die with
        the call up (SIP: the dialog's Call-ID, tags, remote target, route set, CSeq), as a
        JSON-able dict with ``protocol`` and ``gateway`` (name) keys; None when nothing
        outlives the process (a client session). Asked once the call is answered, and right
        after the leg placed it (SIP answers with its unanswered INVITE, for a CANCEL; the
        other protocols with None until the answer)."""

    def statistics():
        """The leg's own statistics of the call for its CDR, asked once the call is released:
        a dict, None (nothing to say), or a Deferred firing with one of those (MGCP: the
        connection statistics of the DLCX answer). The leg bounds the wait."""


class ILegProvider(Interface):
    """One native protocol (SIP, MGCP, H.323) as the call path sees it.

    Made by its registry entry (``callgw.callserver.legs.registry``) from the configuration,
    started and stopped by the call path; the call path, the proxy and the CLI know protocols
    only through these.
    """

    name = Attribute("The protocol name used in gateway rows: 'sip', 'mgcp', 'h323'.")
    shutdown_grace = Attribute(
        "Seconds the call path waits after releasing every call at shutdown so the legs' last "
        "messages (BYE, DLCX, ReleaseComplete) leave before the sockets close.")

    def start():
        """Open what the protocol needs (sockets); fires when ready, fails naming the cause."""

    def stop():
        """Close everything; fires when closed."""

    def make_leg(gateway, call_id):
        """A new ``ICallLeg`` toward ``gateway`` (a gateway row: host, port, rewriting, and
        ``options`` of this protocol) for call ``call_id``.

        Raises ``LegUnavailable`` when no leg can be made now (the handler fails over)."""

    def ping(gateway):
        """A health probe of ``gateway`` in the protocol's own way: a Deferred firing with the
        round trip in seconds, failing when the gateway does not answer as alive."""

    def capacity(gateway):
        """Calls ``gateway`` can take at once as the protocol knows it (MGCP: its endpoints),
        or None when the gateway row's ``capacity`` is all there is."""

    def release_orphan(gateway, recovery):
        """Release a call a previous run of this process left up: ``recovery`` is what one of
        this protocol's legs returned from ``recovery()``, ``gateway`` the gateway row (None
        when it was removed since). Fires when the far end answered the release (or it timed
        out: the failure says so)."""


class LegUnavailable(Exception):
    """A leg provider cannot make a leg now (transport down, no endpoint free); the text says
    why. The handler treats it like a gateway that failed before answer: it fails over."""


class ICallEventSink(Interface):
    """Receives a leg's neutral events."""

    def __call__(leg, event):
        """``leg`` is the ``ICallLeg`` that reports ``event``."""


class IMediaSession(Interface):
    """The media of one call: local RTP addresses, the far ends, statistics.

    Filled by the built-in relay in ``callgw.media`` (or an external relay later). Sides are
    named by role, ``"a"`` (the leg that sent the ``Setup``) and ``"b"`` (the leg placing it).
    """

    def allocate(side):
        """Reserve a local RTP/RTCP port pair for ``side`` (``"a"`` or ``"b"``).

        Returns a Deferred firing with ``(address, rtp_port)``.
        """

    def connect(side, media):
        """Send ``side``'s media to the far end described by ``media`` (a MediaDescription)."""

    def statistics():
        """Return a dict of per-direction packets, bytes, loss, jitter and MOS estimate."""

    def close():
        """Release the ports; returns a Deferred firing with the final statistics."""

    def liveness():
        """None while media flows (or silence is expected: on hold); the reason once a side
        went silent for the inactivity timeout."""

    def attach_client(deliver, codec="PCMU", ptime=20):
        """Relayed mode: the client's media rides the client protocol instead of RTP.

        ``deliver(payload, sequence, timestamp)`` is called for each gateway packet, its
        payload already in the client's ``codec``.
        """

    def client_frame(payload, sequence, timestamp):
        """Relayed mode: one media frame from the client, paced out as RTP to the gateway."""

    def send_dtmf(digit, duration_ms):
        """Relayed mode: an RFC 4733 event toward the gateway; fires with the packet count."""


class IAnchoredMedia(IMediaSession):
    """A direct-mode call's media anchored in an external relay (rtpengine): the handler gets
    one when the ``Setup`` carries media and the call server has an anchoring backend. Every
    offer and answer of the call goes through ``anchor``: the first ones, and those of a hold
    or resume (re-``anchor("a", ...)`` with the new direction, then the gateway's answer)."""

    def anchor(side, media):
        """``side``'s media is ``media`` (``a`` offers, ``b`` answers); fires with the
        MediaDescription (the relay's address) to give the other side."""

    def hold(on, by):
        """``by`` (``"client"`` or ``"gateway"``) put the call on hold (``on``) or resumed it:
        the anchor expects silence meanwhile (its ``liveness`` stays None)."""


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
    each fires with. Implemented over SQLite (embedded default) and PostgreSQL (``shared``: several processes).
    """

    shared = Attribute("True when several callgw processes may share the database "
                       "(PostgreSQL): limits are then counted in it, not per process.")

    def run(method_name, *args, **kwargs):
        """Run ``Database.<method_name>(*args, **kwargs)`` on the store's thread.

        Fires with its result; fails with its exception.
        """

    def write(fn, *args, **kwargs):
        """Run ``fn(database, *args, **kwargs)`` on the store's writer thread (the admin
        service's changes, ``callgw.admin_service``). Fires with its result; fails with its
        exception."""

    def watch(callback):
        """Call ``callback()`` (it may return a Deferred) whenever the admin CLI changed a
        configuration table, within the reload interval."""


class IDirector(Interface):
    """The call director: authentication and authorization of call requests."""

    def authenticate(username, proof):
        """Fires with the user's record, or fails with ``Unauthorized``."""

    def authorize(user, target=None, contact=None, tenant=None, call_id=None):
        """Check a call request of ``user`` (store row) to ``target`` (a number) or
        ``contact`` (an address-book entry) under ``tenant`` (name; default the user's).

        Fires with an ``Authorization`` (normalized E.164 target, caller identity, privacy,
        maximum duration), or fails with ``callgw.callserver.rules.Refused`` (an ``AuthCode``,
        a reason word and text for the client's ``unauthorized``).
        """

    def call_began(username, tenant, call_id=None):
        """A call of ``username`` started (concurrency counts)."""

    def call_ended(username, tenant, call_id=None):
        """A call of ``username`` ended (its admission released)."""

    def withdraw(call_id):
        """An authorized call never started: release its admission (a shared store)."""


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
    """Where a call's records go (events, traces, states, CDRs): the call logger.

    Nothing here waits for the database: the logger gathers and writes in batches."""

    def call_started(ctx):
        """A handler took a call (``CallContext``): its active-call row begins."""

    def register(handler):
        """Watch ``handler``'s live call (its legs' ``liveness()``) until it ends."""

    def call_state(call_id, state, gateway):
        """The call entered ``state`` (a handler state name) on ``gateway`` (or None)."""

    def call_answered(call_id, answered, recovery):
        """The call was answered at ``answered``; ``recovery`` (a list of the legs'
        ``recovery()`` dicts) is kept with its active-call row for the next start."""

    def setup_latency(seconds):
        """Seconds from the client's request to ringing (or answer without ringing)."""

    def call_ended(handler, stats):
        """The call is over: write its CDR from ``handler`` and the media ``stats`` dict."""

    def refused(call_id, username, target, reason, code, text, peer):
        """A call request the director refused: an event, no CDR."""

    def event(call_id, kind, **fields):
        """Record one call event."""

    def trace(call_id, trace):
        """Record one protocol message of a call (a ``Trace`` event)."""

    def cdr(record):
        """Record a finished call's CDR (a dict)."""


class IFrontEnd(Interface):
    """What the client listeners hand authenticated sessions to (``callgw.frontend.server``)."""

    def session_opened(conn):
        """A session logged in; returns (or fires with) the extra ``welcome`` fields."""

    def client_message(conn, message):
        """One call command (``call``, ``hangup``, ``dtmf``, ...) of a logged-in session."""

    def client_media(conn, frame):
        """One media frame of a logged-in session."""

    def session_closed(conn, reason):
        """The session ended (``reason``: logout, timeout, shutdown, ...): release its calls."""


@dataclass
class CallRequest:
    """A client's call request as the front end hands it over (plain data, AMP-friendly)."""
    call_id: str
    user: dict
    tenant: str
    number: str | None = None
    contact: str | None = None
    media_mode: str = "relay"
    media: Any = None               # callgw.callserver.events.MediaDescription in direct mode
    peer: str = ""
    requested: float = 0.0


class ICallServer(Interface):
    """What the front end's balancer and hand-over need of a call server."""

    name = Attribute("The call server's name (call-servers table).")
    capacity = Attribute("Most calls at once.")
    weight = Attribute("Share for the weighted policy.")
    active = Attribute("Calls in progress now.")
    healthy = Attribute("False when the server must not get new calls.")
    draining = Attribute("True while finishing its calls before stopping.")

    def admits():
        """Whether the server takes a new call now, from its measured load (admission
        control: reactor lag, call set-ups in flight); False is counted as a refusal."""

    def accepting():
        """What ``admits()`` would answer now, counting nothing (a status report)."""

    def launch(request, leg):
        """Run the call ``request`` (a ``CallRequest``) with ``leg`` as its leg a.

        Fires with the ``CallHandler`` (None when refused; the leg was answered)."""

    def stop_calls(cause, text):
        """Release every call on both legs now; returns how many."""

    def status():
        """A dict for the call-servers table and the API: name, address, capacity, weight,
        healthy, draining, active_calls."""
