"""SIP as a leg provider: the SIP endpoint of the call path, SIP legs, OPTIONS health probes.

Owned by the call path (docs/architecture.md, "Adding a protocol"). ``PROTOCOL`` is SIP's entry
in the static registry (``callgw.callserver.legs.registry``): its gateway options, checked by
``callgw gateway add`` in the CLI process and stored in the gateway row's ``options`` column:

- ``transport`` ``udp`` | ``tcp`` | ``tls`` (``--transport``),
- ``proxy`` ``HOST:PORT`` (``--proxy``, an outbound proxy), ``auth_user`` and
  ``auth_password`` (``--auth-user``/``--auth-password``, digest credentials the gateway asks),
- ``keepalive`` ``off`` | ``options`` | ``session-timer`` (``--keepalive``; default off, since
  sipp and many gateways end a call on an in-dialog request they do not expect),
- for TLS: ``tls_verify`` ``on`` | ``off`` (``--tls-verify``; default on: the gateway's
  certificate must chain to ``tls_ca`` and name its address), ``tls_ca`` (``--tls-ca``, a PEM
  CA file; default the system's trust store), ``sips`` (``--sips``: sips: URIs, RFC 5630).

``SipLegProvider`` (an ``ILegProvider``) owns the ``protocols.sip.adapter.SipEndpoint`` bound
to ``[sip] udp``/``tcp``: ``start``/``stop`` open and close it, ``make_leg`` makes a
``callgw.callserver.legs.sip.SipLeg`` toward a gateway row, ``ping`` sends OPTIONS.

Tests: tests/callpath/test_leg_registry.py, tests/callpath/test_sipp_calls.py.
"""
from __future__ import annotations

import socket

from twisted.internet.defer import maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver.legs.entry import LegProtocol, Option
from callgw.connlimits import ConnectionLimits, guarded_factory
from callgw.interfaces import ILegProvider, LegUnavailable

TRANSPORTS = ("udp", "tcp", "tls")
#: A BYE from the next start skips this far past the CSeq stored at answer (re-INVITEs after it).
ORPHAN_CSEQ_GAP = 1000
KEEPALIVES = ("off", "options", "session-timer")


def _choice(*allowed):
    def check(value):
        value = str(value).lower()
        if value not in allowed:
            raise ValueError(f"{value!r}: expected one of {', '.join(allowed)}")
        return value
    return check


def _host_port(value):
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    return f"{host}:{int(port)}"


def _on_off(value):
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in ("on", "off", "true", "false", "yes", "no"):
        raise ValueError(f"{value!r}: expected on or off")
    return text in ("on", "true", "yes")


def _seconds(value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r}: expected seconds") from None
    if not 5.0 <= seconds <= 3600.0:
        raise ValueError(f"{value!r}: expected 5-3600 seconds")
    return seconds


def _text(value):
    text = str(value)
    if not text or any(c < " " for c in text):
        raise ValueError("must be printable text")
    return text


OPTIONS = (
    Option("transport", "--transport", "udp, tcp or tls toward the gateway", "udp",
           _choice(*TRANSPORTS)),
    Option("proxy", "--proxy", "outbound proxy HOST:PORT", None, _host_port),
    Option("auth_user", "--auth-user", "digest user name the gateway expects", None, _text),
    Option("auth_password", "--auth-password", "digest password the gateway expects", None,
           _text),
    Option("tls_verify", "--tls-verify", "TLS: check the gateway's certificate (on, off)", None,
           _on_off),
    Option("tls_ca", "--tls-ca", "TLS: PEM file of the CAs that sign the gateway's certificate",
           None, _text),
    Option("sips", "--sips", "TLS: use sips: URIs (TLS on every hop, RFC 5630)", None,
           _on_off, action="store_true"),
    Option("keepalive", "--keepalive",
           "liveness of answered calls: off (default), options (in-dialog OPTIONS) or "
           "session-timer (RFC 4028, when the gateway's 2xx carries Session-Expires)", "off",
           _choice(*KEEPALIVES)),
    Option("keepalive_interval", "--keepalive-interval",
           "seconds between in-dialog OPTIONS with --keepalive options (default 30)", None,
           _seconds),
)


def sip_gateway(row: dict, no_answer_timeout: float) -> dict:
    """The SIP leg's gateway record from a store gateway row (its ``options`` unpacked)."""
    options = row.get("options") or {}
    caller_id = row.get("caller_id") or "pass"
    return {"name": row["name"], "address": row["host"], "port": row["port"],
            "transport": options.get("transport", "udp"),
            "outbound_proxy": options.get("proxy"),
            "username": options.get("auth_user"), "password": options.get("auth_password"),
            "keepalive": options.get("keepalive", "off"),
            "keepalive_interval": options.get("keepalive_interval"),
            "tls_verify": options.get("tls_verify", True), "tls_ca_file": options.get("tls_ca"),
            "sips": options.get("sips", False),
            "strip_digits": row.get("strip_digits") or 0, "prepend": row.get("prepend") or "",
            "keep_plus": row.get("keep_plus", True),
            "presentation": "restricted" if caller_id == "withhold" else "allowed",
            "no_answer_timeout": no_answer_timeout}


@implementer(ILegProvider)
class SipLegProvider:
    """SIP legs over one ``SipEndpoint`` (bound at ``start``; see the module docstring)."""

    log = Logger()
    name = "sip"
    shutdown_grace = 0.5

    def __init__(self, reactor, udp, tcp, timers, no_answer_timeout: float = 65.0,
                 ping_timeout: float = 8.0, strangers: str = "answer", trusted=(),
                 user_agent: str = "callgw", limits=None):
        self.reactor = reactor
        self.udp = udp                      # callgw.config.Listener or None (off)
        self.tcp = tcp
        self.timers = timers                # protocols.sip.transaction.TimerConfig
        self.no_answer_timeout = no_answer_timeout
        self.ping_timeout = ping_timeout
        self.strangers, self.trusted, self.user_agent = strangers, tuple(trusted), user_agent
        self.limits = limits                # callgw.connlimits.ConnectionLimits (None: defaults)
        self.endpoint = None

    def start(self):
        """Binds ``[sip] udp`` (and TCP); fires with None, fails when it cannot bind."""
        if self.udp is None:
            self.log.info("sip: off ([sip] udp = \"off\"): SIP gateways cannot be reached")
            return succeed(None)
        from protocols.sip.adapter import SipEndpoint
        from protocols.sip.strangers import Strangers
        from protocols.sip.uas import UasCore
        tcp = self.tcp
        self.endpoint = SipEndpoint(self.reactor, self.udp.host, self.udp.port,
                                    timers=self.timers, tcp=tcp is not None,
                                    tcp_host=tcp.host if tcp else None,
                                    tcp_port=tcp.port if tcp else None,
                                    uas=UasCore(user_agent=self.user_agent),
                                    strangers=Strangers(self.trusted, self.strangers),
                                    wrap_listener=self._bounded)
        port = self.endpoint.start()
        _grow_buffers(self.endpoint.udp_socket())
        self.log.info("listening: sip udp {host}:{port} (call path)", host=self.udp.host,
                      port=port)
        if tcp is not None:
            self.log.info("listening: sip tcp {host}:{port} (call path)", host=tcp.host,
                          port=self.endpoint.tcp_port)
        return succeed(None)

    def _bounded(self, factory):
        """The SIP TCP listener behind the per-source connection cap (callgw/connlimits.py)."""
        return guarded_factory(factory, self.limits or ConnectionLimits(), self.reactor,
                               "sip-tcp")

    def stop(self):
        """Fires once the SIP sockets are closed."""
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is None:
            return succeed(None)
        return maybeDeferred(endpoint.stop)

    def make_leg(self, gateway: dict, call_id: str):
        from callgw.callserver.legs.sip import SipLeg
        if self.endpoint is None:
            raise LegUnavailable("SIP is off in this callgw ([sip] udp)")
        return SipLeg(self.endpoint, sip_gateway(gateway, self.no_answer_timeout), self.reactor)

    def ping(self, gateway: dict):
        from callgw.callserver.legs.sip import options_ping
        if self.endpoint is None:
            raise LegUnavailable("SIP is off in this callgw ([sip] udp)")
        return options_ping(self.endpoint, sip_gateway(gateway, self.no_answer_timeout),
                            self.ping_timeout)

    def capacity(self, gateway: dict):
        return None

    def release_orphan(self, gateway, recovery: dict):
        """A BYE in the dialog a previous run left up (``SipLeg.recovery()``), with a CSeq
        above any that run can have used, or a CANCEL of the INVITE it left unanswered;
        fires with the gateway's final response."""
        if self.endpoint is None:
            raise LegUnavailable("SIP is off in this callgw ([sip] udp)")
        from callgw.callserver.legs.sip import _tls_policy
        from protocols.sip import session as sess
        from protocols.sip.headers import parse_name_addr
        if recovery.get("state") == "early":        # the INVITE was never answered: CANCEL
            transport, host, port = recovery["hop"]
            tls = _tls_policy(sip_gateway(gateway, self.no_answer_timeout)
                              if gateway is not None else {"transport": transport})
            headers = [("Max-Forwards", "70"),
                       *(("Route", r) for r in recovery.get("route_set") or ()),
                       ("From", recovery["from"]), ("To", recovery["to"]),
                       ("Call-ID", recovery["call_id"]),
                       ("CSeq", f"{int(recovery['cseq'])} CANCEL"),
                       ("Reason", 'Q.850;cause=41;text="callgw restarted"')]
            # the INVITE's own Via (its branch names the transaction CANCEL ends); rport in it
            # sends the answer here, to this process
            return self.endpoint.send_request("CANCEL", recovery["uri"], headers,
                                              sess.Hop(transport, host, int(port), tls),
                                              self.ping_timeout, via=recovery["via"])
        transport = recovery.get("transport") or "udp"
        # TLS: the gateway's certificate check as configured now (the system's trust store
        # with verification on when the gateway was removed since)
        tls = _tls_policy(sip_gateway(gateway, self.no_answer_timeout) if gateway is not None
                          else {"transport": transport})
        routes = list(recovery.get("route_set") or ())
        if routes:
            route = parse_name_addr(routes[0]).uri
            hop = sess.Hop(transport, route.host.strip("[]"), route.port or 5060, tls)
        elif recovery.get("proxy"):
            host, _, port = recovery["proxy"].rpartition(":")
            hop = sess.Hop(transport, host.strip("[]"), int(port), tls)
        else:
            hop = sess.hop_for(recovery["remote_target"], transport, tls)
        headers = [("Max-Forwards", "70"), *(("Route", r) for r in routes),
                   ("From", recovery["from"]), ("To", recovery["to"]),
                   ("Call-ID", recovery["call_id"]),
                   ("CSeq", f"{int(recovery['cseq']) + ORPHAN_CSEQ_GAP} BYE"),
                   ("Reason", 'Q.850;cause=41;text="callgw restarted"')]
        return self.endpoint.send_request("BYE", recovery["remote_target"], headers, hop,
                                          self.ping_timeout)


def _grow_buffers(sock, size: int = 4 << 20) -> None:
    """Give the SIP UDP socket room for a burst of responses while the reactor is busy (the
    kernel caps it at net.core.rmem_max/wmem_max). Default buffers (~200 kB) overflow after a
    few hundred milliseconds' stall at some hundred calls per second."""
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass


def build(config, reactor) -> SipLegProvider:
    """SIP's provider from ``[sip]`` and ``[calls]``."""
    from protocols.sip.transaction import TimerConfig
    sip, calls = config["sip"], config["calls"]
    return SipLegProvider(reactor, config.listener("sip", "udp"), config.listener("sip", "tcp"),
                          TimerConfig(sip["t1"], sip["t2"], sip["t4"]),
                          no_answer_timeout=calls["no_answer_timeout"] + 5.0,
                          ping_timeout=calls["setup_timeout"], strangers=sip["strangers"],
                          trusted=sip["trusted"], user_agent=sip["user_agent"],
                          limits=ConnectionLimits.from_config(config))


PROTOCOL = LegProtocol("sip", 5060, OPTIONS, build, probe_modes=("options", "off"))
