"""Endpoint service states driven by RestartInProgress (RSIP): what the call path may do now.

Owns RFC 3435 2.3.12 (the restart methods and RestartDelay), 4.4.5 (endpoint service states)
and 4.4.7 (disconnected endpoints: the call agent audits them), from the call agent's side.
Each RSIP moves the state of the endpoints it names; the call path acts on the effects:

| RSIP ``RM:``      | state            | effect for the call path                                  |
|-------------------|------------------|-----------------------------------------------------------|
| ``forced``        | OutOfService     | ``ReleaseCalls``: the connections are lost                |
| ``graceful``      | Draining         | no new calls; after ``RD:`` seconds OutOfService and      |
|                   |                  | ``ReleaseCalls`` (no ``RD:``: drain until the calls end)  |
| ``cancel-graceful`` | InService      | new calls again                                           |
| ``restart``       | Restarting       | ``ReleaseCalls`` (nothing survived the restart);          |
|                   |                  | InService after ``RD:`` seconds (at once without one)     |
| ``disconnected``  | Auditing         | ``Audit``: AUEP (and AUCX per known connection); calls    |
|                   |                  | are kept; a good audit puts it InService, a failed one    |
|                   |                  | OutOfService with ``ReleaseCalls``                        |

The latest RSIP wins in every state. The RestartDelay timer is named ``RestartDelay``. A
``ServiceTable`` holds one ``EndpointService`` per name an RSIP used (``*@gw`` covers all the
gateway's endpoints and replaces the entries it covers); ``accepting(endpoint)`` asks the most
specific entry, and an endpoint no RSIP named is in service.

Tests: tests/mgcp/test_restart.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.mgcp.codes import RestartMethod
from protocols.mgcp.endpoint import ALL, ANY, EndpointName
from protocols.mgcp.transaction import LocalProtocolError, StartTimer, StopTimer

RESTART_DELAY = "RestartDelay"


class ServiceState(enum.Enum):
    IN_SERVICE = "InService"
    DRAINING = "Draining"
    OUT_OF_SERVICE = "OutOfService"
    RESTARTING = "Restarting"
    AUDITING = "Auditing"


class Input(enum.Enum):
    FORCED = RestartMethod.FORCED.value
    GRACEFUL = RestartMethod.GRACEFUL.value
    CANCEL_GRACEFUL = RestartMethod.CANCEL_GRACEFUL.value
    RESTART = RestartMethod.RESTART.value
    DISCONNECTED = RestartMethod.DISCONNECTED.value
    TIMER_RESTART_DELAY = RESTART_DELAY
    AUDIT_OK = "audit succeeded"
    AUDIT_FAILED = "audit failed"


@dataclass(frozen=True, slots=True)
class ServiceChanged:
    """The endpoints entered ``state``; ``accepting`` says whether new calls may use them."""
    state: ServiceState
    accepting: bool


@dataclass(frozen=True, slots=True)
class ReleaseCalls:
    """The calls on these endpoints are gone (or must go): ``reason`` says why."""
    reason: str


@dataclass(frozen=True, slots=True)
class Audit:
    """Audit these endpoints (AUEP, and AUCX for each connection known on them)."""


S, I = ServiceState, Input
_RSIP = (I.FORCED, I.GRACEFUL, I.CANCEL_GRACEFUL, I.RESTART, I.DISCONNECTED)


class EndpointService:
    """The service state of one endpoint name (possibly wildcarded) as RSIPs left it."""

    __slots__ = ("state", "delay")

    def __init__(self):
        self.state = ServiceState.IN_SERVICE
        self.delay = 0.0

    @property
    def accepting(self) -> bool:
        return self.state is ServiceState.IN_SERVICE

    def restart(self, method: RestartMethod, delay: float = 0.0):
        """An RSIP with ``method`` and RestartDelay ``delay`` seconds; returns effects."""
        self.delay = max(0.0, float(delay))
        return self._step(Input(method.value))

    def timer_fired(self, name: str):
        if name != RESTART_DELAY:
            raise LocalProtocolError(f"no timer {name!r} in an endpoint's service state")
        return self._step(I.TIMER_RESTART_DELAY)

    def audited(self, ok: bool):
        """The audit asked for by ``Audit`` ended: ``ok`` when the AUEP succeeded."""
        return self._step(I.AUDIT_OK if ok else I.AUDIT_FAILED)

    def _step(self, inp):
        row = TABLE.get((self.state, inp))
        if row is None:
            raise LocalProtocolError(f"{inp.value} in {self.state.value}")
        action, next_state = row
        self.state = next_state
        return action(self)

    # actions
    def _forced(self):
        return [StopTimer(RESTART_DELAY), ServiceChanged(S.OUT_OF_SERVICE, False),
                ReleaseCalls("forced restart: the connections are lost")]

    def _graceful(self):
        out = [StopTimer(RESTART_DELAY)]
        if self.delay > 0:
            out.append(StartTimer(RESTART_DELAY, self.delay))
        return out + [ServiceChanged(S.DRAINING, False)]

    def _cancel_graceful(self):
        return [StopTimer(RESTART_DELAY), ServiceChanged(S.IN_SERVICE, True)]

    def _restart(self):
        out = [StopTimer(RESTART_DELAY),
               ReleaseCalls("restart: no connection survived the gateway's restart")]
        if self.delay > 0:
            self.state = S.RESTARTING
            return out + [StartTimer(RESTART_DELAY, self.delay),
                          ServiceChanged(S.RESTARTING, False)]
        self.state = S.IN_SERVICE
        return out + [ServiceChanged(S.IN_SERVICE, True)]

    def _disconnected(self):
        return [StopTimer(RESTART_DELAY), ServiceChanged(S.AUDITING, False), Audit()]

    def _drained(self):
        return [ServiceChanged(S.OUT_OF_SERVICE, False),
                ReleaseCalls("graceful restart: the restart delay is over")]

    def _restarted(self):
        return [ServiceChanged(S.IN_SERVICE, True)]

    def _audit_failed(self):
        return [ServiceChanged(S.OUT_OF_SERVICE, False),
                ReleaseCalls("disconnected: the audit after it failed")]

    def _absorb(self):
        return []


_ACTIONS = {I.FORCED: ("_forced", S.OUT_OF_SERVICE), I.GRACEFUL: ("_graceful", S.DRAINING),
            I.CANCEL_GRACEFUL: ("_cancel_graceful", S.IN_SERVICE),
            I.RESTART: ("_restart", S.RESTARTING), I.DISCONNECTED: ("_disconnected", S.AUDITING)}

TABLE: dict = {}
for _state in ServiceState:
    for _inp in _RSIP:                         # the latest RSIP wins, whatever the state
        _name, _next = _ACTIONS[_inp]
        TABLE[(_state, _inp)] = (getattr(EndpointService, _name), _next)
    if _state is not S.AUDITING:               # an audit answer after a newer RSIP is stale
        TABLE[(_state, I.AUDIT_OK)] = (EndpointService._absorb, _state)
        TABLE[(_state, I.AUDIT_FAILED)] = (EndpointService._absorb, _state)
TABLE[(S.DRAINING, I.TIMER_RESTART_DELAY)] = (EndpointService._drained, S.OUT_OF_SERVICE)
TABLE[(S.RESTARTING, I.TIMER_RESTART_DELAY)] = (EndpointService._restarted, S.IN_SERVICE)
TABLE[(S.AUDITING, I.AUDIT_OK)] = (EndpointService._restarted, S.IN_SERVICE)
TABLE[(S.AUDITING, I.AUDIT_FAILED)] = (EndpointService._audit_failed, S.OUT_OF_SERVICE)


def _specificity(name: EndpointName):
    fixed = sum(1 for t in name.local if t not in (ANY, ALL))
    return (fixed, len(name.local))


class ServiceTable:
    """The service states of one gateway's endpoints, keyed by the names RSIPs used."""

    def __init__(self):
        self.entries: dict[str, tuple[EndpointName, EndpointService]] = {}

    def restart(self, name: EndpointName, method: RestartMethod, delay: float = 0.0):
        """Apply an RSIP for ``name``: [(name, effects)] for it and for each entry it replaced
        (those only stop their RestartDelay)."""
        out = []
        for key, (other, _) in list(self.entries.items()):
            if key != name.key and name.covers(other):
                del self.entries[key]
                out.append((other, [StopTimer(RESTART_DELAY)]))
        entry = self.entries.get(name.key)
        if entry is None:
            entry = self.entries[name.key] = (name, EndpointService())
        return [(name, entry[1].restart(method, delay))] + out

    def get(self, name: EndpointName) -> EndpointService | None:
        entry = self.entries.get(name.key)
        return entry[1] if entry else None

    def _covering(self, endpoint: EndpointName):
        found = [(n, svc) for n, svc in self.entries.values() if n.covers(endpoint)]
        return max(found, key=lambda e: _specificity(e[0]))[1] if found else None

    def state(self, endpoint: EndpointName) -> ServiceState:
        svc = self._covering(endpoint)
        return svc.state if svc else ServiceState.IN_SERVICE

    def accepting(self, endpoint: EndpointName) -> bool:
        return self.state(endpoint) is ServiceState.IN_SERVICE
