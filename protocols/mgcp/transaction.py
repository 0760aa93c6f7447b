"""MGCP transactions over UDP: retransmission, at-most-once, provisional responses, acks.

A sans-I/O core (RFC 3435 3.5 "Transmission over UDP" and 4.3 "Retransmission, and Detection
of Lost Associations"). Each transaction takes inputs (a response or a duplicate command from
the network, a timer expiry, the user's answer) and returns effects (``Transmit``,
``StartTimer``, ``StopTimer``, ``Deliver``, ``TimedOut``, ``SendAck``, ``LateResponse``,
``Max1Reached``, ``AckTimedOut``, ``Terminated``); nothing here reads a clock or touches a
socket: ``protocols.mgcp.agent`` keys and forwards the effects, ``protocols.mgcp.adapter`` maps
timers to ``clock.callLater``.

Timers, named after the RFC (``Timers`` holds the values):
- ``retransmission``: the retransmission timer of 4.3, 200 ms at first, doubled after each
  retransmission (exponential back-off) up to 4 s; after ``Max1`` retransmissions the peer is
  reported slow (the RFC's point to re-resolve its name), after ``Max2`` the command fails;
- ``T-MAX``: the longest a command (or a final response awaiting its 000) is retransmitted;
- ``T-HIST``: how long a transaction id and its response are remembered (3.5.1), so that a
  duplicate command gets the same response and is never executed twice ("at most once");
- ``LONGTRAN-TIMER``: after a provisional response the command is not retransmitted on the
  back-off schedule but once per LONGTRAN-TIMER, to learn that the peer still works on it
  (3.5.6); a silent peer over a whole LONGTRAN-TIMER fails the command.

Tables ``(state, input) -> (action, next_state)``:
- ``ClientTransaction`` (a command we send): Initial, Waiting, Proceeding (a 1xx came, 3.5.6),
  Completed (the final response came; kept for T-HIST to acknowledge retransmitted responses
  and to spot a different late one), Terminated. A final response carrying an empty
  ResponseAck ``K:`` (it followed a provisional) is acknowledged with ``000`` (3.5.6).
- ``ServerTransaction`` (a command we received): Executing (the user has it), Proceeding
  (a provisional was sent; a duplicate while executing gets one), Completed (the final response
  is cached and resent to duplicates), Confirming (a final after a provisional carries ``K:``
  and is retransmitted until its ``000``), Confirmed (acknowledged, by ``000`` or by the
  peer's ``K:`` list: the response is dropped and duplicates are discarded), Terminated.
Every network input has a row in every live state; a user input with no row, or a timer the
transaction never started, raises ``LocalProtocolError`` (a bug in the caller).

Tests: tests/mgcp/test_transaction.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from protocols.mgcp.message import Response, encode


class LocalProtocolError(Exception):
    """We misused the core (a bug in the caller)."""


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3435 timer values (4.3, 3.5.1, 3.5.6), in seconds; ``max1``/``max2`` are counts."""
    initial: float = 0.2
    maximum: float = 4.0
    max1: int = 5
    max2: int = 7
    t_max: float = 20.0
    t_hist: float = 30.0
    longtran: float = 5.0


RETRANSMISSION, T_MAX, T_HIST, LONGTRAN = "retransmission", "T-MAX", "T-HIST", "LONGTRAN-TIMER"


# ---- effects -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Transmit:
    """Send ``data`` (the encoding of ``message``) to the transaction's peer."""
    data: bytes
    message: object


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Pass ``response`` (client) up to the user."""
    response: Response


@dataclass(frozen=True, slots=True)
class SendAck:
    """Send the response acknowledgement ``000 tid`` (3.5.6)."""
    tid: int


@dataclass(frozen=True, slots=True)
class TimedOut:
    """No final response: ``reason`` says after what."""
    reason: str


@dataclass(frozen=True, slots=True)
class LateResponse:
    """A final response for a completed command that differs from the first one (a peer that
    executed a retransmission twice: osmo-mgw with a ``*`` CRCX)."""
    response: Response


@dataclass(frozen=True, slots=True)
class Max1Reached:
    """``Max1`` retransmissions went unanswered (4.3): the peer is slow or gone."""


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """Our final response (after a provisional) was never acknowledged with 000."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """Forget the transaction and cancel its timers."""


_TERMINATED = Terminated()


class State(enum.Enum):
    INITIAL = "Initial"
    WAITING = "Waiting"
    EXECUTING = "Executing"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMING = "Confirming"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    START = "start"
    PROVISIONAL = "1xx"
    FINAL = "final response"
    DUPLICATE = "duplicate command"
    ACK = "000"
    K_ACK = "K: acknowledgement"
    SEND_PROVISIONAL = "user 1xx"
    SEND_FINAL = "user final"
    TIMER_RETRANSMISSION = RETRANSMISSION
    TIMER_T_MAX = T_MAX
    TIMER_T_HIST = T_HIST
    TIMER_LONGTRAN = LONGTRAN


_LOCAL = frozenset({Input.START, Input.SEND_PROVISIONAL, Input.SEND_FINAL})
_TIMER = {i.value: i for i in (Input.TIMER_RETRANSMISSION, Input.TIMER_T_MAX, Input.TIMER_T_HIST,
                               Input.TIMER_LONGTRAN)}
S, I = State, Input


class _Transaction:
    __slots__ = ("tid", "timers", "state", "interval", "retransmissions", "data", "message")
    TABLE: dict = {}
    INITIAL = State.TERMINATED

    def __init__(self, tid, timers=Timers()):
        self.tid = tid
        self.timers = timers
        self.state = self.INITIAL
        self.interval = timers.initial
        self.retransmissions = 0
        self.data = b""
        self.message = None

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _step(self, inp, arg=None):
        row = self.TABLE.get((self.state, inp))
        if row is None:
            if inp in _LOCAL:
                raise LocalProtocolError(
                    f"{type(self).__name__}: {inp.value} not allowed in {self.state.value}")
            if self.state is State.TERMINATED:
                return []
            raise LocalProtocolError(f"{type(self).__name__}: no row for {inp.value} in "
                                     f"{self.state.value}")
        action, next_state = row
        self.state = next_state
        return action(self, arg)

    def timer_fired(self, name: str):
        """Timer ``name`` expired; returns effects."""
        return self._step(_TIMER[name])

    def _absorb(self, _):
        return []

    def _terminate(self, _):
        return [_TERMINATED]

    def _transmit(self):
        return Transmit(self.data, self.message)

    def _start_retransmitting(self):
        self.interval = self.timers.initial
        self.retransmissions = 0
        return [StartTimer(RETRANSMISSION, self.interval), StartTimer(T_MAX, self.timers.t_max)]

    def _backoff(self):
        """One step of 4.3's schedule: None when Max2 retransmissions are spent."""
        if self.retransmissions >= self.timers.max2:
            return None
        self.retransmissions += 1
        self.interval = min(2 * self.interval, self.timers.maximum)
        out = [self._transmit(), StartTimer(RETRANSMISSION, self.interval)]
        if self.retransmissions == self.timers.max1:
            out.append(Max1Reached())
        return out


def _table(cls, rows):
    cls.TABLE = {(s, i): (getattr(cls, a), n) for s, i, a, n in rows}
    return cls


class ClientTransaction(_Transaction):
    """A command we send (3.5, 4.3): ``start()`` then ``receive(response)`` / ``timer_fired``."""

    __slots__ = ("first_final", "heard")
    INITIAL = State.INITIAL

    def __init__(self, command, timers=Timers()):
        super().__init__(command.tid, timers)
        self.message = command
        self.data = encode(command)
        self.first_final = None
        self.heard = False

    def start(self):
        return self._step(Input.START)

    def receive(self, response: Response):
        return self._step(Input.PROVISIONAL if response.provisional else Input.FINAL, response)

    def _send_first(self, _):
        return [self._transmit()] + self._start_retransmitting()

    def _retransmit(self, _):
        out = self._backoff()
        if out is None:
            self.state = State.TERMINATED
            return [StopTimer(T_MAX), TimedOut(f"no response after {self.retransmissions} "
                                               f"retransmissions (Max2)"), _TERMINATED]
        return out

    def _t_max(self, _):
        return [StopTimer(RETRANSMISSION), TimedOut("no response within T-MAX"), _TERMINATED]

    def _provisional(self, response):
        self.heard = False
        return [StopTimer(RETRANSMISSION), StopTimer(T_MAX),
                StartTimer(LONGTRAN, self.timers.longtran), Deliver(response)]

    def _provisional_again(self, response):
        self.heard = True
        return []

    def _longtran(self, _):
        if not self.heard:
            self.state = State.TERMINATED
            return [TimedOut("no word from the peer for a LONGTRAN-TIMER after its "
                             "provisional response"), _TERMINATED]
        self.heard = False
        return [self._transmit(), StartTimer(LONGTRAN, self.timers.longtran)]

    def _final(self, response):
        self.first_final = response
        out = [StopTimer(RETRANSMISSION), StopTimer(T_MAX), StopTimer(LONGTRAN)]
        if response.has("K"):
            out.append(SendAck(self.tid))
        return out + [Deliver(response), StartTimer(T_HIST, self.timers.t_hist)]

    def _final_again(self, response):
        out = [SendAck(self.tid)] if response.has("K") else []
        if response != self.first_final:
            out.append(LateResponse(response))
        return out


_table(ClientTransaction, [
    (S.INITIAL, I.START, "_send_first", S.WAITING),
    (S.WAITING, I.TIMER_RETRANSMISSION, "_retransmit", S.WAITING),
    (S.WAITING, I.TIMER_T_MAX, "_t_max", S.TERMINATED),
    (S.WAITING, I.PROVISIONAL, "_provisional", S.PROCEEDING),
    (S.WAITING, I.FINAL, "_final", S.COMPLETED),
    (S.PROCEEDING, I.PROVISIONAL, "_provisional_again", S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_LONGTRAN, "_longtran", S.PROCEEDING),
    (S.PROCEEDING, I.FINAL, "_final", S.COMPLETED),
    (S.PROCEEDING, I.TIMER_RETRANSMISSION, "_absorb", S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_T_MAX, "_absorb", S.PROCEEDING),
    (S.COMPLETED, I.PROVISIONAL, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.FINAL, "_final_again", S.COMPLETED),
    (S.COMPLETED, I.TIMER_RETRANSMISSION, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TIMER_T_MAX, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TIMER_LONGTRAN, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TIMER_T_HIST, "_terminate", S.TERMINATED),
])


class ServerTransaction(_Transaction):
    """A command we received (3.5.1, 3.5.6): the user answers with ``respond``; ``duplicate``,
    ``acknowledged`` (a 000), ``confirmed_by_k`` (the peer's K: list) and timers drive the rest."""

    __slots__ = ("final",)
    INITIAL = State.EXECUTING

    def __init__(self, command, timers=Timers()):
        super().__init__(command.tid, timers)
        self.final = None

    def respond(self, response: Response):
        """The user's answer: a provisional (1xx) or the final response."""
        if response.tid != self.tid:
            raise LocalProtocolError(f"response {response.tid} for transaction {self.tid}")
        inp = Input.SEND_PROVISIONAL if response.provisional else Input.SEND_FINAL
        return self._step(inp, response)

    def duplicate(self):
        return self._step(Input.DUPLICATE)

    def acknowledged(self):
        return self._step(Input.ACK)

    def confirmed_by_k(self):
        return self._step(Input.K_ACK)

    def _send(self, response):
        self.message = response
        self.data = encode(response)
        return [self._transmit()]

    def _provisional(self, response):
        return self._send(response)

    def _auto_provisional(self, _):
        return self._send(Response(100, self.tid, "Transaction being executed"))

    def _final(self, response):
        self.final = response
        return self._send(response) + [StartTimer(T_HIST, self.timers.t_hist)]

    def _final_after_provisional(self, response):
        if not response.has("K"):
            response = replace(response, params=response.params + (("K", ""),))
        self.final = response
        return self._send(response) + self._start_retransmitting()

    def _resend(self, _):
        return [self._transmit()]

    def _retransmit(self, _):
        out = self._backoff()
        if out is None:
            return self._give_up(None)
        return out

    def _give_up(self, _):
        self.state = State.COMPLETED
        return [StopTimer(RETRANSMISSION), StopTimer(T_MAX), AckTimedOut(),
                StartTimer(T_HIST, self.timers.t_hist)]

    def _confirmed(self, _):
        self.final = None
        self.data = b""
        return [StopTimer(RETRANSMISSION), StopTimer(T_MAX), StartTimer(T_HIST,
                                                                        self.timers.t_hist)]

    def _dropped(self, _):
        self.final = None
        self.data = b""
        return []


_table(ServerTransaction, [
    (S.EXECUTING, I.SEND_PROVISIONAL, "_provisional", S.PROCEEDING),
    (S.EXECUTING, I.SEND_FINAL, "_final", S.COMPLETED),
    (S.EXECUTING, I.DUPLICATE, "_auto_provisional", S.PROCEEDING),
    (S.EXECUTING, I.ACK, "_absorb", S.EXECUTING),
    (S.EXECUTING, I.K_ACK, "_absorb", S.EXECUTING),
    (S.PROCEEDING, I.SEND_PROVISIONAL, "_provisional", S.PROCEEDING),
    (S.PROCEEDING, I.SEND_FINAL, "_final_after_provisional", S.CONFIRMING),
    (S.PROCEEDING, I.DUPLICATE, "_resend", S.PROCEEDING),
    (S.PROCEEDING, I.ACK, "_absorb", S.PROCEEDING),
    (S.PROCEEDING, I.K_ACK, "_absorb", S.PROCEEDING),
    (S.COMPLETED, I.DUPLICATE, "_resend", S.COMPLETED),
    (S.COMPLETED, I.ACK, "_dropped", S.CONFIRMED),
    (S.COMPLETED, I.K_ACK, "_dropped", S.CONFIRMED),
    (S.COMPLETED, I.TIMER_RETRANSMISSION, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TIMER_T_MAX, "_absorb", S.COMPLETED),
    (S.COMPLETED, I.TIMER_T_HIST, "_terminate", S.TERMINATED),
    (S.CONFIRMING, I.DUPLICATE, "_resend", S.CONFIRMING),
    (S.CONFIRMING, I.TIMER_RETRANSMISSION, "_retransmit", S.CONFIRMING),
    (S.CONFIRMING, I.TIMER_T_MAX, "_give_up", S.COMPLETED),
    (S.CONFIRMING, I.ACK, "_confirmed", S.CONFIRMED),
    (S.CONFIRMING, I.K_ACK, "_confirmed", S.CONFIRMED),
    (S.CONFIRMED, I.DUPLICATE, "_absorb", S.CONFIRMED),
    (S.CONFIRMED, I.ACK, "_absorb", S.CONFIRMED),
    (S.CONFIRMED, I.K_ACK, "_absorb", S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_RETRANSMISSION, "_absorb", S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_T_MAX, "_absorb", S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_T_HIST, "_terminate", S.TERMINATED),
])


def table_rows(cls):
    """``(state, input, action, next_state)`` rows of ``cls``'s table, for docs and tests."""
    return [(s.value, i.value, a.__name__, n.value) for (s, i), (a, n) in cls.TABLE.items()]
