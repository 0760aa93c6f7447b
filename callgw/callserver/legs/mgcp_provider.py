"""MGCP as a leg provider: callgw's call agent (RFC 3435), MGCP legs, AUEP health, RSIP.

Owned by the call path (docs/architecture.md, "Adding a protocol"; docs/protocols/mgcp.md).
``PROTOCOL`` is MGCP's entry in the static registry (``callgw.callserver.legs.registry``); its
gateway options, checked by ``callgw gateway add`` in the CLI process and stored in the gateway
row's ``options`` column:

- ``endpoints`` (``--endpoint LOCAL@DOMAIN``, repeatable, at least one): the endpoints callgw
  may use, specific (``aaln/1@gw``) or the gateway's "any" wildcard (``aaln/$@gw``;
  ``rtpbridge/*@mgw`` for osmo-mgw); the domain is matched literally by many gateways. Lines
  ``aaln/`` and bridges ``rtpbridge/`` are driven; trunks ``ds/`` are refused with one line
  until CAS signalling (RFC 3064) exists; other kinds are refused too;
- ``dialect`` (``--dialect rfc|osmo-mgw``): how the gateway reads names and datagrams
  (``protocols.mgcp.endpoint``); by default ``osmo-mgw`` when every endpoint is ``rtpbridge/``,
  else ``rfc``;
- ``dtmf`` (``--dtmf signal|rfc4733``): the client's digits as the RFC 3660 ``D/`` signal in an
  RQNT, or RFC 4733 in the media; by default ``signal`` for lines, ``rfc4733`` for bridges.

``MgcpLegProvider`` (an ``ILegProvider`` and the call agent's ``IMgcpListener``) owns the
``protocols.mgcp.adapter.CallAgentEndpoint`` bound to ``[mgcp] udp``:

- ``make_leg`` picks an endpoint: a specific one not in use by another call (one call per
  endpoint) and in service, or the "any" wildcard while RSIP leaves it in service (the gateway
  picks, and answers 410/503 when none is free: the handler fails over); none: ``LegUnavailable``
  saying why (busy, or the RSIP state: draining after ``graceful``, restarting for its delay,
  out of service, being audited);
- ``ping`` (``--probe auep``, the default; or ``off``) is an AUEP (of the first endpoint, its
  "any" term read as "all"): any answer is alive; it fails unanswered, or while RSIP leaves no
  endpoint in service; ``capacity`` is the number of specific endpoints (None with a
  wildcard: the gateway knows);
- ``release_orphan`` deletes (DLCX) a connection a previous run of callgw left up;
- the call agent's events go to the legs: NTFY by endpoint, the gateway's DLCX by endpoint and
  call id, ``ReleaseEndpointCalls`` (RSIP forced/restart, a drained graceful, a failed audit)
  to every leg on the endpoints it covers, ``ConnectionLost`` (the audit after
  ``disconnected``) to the connection's leg; every message is traced to the leg it belongs to
  (commands by the leg that sent them, answers by transaction id, the gateway's commands by
  endpoint).

The call agent learns a gateway from its row the first time a call, a health poll or a capacity
question names it; until then its RSIPs are answered 500 (unknown endpoint).

Tests: tests/mgcp/test_leg.py, tests/mgcp/test_mgcp_calls.py, tests/callpath/test_leg_registry.py.
"""
from __future__ import annotations

from twisted.internet.defer import fail, maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver.legs.entry import LegProtocol, Option
from callgw.callserver.legs.mgcp import BRIDGE, LINE, TRUNK, MgcpLeg, endpoint_kind
from callgw.interfaces import ILegProvider, LegUnavailable
from protocols.mgcp import events as mev
from protocols.mgcp.adapter import IMgcpListener
from protocols.mgcp.endpoint import ALL, ANY, OSMO_MGW, RFC3435, EndpointName
from protocols.mgcp.message import Command, Response

DIALECTS = {"rfc": RFC3435, "osmo-mgw": OSMO_MGW}


class PingError(Exception):
    """The gateway did not answer an AUEP as alive (or RSIP left nothing in service)."""


def _choice(*allowed):
    def check(value):
        value = str(value).lower()
        if value not in allowed:
            raise ValueError(f"{value!r}: expected one of {', '.join(allowed)}")
        return value
    return check


def _endpoints(value):
    names = [value] if isinstance(value, str) else list(value)
    if not names:
        raise ValueError("at least one LOCAL@DOMAIN")
    return [str(EndpointName.parse(str(text).strip())) for text in names]


OPTIONS = (
    Option("endpoints", "--endpoint",
           "an endpoint LOCAL@DOMAIN callgw may use (aaln/1@gw, aaln/$@gw, rtpbridge/*@mgw); "
           "repeat for several", None, _endpoints, action="append"),
    Option("dialect", "--dialect",
           "rfc (RFC 3435: '$' is any endpoint) or osmo-mgw ('*' is any, no K:, no "
           "piggy-backing); default osmo-mgw when every endpoint is rtpbridge/, else rfc",
           None, _choice(*DIALECTS)),
    Option("dtmf", "--dtmf",
           "client DTMF toward the gateway: signal (RFC 3660 D/ in an RQNT) or rfc4733 (in "
           "the media); default signal for lines, rfc4733 for bridges", None,
           _choice("signal", "rfc4733")),
)


def _names(options: dict) -> list[EndpointName]:
    return [EndpointName.parse(text) for text in options.get("endpoints") or ()]


def dialect_name(options: dict) -> str:
    """The gateway's dialect: the option, else osmo-mgw for bridges only, else rfc."""
    if options.get("dialect"):
        return options["dialect"]
    names = _names(options)
    return "osmo-mgw" if names and all(endpoint_kind(n) == BRIDGE for n in names) else "rfc"


def check_gateway(row: dict) -> None:
    """``ValueError`` with one line for a gateway callgw cannot drive."""
    options = row.get("options") or {}
    if not options.get("endpoints"):
        raise ValueError("mgcp gateways need at least one --endpoint LOCAL@DOMAIN "
                         "(aaln/1@gw, rtpbridge/*@mgw)")
    dialect = DIALECTS[dialect_name(options)]
    for text in options["endpoints"]:
        name = dialect.check(text)
        kind = endpoint_kind(name)
        if kind == TRUNK:
            raise ValueError(f"--endpoint {text}: ds/ trunk endpoints need CAS signalling "
                             "(RFC 3064), which callgw does not do yet")
        if kind is None:
            raise ValueError(f"--endpoint {text}: callgw drives aaln/ lines and rtpbridge/ "
                             "bridges")
        if dialect.all_of is not None and name.has(dialect.all_of):
            raise ValueError(f"--endpoint {text}: {dialect.all_of!r} means every endpoint to "
                             f"this gateway; {dialect.any_of!r} is any free one")


class GatewayRecord:
    """What the legs and the provider use of one MGCP gateway row."""

    __slots__ = ("name", "gateway", "names", "dtmf", "row")

    def __init__(self, row: dict):
        options = row.get("options") or {}
        dialect = DIALECTS[dialect_name(options)]
        self.row = row
        self.name = row["name"]
        self.names = tuple(_names(options))
        self.gateway = mev.Gateway(row["name"], row["host"], int(row["port"]), self.names,
                                   dialect)
        kinds = {endpoint_kind(n) for n in self.names}
        self.dtmf = options.get("dtmf") or ("signal" if kinds == {LINE} else "rfc4733")

    @property
    def dialect(self):
        return self.gateway.dialect

    def audit_name(self) -> str:
        first = self.names[0]
        if first.has(ANY) or first.has(self.dialect.any_of):
            all_term = self.dialect.all_of or self.dialect.any_of
            return str(EndpointName(tuple(all_term if t in (ANY, self.dialect.any_of) else t
                                          for t in first.local), first.domain))
        return str(first)


@implementer(ILegProvider, IMgcpListener)
class MgcpLegProvider:
    """MGCP legs over one ``CallAgentEndpoint`` (bound at ``start``; see the module
    docstring)."""

    log = Logger()
    name = "mgcp"
    shutdown_grace = 1.0

    def __init__(self, reactor, udp, timers):
        self.reactor = reactor
        self.udp = udp                      # callgw.config.Listener or None (off)
        self.timers = timers                # protocols.mgcp.transaction.Timers
        self.endpoint = None                # the CallAgentEndpoint
        self.records: dict[str, GatewayRecord] = {}
        self._bound: dict[tuple, MgcpLeg] = {}      # (gateway, endpoint key) -> leg
        self._legs: dict[str, set] = {}             # gateway -> its live legs
        self._by_tid: dict[int, MgcpLeg] = {}       # our commands' transaction ids
        self._tids: dict[int, list] = {}            # id(leg) -> its tids
        self._incoming: dict[tuple, MgcpLeg] = {}   # (peer, tid) of the gateway's commands
        self._sending: MgcpLeg | None = None

    # ---- ILegProvider ----
    def start(self):
        """Binds ``[mgcp] udp``; fires with None, fails when it cannot bind."""
        if self.udp is None:
            self.log.info("mgcp: off ([mgcp] udp = \"off\"): MGCP gateways cannot be reached")
            return succeed(None)
        from protocols.mgcp.adapter import CallAgentEndpoint
        self.endpoint = CallAgentEndpoint(self.reactor, self.udp.host, self.udp.port,
                                          timers=self.timers, listener=self)
        try:
            port = self.endpoint.start()
        except Exception as exc:  # noqa: BLE001 - reported as the provider's start failure
            self.endpoint = None
            return fail(exc)
        self.log.info("listening: mgcp call agent udp {host}:{port} (call path)",
                      host=self.udp.host, port=port)
        return succeed(None)

    def stop(self):
        """Fires once the call agent's port is closed (commands in flight fail)."""
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is None:
            return succeed(None)
        return maybeDeferred(endpoint.stop)

    def make_leg(self, gateway: dict, call_id: str):
        record = self._record(gateway)
        name = self._pick(record)
        leg = MgcpLeg(self, record, name, self.reactor)
        self._legs.setdefault(record.name, set()).add(leg)
        if not name.wildcard:
            self._bound[(record.name, name.key)] = leg
        return leg

    def ping(self, gateway: dict):
        """AUEP; fires with the round trip in seconds once the gateway answers (any code: a
        gateway that answers is alive), fails when it does not (``MgcpCommandError``) or with
        ``PingError`` while RSIP leaves none of its endpoints in service."""
        record = self._record(gateway)
        if not any(self.endpoint.accepting(record.name, n) for n in record.names):
            return fail(PingError(f"gateway {record.name}: {self._service(record)}"))
        started = self.reactor.seconds()
        d = self.command(None, record.name, Command("AUEP", 0, record.audit_name()))

        def answered(result):
            if not result.response.success:         # alive all the same: it answered
                self.log.info("MGCP gateway {gateway}: AUEP {name} answered {code} {comment}",
                              gateway=record.name, name=record.audit_name(),
                              code=result.response.code, comment=result.response.comment)
            return self.reactor.seconds() - started
        return d.addCallback(answered)

    def capacity(self, gateway: dict):
        """The number of specific endpoints; None when a wildcard lets the gateway pick."""
        names = _names(gateway.get("options") or {})
        if not names or any(n.wildcard for n in names):
            return None
        return len(names)

    def release_orphan(self, gateway, recovery: dict):
        """A DLCX of the connection a previous run left up (``MgcpLeg.recovery()``); fires
        with the gateway's answer, fails when it gives none."""
        if gateway is None:
            raise LegUnavailable(f"MGCP gateway {recovery.get('gateway')} was removed")
        record = self._record(gateway)
        params = (("C", recovery["call_id"]), ("I", recovery["connection_id"]))
        return self.command(None, record.name, Command("DLCX", 0, recovery["endpoint"], params))

    # ---- what the legs use ----
    def command(self, leg, gateway: str, command: Command):
        """Send ``command`` for ``leg`` (None: the provider's own); the adapter's Deferred."""
        if self.endpoint is None:
            from protocols.mgcp.adapter import MgcpCommandError
            return fail(MgcpCommandError(mev.CommandFailed(gateway, 0, command,
                                                           "MGCP is off or stopped")))
        self._sending = leg
        try:
            return self.endpoint.send(gateway, command)
        finally:
            self._sending = None

    def respond(self, key: tuple, code: int) -> None:
        if self.endpoint is not None:
            self.endpoint.respond(key, code)

    def bind(self, leg: MgcpLeg, name: EndpointName) -> None:
        """``leg`` now owns endpoint ``name`` (the gateway's ``Z:`` for a wildcard CRCX)."""
        self._bound[(leg.gateway.name, name.key)] = leg

    def unbind(self, leg: MgcpLeg) -> None:
        """``leg`` is done: its endpoint is free, its messages are no longer traced."""
        for key in [k for k, v in self._bound.items() if v is leg]:
            del self._bound[key]
        legs = self._legs.get(leg.gateway.name)
        if legs is not None:
            legs.discard(leg)
        for tid in self._tids.pop(id(leg), ()):
            if self._by_tid.get(tid) is leg:
                del self._by_tid[tid]
        for key in [k for k, v in self._incoming.items() if v is leg]:
            del self._incoming[key]

    # ---- IMgcpListener ----
    def mgcp_message(self, direction, peer, message):
        leg = None
        if direction == "out" and isinstance(message, Command):
            leg = self._sending if self._sending is not None else self._by_tid.get(message.tid)
            if self._sending is not None:
                self._by_tid[message.tid] = leg
                self._tids.setdefault(id(leg), []).append(message.tid)
        elif direction == "in" and isinstance(message, Command):
            leg = self._owner(peer, message)
            if leg is not None:
                self._incoming[(peer, message.tid)] = leg
        elif isinstance(message, Response):
            leg = (self._by_tid.get(message.tid) if direction == "in" or message.code == 0
                   else self._incoming.get((peer, message.tid)))
        if leg is not None:
            leg.trace(direction, message)

    def mgcp_event(self, event):
        kind = type(event)
        if kind is mev.Notified:
            leg = self._bound.get((event.gateway, EndpointName.parse(event.endpoint).key))
            if leg is None:
                self.log.info("MGCP NTFY from {gateway} for {endpoint}: no call there",
                              gateway=event.gateway, endpoint=event.endpoint)
                self.respond(event.key, 200)
            else:
                leg.notified(event)
        elif kind is mev.ConnectionDeleted:
            for leg in self._covered(event.gateway, event.endpoint):
                if leg.connection_id == event.connection_id or not event.connection_id:
                    leg.connection_deleted(event)
        elif kind is mev.ConnectionLost:
            for leg in self._covered(event.gateway, event.endpoint):
                if leg.connection_id == event.connection_id:
                    leg.connection_lost(event.code)
        elif kind is mev.ReleaseEndpointCalls:
            legs = self._covered(event.gateway, event.endpoint)
            self.log.info("MGCP gateway {gateway} {endpoint}: {reason}; releasing {n} call(s)",
                          gateway=event.gateway, endpoint=event.endpoint, reason=event.reason,
                          n=len(legs))
            for leg in legs:
                leg.endpoint_lost(event.reason, event.reason_code)
        elif kind is mev.EndpointServiceChanged:
            self.log.info("MGCP gateway {gateway} {endpoint}: {state}", gateway=event.gateway,
                          endpoint=event.endpoint, state=event.state.value)
        elif kind is mev.StrayConnection:
            self.log.info("MGCP gateway {gateway}: deleted stray connection {conn} on "
                          "{endpoint}", gateway=event.gateway, conn=event.connection_id,
                          endpoint=event.endpoint)

    # ---- helpers ----
    def _record(self, row: dict) -> GatewayRecord:
        if self.endpoint is None:
            raise LegUnavailable("MGCP is off in this callgw ([mgcp] udp)")
        record = self.records.get(row["name"])
        if record is None or _identity(record.row) != _identity(row):
            record = self.records[row["name"]] = GatewayRecord(row)
            self.endpoint.add_gateway(record.gateway)
        return record

    def _pick(self, record: GatewayRecord) -> EndpointName:
        for name in record.names:
            if not self.endpoint.accepting(record.name, name):
                continue
            if name.wildcard or (record.name, name.key) not in self._bound:
                return name
        if all(self.endpoint.accepting(record.name, n) for n in record.names):
            raise LegUnavailable(f"every endpoint of MGCP gateway {record.name} is in a call")
        raise LegUnavailable(f"MGCP gateway {record.name}: {self._service(record)}")

    def _service(self, record: GatewayRecord) -> str:
        states = sorted({self.endpoint.agent.service_state(record.name, n).value
                         for n in record.names})
        return "endpoints " + "/".join(states) + " after RSIP"

    def _covered(self, gateway: str, endpoint: str) -> list:
        try:
            pattern = EndpointName.parse(endpoint)
        except ValueError:
            return []
        out = []
        for leg in list(self._legs.get(gateway, ())):
            name = EndpointName.parse(leg.endpoint) if leg.endpoint else leg.requested
            if pattern.covers(name):
                out.append(leg)
        return out

    def _owner(self, peer, command: Command):
        for record in self.records.values():
            if record.gateway.host != peer[0]:
                continue
            try:
                key = EndpointName.parse(command.endpoint).key
            except ValueError:
                return None
            leg = self._bound.get((record.name, key))
            if leg is not None:
                return leg
        return None


def _identity(row: dict) -> tuple:
    """What of a gateway row the call agent uses (status, RTT and counters change freely)."""
    options = row.get("options") or {}
    return (row["host"], int(row["port"]), tuple(options.get("endpoints") or ()),
            options.get("dialect"), options.get("dtmf"))


def build(config, reactor) -> MgcpLegProvider:
    """MGCP's provider from ``[mgcp]``."""
    from protocols.mgcp.transaction import Timers
    mgcp = config["mgcp"]
    return MgcpLegProvider(reactor, config.listener("mgcp", "udp"),
                           Timers(initial=mgcp["retransmit"], t_max=mgcp["t_max"]))


PROTOCOL = LegProtocol("mgcp", 2427, OPTIONS, build, check_gateway,
                       probe_modes=("auep", "off"))
