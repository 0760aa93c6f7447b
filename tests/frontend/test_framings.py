"""Every framing against a running GatewayService over real sockets on 127.0.0.1 (OS-picked
ports): login, ping, a call, logout, wrong password, token resume, oversized and garbage input."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.internet import endpoints, ssl

from callgw.client import LoginRefused, connect
from callgw.frontend.connection import auth_message
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client import scram, sealing
from protocols.client.errors import AuthCode, ErrorCode
from tests.frontend.gateway import (PASSWORD, FakeFrontEnd, cert_path, start_gateway,
                                   stop_gateway, url)

SCHEMES = ["udp", "tcp", "tls", "wss", "https"]


def _connect(gw, scheme):
    return connect(url(gw, scheme), reactor, cacert=cert_path(gw), timeout=10)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", SCHEMES)
def test_login_ping_call_logout(tmp_path, scheme):
    frontend = FakeFrontEnd()
    gw = yield start_gateway(tmp_path, frontend)
    try:
        session = yield _connect(gw, scheme)
        welcome = yield session.login("alice", PASSWORD)
        assert welcome.user == "alice" and welcome.address == "127.0.0.1"
        assert welcome.branding["display_name"] == "Test Tel"
        pong = yield session.ping()
        assert pong == m.Pong()
        call = session.call("+4930123456")
        connected = yield call.connected
        assert connected.key is not None
        call.dtmf("12#")
        call.hangup()
        end = yield call.disconnected
        assert end.cause == "normal"
        assert [e.command for e in call.events] == ["trying", "ringing", "connected",
                                                     "status", "disconnected"]
        yield session.logout()
        assert [c.framing for c in frontend.opened] == [scheme]
        assert frontend.closed and frontend.closed[0][1] == "logout"
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", SCHEMES)
def test_wrong_password_then_token_resume(tmp_path, scheme):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        session = yield _connect(gw, scheme)
        with pytest.raises(LoginRefused) as refused:
            yield session.login("alice", "not it")
        assert refused.value.code == AuthCode.BAD_CREDENTIALS
        welcome = yield session.login("alice", PASSWORD)
        session.close()
        again = yield _connect(gw, scheme)
        resumed = yield again.login_token(welcome.token)
        assert resumed.user == "alice" and resumed.signature is None
        third = yield _connect(gw, scheme)
        try:
            with pytest.raises(LoginRefused) as bad:
                yield third.login_token(welcome.token[:-4] + "AAAA")
        finally:
            third.close()               # a refused session stays open for another try
        assert bad.value.code == AuthCode.TOKEN_INVALID
        yield again.logout()
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", SCHEMES)
def test_minimal_front_end_call_unreachable(tmp_path, scheme):
    gw = yield start_gateway(tmp_path, "minimal")
    try:
        session = yield _connect(gw, scheme)
        yield session.login("alice", PASSWORD)
        end = yield session.call("+4930123456").disconnected
        assert (end.cause, end.text) == ("unreachable", "no call path yet")
        yield session.logout()
    finally:
        yield stop_gateway(gw)


class _Collect(Protocol):
    def __init__(self):
        self.data, self.done = b"", defer.Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.done.callback(self.data)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_stream_garbage_and_oversized(tmp_path, scheme):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        host, port = gw.client.address(scheme)
        ep = endpoints.TCP4ClientEndpoint(reactor, host, port)
        if scheme == "tls":
            ep = endpoints.wrapClientTLS(ssl.optionsForClientTLS(
                host, trustRoot=ssl.Certificate.loadPEM(open(cert_path(gw), "rb").read())), ep)
        proto = _Collect()
        proto.pong = defer.Deferred()
        proto.dataReceived = lambda data: (setattr(proto, "data", proto.data + data),
                                           b"pong" in proto.data and not proto.pong.called
                                           and proto.pong.callback(None))
        yield endpoints.connectProtocol(ep, proto)
        proto.transport.write(fr.tcp_frame(b"\x07 not a payload") +
                              fr.tcp_frame(m.encode(m.Ping())))
        yield proto.pong.addTimeout(10, reactor)
        proto.transport.write(b"\xff\xff" + b"x" * 100)    # a frame length over the limit
        data = yield proto.done                             # the server closed
        got = [m.decode(p, sender=m.SERVER) for p in fr.TcpDeframer().receive_data(data)]
        assert [getattr(x, "code", x.command) for x in got] == [
            ErrorCode.BAD_FRAME, "pong", ErrorCode.FRAME_TOO_LARGE]
        session = yield _connect(gw, scheme)                # and the server is still fine
        yield session.login("alice", PASSWORD)
        session.close()
    finally:
        yield stop_gateway(gw)


class _Udp(DatagramProtocol):
    """A raw UDP client: acknowledges what it gets, hands each new message to ``next()``;
    seals (``seal``, a ``sealing.DatagramSeal``) what ``send`` sends once keyed."""

    def __init__(self):
        self.seen = set()
        self.waiting = None
        self.seal = sealing.DatagramSeal()

    def send(self, data, addr):
        self.transport.write(self.seal.outgoing(data), addr)

    def datagramReceived(self, data, addr):
        data = self.seal.incoming(data)
        assert data is not None, self.seal.dropped
        env = m.decode_envelope(data, sender=m.SERVER)
        if env.mid is not None:
            self.send(m.encode_ack((env.mid,)), addr)
        if env.message is not None and env.mid not in self.seen:
            self.seen.add(env.mid)
            if self.waiting is not None:
                d, self.waiting = self.waiting, None
                d.callback(env.message)

    def next(self):
        self.waiting = defer.Deferred()
        return self.waiting.addTimeout(10, reactor)


@pytest_twisted.inlineCallbacks
def test_udp_strangers_dropped_garbage_and_oversized_answered(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd(), client={"max_message": 512})
    proto = _Udp()
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    try:
        addr = gw.client.address("udp")
        for junk in (b"\x07junk", m.encode(m.Ping(), mid=1)):   # no session: no answer
            port.write(junk, addr)
        d = proto.next()
        nonce = "Q" * 22
        port.write(m.encode(m.Login(user="alice", nonce=nonce), mid=1), addr)
        challenge = yield d                                       # the first answer of all
        salted = scram.salted_password(PASSWORD, challenge.salt, challenge.n, challenge.r,
                                       challenge.p)
        auth = auth_message("alice", nonce, challenge.nonce, challenge.salt, challenge.n,
                            challenge.r, challenge.p)
        keys = sealing.password_keys(scram.client_key(salted), auth)
        proto.seal.configure(None, keys.server, False)
        d = proto.next()
        port.write(m.encode(m.Login(user="alice", nonce=challenge.nonce,
                                    proof=scram.client_proof(salted, auth)), mid=2), addr)
        assert isinstance((yield d), m.Welcome)                   # address now validated
        proto.seal.configure(keys.client, keys.server, True)      # sealed from now on
        for data, code in [(b"\x07junk", ErrorCode.BAD_FRAME),
                           (b"{junk", ErrorCode.MALFORMED),
                           (b"x" * 5000, ErrorCode.BAD_FRAME),
                           (b'{"v":1,"cmd":"ping","id":3,"pad":"' + b"y" * 600 + b'"}',
                            ErrorCode.TOO_LARGE)]:
            d = proto.next()
            proto.send(data, addr)
            error = yield d
            assert error.code == code
        d = proto.next()
        proto.send(m.encode(m.Ping(), mid=4), addr)   # id 3 was the oversized one (acked)
        assert (yield d) == m.Pong()
    finally:
        yield port.stopListening()
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["tcp", "tls", "wss", "https"])
def test_oversized_and_garbage_control_message_get_errors(tmp_path, scheme):
    gw = yield start_gateway(tmp_path, FakeFrontEnd(), client={"max_message": 512})
    try:
        session = yield _connect(gw, scheme)
        for payload, code in [
                (b'{"v":1,"cmd":"ping","pad":"' + b"y" * 600 + b'"}', ErrorCode.TOO_LARGE),
                (b'{"v":1,"cmd":"ping","pad":"' + b"y" * 4000 + b'"}', ErrorCode.TOO_LARGE),
                (b"{garbage", ErrorCode.MALFORMED),
                (b'{"v":1,"cmd":"call","call":"c1","number":"+1","mode":"relay"}',
                 ErrorCode.BAD_NUMBER)]:
            got = defer.Deferred()
            session.on_message = got.callback
            session.link.send_payload(payload)
            error = yield got.addTimeout(10, reactor)
            assert error.code == code, payload[:40]
        welcome = yield session.login("alice", PASSWORD)    # the session survived it all
        assert welcome.user == "alice"
        session.close()
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_shutdown_closes_sessions(tmp_path):
    frontend = FakeFrontEnd()
    gw = yield start_gateway(tmp_path, frontend)
    session = yield _connect(gw, "tcp")
    yield session.login("alice", PASSWORD)
    yield stop_gateway(gw)
    reason = yield session.closed
    assert reason and frontend.closed[0][1] == "shutdown"


@pytest_twisted.inlineCallbacks
def test_real_front_end_is_wired_and_answers(tmp_path):
    from callgw.frontend.server import FrontEnd
    gw = yield start_gateway(tmp_path)              # no fake: GatewayService's own choice
    try:
        assert isinstance(gw.client.frontend, FrontEnd)
        session = yield _connect(gw, "tcp")
        welcome = yield session.login("alice", PASSWORD)
        assert welcome.branding                     # the tenant's branding from the call path
        end = yield session.call("+4930123456").disconnected.addTimeout(30, reactor)
        assert end.command in ("disconnected", "unauthorized")   # no gateway: never a hang
        yield session.logout()
    finally:
        yield stop_gateway(gw)
