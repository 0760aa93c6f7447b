"""SIP transports: the TCP listener's own address, TLS connections and their certificate
policy, host names resolved off the reactor (MemoryReactorClock, StringTransport, a fake
resolver; the real TLS peer is in tests/sip/test_baresip_tls.py)."""
from __future__ import annotations

from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.internet.interfaces import IHostnameResolver, IOpenSSLClientConnectionCreator
from zope.interface import implementer

from callgw.callserver.events import Connect, Release, Setup
from callgw.callserver.legs.sip import SipLeg, options_ping
from protocols.sip.adapter import SipEndpoint
from protocols.sip.message import StreamFramer, make_response
from tests.sip import tlscerts
from tests.sip.test_adapter import FakeDatagram
from tests.sip.test_sip_leg import ANSWER, MEDIA, Sink


@implementer(IHostnameResolver)
class FakeResolver:
    """Records lookups; the test answers them with ``answer(name, *addresses)``."""

    def __init__(self):
        self.asked = []
        self.receivers = {}

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        self.asked.append(hostName)
        self.receivers[hostName] = receiver
        receiver.resolutionBegan(None)
        return None

    def answer(self, name, *addresses):
        receiver = self.receivers.pop(name)
        for address in addresses:
            receiver.addressResolved(IPv4Address("TCP", address, 0))
        receiver.resolutionComplete()


class Reactor(MemoryReactorClock):
    """MemoryReactorClock with a fake ``listenUDP`` (the datagrams go to a FakeDatagram)."""

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        self.udp_listened = (port, interface)
        return _UdpPort(interface, port)


class _UdpPort:
    socket = None

    def __init__(self, host, port):
        self.address = IPv4Address("UDP", host, port)

    def getHost(self):
        return self.address

    def stopListening(self):
        return None


def endpoint(**kw):
    reactor = Reactor()
    ep = SipEndpoint(reactor, "127.0.0.1", 5070, **kw)
    ep.start()
    udp = FakeDatagram()
    ep.attach_datagram_transport(udp)
    return ep, reactor, udp


def leg(ep, reactor, **gw):
    record = {"address": "192.0.2.5", "port": 5061, "transport": "udp", "no_answer_timeout": 90}
    record.update(gw)
    sip_leg = SipLeg(ep, record, reactor)
    sink = Sink()
    sip_leg.attach(sink)
    sip_leg.send(Setup("c1", "+4930123456", caller="+4940555", media=MEDIA))
    return sip_leg, sink


def connect_stream(reactor, which="sslClients"):
    host, port, factory = getattr(reactor, which)[-1][:3]
    proto = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    proto.makeConnection(transport)
    return proto, transport


def test_tcp_listens_on_its_own_address_and_vias_say_so():
    ep, reactor, udp = endpoint(tcp_host="127.0.0.2", tcp_port=5080)
    assert [(p, i) for p, _, _, i in reactor.tcpServers] == [(5080, "127.0.0.2")]
    assert ep.local_address("udp") == ("127.0.0.1", 5070)
    assert ep.local_address("tcp") == ep.local_address("tls") == ("127.0.0.2", 5080)
    leg(ep, reactor, transport="tcp", port=5060)
    proto, transport = connect_stream(reactor, "tcpClients")
    invite = StreamFramer().feed(transport.value())[0]
    assert invite.top_via.host == "127.0.0.2" and invite.top_via.port == 5080
    assert "127.0.0.2:5080;transport=tcp" in invite.headers.get("Contact")
    leg(ep, reactor)
    assert udp.messages()[-1].top_via.port == 5070


def test_tcp_on_the_udp_port_by_default_and_none_when_off():
    ep, reactor, udp = endpoint()
    assert [(p, i) for p, _, _, i in reactor.tcpServers] == [(5070, "127.0.0.1")]
    ep, reactor, udp = endpoint(tcp=False)
    assert reactor.tcpServers == [] and ep.local_address("tcp") == ("127.0.0.1", 5070)


def test_tls_call_connects_with_the_ca_and_speaks_sip_over_it(tmp_path):
    certs = tlscerts.make(tmp_path)
    ep, reactor, udp = endpoint()
    sip_leg, sink = leg(ep, reactor, transport="tls", tls_ca_file=str(certs.ca))
    host, port, factory, creator, timeout = reactor.sslClients[0][:5]
    assert (host, port) == ("192.0.2.5", 5061) and timeout == 10
    assert IOpenSSLClientConnectionCreator.providedBy(creator)
    assert creator._hostnameASCII == "192.0.2.5"          # the address is checked
    proto, transport = connect_stream(reactor)
    invite = StreamFramer().feed(transport.value())[0]
    assert invite.top_via.transport == "TLS"
    assert invite.uri == "sip:+4930123456@192.0.2.5;user=phone;transport=tls"
    assert invite.headers.get("Contact").endswith(";transport=tls>")
    ok = make_response(invite, 200, to_tag="gw", headers=[
        ("Contact", "<sip:gw@192.0.2.5:5061;transport=tls>"),
        ("Content-Type", "application/sdp")])
    ok.body = ANSWER
    proto.dataReceived(ok.to_bytes())
    assert isinstance(sink.events[-1], Connect)
    sip_leg.send(Release(16))
    methods = [m.method for m in StreamFramer().feed(transport.value()) if hasattr(m, "method")]
    assert methods == ["INVITE", "ACK", "BYE"] and len(reactor.sslClients) == 1


def test_tls_sips_uris_and_no_verification():
    ep, reactor, udp = endpoint()
    leg(ep, reactor, transport="tls", sips=True, tls_verify=False)
    creator = reactor.sslClients[0][3]
    assert isinstance(creator, ssl.CertificateOptions) and not creator.verify
    proto, transport = connect_stream(reactor)
    invite = StreamFramer().feed(transport.value())[0]
    assert invite.uri == "sips:+4930123456@192.0.2.5;user=phone"
    assert invite.headers.get("Contact") == "<sips:callgw@127.0.0.1:5070>"


def test_an_unreadable_ca_file_fails_the_call_at_once(tmp_path):
    ep, reactor, udp = endpoint()
    sip_leg, sink = leg(ep, reactor, transport="tls", tls_ca_file=str(tmp_path / "none.pem"))
    assert reactor.sslClients == []
    assert sink.events == [Release(41, "503 Service Unavailable")]


def test_a_handshake_that_fails_fails_the_waiting_invite_at_once():
    ep, reactor, udp = endpoint()
    sip_leg, sink = leg(ep, reactor, transport="tls")
    proto, transport = connect_stream(reactor)
    proto.connectionLost(Failure(ssl.SSL.Error([("SSL routines", "", "certificate verify "
                                                                       "failed")])))
    assert sink.events == [Release(41, "503 Service Unavailable")]
    assert not ep.table.clients


def test_a_connection_lost_after_an_answer_does_not_fail_the_call():
    ep, reactor, udp = endpoint()
    sip_leg, sink = leg(ep, reactor, transport="tcp")
    proto, transport = connect_stream(reactor, "tcpClients")
    invite = StreamFramer().feed(transport.value())[0]
    proto.dataReceived(make_response(invite, 180, to_tag="gw").to_bytes())
    proto.connectionLost(Failure(ConnectionResetError()))
    assert [type(e).__name__ for e in sink.events] == ["Alerting"]


def test_gateway_names_resolve_off_the_reactor_and_are_cached():
    resolver = FakeResolver()
    ep, reactor, udp = endpoint(resolver=resolver)
    leg(ep, reactor, address="gw.example")
    assert resolver.asked == ["gw.example"] and udp.sent == []       # waits for the address
    resolver.answer("gw.example", "192.0.2.55", "192.0.2.56")
    invite, addr = udp.sent[0]
    assert addr == ("192.0.2.55", 5061) and invite.uri.startswith("sip:+4930123456@gw.example")
    reactor.advance(0.5)
    assert udp.sent[-1][1] == ("192.0.2.55", 5061)                   # Timer A: no new lookup
    leg(ep, reactor, address="gw.example")                          # cached: sent at once
    assert resolver.asked == ["gw.example"] and len(udp.sent) == 3
    reactor.advance(61)                                              # the cache expired
    leg(ep, reactor, address="GW.example.")
    assert resolver.asked == ["gw.example", "gw.example"]


def test_a_name_that_does_not_resolve_is_a_clear_failure():
    resolver = FakeResolver()
    ep, reactor, udp = endpoint(resolver=resolver)
    sip_leg, sink = leg(ep, reactor, address="nowhere.invalid")
    resolver.answer("nowhere.invalid")                               # no address
    assert sink.events == [Release(41, "503 cannot resolve nowhere.invalid")]
    assert udp.sent == [] and not ep.table.clients


def test_a_resolver_that_never_answers_fails_after_its_timeout():
    resolver = FakeResolver()
    ep, reactor, udp = endpoint(resolver=resolver)
    sip_leg, sink = leg(ep, reactor, address="slow.example")
    reactor.advance(9.9)
    assert sink.events == []
    reactor.advance(0.2)
    assert sink.events == [Release(41, "503 cannot resolve slow.example")]
    resolver.answer("slow.example", "192.0.2.9")                     # too late: ignored
    assert udp.sent == []


def test_tls_to_a_name_checks_the_name_not_the_address():
    resolver = FakeResolver()
    ep, reactor, udp = endpoint(resolver=resolver)
    leg(ep, reactor, address="gw.example", transport="tls")
    resolver.answer("gw.example", "192.0.2.55")
    host, port, factory, creator = reactor.sslClients[0][:4]
    assert (host, port) == ("192.0.2.55", 5061) and creator._hostnameASCII == "gw.example"


def test_options_ping_over_tls_and_to_a_name():
    resolver = FakeResolver()
    ep, reactor, udp = endpoint(resolver=resolver)
    failures = []
    options_ping(ep, {"address": "nowhere.invalid", "port": 5060}).addErrback(failures.append)
    resolver.answer("nowhere.invalid")
    assert failures[0].value.status == 503 and "nowhere.invalid" in failures[0].value.reason
    options_ping(ep, {"address": "192.0.2.5", "port": 5061, "transport": "tls",
                      "tls_verify": False})
    proto, transport = connect_stream(reactor)
    options = StreamFramer().feed(transport.value())[0]
    assert options.uri == "sip:192.0.2.5:5061;transport=tls"
    assert options.top_via.transport == "TLS"


def test_port_0_retries_when_tcp_has_the_number_udp_got():
    from twisted.internet.error import CannotListenError

    class Busy(Reactor):
        numbers = iter([40000, 40002])

        def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
            return _UdpPort(interface, next(self.numbers) if port == 0 else port)

        def listenTCP(self, port, factory, backlog=50, interface=""):
            if port == 40000:                      # another process holds TCP 40000
                raise CannotListenError(interface, port, OSError(98, "in use"))
            return super().listenTCP(port, factory, backlog, interface)

    ep = SipEndpoint(Busy(), "127.0.0.1", 0)
    assert ep.start() == 40002 and ep.tcp_port == 40002
