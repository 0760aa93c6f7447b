"""The Twisted side of the SIP stack: timers, dispatch, transactions on the wire (RFC 3261 18).

``SipEndpoint`` and ``protocols.sip.transports`` are the only SIP code that touches sockets or
a clock. The endpoint owns its sockets through ``Transports`` (UDP; TCP on its own address or
the UDP one's; outgoing TCP and TLS streams; gateway names resolved by ``Names``), the client
and server transaction table (``protocols.sip.transaction``), the dialogs of the INVITE
sessions (``UacSession`` and ``UasSession``, ``protocols.sip.uac_session`` / ``uas_session``)
and the out-of-dialog UAS core (``protocols.sip.uas``). It carries out the effects those cores
return: ``Transmit``/``SendRequest``/``SendAck``/``Respond`` become datagrams or stream writes,
``StartTimer``/``StopTimer`` become ``clock.callLater`` calls on the injected ``IReactorTime``,
``Abandon`` drops a client transaction, session events go to the session's listener after the
batch's I/O. A closed session keeps its dialog entry until its transactions have ended (Timer
B/D/L/M), so a retransmitted 2xx is still ACKed. An INVITE outside any dialog becomes a
``UasSession`` when the ``inbound`` hook takes it; its CANCEL is answered 200 here and passed on.

A request toward a host name waits for its address (a name that does not resolve fails it as
a transport error: 503 with the reason). A connection that cannot be made, or closes before
the peer said anything (a TLS handshake that failed), fails the transactions waiting on it.
Responses follow 18.2.2 and RFC 3581: over the connection the request came on, else to the
Via ``received`` address and the ``rport`` (the source port) when the request asked for it.
Received requests get ``received``/``rport`` filled in (18.2.1, RFC 3581 4). A response that
matches no transaction is dropped (18.1.2), except a retransmitted 2xx for our INVITE, which
goes to its dialog to be ACKed again. Retransmissions run on UDP only.

Strangers (``strangers``, a ``protocols.sip.strangers.Strangers``): a request outside every
transaction and dialog from a source that is no peer of ours gets one stateless answer, sent
to the address it came from, or none; never a server transaction, so never a retransmission.
They are rate-limited per source and logged one line per source and minute. An ACK is never
answered; one without Max-Forwards is taken leniently so that it still ends its transaction.

Tests: tests/sip/test_adapter.py (StringTransport, a fake datagram transport, task.Clock),
tests/sip/test_sipp.py (real sipp on 127.0.0.1) and tests/sip/test_strangers.py.
"""
from __future__ import annotations

from twisted.internet import defer
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IReactorPluggableNameResolver
from twisted.logger import Logger

from protocols.sip import session as sess
from protocols.sip import transaction as txn
from protocols.sip.message import Request, SipParseError, is_keepalive, make_response, \
    parse_message
from protocols.sip.transports import Names, Transports, is_address
from protocols.sip.uas import UasCore, bad_request_response
from protocols.sip.uas_session import UasSession

log = Logger(namespace="callgw.sip")


class PingError(Exception):
    """An OPTIONS ping got no answer: ``status`` 408 (timeout) or 503 (transport failure)."""

    def __init__(self, status, reason):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class _Ping:
    """The transaction user of one OPTIONS ping: fires ``deferred`` with the round-trip."""

    __slots__ = ("deferred", "started", "clock", "timeout_call")

    def __init__(self, clock):
        self.deferred = defer.Deferred()
        self.started = clock.seconds()
        self.clock = clock
        self.timeout_call = None

    def _settle(self, result):
        if self.timeout_call is not None and self.timeout_call.active():
            self.timeout_call.cancel()
        if not self.deferred.called:
            if isinstance(result, Exception):
                self.deferred.errback(result)
            else:
                self.deferred.callback(result)
        return []

    def receive_response(self, response):
        if response.status < 200:
            return []
        return self._settle(self.clock.seconds() - self.started)   # any answer: alive

    def request_timeout(self, request):
        return self._settle(PingError(408, "Request Timeout"))

    def transport_failed(self, request, reason=None):
        return self._settle(PingError(503, reason or "Transport failed"))


class _Standalone(_Ping):
    """The transaction user of one standalone request: fires with its final response."""

    __slots__ = ()

    def receive_response(self, response):
        if response.status < 200:
            return []
        return self._settle(response)


class SipEndpoint:
    """One SIP signalling address (UDP on ``host``:``port``, TCP beside it) and its stack.

    ``reactor`` provides IReactorUDP/IReactorTCP/IReactorSSL (listening, outgoing streams);
    ``clock`` an IReactorTime for every timer (defaults to ``reactor``). ``advertise`` is the
    address put in Via and Contact (default ``host``; needed when ``host`` is a wildcard such
    as 0.0.0.0). ``tcp`` False: no TCP listener; ``tcp_host``/``tcp_port`` bind it apart from
    UDP (None: UDP's host and port number). ``resolver`` an IHostnameResolver for gateway
    names (default: the reactor's). ``wrap_listener(factory)`` wraps the TCP listener's factory
    (the caller's connection limits). Nothing opens before ``start()``.
    """

    def __init__(self, reactor, host="127.0.0.1", port=0, clock=None,
                 timers=txn.TimerConfig(), uas=None, tcp=True, advertise=None, inbound=None,
                 strangers=None, tcp_host=None, tcp_port=None, resolver=None,
                 wrap_listener=None):
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.host = host
        self.advertised_host = advertise or host
        wildcard = tcp_host in (None, "0.0.0.0", "::", "")
        self.tcp_advertised_host = advertise or (host if wildcard else tcp_host)
        self.port = port
        self.tcp_port = None
        self.timers = timers
        self.uas = uas if uas is not None else UasCore()
        self.tcp = tcp
        self.inbound = inbound
        self.strangers = strangers     # protocols.sip.strangers.Strangers, or None: all peers
        self._stranger_report = None
        self.transports = Transports(self, reactor, host, port, tcp, tcp_host, tcp_port,
                                     wrap_listener)
        if resolver is None and IReactorPluggableNameResolver.providedBy(reactor):
            resolver = reactor.nameResolver
        self.names = Names(resolver, self.clock, ipv6=":" in host)
        self.table = txn.TransactionTable()
        self.dialogs = {}              # (call_id, local tag) -> session
        self.listeners = {}            # session -> listener
        self._owned = {}               # session -> number of its live transactions
        self._lingering = set()        # closed sessions waiting for their transactions
        self._timers = {}              # owner -> {name: IDelayedCall}

    # ---- life cycle ----
    def start(self):
        """Bind UDP, and TCP (on the UDP port number unless ``tcp_port`` says otherwise);
        returns the UDP port (``tcp_port`` holds TCP's)."""
        self.port, self.tcp_port = self.transports.start()
        return self.port

    @property
    def user_agent(self) -> str:
        """Our User-Agent (and Server) header value, the UAS core's."""
        return self.uas.user_agent

    def local_address(self, transport):
        """(host, port) to put in Via and Contact for ``transport``."""
        if transport == "udp" or self.tcp_port is None:
            return self.advertised_host, self.port
        return self.tcp_advertised_host, self.tcp_port

    def udp_socket(self):
        """The bound UDP socket (for buffer sizes), or None before ``start``."""
        return self.transports.udp_socket()

    def attach_datagram_transport(self, transport):
        """Use ``transport`` (tests: a fake with ``write(data, addr)``) instead of a real port."""
        self.transports.attach_datagram_transport(transport)

    def stop(self):
        """Close ports, connections and timers. Returns a Deferred that fires when all are."""
        if self._stranger_report is not None and self._stranger_report.active():
            self._stranger_report.cancel()
            self._report_strangers()
        for owner in list(self._timers):
            self._stop_all(owner)
        return self.transports.stop()

    # ---- sessions (the UAC calls) ----
    def register(self, session, listener):
        """Route ``session``'s messages and events to ``listener``.

        ``listener.session_event(session, event)`` gets each session event,
        ``listener.sip_message(direction, message)`` each message sent or received for it.
        """
        self.listeners[session] = listener
        self.dialogs[(session.call_id, session.local_tag)] = session

    def detach(self, session):
        """Stop reporting ``session``'s events and messages; it runs on by itself until it is
        closed and its transactions have ended (a released call whose CANCEL or BYE is still
        in flight, or whose late 2xx must be ACKed and ended with a BYE)."""
        self.listeners.pop(session, None)

    def execute(self, session, effects):
        """Carry out ``effects`` returned by ``session``; events go to its listener last."""
        listener = self.listeners.get(session)
        events = []
        for effect in effects:
            kind = type(effect)
            if kind is sess.SendRequest:
                self._start_client(effect.request, effect.hop, session)
            elif kind is sess.SendAck:
                self._trace(session, "out", effect.request)
                self._send(effect.request.to_bytes(), effect.hop)
            elif kind is sess.Respond:
                self._respond(session, effect.request, effect.response)
            elif kind is txn.StartTimer:
                self._start_timer(session, effect.name, effect.delay, self._session_timer)
            elif kind is txn.StopTimer:
                self._stop_timer(session, effect.name)
            elif kind is sess.Abandon:
                self._abandon(session, effect.request)
            elif kind is sess.Closed:
                self._closed(session)
                events.append(effect)
            else:
                events.append(effect)
        if listener is None:
            return
        for event in events:
            listener.session_event(session, event)

    def forget(self, session, transactions=False):
        """Drop ``session`` (its dialog entry, timers and listener) without signalling;
        with ``transactions`` also its client transactions (no more retransmissions)."""
        if transactions:
            for tx in [tx for tx in self.table.clients.values() if tx.owner is session]:
                self._remove_tx(tx)
                self._stop_all(tx)
        self.listeners.pop(session, None)
        self.dialogs.pop((session.call_id, session.local_tag), None)
        self._lingering.discard(session)
        self._stop_all(session)

    def _closed(self, session):
        """The session said Closed: its timers stop, the listener goes; its dialog entry stays
        while a transaction of it lives (Timer B/D/L/M), so a retransmitted 2xx or a late
        request still finds it (RFC 3261 13.2.2.4, 17.1.1.2; RFC 6026)."""
        self._stop_all(session)
        self.listeners.pop(session, None)
        if self._owned.get(session):
            self._lingering.add(session)
        else:
            self.dialogs.pop((session.call_id, session.local_tag), None)

    def _abandon(self, session, request):
        tx = self.table.clients.get(txn.client_key(request))
        if tx is not None and tx.owner is session:
            self._remove_tx(tx)
            self._stop_all(tx)

    def _add_tx(self, tx):
        self.table.add(tx)
        owner = tx.owner
        if owner is not None:
            self._owned[owner] = self._owned.get(owner, 0) + 1

    def _remove_tx(self, tx):
        before = len(self.table.clients) + len(self.table.servers)
        self.table.remove(tx)
        if len(self.table.clients) + len(self.table.servers) == before:
            return                                       # it was not (or no longer) there
        owner = tx.owner
        if owner is None:
            return
        left = self._owned.get(owner, 1) - 1
        if left > 0:
            self._owned[owner] = left
            return
        self._owned.pop(owner, None)
        if owner in self._lingering:
            self._lingering.discard(owner)
            self.dialogs.pop((owner.call_id, owner.local_tag), None)

    def _session_timer(self, session, name):
        self.execute(session, session.timer_fired(name))

    def _trace(self, session, direction, message):
        listener = self.listeners.get(session)
        if listener is not None:
            listener.sip_message(direction, message)

    # ---- OPTIONS ping ----
    def ping(self, hop, request_uri=None, timeout=None):
        """Send OPTIONS to ``hop`` (a ``session.Hop``).

        Returns a Deferred firing with the round-trip in seconds for any final response (RFC
        3261 section 11: a peer that answers, even 404 or 503, is there), failing with
        ``PingError`` (408 on timeout, 503 when the transport failed). ``timeout`` (seconds)
        ends the wait before Timer F.
        """
        owner = _Ping(self.clock)
        token = sess._token()
        t = hop.transport.upper()
        host = sess.bracket(hop.host)
        adv, port = self.local_address(hop.transport)
        local = f"{sess.bracket(adv)}:{port}"
        uri = request_uri or f"sip:{host}:{hop.port}"
        headers = [("Via", f"SIP/2.0/{t} {local};branch=z9hG4bK{token};rport"),
                   ("Max-Forwards", "70"), ("From", f"<sip:callgw@{local}>;tag={token[:8]}"),
                   ("To", f"<{uri}>"), ("Call-ID", f"{token}@{adv}"),
                   ("CSeq", "1 OPTIONS"), ("Accept", "application/sdp"),
                   ("User-Agent", self.uas.user_agent), ("Content-Length", "0")]
        request = Request("OPTIONS", uri, headers)
        if timeout is not None:
            owner.timeout_call = self.clock.callLater(
                timeout, owner._settle, PingError(408, "Request Timeout"))
        self._start_client(request, hop, owner)
        return owner.deferred

    def send_request(self, method, uri, headers, hop, timeout=None, via=None):
        """Send one request outside any session (e.g. a BYE for a dialog a previous process
        left up), with this endpoint's Via (or ``via``: a CANCEL carries its INVITE's) and a
        client transaction toward ``hop``.

        ``headers`` are (name, value) pairs without Via and Content-Length. Returns a Deferred
        firing with the final response, failing with ``PingError`` (408 on timeout, 503 when
        the transport failed); ``timeout`` (seconds) ends the wait before Timer F.
        """
        owner = _Standalone(self.clock)
        t = hop.transport.upper()
        adv, port = self.local_address(hop.transport)
        local = f"{sess.bracket(adv)}:{port}"
        via = ("Via", via or f"SIP/2.0/{t} {local};branch=z9hG4bK{sess._token()};rport")
        request = Request(method, uri, [via, *headers, ("Content-Length", "0")])
        if timeout is not None:
            owner.timeout_call = self.clock.callLater(
                timeout, owner._settle, PingError(408, "Request Timeout"))
        self._start_client(request, hop, owner)
        return owner.deferred

    # ---- transactions ----
    def _start_client(self, request, hop, owner):
        """A client transaction for ``request`` toward ``hop``, once its host is an address
        (a name that does not resolve fails the request as a transport error, 8.1.3.1)."""
        if is_address(hop.host):
            self._start_client_at(request, hop, owner)
            return
        d = self.names.resolve(hop)
        d.addCallbacks(lambda resolved: self._start_client_at(request, resolved, owner),
                       self._unresolved, errbackArgs=(request, owner, hop))
        d.addErrback(lambda f: log.failure("SIP request {method} toward {host}", f,
                                           method=request.method, host=hop.host))

    def _start_client_at(self, request, hop, owner):
        if self.strangers is not None:
            self.strangers.learn(hop.host)        # a gateway or proxy we talk to: a peer
        tx = txn.new_client(request, hop.transport != "udp", self.timers, owner, hop)
        self._add_tx(tx)
        self._run(tx, tx.start())

    def _unresolved(self, failure, request, owner, hop):
        failure.trap(DNSLookupError)
        log.warn("SIP {method} not sent: cannot resolve {host} ({error})",
                 method=request.method, host=hop.host, error=failure.getErrorMessage())
        if owner is not None:
            self._owner_effects(owner, owner.transport_failed(
                request, f"cannot resolve {hop.host}"))

    def _run(self, tx, effects):
        owner = tx.owner
        for effect in effects:
            kind = type(effect)
            if kind is txn.Transmit:
                if owner is not None and owner in self.listeners:
                    self._trace(owner, "out", effect.message)
                self.transports.send(effect.message.to_bytes(), tx.destination, tx)
            elif kind is txn.StartTimer:
                self._start_timer(tx, effect.name, effect.delay, self._tx_timer)
            elif kind is txn.StopTimer:
                self._stop_timer(tx, effect.name)
            elif kind is txn.Deliver:
                self._deliver(tx, effect.message)
            elif kind is txn.TimedOut:
                if owner is not None:
                    self._owner_effects(owner, owner.request_timeout(tx.request))
            elif kind is txn.Failed:
                if owner is not None:
                    self._owner_effects(owner, owner.transport_failed(tx.request))
            elif kind is txn.Terminated:
                self._remove_tx(tx)
                self._stop_all(tx)

    def _owner_effects(self, owner, effects):
        # a ping's owner returns no effects
        if effects:
            self.execute(owner, effects)

    def _deliver(self, tx, message):
        owner = tx.owner
        if isinstance(message, Request):      # an ACK for a 2xx through an Accepted server tx
            target = self.dialogs.get((message.call_id, message.to_tag))
            if target is not None:
                self._trace(target, "in", message)
                self.execute(target, target.receive_request(message))
            return
        if owner is None:
            return
        self._owner_effects(owner, owner.receive_response(message))

    def _tx_timer(self, tx, name):
        self._run(tx, tx.timer_fired(name))

    def _start_timer(self, owner, name, delay, fire):
        timers = self._timers.get(owner)
        if timers is None:
            timers = self._timers[owner] = {}
        old = timers.get(name)
        if old is not None and old.active():
            old.cancel()
        timers[name] = self.clock.callLater(delay, self._fire, fire, owner, name)

    def _fire(self, fire, owner, name):
        timers = self._timers.get(owner)
        if timers is not None:
            timers.pop(name, None)
            if not timers:
                del self._timers[owner]
        try:
            fire(owner, name)
        except Exception:  # noqa: BLE001 - a timer must never take the reactor down
            log.failure("SIP timer {name} failed for {owner!r}", name=name, owner=owner)

    def _stop_timer(self, owner, name):
        timers = self._timers.get(owner)
        if timers is None:
            return
        call = timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()
        if not timers:
            del self._timers[owner]

    def _stop_all(self, owner):
        for call in self._timers.pop(owner, {}).values():
            if call.active():
                call.cancel()

    # ---- sending ----
    def _send(self, data, hop):
        """Send outside any transaction (an ACK for a 2xx, a response), resolving a name."""
        if is_address(hop.host):
            self.transports.send(data, hop, None)
            return
        d = self.names.resolve(hop)
        d.addCallback(lambda resolved: self.transports.send(data, resolved, None))
        d.addErrback(lambda f: log.warn("SIP message to {host} dropped: {error}",
                                        host=hop.host, error=f.getErrorMessage()))

    def connect_failed(self, transactions):
        """A connection could not be made: the transactions that waited for it see a
        transport error (17.1.4)."""
        for tx in transactions:
            if not tx.terminated:
                self._run(tx, tx.transport_error())

    def stream_failed(self, key):
        """A connection closed before the peer said anything (a failed TLS handshake): the
        client transactions sent over it that have no response yet see a transport error."""
        waiting = (txn.State.CALLING, txn.State.TRYING)
        for tx in list(self.table.clients.values()):
            hop = tx.destination
            if (hop.transport, hop.host, hop.port) == key and tx.state in waiting:
                self._run(tx, tx.transport_error())

    def _respond(self, session, request, response):
        tx = self.table.match_request(request)
        if tx is not None:
            if session is not None and tx.owner is not session:
                self._trace(session, "out", response)      # else traced as the tx sends it
            self._run(tx, tx.respond(response))
            return
        hop = self._response_hop(request)
        if session is not None:
            self._trace(session, "out", response)
        self._send(response.to_bytes(), hop)

    def _response_hop(self, request):
        """Where a response to ``request`` goes (18.2.2, RFC 3581 4)."""
        via = request.top_via
        transport = via.transport.lower()
        if transport not in ("tcp", "tls"):
            transport = "udp"
        host = via.received or via.host.strip("[]")
        port = via.rport or via.port or 5060
        return sess.Hop(transport, host, port)

    # ---- receiving ----
    def data_received(self, data, transport, host, port, stream):
        """One UDP datagram from ``host``:``port``."""
        if is_keepalive(data):
            return
        try:
            message = parse_message(data)
        except SipParseError as exc:
            if data.lstrip(b"\r\n")[:4] == b"ACK ":
                self._lenient_ack(data, exc, transport, host, port, stream)
                return
            response = bad_request_response(data, exc, sess._token())
            log.info("malformed SIP from {host}:{port}: {error}", host=host, port=port,
                     error=exc)
            if self.strangers is not None and self.strangers.is_stranger(host):
                admitted = self.strangers.admit(host, "malformed", self.clock.seconds())
                self._tally_stranger()
                if not admitted:
                    return
            if response is not None:
                try:
                    self._stamp_via(response, host, port)
                    self._send(response.to_bytes(), self._response_hop(response))
                except SipParseError:
                    pass          # not even a Via to answer to: dropped (logged above)
            return
        self.message_received(message, transport, host, port, stream)

    def _lenient_ack(self, data, error, transport, host, port, stream):
        """An ACK the strict parser refused (a phone that leaves out Max-Forwards, as RFC
        2543 allowed): taken as it is when it parses leniently, so that it still ends its INVITE
        transaction's retransmissions; never answered either way."""
        try:
            message = parse_message(data, strict=False)
        except SipParseError:
            log.info("malformed SIP ACK from {host}:{port} dropped: {error}", host=host,
                     port=port, error=error)
            return
        self.message_received(message, transport, host, port, stream)

    def _stamp_via(self, message, host, port):
        via = message.top_via
        if via is None:
            return
        changed = False
        if via.host.strip("[]") != host:
            via.params["received"] = host
            changed = True
        if "rport" in via.params and not via.params["rport"]:
            via.params["rport"] = str(port)
            changed = True
        if changed:
            headers = message.headers
            headers.remove_first("Via")
            headers.add("Via", str(via), first=True)

    def message_received(self, message, transport, host, port, stream):
        """A parsed message arrived (UDP datagram or framed TCP message)."""
        try:
            if isinstance(message, Request):
                self._request_received(message, transport, host, port, stream)
            else:
                self._response_received(message, host, port)
        except SipParseError as exc:
            log.info("SIP message from {host}:{port} rejected: {error}", host=host, port=port,
                     error=exc)
        except Exception:  # noqa: BLE001 - one bad message must not stop the port
            log.failure("SIP message from {host}:{port} failed: {message!r}", host=host,
                        port=port, message=message)

    def _response_received(self, response, host, port):
        tx = self.table.match_response(response)
        if tx is not None:
            if tx.owner in self.listeners:
                self._trace(tx.owner, "in", response)
            self._run(tx, tx.receive(response))
            return
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:
            target = self.dialogs.get((response.call_id, response.from_tag))
            if target is not None:
                self._trace(target, "in", response)
                self.execute(target, target.receive_response(response))
                return
        log.debug("stray SIP response {status} from {host}:{port} dropped",
                  status=response.status, host=host, port=port)

    def _request_received(self, request, transport, host, port, stream):
        self._stamp_via(request, host, port)
        tx = self.table.match_request(request)
        if tx is not None:
            self._run(tx, tx.receive(request))
            return
        method = request.method
        to_tag = request.to_tag
        target = self.dialogs.get((request.call_id, to_tag)) if to_tag else None
        if target is None and self.strangers is not None and \
                self.strangers.is_stranger(host):
            self._stranger(request, host, port, stream)
            return
        if method == "ACK":                       # never answered (17.1.1.3, 17.2.1)
            if target is not None:
                self._trace(target, "in", request)
                self.execute(target, target.receive_request(request))
            return
        reliable = transport != "udp"
        if method == "CANCEL":
            invite_tx = self.table.invite_for_cancel(request)
            if invite_tx is not None:
                server = txn.new_server(request, reliable, self.timers,
                                        destination=self._response_hop(request))
                self._add_tx(server)
                self._run(server, server.respond(make_response(request, 200,
                                                               to_tag=sess._token())))
                owner = invite_tx.owner
                if isinstance(owner, UasSession):
                    self._trace(owner, "in", request)
                    self.execute(owner, owner.receive_cancel(request))
                return
        server = txn.new_server(request, reliable, self.timers,
                                destination=self._response_hop(request))
        if stream is not None:
            server.destination = sess.Hop(transport, host, port)
        self._add_tx(server)
        if target is not None:
            self._trace(target, "in", request)
            try:
                effects = target.receive_request(request)
            except txn.RemoteProtocolError as exc:
                effects = [sess.Respond(request, make_response(
                    request, exc.status, exc.reason, headers=[("Retry-After", "1")]))]
            self.execute(target, effects)
            return
        if method == "INVITE" and to_tag is None and self.inbound is not None and \
                self._inbound_call(request, server, transport, host):
            return
        response = self.uas.handle(request, host, self.clock.seconds())
        if response is None:
            self._remove_tx(server)
            return
        self._run(server, server.respond(response))

    # ---- strangers ----
    def _stranger(self, request, host, port, stream):
        """A request from a source that is no peer of ours, outside every transaction and
        dialog: one stateless answer at most (no server transaction, so nothing is ever
        retransmitted), rate-limited per source, tallied for the log."""
        now = self.clock.seconds()
        admitted = self.strangers.admit(host, request.method, now)
        self._tally_stranger()
        if not admitted:
            return
        response = self.uas.handle(request, host, now)
        if response is not None:
            self._answer_stranger(response.to_bytes(), host, port, stream)

    def _answer_stranger(self, data, host, port, stream):
        """To the very address the request came from (never to what its Via claims)."""
        if stream is not None:
            stream.send(data)
        else:
            self.transports.send(data, sess.Hop("udp", host, port), None)

    def _tally_stranger(self):
        if self._stranger_report is None or not self._stranger_report.active():
            self._stranger_report = self.clock.callLater(60.0, self._report_strangers)

    def _report_strangers(self):
        """One line per stranger source and minute, with counts."""
        self._stranger_report = None
        for source, total, details in self.strangers.report():
            log.warn("SIP from stranger {source}: {total} requests in the last minute "
                     "({details})", source=source, total=total, details=details)

    def _inbound_call(self, request, server, transport, host):
        """An INVITE outside any dialog: a ``UasSession`` when the 8.2 checks pass and the
        ``inbound`` hook takes it (returns a listener); False leaves it to the UAS core."""
        verdict, response = self.uas.screen(request, host, self.clock.seconds())
        if verdict != "pass":
            if response is None:
                self._remove_tx(server)
            else:
                self._run(server, server.respond(response))
            return True
        profile = sess.Profile(self.advertised_host, self.port, transport=transport,
                               timers=self.timers, user_agent=self.user_agent)
        session = UasSession(profile, request)
        listener = self.inbound(session)
        if listener is None:
            return False
        server.owner = session
        self._owned[session] = self._owned.get(session, 0) + 1
        self.register(session, listener)
        self._trace(session, "in", request)
        self.execute(session, session.start())
        return True
