"""The MGCP call agent core: gateways, transaction tables, dispatch, answers, connections.

Sans-I/O (bytes and timer expiries in, effects out; no clock, no socket). Owns, from the call
agent's side of RFC 3435:
- 3.2.1 transaction ids: one counter for every gateway (1..999,999,999, skipping ids in
  use), commands matched to their responses by id and peer host;
- 3.5.1 / 3.2.2 ResponseAck: the ids of final responses received are sent back in the ``K:`` of
  the next command to that gateway (unless its dialect refuses ``K:``, as osmo-mgw does); a
  ``K:`` in a gateway's command confirms our responses; a final response carrying an empty
  ``K:`` gets its ``000`` (``protocols.mgcp.transaction``);
- 2.3.1 the commands a gateway sends a call agent: NTFY (2.3.4, handed to the user, who answers
  with ``respond``), DLCX (2.3.8, answered here; ``ConnectionDeleted`` with the reason code and
  statistics), RSIP (2.3.12, answered here; ``protocols.mgcp.restart`` turns it into service
  states, released calls and audits with AUEP and AUCX, 4.4.7);
- 2.4 bad input answered with the RFC's codes, never an exception: 510 protocol error
  (unreadable, duplicated or missing parameters), 528 version, 504 unknown command or one a
  call agent does not take, 500 unknown endpoint (not ``local@domain``, no gateway of ours owns
  it, or sent from another host than the gateway's), 511 an unknown ``X+`` extension, 539 an
  unknown parameter, 536 an unknown restart method; unreadable input without a transaction id
  is dropped with a ``Dropped`` event (there is nothing to answer);
- 2.1.2 / 2.3.5 endpoint names: a CRCX to a wildcard (``$``, or ``*`` for osmo-mgw: see
  ``endpoint.Dialect``) yields, in ``ResponseReceived.endpoint``, the specific name from ``Z:``
  to use from then on; the connections each gateway holds (endpoint, ``I:``, ``C:``) are
  tracked from CRCX and DLCX for audits; a late second answer to a retransmitted wildcard CRCX
  that made another connection is cleaned up with a DLCX (``StrayConnection``).

Effects for the adapter (``Send``, ``TimerStart``, ``TimerStop``, ``CancelTimers``) and events
for the user live in ``protocols.mgcp.events``. Timer keys are tuples: ``("c", tid)`` for our
commands, ``("s", peer, tid)`` for the gateway's, ``("r", gateway, name)`` for RestartDelay.

Tests: tests/mgcp/test_agent.py (and test_restart.py for the RSIP flows).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from protocols.mgcp import codes, restart
from protocols.mgcp import transaction as tx
from protocols.mgcp.endpoint import EndpointName, EndpointNameError
from protocols.mgcp.events import (CancelTimers, CommandFailed, Connection, ConnectionDeleted,
                                   ConnectionLost, Dropped, EndpointServiceChanged, Gateway,
                                   Notified, PeerSlow, Provisional, Received, Rejected,
                                   ReleaseEndpointCalls, ResponseReceived, Send, StrayConnection,
                                   TimerStart, TimerStop)
from protocols.mgcp.message import (MAX_TID, Command, MgcpParseError, Response, encode,
                                    make_response, parse_datagram, summary)
from protocols.mgcp.params import (format_ack_ranges, parse_ack_ranges,
                                   parse_connection_parameters, parse_events, ranges_contain)


# ---- the tables ---------------------------------------------------------------------------

_MANDATORY = {"NTFY": ("X", "O"), "RSIP": ("RM",), "DLCX": ("I",)}
_LOST_CODES = frozenset({500, 515, 516})


@dataclass(slots=True)
class _Client:
    txn: tx.ClientTransaction
    gateway: Gateway
    purpose: tuple = ()          # () for the user's commands; ("audit", ...) etc. for ours


@dataclass(slots=True)
class _Server:
    txn: tx.ServerTransaction
    command: Command
    peer: tuple


class CallAgent:
    """The call agent's protocol state for every gateway (RFC 3435). See the module docstring.

    ``timers`` are RFC 3435's (``transaction.Timers``); ``first_tid`` starts the transaction
    id counter (tests pin it; the adapter picks a random one).
    """

    def __init__(self, timers: tx.Timers = tx.Timers(), first_tid: int = 1):
        self.timers = timers
        self._next = min(max(1, first_tid), MAX_TID)
        self.gateways: dict[str, Gateway] = {}
        self.clients: dict[int, _Client] = {}
        self.servers: dict[tuple, _Server] = {}
        self.services: dict[str, restart.ServiceTable] = {}
        self.connections: dict[tuple, Connection] = {}
        self._acks: dict[tuple, set] = {}

    # ---- gateways ----
    def add_gateway(self, gateway: Gateway) -> None:
        self.gateways[gateway.name] = gateway
        self.services.setdefault(gateway.name, restart.ServiceTable())

    def remove_gateway(self, name: str) -> list:
        """Forget gateway ``name``; its RestartDelay timers are cancelled."""
        self.gateways.pop(name, None)
        table = self.services.pop(name, None)
        out = [CancelTimers(("r", name, key)) for key in (table.entries if table else ())]
        for key in [k for k in self.connections if k[0] == name]:
            del self.connections[key]
        return out

    def accepting(self, gateway: str, endpoint: str | EndpointName) -> bool:
        """Whether RSIPs left ``endpoint`` in service (new calls allowed)."""
        if isinstance(endpoint, str):
            endpoint = EndpointName.parse(endpoint)
        table = self.services.get(gateway)
        return table is None or table.accepting(endpoint)

    def service_state(self, gateway: str, endpoint: str | EndpointName) -> restart.ServiceState:
        if isinstance(endpoint, str):
            endpoint = EndpointName.parse(endpoint)
        table = self.services.get(gateway)
        return table.state(endpoint) if table else restart.ServiceState.IN_SERVICE

    def connections_of(self, gateway: str, within: EndpointName | None = None) -> list:
        return [c for c in self.connections.values() if c.gateway == gateway and
                (within is None or within.covers(c.endpoint))]

    # ---- commands we send ----
    def _new_tid(self) -> int:
        for _ in range(len(self.clients) + 1):
            tid, self._next = self._next, self._next % MAX_TID + 1
            if tid not in self.clients:
                return tid
        raise tx.LocalProtocolError("no free transaction id")

    def send(self, gateway: str, command: Command) -> tuple[int, list]:
        """Send ``command`` (its ``tid`` is replaced by a fresh one) to ``gateway``.
        Returns (tid, effects); ``ResponseReceived`` or ``CommandFailed`` follows."""
        return self._send(self.gateways[gateway], command, ())

    def _send(self, gateway: Gateway, command: Command, purpose: tuple):
        tid = self._new_tid()
        command = replace(command, tid=tid)
        pending = self._acks.pop(gateway.peer, None)
        if pending and gateway.dialect.response_ack and not command.has("K"):
            command = command.with_params(("K", format_ack_ranges(pending)))
        entry = _Client(tx.ClientTransaction(command, self.timers), gateway, purpose)
        self.clients[tid] = entry
        return tid, self._client_effects(entry, entry.txn.start())

    def _client_effects(self, entry: _Client, effects) -> list:
        out, tid, peer = [], entry.txn.tid, entry.gateway.peer
        for e in effects:
            if isinstance(e, tx.Transmit):
                out.append(Send(peer, e.data, (e.message,)))
            elif isinstance(e, tx.StartTimer):
                out.append(TimerStart(("c", tid), e.name, e.delay))
            elif isinstance(e, tx.StopTimer):
                out.append(TimerStop(("c", tid), e.name))
            elif isinstance(e, tx.SendAck):
                ack = Response(0, e.tid)
                out.append(Send(peer, encode(ack), (ack,)))
            elif isinstance(e, tx.Deliver):
                out += self._on_result(entry, e.response)
            elif isinstance(e, tx.TimedOut):
                out += self._on_failure(entry, e.reason)
            elif isinstance(e, tx.LateResponse):
                out += self._on_late(entry, e.response)
            elif isinstance(e, tx.Max1Reached):
                out.append(PeerSlow(entry.gateway.name, tid))
            elif isinstance(e, tx.Terminated):
                self.clients.pop(tid, None)
                out.append(CancelTimers(("c", tid)))
        return out

    def _on_result(self, entry: _Client, response: Response) -> list:
        gw, command = entry.gateway, entry.txn.message
        if response.provisional:
            return [] if entry.purpose else [Provisional(gw.name, command.tid, response)]
        self._acks.setdefault(gw.peer, set()).add(command.tid)
        endpoint = command.endpoint
        if command.verb == "CRCX" and response.success:
            try:
                specific = gw.dialect.specific(EndpointName.parse(command.endpoint), response)
            except EndpointNameError as exc:
                return self._on_failure(entry, f"CRCX answer unusable: {exc}")
            endpoint = str(specific)
            if response.param("I"):
                conn = Connection(gw.name, specific, response.param("I"),
                                  command.param("C", ""))
                self.connections[(gw.name, specific.key, conn.connection_id)] = conn
        elif command.verb == "DLCX" and response.success:
            self._forget_connections(gw.name, command)
        if entry.purpose:
            return self._internal_result(entry, response)
        return [ResponseReceived(gw.name, command.tid, command, response, endpoint)]

    def _forget_connections(self, gateway: str, command: Command) -> list:
        try:
            name = EndpointName.parse(command.endpoint)
        except EndpointNameError:
            return []
        conn_id, call_id = command.param("I"), command.param("C")
        gone = [k for k, c in self.connections.items()
                if c.gateway == gateway and name.covers(c.endpoint)
                and (not conn_id or c.connection_id == conn_id)
                and (not call_id or c.call_id == call_id)]
        return [self.connections.pop(k) for k in gone]

    def _on_failure(self, entry: _Client, reason: str) -> list:
        if entry.purpose:
            return self._internal_result(entry, None)
        return [CommandFailed(entry.gateway.name, entry.txn.tid, entry.txn.message, reason)]

    def _on_late(self, entry: _Client, response: Response) -> list:
        command, gw = entry.txn.message, entry.gateway
        if command.verb != "CRCX" or not response.success or not response.param("I"):
            return []
        try:
            stray = gw.dialect.specific(EndpointName.parse(command.endpoint), response)
        except EndpointNameError:
            return [Dropped(gw.peer, f"late answer to {summary(command)} unusable")]
        conn_id = response.param("I")
        params = (("C", command.param("C")),) if command.param("C") else ()
        dlcx = Command("DLCX", 0, str(stray), params + (("I", conn_id),))
        _, out = self._send(gw, dlcx, ("stray",))
        return [StrayConnection(gw.name, str(stray), conn_id)] + out

    # ---- internal commands: audits after RSIP disconnected (RFC 3435 4.4.7) ----
    def _audit(self, gw: Gateway, name: EndpointName) -> list:
        auep = Command("AUEP", 0, str(name), (("F", "I"),))
        _, out = self._send(gw, auep, ("auep", name.key))
        for conn in self.connections_of(gw.name, name):
            aucx = Command("AUCX", 0, str(conn.endpoint), (("I", conn.connection_id),
                                                           ("F", "C,M")))
            out += self._send(gw, aucx, ("aucx", conn))[1]
        return out

    def _internal_result(self, entry: _Client, response: Response | None) -> list:
        kind, gw = entry.purpose[0], entry.gateway
        if kind == "auep":
            table = self.services.get(gw.name)
            entry_ = table.entries.get(entry.purpose[1]) if table else None
            if entry_ is None:
                return []
            name, svc = entry_
            ok = response is not None and response.success
            return self._service_effects(gw, name, svc.audited(ok), None)
        if kind == "aucx" and response is not None and response.code in _LOST_CODES:
            conn = entry.purpose[1]
            self.connections.pop((gw.name, conn.endpoint.key, conn.connection_id), None)
            return [ConnectionLost(gw.name, str(conn.endpoint), conn.connection_id,
                                   conn.call_id, response.code)]
        if kind == "stray" and response is None:
            return [Dropped(gw.peer, f"DLCX of a stray connection on {entry.txn.message.endpoint}"
                                     " went unanswered")]
        return []

    def _service_effects(self, gw: Gateway, name: EndpointName, effects, reason_code) -> list:
        out, key = [], ("r", gw.name, name.key)
        for e in effects:
            if isinstance(e, restart.ServiceChanged):
                out.append(EndpointServiceChanged(gw.name, str(name), e.state, e.accepting))
            elif isinstance(e, restart.ReleaseCalls):
                for conn in self.connections_of(gw.name, name):
                    self.connections.pop((gw.name, conn.endpoint.key, conn.connection_id))
                out.append(ReleaseEndpointCalls(gw.name, str(name), e.reason, reason_code))
            elif isinstance(e, tx.StartTimer):
                out.append(TimerStart(key, e.name, e.delay))
            elif isinstance(e, tx.StopTimer):
                out.append(TimerStop(key, e.name))
            elif isinstance(e, restart.Audit):
                out += self._audit(gw, name)
        return out

    # ---- input ----
    def datagram_received(self, data: bytes, peer: tuple) -> list:
        """One datagram from ``peer`` (host, port); returns effects. Never raises on input."""
        out = []
        for item in parse_datagram(data):
            if isinstance(item, MgcpParseError):
                out += self._unreadable(item, peer)
            elif isinstance(item, Response):
                out.append(Received(peer, item))
                out += self._on_response(item, peer)
            else:
                out.append(Received(peer, item))
                out += self._on_command(item, peer)
        return out

    def _unreadable(self, error: MgcpParseError, peer) -> list:
        if error.is_command and error.tid is not None:
            answer = Response(error.code, error.tid, error.reason[:80])
            return [Send(peer, encode(answer), (answer,)),
                    Rejected(peer, error.code, error.reason, f"command {error.tid}")]
        return [Dropped(peer, f"unreadable {'command' if error.is_command else 'response'}: "
                              f"{error.reason}")]

    def _on_response(self, response: Response, peer) -> list:
        if response.code == 0:
            entry = self.servers.get((peer, response.tid))
            return self._server_effects(entry, entry.txn.acknowledged()) if entry else []
        entry = self.clients.get(response.tid)
        if entry is None or entry.gateway.host != peer[0]:
            return [Dropped(peer, f"response {summary(response)} matches no command of ours")]
        return self._client_effects(entry, entry.txn.receive(response))

    def _check(self, command: Command, peer):
        """(code, reason, gateway, name) of a new command; code 0 when it is acceptable."""
        if command.verb not in codes.VERBS:
            return codes.UNKNOWN_COMMAND, f"unknown command {command.verb}", None, None
        if command.verb not in codes.GATEWAY_COMMANDS:
            return (codes.UNKNOWN_COMMAND, f"{command.verb} is not a command for a call agent",
                    None, None)
        seen = set()
        for name, _ in command.params:
            upper = name.upper()
            if upper in seen:
                return codes.PROTOCOL_ERROR, f"parameter {name} twice", None, None
            seen.add(upper)
            if upper in codes.PARAMETERS or upper.startswith("X-") or "/" in upper:
                continue
            if upper.startswith("X+"):
                return codes.UNRECOGNIZED_EXTENSION, f"unknown extension {name}", None, None
            return codes.UNSUPPORTED_PARAMETER, f"unknown parameter {name}", None, None
        try:
            name = EndpointName.parse(command.endpoint)
        except EndpointNameError as exc:
            return codes.ENDPOINT_UNKNOWN, str(exc), None, None
        owners = [g for g in self.gateways.values() if g.owns(name)]
        gateway = next((g for g in owners if g.host == peer[0]), None)
        if gateway is None:
            reason = (f"{name} is not one of ours" if not owners else
                      f"{name} belongs to {owners[0].host}, not {peer[0]}")
            return codes.ENDPOINT_UNKNOWN, reason, None, None
        for param in _MANDATORY.get(command.verb, ()):
            if not command.has(param):
                return (codes.PROTOCOL_ERROR, f"{command.verb} without {param}: "
                        f"({codes.PARAMETERS[param]})", gateway, name)
        return 0, "", gateway, name

    def _on_command(self, command: Command, peer) -> list:
        out = []
        k = command.param("K")
        if k:
            try:
                ranges = parse_ack_ranges(k)
            except ValueError as exc:
                return self._reject_new(command, peer, codes.PROTOCOL_ERROR, str(exc))
            for (p, tid), entry in list(self.servers.items()):
                if p == peer and ranges_contain(ranges, tid) and tid != command.tid:
                    out += self._server_effects(entry, entry.txn.confirmed_by_k())
        entry = self.servers.get((peer, command.tid))
        if entry is not None:
            return out + self._server_effects(entry, entry.txn.duplicate())
        code, reason, gateway, name = self._check(command, peer)
        if code:
            return out + self._reject_new(command, peer, code, reason)
        entry = self._new_server(command, peer)
        handler = {"RSIP": self._on_rsip, "DLCX": self._on_dlcx, "NTFY": self._on_ntfy}
        return out + handler[command.verb](entry, gateway, name)

    def _new_server(self, command: Command, peer) -> _Server:
        entry = _Server(tx.ServerTransaction(command, self.timers), command, peer)
        self.servers[(peer, command.tid)] = entry
        return entry

    def _reject_new(self, command: Command, peer, code: int, reason: str) -> list:
        response = make_response(command, code, reason[:80])
        rejected = Rejected(peer, code, reason, summary(command))
        if not any(g.host == peer[0] for g in self.gateways.values()):
            # a stranger: answered, but nothing kept for T-HIST on its behalf
            return [Send(peer, encode(response), (response,)), rejected]
        entry = self._new_server(command, peer)
        return self._server_effects(entry, entry.txn.respond(response)) + [rejected]

    def _answer(self, entry: _Server, code: int, reason: str = "", params=()) -> list:
        response = make_response(entry.command, code, reason[:80] or None, params)
        out = self._server_effects(entry, entry.txn.respond(response))
        if code >= 300:
            out.append(Rejected(entry.peer, code, reason, summary(entry.command)))
        return out

    def _on_rsip(self, entry: _Server, gw: Gateway, name: EndpointName) -> list:
        try:
            method = codes.RestartMethod.parse(entry.command.param("RM"))
        except ValueError:
            return self._answer(entry, codes.UNKNOWN_RESTART_METHOD,
                                f"unknown restart method {entry.command.param('RM')}")
        delay_text = entry.command.param("RD", "0")
        if not delay_text.isdigit() or len(delay_text) > 9:
            return self._answer(entry, codes.PROTOCOL_ERROR, f"bad RestartDelay {delay_text!r}")
        reason = _reason_code(entry.command)
        out = self._answer(entry, codes.OK)
        for target, effects in self.services[gw.name].restart(name, method, int(delay_text)):
            out += self._service_effects(gw, target, effects, reason)
        return out

    def _on_dlcx(self, entry: _Server, gw: Gateway, name: EndpointName) -> list:
        command = entry.command
        stats = None
        if command.param("P"):
            try:
                stats = parse_connection_parameters(command.param("P"))
            except ValueError as exc:
                return self._answer(entry, codes.PROTOCOL_ERROR, str(exc))
        self._forget_connections(gw.name, command)
        out = self._answer(entry, codes.OK)
        return out + [ConnectionDeleted(gw.name, str(name), command.param("I"),
                                        command.param("C", ""), _reason_code(command), stats)]

    def _on_ntfy(self, entry: _Server, gw: Gateway, name: EndpointName) -> list:
        try:
            events = tuple(parse_events(entry.command.param("O")))
        except ValueError as exc:
            return self._answer(entry, codes.PROTOCOL_ERROR, str(exc))
        return [Notified(gw.name, (entry.peer, entry.command.tid), entry.command, str(name),
                         entry.command.param("X"), events)]

    def respond(self, key: tuple, code: int, comment: str | None = None, params=()) -> list:
        """Answer the command delivered with ``key`` (a ``Notified``); returns effects."""
        entry = self.servers.get(key)
        if entry is None:
            raise tx.LocalProtocolError(f"no command {key} to answer")
        response = make_response(entry.command, code, comment, params)
        return self._server_effects(entry, entry.txn.respond(response))

    def _server_effects(self, entry: _Server, effects) -> list:
        out, key = [], ("s", entry.peer, entry.txn.tid)
        for e in effects:
            if isinstance(e, tx.Transmit):
                out.append(Send(entry.peer, e.data, (e.message,)))
            elif isinstance(e, tx.StartTimer):
                out.append(TimerStart(key, e.name, e.delay))
            elif isinstance(e, tx.StopTimer):
                out.append(TimerStop(key, e.name))
            elif isinstance(e, tx.AckTimedOut):
                out.append(Dropped(entry.peer, f"response to {summary(entry.command)} was "
                                               "never acknowledged with 000"))
            elif isinstance(e, tx.Terminated):
                self.servers.pop((entry.peer, entry.txn.tid), None)
                out.append(CancelTimers(key))
        return out

    # ---- timers ----
    def timer_fired(self, key: tuple, name: str) -> list:
        """Timer ``name`` of ``key`` expired; returns effects (nothing for a forgotten key)."""
        if key[0] == "c":
            entry = self.clients.get(key[1])
            return self._client_effects(entry, entry.txn.timer_fired(name)) if entry else []
        if key[0] == "s":
            entry = self.servers.get((key[1], key[2]))
            return self._server_effects(entry, entry.txn.timer_fired(name)) if entry else []
        if key[0] == "r":
            gw, table = self.gateways.get(key[1]), self.services.get(key[1])
            found = table.entries.get(key[2]) if table else None
            if gw is None or found is None:
                return []
            return self._service_effects(gw, found[0], found[1].timer_fired(name), None)
        return []


def _reason_code(command: Command) -> int | None:
    text = (command.param("E") or "").split(" ", 1)[0]
    return int(text) if text.isdigit() and len(text) <= 3 else None
