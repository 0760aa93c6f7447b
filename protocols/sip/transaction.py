"""SIP transactions (RFC 3261 section 17, with RFC 6026's Accepted state and Timers L and M).

A sans-I/O core: each transaction takes messages, timer expiries and transport errors, and
returns a list of effects (``Transmit``, ``StartTimer``, ``StopTimer``, ``Deliver``,
``TimedOut``, ``Failed``, ``Terminated``) for the adapter to carry out. Nothing here reads a
clock or touches a socket: a ``StartTimer`` says how many seconds, ``protocols.sip.adapter``
maps it to ``clock.callLater``.

State machines are tables ``(state, input) -> (action, next_state)`` named after the RFC:
- ``ClientInvite``: Calling, Proceeding, Completed, Accepted, Terminated (17.1.1, RFC 6026 7.2).
- ``ClientNonInvite``: Trying, Proceeding, Completed, Terminated (17.1.2).
- ``ServerInvite``: Proceeding, Completed, Confirmed, Accepted, Terminated (17.2.1, RFC 6026 7.1).
- ``ServerNonInvite``: Trying, Proceeding, Completed, Terminated (17.2.2).
An input with no row is a protocol error: from the TU it raises ``LocalProtocolError``; from the
network or a timer it ends the transaction with ``Failed``.

Retransmission timers (A, E, G) run on unreliable transports only; the wait timers D, I, J, K
are zero on reliable ones. Matching (17.1.3, 17.2.3) is by branch, with the RFC 2543 fallback
for requests whose branch lacks the magic cookie: see ``client_key`` and ``server_key``.

Tests: tests/sip/test_transaction.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.sip.message import Headers, Request

MAGIC_COOKIE = "z9hG4bK"


class LocalProtocolError(Exception):
    """We misused the core (a bug in the caller)."""


class RemoteProtocolError(Exception):
    """The peer broke the protocol; ``status`` is the SIP status to answer with, if any."""

    def __init__(self, reason, status=400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer values (section 17.1.1.1 and table 4), in seconds."""
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def long(self):
        """64*T1: Timers B, F, H, J (unreliable), L and M."""
        return 64 * self.t1


# ---- effects -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Transmit:
    """Send ``message`` to the transaction's destination."""
    message: object


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start the transaction's timer ``name`` to fire after ``delay`` seconds."""
    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    """Cancel the transaction's timer ``name`` if it runs."""
    name: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Pass ``message`` up to the transaction user."""
    message: object


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer ``name`` (B, F or H) expired: tell the TU (a 408 for a client transaction)."""
    name: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The transport failed, or the peer broke the protocol; ``reason`` says how."""
    reason: str


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over: drop it from the table and cancel its timers."""


_TERMINATED = Terminated()


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    START = "start"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    REQUEST = "request"
    ACK = "ACK"
    SEND_PROVISIONAL = "TU 1xx"
    SEND_SUCCESS = "TU 2xx"
    SEND_FAILURE = "TU 300-699"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"
    TIMER_M = "M"


_LOCAL_INPUTS = frozenset({Input.START, Input.SEND_PROVISIONAL, Input.SEND_SUCCESS,
                           Input.SEND_FAILURE})
_TIMER_INPUTS = {i.value: i for i in Input if len(i.value) == 1}


def _status_input(status, provisional, success, failure):
    if status < 200:
        return provisional
    if status < 300:
        return success
    return failure


# ---- matching ------------------------------------------------------------------------------

def _sent_by(via):
    return (via.host.lower(), via.port or (5061 if via.transport.upper() == "TLS" else 5060))


def client_key(message):
    """Key of the client transaction ``message`` (a request we send or a response to it) belongs to.

    RFC 3261 17.1.3: the top Via branch plus the CSeq method.
    """
    return (message.branch, message.cseq[1])


def server_key(request, method=None):
    """Key of the server transaction a received ``request`` belongs to (RFC 3261 17.2.3).

    With the magic cookie: branch, sent-by and method (an ACK matches its INVITE). Without it
    (RFC 2543): Call-ID, From tag, CSeq number, top Via sent-by and method; the To tag of an ACK
    is checked against the response we sent by ``ServerInvite.matches_ack``.
    ``method`` overrides the request's method (CANCEL looks up the INVITE it cancels).
    """
    via = request.top_via
    method = method or request.method
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, _sent_by(via), method)
    return ("2543", request.call_id, request.from_tag, request.cseq[0], _sent_by(via), method)


# ---- transactions --------------------------------------------------------------------------

class Transaction:
    """Common machinery: the table walk and the timer helpers."""

    __slots__ = ("key", "request", "reliable", "timers", "state", "last_response",
                 "interval", "owner", "destination")

    TABLE: dict = {}
    INITIAL = State.TERMINATED

    def __init__(self, request, reliable, timers=TimerConfig(), key=None, owner=None,
                 destination=None):
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = self.INITIAL
        self.last_response = None
        self.interval = timers.t1
        self.owner = owner
        self.destination = destination
        self.key = key

    @property
    def terminated(self):
        return self.state is State.TERMINATED

    def _step(self, inp, message=None):
        row = self.TABLE.get((self.state, inp))
        if row is None:
            if inp in _LOCAL_INPUTS:
                raise LocalProtocolError(
                    f"{type(self).__name__}: {inp.value} not allowed in {self.state.value}")
            if self.state is State.TERMINATED:
                return []
            failed = Failed(f"{inp.value} in {self.state.value}")
            self.state = State.TERMINATED
            return [failed, _TERMINATED]
        action, next_state = row
        self.state = next_state
        return action(self, message)

    def timer_fired(self, name):
        """Timer ``name`` expired; returns effects."""
        return self._step(_TIMER_INPUTS[name])

    def transport_error(self):
        """The transport could not deliver our message (RFC 3261 17.1.4, 17.2.4)."""
        return self._step(Input.TRANSPORT_ERROR)

    # actions shared by several tables
    def _absorb(self, message):
        return []

    def _fail_transport(self, message):
        return [Failed("transport error"), _TERMINATED]

    def _timeout(self, message):
        # the input names the timer: Timer B, F or H
        return [TimedOut(self._timeout_name), _TERMINATED]

    def _terminate(self, message):
        return [_TERMINATED]

    def _wait(self, name, delay):
        """Enter a wait state: a zero wait (reliable transport) terminates at once."""
        if delay <= 0:
            self.state = State.TERMINATED
            return [_TERMINATED]
        return [StartTimer(name, delay)]


def _table(cls, rows):
    """Build ``cls.TABLE`` from ``(state, input, action_name, next_state)`` rows."""
    cls.TABLE = {(s, i): (getattr(cls, a), n) for s, i, a, n in rows}
    return cls


S, I = State, Input


class ClientInvite(Transaction):
    """INVITE client transaction (RFC 3261 17.1.1, figure 5 as amended by RFC 6026 figure 3)."""

    __slots__ = ()
    INITIAL = State.CALLING
    _timeout_name = "B"

    def start(self):
        """Send the INVITE: returns the first effects."""
        return self._step(Input.START)

    def receive(self, response):
        """A response matched this transaction."""
        return self._step(_status_input(response.status, I.PROVISIONAL, I.SUCCESS, I.FAILURE),
                          response)

    def _send_first(self, _):
        out = [Transmit(self.request), StartTimer("B", self.timers.long)]
        if not self.reliable:
            out.append(StartTimer("A", self.interval))
        return out

    def _retransmit(self, _):
        self.interval *= 2
        return [Transmit(self.request), StartTimer("A", self.interval)]

    def _provisional(self, response):
        return [StopTimer("A"), StopTimer("B"), Deliver(response)]

    def _provisional_again(self, response):
        return [Deliver(response)]

    def _accepted(self, response):
        return [StopTimer("A"), StopTimer("B"), Deliver(response),
                StartTimer("M", self.timers.long)]

    def _retransmitted_2xx(self, response):
        return [Deliver(response)]

    def _completed(self, response):
        self.last_response = make_ack(self.request, response)
        # the ACK goes out before the TU hears of the response (an auth retry must follow it)
        out = [StopTimer("A"), StopTimer("B"), Transmit(self.last_response),
               Deliver(response)]
        return out + self._wait("D", 0 if self.reliable else max(32.0, self.timers.long))

    def _ack_again(self, response):
        return [Transmit(self.last_response)]


_table(ClientInvite, [
    (S.CALLING, I.START, "_send_first", S.CALLING),
    (S.CALLING, I.TIMER_A, "_retransmit", S.CALLING),
    (S.CALLING, I.TIMER_B, "_timeout", S.TERMINATED),
    (S.CALLING, I.PROVISIONAL, "_provisional", S.PROCEEDING),
    (S.CALLING, I.SUCCESS, "_accepted", S.ACCEPTED),
    (S.CALLING, I.FAILURE, "_completed", S.COMPLETED),
    (S.CALLING, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.PROCEEDING, I.PROVISIONAL, "_provisional_again", S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS, "_accepted", S.ACCEPTED),
    (S.PROCEEDING, I.FAILURE, "_completed", S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.COMPLETED, I.FAILURE, "_ack_again", S.COMPLETED),
    (S.COMPLETED, I.PROVISIONAL, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.SUCCESS, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.COMPLETED, I.TIMER_D, "_terminate", S.TERMINATED),
    (S.ACCEPTED, I.SUCCESS, "_retransmitted_2xx", S.ACCEPTED),
    (S.ACCEPTED, I.PROVISIONAL, "_absorb", S.ACCEPTED),
    (S.ACCEPTED, I.FAILURE, "_absorb", S.ACCEPTED),
    (S.ACCEPTED, I.TRANSPORT_ERROR, "_absorb", S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M, "_terminate", S.TERMINATED),
])


class ClientNonInvite(Transaction):
    """Non-INVITE client transaction (RFC 3261 17.1.2, figure 6)."""

    __slots__ = ()
    INITIAL = State.TRYING
    _timeout_name = "F"

    def start(self):
        """Send the request: returns the first effects."""
        return self._step(Input.START)

    def receive(self, response):
        """A response matched this transaction."""
        return self._step(_status_input(response.status, I.PROVISIONAL, I.FAILURE, I.FAILURE),
                          response)

    def _send_first(self, _):
        out = [Transmit(self.request), StartTimer("F", self.timers.long)]
        if not self.reliable:
            out.append(StartTimer("E", self.interval))
        return out

    def _retransmit(self, _):
        self.interval = min(2 * self.interval, self.timers.t2)
        return [Transmit(self.request), StartTimer("E", self.interval)]

    def _retransmit_proceeding(self, _):
        self.interval = self.timers.t2
        return [Transmit(self.request), StartTimer("E", self.interval)]

    def _provisional(self, response):
        return [Deliver(response)]

    def _final(self, response):
        out = [StopTimer("E"), StopTimer("F"), Deliver(response)]
        return out + self._wait("K", 0 if self.reliable else self.timers.t4)


_table(ClientNonInvite, [
    (S.TRYING, I.START, "_send_first", S.TRYING),
    (S.TRYING, I.TIMER_E, "_retransmit", S.TRYING),
    (S.TRYING, I.TIMER_F, "_timeout", S.TERMINATED),
    (S.TRYING, I.PROVISIONAL, "_provisional", S.PROCEEDING),
    (S.TRYING, I.FAILURE, "_final", S.COMPLETED),
    (S.TRYING, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.PROCEEDING, I.TIMER_E, "_retransmit_proceeding", S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F, "_timeout", S.TERMINATED),
    (S.PROCEEDING, I.PROVISIONAL, "_provisional", S.PROCEEDING),
    (S.PROCEEDING, I.FAILURE, "_final", S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.COMPLETED, I.PROVISIONAL, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.FAILURE, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TRANSPORT_ERROR, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TIMER_K, "_terminate", S.TERMINATED),
])


class ServerInvite(Transaction):
    """INVITE server transaction (RFC 3261 17.2.1, figure 7 as amended by RFC 6026 figure 5).

    The transaction enters Proceeding on creation; the TU sends 100 Trying itself (the UAS
    core does so at once, which RFC 3261 17.2.1 allows).
    """

    __slots__ = ()
    INITIAL = State.PROCEEDING
    _timeout_name = "H"

    def receive(self, request):
        """A retransmitted INVITE or an ACK matched this transaction."""
        return self._step(I.ACK if request.method == "ACK" else I.REQUEST, request)

    def respond(self, response):
        """The TU sends ``response``."""
        return self._step(_status_input(response.status, I.SEND_PROVISIONAL, I.SEND_SUCCESS,
                                        I.SEND_FAILURE), response)

    def matches_ack(self, ack):
        """RFC 2543 matching of an ACK: its To tag must be the one of our final response."""
        if self.last_response is None:
            return False
        return ack.to_tag == self.last_response.to_tag

    def _resend(self, _):
        if self.last_response is None:
            return []
        return [Transmit(self.last_response)]

    def _send(self, response):
        self.last_response = response
        return [Transmit(response)]

    def _accepted(self, response):
        self.last_response = response
        return [Transmit(response), StartTimer("L", self.timers.long)]

    def _completed(self, response):
        self.last_response = response
        out = [Transmit(response), StartTimer("H", self.timers.long)]
        if not self.reliable:
            out.append(StartTimer("G", self.interval))
        return out

    def _retransmit(self, _):
        self.interval = min(2 * self.interval, self.timers.t2)
        return [Transmit(self.last_response), StartTimer("G", self.interval)]

    def _confirmed(self, ack):
        return [StopTimer("G"), StopTimer("H")] + self._wait(
            "I", 0 if self.reliable else self.timers.t4)

    def _pass_ack(self, ack):
        return [Deliver(ack)]


_table(ServerInvite, [
    (S.PROCEEDING, I.REQUEST, "_resend", S.PROCEEDING),
    (S.PROCEEDING, I.SEND_PROVISIONAL, "_send", S.PROCEEDING),
    (S.PROCEEDING, I.SEND_SUCCESS, "_accepted", S.ACCEPTED),
    (S.PROCEEDING, I.SEND_FAILURE, "_completed", S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.PROCEEDING, I.ACK, "_absorb", S.PROCEEDING),
    (S.COMPLETED, I.REQUEST, "_resend", S.COMPLETED),
    (S.COMPLETED, I.TIMER_G, "_retransmit", S.COMPLETED),
    (S.COMPLETED, I.TIMER_H, "_timeout", S.TERMINATED),
    (S.COMPLETED, I.ACK, "_confirmed", S.CONFIRMED),
    (S.COMPLETED, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.CONFIRMED, I.REQUEST, "_absorb", S.CONFIRMED),
    (S.CONFIRMED, I.ACK, "_absorb", S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I, "_terminate", S.TERMINATED),
    (S.ACCEPTED, I.REQUEST, "_absorb", S.ACCEPTED),
    (S.ACCEPTED, I.ACK, "_pass_ack", S.ACCEPTED),
    (S.ACCEPTED, I.SEND_SUCCESS, "_send", S.ACCEPTED),
    (S.ACCEPTED, I.TRANSPORT_ERROR, "_absorb", S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L, "_terminate", S.TERMINATED),
])


class ServerNonInvite(Transaction):
    """Non-INVITE server transaction (RFC 3261 17.2.2, figure 8)."""

    __slots__ = ()
    INITIAL = State.TRYING
    _timeout_name = "J"

    def receive(self, request):
        """A retransmission of the request matched this transaction."""
        return self._step(I.REQUEST, request)

    def respond(self, response):
        """The TU sends ``response``."""
        return self._step(_status_input(response.status, I.SEND_PROVISIONAL, I.SEND_FAILURE,
                                        I.SEND_FAILURE), response)

    def _resend(self, _):
        if self.last_response is None:
            return []
        return [Transmit(self.last_response)]

    def _send(self, response):
        self.last_response = response
        return [Transmit(response)]

    def _final(self, response):
        self.last_response = response
        return [Transmit(response)] + self._wait("J", 0 if self.reliable else self.timers.long)


_table(ServerNonInvite, [
    (S.TRYING, I.REQUEST, "_absorb", S.TRYING),
    (S.TRYING, I.SEND_PROVISIONAL, "_send", S.PROCEEDING),
    (S.TRYING, I.SEND_FAILURE, "_final", S.COMPLETED),
    (S.TRYING, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.PROCEEDING, I.REQUEST, "_resend", S.PROCEEDING),
    (S.PROCEEDING, I.SEND_PROVISIONAL, "_send", S.PROCEEDING),
    (S.PROCEEDING, I.SEND_FAILURE, "_final", S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR, "_fail_transport", S.TERMINATED),
    (S.COMPLETED, I.REQUEST, "_resend", S.COMPLETED),
    (S.COMPLETED, I.TRANSPORT_ERROR, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TIMER_J, "_terminate", S.TERMINATED),
])


# ---- messages the transaction layer builds ---------------------------------------------------

def make_ack(request, response):
    """The ACK for a non-2xx final response (RFC 3261 17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and top Via as the INVITE; To from the
    response; the INVITE's Route headers.
    """
    headers = Headers()
    src = request.headers
    headers.add("Via", src.get_all("Via")[0])
    for name in ("Max-Forwards", "From"):
        value = src.get(name)
        if value is not None:
            headers.add(name, value)
    headers.add("To", response.headers.get("To"))
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", f"{request.cseq[0]} ACK")
    for route in src.get_all("Route"):
        headers.add("Route", route)
    headers.add("Content-Length", "0")
    return Request("ACK", request.uri, headers, b"", request.version)


def new_client(request, reliable, timers=TimerConfig(), owner=None, destination=None):
    """The client transaction for ``request`` (INVITE or not), not yet started."""
    cls = ClientInvite if request.method == "INVITE" else ClientNonInvite
    return cls(request, reliable, timers, client_key(request), owner, destination)


def new_server(request, reliable, timers=TimerConfig(), owner=None, destination=None):
    """The server transaction for a new ``request`` (not ACK)."""
    if request.method == "ACK":
        raise LocalProtocolError("ACK never creates a server transaction")
    cls = ServerInvite if request.method == "INVITE" else ServerNonInvite
    return cls(request, reliable, timers, server_key(request), owner, destination)


class TransactionTable:
    """The transactions alive at one endpoint, found by RFC 3261 17.1.3 / 17.2.3 keys."""

    __slots__ = ("clients", "servers")

    def __init__(self):
        self.clients = {}
        self.servers = {}

    def add(self, tx):
        """Register a client or server transaction under its key."""
        (self.servers if isinstance(tx, (ServerInvite, ServerNonInvite))
         else self.clients)[tx.key] = tx

    def remove(self, tx):
        """Forget ``tx`` (after ``Terminated``)."""
        table = self.servers if isinstance(tx, (ServerInvite, ServerNonInvite)) else self.clients
        if table.get(tx.key) is tx:
            del table[tx.key]

    def match_response(self, response):
        """The client transaction ``response`` belongs to, or None (a stray response)."""
        branch = response.branch
        if not branch:
            return None
        return self.clients.get((branch, response.cseq[1]))

    def match_request(self, request):
        """The server transaction a received request belongs to, or None (a new request).

        An ACK matches only the INVITE transaction whose final response it acknowledges:
        with RFC 3261 branches by key; with RFC 2543 ones also by the To tag. An ACK for a
        2xx carries a new branch and matches nothing: it goes to the TU (the dialog).
        """
        tx = self.servers.get(server_key(request))
        if tx is None:
            return None
        if request.method == "ACK":
            if not isinstance(tx, ServerInvite):
                return None
            if tx.key[0] == "2543" and not tx.matches_ack(request):
                return None
        return tx

    def invite_for_cancel(self, cancel):
        """The INVITE server transaction a CANCEL cancels (RFC 3261 9.2), or None."""
        tx = self.servers.get(server_key(cancel, method="INVITE"))
        return tx if isinstance(tx, ServerInvite) else None


def mermaid(cls):
    """A Mermaid state diagram drawn from ``cls.TABLE`` (embedded in docs/protocols/sip-sessions.md,
    whose test checks it matches, so the picture cannot drift from the code)."""
    lines = ["stateDiagram-v2", f"    [*] --> {cls.INITIAL.value}"]
    for (state, inp), (action, nxt) in cls.TABLE.items():
        lines.append(f"    {state.value} --> {nxt.value}: {inp.value} / "
                     f"{action.__name__.strip('_')}")
    lines.append("    Terminated --> [*]")
    return "\n".join(lines)
