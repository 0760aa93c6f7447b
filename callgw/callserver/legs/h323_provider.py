"""H.323 as a leg provider: H.323 legs toward gateways, their gatekeepers, health probes.

Owned by the call path (docs/architecture.md, "Adding a protocol"; docs/protocols/h323.md).
``PROTOCOL`` is H.323's entry in the static registry: gateways are added with
``callgw gateway add NAME --protocol h323 --address HOST[:PORT]`` (the call-signalling TCP port,
1720 by default) and these options, stored in the gateway row's ``options`` column:

- ``gatekeeper`` ``HOST[:PORT]`` (``--gatekeeper``; RAS port 1719 by default): callgw registers
  with it (RRQ, then keep-alive RRQs), asks admission per call (ARQ: the Setup goes to the ACF's
  destCallSignalAddress), disengages (DRQ);
- ``fast_start`` ``on`` | ``off`` (``--fast-start``, default on): offer fastStart in the Setup;
  off, or refused by the gateway, opens the audio channels over H.245;
- ``tunnelling`` ``on`` | ``off`` (``--tunnelling``, default on): offer H.245 tunnelling;
  refused, H.245 runs on the separate connection at the gateway's h245Address.

``H323LegProvider`` (an ``ILegProvider``) compiles the ASN.1 at ``start`` (about 1 s, so no call
pays it), keeps one ``GatekeeperLink`` (a RAS socket on ``[h323] address``, port chosen by the OS)
per gatekeeper in use, makes ``callgw.callserver.legs.h323.H323Leg`` legs, and probes health:
with a gatekeeper, a keep-alive RRQ answered by RCF (RRJ and timeouts fail with their reason);
without, a TCP connection and a Q.931 Status Enquiry (``protocols.h323.adapter.status_probe``)
(``--probe status``, the default, or ``off``). ``release_orphan`` sends a ReleaseComplete for a
call a crashed run left up.

Tests: tests/h323/test_h323_leg.py, tests/h323/test_h323_calls.py.
"""
from __future__ import annotations

import itertools

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from callgw.callserver.legs.entry import LegProtocol, Option
from callgw.interfaces import ILegProvider, LegUnavailable

RAS_PORT = 1719


class RasFailure(Exception):
    """The gatekeeper refused or did not answer: ``reason`` (its H.225.0 name) and the Q.850
    ``cause`` the call is released with."""

    def __init__(self, reason, cause=47):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


def _on_off(value):
    text = str(value).lower()
    if text in ("on", "true", "yes", "1"):
        return "on"
    if text in ("off", "false", "no", "0"):
        return "off"
    raise ValueError(f"{value!r}: expected on or off")


def _gatekeeper(value):
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(RAS_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected HOST[:PORT]")
    return f"{host}:{int(port)}"


OPTIONS = (
    Option("gatekeeper", "--gatekeeper",
           "H.323 gatekeeper HOST[:PORT] (RAS, 1719 by default): register, ARQ per call", None,
           _gatekeeper),
    Option("fast_start", "--fast-start", "H.323 fastStart in the Setup: on (default) or off",
           "on", _on_off),
    Option("tunnelling", "--tunnelling", "H.245 tunnelling offered: on (default) or off", "on",
           _on_off),
)


def split_host_port(text, default_port):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port or default_port)


class GatekeeperLink:
    """RAS toward one gatekeeper for every gateway that names it: one ``RasClient`` on one UDP
    socket, registration shared, admissions routed to their legs by key."""

    log = Logger()

    def __init__(self, reactor, gatekeeper, local_host, alias, ttl, timeout):
        from protocols.h323 import ras
        self.reactor = reactor
        self.gatekeeper = gatekeeper
        self.local_host = local_host
        self.alias = alias
        self.ttl = ttl
        self.timeout = timeout
        self.ras = ras
        self.proto = None
        self.port = None
        self._admissions = {}      # key -> Deferred (Admitted / AdmissionRejected)
        self._disengages = {}
        self._registration = []    # Deferreds waiting for Registered / RegistrationRejected
        self.last_reason = None

    def start(self):
        from protocols.h323.adapter import RasProtocol
        self.proto = RasProtocol(None, self.gatekeeper, clock=self.reactor, listener=self)
        self.port = self.reactor.listenUDP(0, self.proto, interface=self.local_host)
        ras_address = (self.local_host, self.port.getHost().port)
        self.proto.client = self.ras.RasClient(ras_address, (self.local_host, 1720),
                                               alias=self.alias, ttl=self.ttl)

    def stop(self):
        if self.proto is None:
            return defer.succeed(None)
        self.proto.apply(self.proto.client.unregister())
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening)

    @property
    def registered(self):
        return self.proto is not None and self.proto.client.registered

    def register(self):
        """A Deferred firing with the RCF's round trip in seconds once registered (a keep-alive
        RRQ when already registered); failing with ``RasFailure`` naming the RRJ reason."""
        started = self.reactor.seconds()
        d = defer.Deferred()
        self._registration.append(d)
        if len(self._registration) == 1:
            self.proto.apply(self.proto.client.register(keep_alive=self.registered))
        d.addCallback(lambda _r: self.reactor.seconds() - started)
        return d

    def admit(self, key, **kw):
        """ARQ: a Deferred firing with the ``Admitted`` event, failing with ``RasFailure``."""
        d = defer.Deferred()
        self._admissions[key] = d
        self.proto.apply(self.proto.client.admit(key, **kw))
        return d

    def disengage(self, key, **kw):
        d = defer.Deferred()
        self._disengages[key] = d
        self.proto.apply(self.proto.client.disengage(key, **kw))
        return d

    # RasProtocol's listener
    def rasEvent(self, event):
        ras = self.ras
        kind = type(event)
        if kind is ras.Registered:
            self.last_reason = None
            self._settle_registration(None)
        elif kind is ras.RegistrationRejected:
            self.last_reason = f"gatekeeper rejected registration: {event.reason}"
            self._settle_registration(RasFailure(self.last_reason, 21))
        elif kind is ras.Unregistered:
            self.log.info("h323: unregistered from {gk}: {reason}", gk=self.gatekeeper,
                          reason=event.reason)
            self.last_reason = f"unregistered: {event.reason}"
        elif kind is ras.Admitted:
            d = self._admissions.pop(event.key, None)
            if d is not None:
                d.callback(event)
        elif kind is ras.AdmissionRejected:
            d = self._admissions.pop(event.key, None)
            if d is not None:
                d.errback(RasFailure(event.reason, event.cause))
        elif kind is ras.Disengaged:
            d = self._disengages.pop(event.key, None)
            if d is not None:
                d.callback(None)
        elif kind is ras.RasTimeout:
            reason = f"gatekeeper {self.gatekeeper[0]}:{self.gatekeeper[1]} did not answer " \
                     f"{event.request}"
            if event.request == "registrationRequest":
                self.last_reason = reason
                self._settle_registration(RasFailure(reason, 102))
            elif event.request == "admissionRequest":
                d = self._admissions.pop(event.key, None)
                if d is not None:
                    d.errback(RasFailure(reason, 102))
            elif event.request == "disengageRequest":
                d = self._disengages.pop(event.key, None)
                if d is not None:
                    d.callback(None)

    def _settle_registration(self, error):
        waiting, self._registration = self._registration, []
        for d in waiting:
            if error is None:
                d.callback(None)
            else:
                d.errback(error)


@implementer(ILegProvider)
class H323LegProvider:
    """H.323 legs (see the module docstring)."""

    log = Logger()
    name = "h323"
    shutdown_grace = 0.5

    def __init__(self, reactor, local_host="127.0.0.1", alias="callgw", ttl=60,
                 setup_timeout=8.0, no_answer_timeout=65.0, ping_timeout=5.0):
        self.reactor = reactor
        self.local_host = local_host
        self.alias = alias
        self.ttl = ttl
        self.setup_timeout = setup_timeout
        self.no_answer_timeout = no_answer_timeout
        self.ping_timeout = ping_timeout
        self.links = {}
        self.started = False
        self._crv = itertools.cycle(range(1, 0x8000))

    def start(self):
        """Compiles the ASN.1 now (about 1 s) so that no call pays it; fires with None."""
        from protocols.h323 import per
        per.specification()
        self.started = True
        self.log.info("h323: ready (H.225.0 v4, alias {alias})", alias=self.alias)
        return defer.succeed(None)

    def stop(self):
        links, self.links = self.links, {}
        self.started = False
        return defer.gatherResults([link.stop() for link in links.values()],
                                   consumeErrors=True).addCallback(lambda _: None)

    def link(self, gatekeeper_text):
        """The ``GatekeeperLink`` for ``HOST:PORT`` (made and bound on first use)."""
        link = self.links.get(gatekeeper_text)
        if link is None:
            gk = split_host_port(gatekeeper_text, RAS_PORT)
            link = GatekeeperLink(self.reactor, gk, self.local_host, self.alias, self.ttl,
                                  self.ping_timeout)
            link.start()
            self.links[gatekeeper_text] = link
        return link

    def next_call_reference(self):
        return next(self._crv)

    def make_leg(self, gateway: dict, call_id: str):
        from callgw.callserver.legs.h323 import H323Leg
        if not self.started:
            raise LegUnavailable("H.323 is not started in this callgw")
        options = gateway.get("options") or {}
        link = self.link(options["gatekeeper"]) if options.get("gatekeeper") else None
        return H323Leg(self, gateway, self.reactor, link=link)

    def ping(self, gateway: dict):
        """Health: a keep-alive RRQ with a gatekeeper, else TCP + Status Enquiry. A Deferred of
        the round trip in seconds."""
        options = gateway.get("options") or {}
        if options.get("gatekeeper"):
            return self.link(options["gatekeeper"]).register()
        from protocols.h323.adapter import status_probe
        return status_probe(self.reactor, (gateway["host"], int(gateway["port"])),
                            timeout=self.ping_timeout,
                            call_reference=self.next_call_reference())

    def capacity(self, gateway: dict):
        return None

    def release_orphan(self, gateway, recovery: dict):
        """A ReleaseComplete (cause 41) for a call a previous run left up (``H323Leg.recovery``)
        on a new connection to where that call went; fires once the gateway answered, closed the
        connection or stayed silent (most gateways cleared the call when our connection died).
        A gatekeeper's admission of it is not disengaged: it went with the old registration."""
        from protocols.h323.adapter import release_orphan
        return release_orphan(self.reactor, (recovery["host"], int(recovery["port"])),
                              call_reference=int(recovery["call_reference"]),
                              call_id=bytes.fromhex(recovery["call_id"]),
                              timeout=self.ping_timeout)


def build(config, reactor) -> H323LegProvider:
    """H.323's provider from ``[h323]`` and ``[calls]``."""
    h323, calls = config["h323"], config["calls"]
    return H323LegProvider(reactor, local_host=h323["address"], alias=h323["alias"],
                           ttl=h323["ttl"], setup_timeout=calls["setup_timeout"],
                           no_answer_timeout=calls["no_answer_timeout"] + 5.0,
                           ping_timeout=calls["setup_timeout"])


#: ``--probe status`` (default): a keep-alive RRQ with a gatekeeper, else TCP + Status Enquiry.
PROTOCOL = LegProtocol("h323", 1720, OPTIONS, build, probe_modes=("status", "off"))
