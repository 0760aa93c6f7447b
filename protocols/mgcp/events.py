"""What the MGCP call agent core takes and gives: gateways, connections, effects, events.

The data of ``protocols.mgcp.agent`` (RFC 3435 from the call agent's side): ``Gateway`` (a
gateway's address, the endpoint names it manages, its ``Dialect``), ``Connection`` (2.3.5: one
connection a gateway holds for us), the effects the adapter carries out (``Send``,
``TimerStart``, ``TimerStop``, ``CancelTimers``) and the events the user (the MGCP leg) acts on.
Frozen dataclasses only; no behaviour beyond small lookups.

Tests: tests/mgcp/test_agent.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocols.mgcp import restart
from protocols.mgcp.endpoint import RFC3435, Dialect, EndpointName
from protocols.mgcp.message import Command, Response
from protocols.mgcp.params import ConnectionStats


@dataclass(frozen=True, slots=True)
class Gateway:
    """A gateway the call agent controls: its address and the endpoint names (wildcards
    allowed) it manages; ``dialect`` says how it reads names and datagrams."""
    name: str
    host: str
    port: int = 2427
    endpoints: tuple[EndpointName, ...] = ()
    dialect: Dialect = RFC3435

    @property
    def peer(self) -> tuple[str, int]:
        return (self.host, self.port)

    def owns(self, name: EndpointName) -> bool:
        """Whether ``name`` is one of ours (a wildcard such as ``*@gw`` in its domain is)."""
        if any(p.covers(name) for p in self.endpoints):
            return True
        return name.wildcard and any(p.domain.casefold() == name.domain.casefold()
                                     for p in self.endpoints)


@dataclass(frozen=True, slots=True)
class Connection:
    """One connection a gateway holds for us (RFC 3435 2.3.5)."""
    gateway: str
    endpoint: EndpointName
    connection_id: str
    call_id: str


# ---- effects for the adapter ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    peer: tuple[str, int]
    data: bytes
    messages: tuple


@dataclass(frozen=True, slots=True)
class TimerStart:
    key: tuple
    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class TimerStop:
    key: tuple
    name: str


@dataclass(frozen=True, slots=True)
class CancelTimers:
    key: tuple


# ---- events for the user -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The final response to our command ``tid``; ``endpoint`` is the specific name to use
    from now on (the ``Z:`` of a wildcard CRCX, else the name the command used)."""
    gateway: str
    tid: int
    command: Command
    response: Response
    endpoint: str


@dataclass(frozen=True, slots=True)
class Provisional:
    """The gateway is still executing our command ``tid`` (a 1xx)."""
    gateway: str
    tid: int
    response: Response


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """Our command ``tid`` got no usable final response (timed out): ``reason`` says why."""
    gateway: str
    tid: int
    command: Command
    reason: str


@dataclass(frozen=True, slots=True)
class PeerSlow:
    """Max1 retransmissions of ``tid`` went unanswered (RFC 3435 4.3)."""
    gateway: str
    tid: int


@dataclass(frozen=True, slots=True)
class Notified:
    """A NTFY (RFC 3435 2.3.4): answer it with ``CallAgent.respond(key, code)``."""
    gateway: str
    key: tuple
    command: Command
    endpoint: str
    request_id: str
    events: tuple


@dataclass(frozen=True, slots=True)
class ConnectionDeleted:
    """The gateway deleted a connection itself (DLCX, RFC 3435 2.3.8); already answered."""
    gateway: str
    endpoint: str
    connection_id: str
    call_id: str
    reason_code: int | None
    stats: ConnectionStats | None


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """An audit after an RSIP ``disconnected`` found the connection gone (AUCX 515/516/500)."""
    gateway: str
    endpoint: str
    connection_id: str
    call_id: str
    code: int


@dataclass(frozen=True, slots=True)
class EndpointServiceChanged:
    """An RSIP moved ``endpoint`` (possibly a wildcard) into ``state``."""
    gateway: str
    endpoint: str
    state: restart.ServiceState
    accepting: bool


@dataclass(frozen=True, slots=True)
class ReleaseEndpointCalls:
    """The calls on ``endpoint`` (possibly a wildcard) are lost: release them."""
    gateway: str
    endpoint: str
    reason: str
    reason_code: int | None


@dataclass(frozen=True, slots=True)
class StrayConnection:
    """A late answer to a retransmitted wildcard CRCX made a second connection: deleted."""
    gateway: str
    endpoint: str
    connection_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command from ``peer`` answered with error ``code`` (one log line)."""
    peer: tuple
    code: int
    reason: str
    summary: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """Input from ``peer`` that could not be answered, or an answer never acknowledged."""
    peer: tuple
    reason: str


@dataclass(frozen=True, slots=True)
class Received:
    """A message read from ``peer`` (for traces; the events it causes follow)."""
    peer: tuple
    message: object
