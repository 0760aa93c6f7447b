"""H.245 master-slave determination (``msd``; H.245 clause 8.2 and its SDL in annex C.2).

Owns the MSDSE: states IDLE, OUTGOING_AWAITING_RESPONSE and INCOMING_AWAITING_RESPONSE, timer
T106, the retry count N100 on indeterminate results, and the decision rule of 8.2.2: the larger
terminalType is master; with equal types, ``(remote - local) mod 2**24`` below 0x800000 makes the
local terminal master, 0 or 0x800000 is indeterminate. The core is a table ``(state, input) ->
handler``; each input returns a list of effects (``Send`` an H.245 message, ``StartTimer``,
``StopTimer``, ``Determined``, ``Failed``). Random numbers come from an injected callable.

"master"/"slave" here is H.245's own notion, unrelated to callgw's call master/slave pair.

Tests: tests/h323/test_msd.py.
"""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from protocols.h323 import h245

GATEWAY = 60          # H.323 table 1: terminalType of a gateway without MC
T106 = 30.0           # H.245 annex C: "a value of 30 s is suggested"
N100 = 3              # retries on indeterminate results


class State(enum.Enum):
    IDLE = "Idle"
    OUTGOING_AWAITING_RESPONSE = "Outgoing Awaiting Response"
    INCOMING_AWAITING_RESPONSE = "Incoming Awaiting Response"


class Input(enum.Enum):
    DETERMINE = "DETERMINE.request"
    MSD = "MasterSlaveDetermination"
    ACK = "MasterSlaveDeterminationAck"
    REJECT = "MasterSlaveDeterminationReject"
    RELEASE = "MasterSlaveDeterminationRelease"
    T106_EXPIRY = "T106 expiry"


@dataclass(frozen=True)
class Send:
    message: object


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay: float


@dataclass(frozen=True)
class StopTimer:
    name: str


@dataclass(frozen=True)
class Determined:
    status: str  # "master" or "slave"


@dataclass(frozen=True)
class Failed:
    reason: str


def decide(local_type, local_number, remote_type, remote_number):
    """'master', 'slave' or None (indeterminate) for the local terminal (H.245 8.2.2)."""
    if local_type != remote_type:
        return "master" if local_type > remote_type else "slave"
    diff = (remote_number - local_number) % (1 << 24)
    if diff in (0, 0x800000):
        return None
    return "master" if diff < 0x800000 else "slave"


def _other(status):
    return "slave" if status == "master" else "master"


class MasterSlaveDetermination:
    """One MSDSE. ``status`` is None until determined."""

    def __init__(self, terminal_type=GATEWAY, rng=None, t106=T106):
        self.terminal_type = terminal_type
        self._rng = rng or random.SystemRandom().randrange
        self.t106 = t106
        self.state = State.IDLE
        self.status = None
        self.number = None
        self.retries = 0

    def _new_number(self):
        self.number = self._rng(1 << 24)

    # -- handlers -------------------------------------------------------------------------------
    def _start(self, _value):
        self._new_number()
        self.retries = 0
        self.state = State.OUTGOING_AWAITING_RESPONSE
        return [Send(h245.msd_request(self.terminal_type, self.number)),
                StartTimer("T106", self.t106)]

    def _incoming_idle(self, msd):
        if self.number is None:
            self._new_number()
        status = decide(self.terminal_type, self.number,
                        msd["terminalType"], msd["statusDeterminationNumber"])
        if status is None:
            return [Send(h245.msd_reject())]
        self.status = status
        self.state = State.INCOMING_AWAITING_RESPONSE
        return [Send(h245.msd_ack(_other(status))), StartTimer("T106", self.t106)]

    def _incoming_outgoing(self, msd):
        status = decide(self.terminal_type, self.number,
                        msd["terminalType"], msd["statusDeterminationNumber"])
        if status is None:
            return self._retry("indeterminate (identical numbers)")
        self.status = status
        self.state = State.INCOMING_AWAITING_RESPONSE
        return [StopTimer("T106"), Send(h245.msd_ack(_other(status))),
                StartTimer("T106", self.t106)]

    def _retry(self, why):
        self.retries += 1
        if self.retries >= N100:
            return self._fail(f"master-slave determination {why} {self.retries} times")
        self._new_number()
        return [StopTimer("T106"), Send(h245.msd_request(self.terminal_type, self.number)),
                StartTimer("T106", self.t106)]

    def _ack_outgoing(self, ack):
        self.status = ack["decision"][0]
        self.state = State.IDLE
        return [StopTimer("T106"), Send(h245.msd_ack(_other(self.status))),
                Determined(self.status)]

    def _ack_incoming(self, ack):
        if ack["decision"][0] != self.status:
            return self._fail("peer's MasterSlaveDeterminationAck contradicts the decision")
        self.state = State.IDLE
        return [StopTimer("T106"), Determined(self.status)]

    def _reject_outgoing(self, _value):
        return self._retry("rejected")

    def _expiry_outgoing(self, _value):
        self.state = State.IDLE
        return [Send(h245.msd_release())] + self._fail("no answer to MasterSlaveDetermination (T106)")

    def _expiry_incoming(self, _value):
        return self._fail("no MasterSlaveDeterminationAck (T106)")

    def _second_request(self, _value):
        return self._fail("second MasterSlaveDetermination before our Ack was acknowledged")

    def _release(self, _value):
        return self._fail("peer released master-slave determination")

    def _fail(self, reason):
        self.state = State.IDLE
        self.status = None
        return [StopTimer("T106"), Failed(reason)]

    _TABLE = {
        (State.IDLE, Input.DETERMINE): _start,
        (State.IDLE, Input.MSD): _incoming_idle,
        (State.OUTGOING_AWAITING_RESPONSE, Input.MSD): _incoming_outgoing,
        (State.OUTGOING_AWAITING_RESPONSE, Input.ACK): _ack_outgoing,
        (State.OUTGOING_AWAITING_RESPONSE, Input.REJECT): _reject_outgoing,
        (State.OUTGOING_AWAITING_RESPONSE, Input.T106_EXPIRY): _expiry_outgoing,
        (State.OUTGOING_AWAITING_RESPONSE, Input.RELEASE): _release,
        (State.INCOMING_AWAITING_RESPONSE, Input.ACK): _ack_incoming,
        (State.INCOMING_AWAITING_RESPONSE, Input.T106_EXPIRY): _expiry_incoming,
        (State.INCOMING_AWAITING_RESPONSE, Input.RELEASE): _release,
        (State.INCOMING_AWAITING_RESPONSE, Input.MSD): _second_request,
    }

    def handle(self, event: Input, value=None):
        """Feed one input; the effects in order. An input with no row in the table (an Ack or
        Reject nobody asked for, a timer that is not running) fails the procedure."""
        handler = self._TABLE.get((self.state, event))
        if handler is None:
            if event is Input.T106_EXPIRY:
                return []  # a stale timer: nothing runs
            return self._fail(f"{event.value} in state {self.state.value}")
        return handler(self, value)


def table():
    """The transition table as (state, input, handler name) rows, for docs/protocols/h323.md."""
    return [(s.value, i.value, getattr(h, "__name__", "fail").lstrip("_"))
            for (s, i), h in MasterSlaveDetermination._TABLE.items()]
