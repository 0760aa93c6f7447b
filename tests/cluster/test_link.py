"""The cluster link (callgw/cluster/link.py) over real TLS on 127.0.0.1: a front end and a call
server that share the secret prove it to each other and the front end reads the status; a
front end with another secret, or one that asks before proving, is refused and the connection
closes; the proofs bind the roles, names, nonces and the call server's certificate."""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, endpoints, reactor, ssl
from twisted.internet.protocol import Factory
from twisted.protocols import amp

from callgw.cluster import link
from callgw.frontend.tls import make_self_signed
from tests.callpath.callgw_env import within

SECRET = b"0123456789abcdef-link"
STATUS = {"node": "cs-a", "active": 2, "capacity": 500, "weight": 100, "healthy": True,
          "draining": False, "admits": True, "listeners": {"tcp": ["127.0.0.1", 7060]}}


def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(str(cert), str(key), ["127.0.0.1"], reactor.seconds())
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    k = serialization.load_pem_private_key(key.read_bytes(), None)
    return ssl.CertificateOptions(privateKey=k, certificate=c), c.fingerprint(hashes.SHA256())


@defer.inlineCallbacks
def serve(tmp_path, secret=SECRET):
    options, digest = certificate(tmp_path)
    servers = []

    def build():
        proto = link.CallServerLink("cs-a", secret, lambda: STATUS, lambda: digest)
        servers.append(proto)
        return proto
    port = yield endpoints.SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(
        Factory.forProtocol(build))
    return port, servers


@defer.inlineCallbacks
def dial(port, secret=SECRET, expected="cs-a"):
    ready, lost = defer.Deferred(), defer.Deferred()
    proto = link.FrontEndLink("fe", secret, expected, ready,
                              lambda p, reason: lost.callback(reason.value))
    endpoint = endpoints.SSL4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port,
                                            ssl.CertificateOptions())
    yield endpoints.connectProtocol(endpoint, proto)
    return proto, ready, lost


@pytest_twisted.inlineCallbacks
def test_both_prove_the_secret_then_the_status_is_read(tmp_path):
    port, servers = yield serve(tmp_path)
    try:
        proto, ready, lost = yield dial(port)
        assert (yield within(ready)) is proto and proto.proven and servers[0].proven
        status = yield within(proto.status())
        assert status == STATUS
        proto.transport.loseConnection()
        yield within(lost)
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_front_end_with_another_secret_is_refused(tmp_path):
    port, servers = yield serve(tmp_path)
    try:
        proto, ready, lost = yield dial(port, secret=b"another-secret-of-16")
        failure = yield within(defer.DeferredList([ready], consumeErrors=True))
        assert failure[0][0] is False and "does not prove" in str(failure[0][1].value)
        yield within(lost)
        assert not servers[0].proven
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_call_server_with_another_secret_and_asking_before_proving(tmp_path):
    port, servers = yield serve(tmp_path, secret=b"another-secret-of-16")
    try:
        proto, ready, lost = yield dial(port)
        failure = yield within(defer.DeferredList([ready], consumeErrors=True))
        assert failure[0][0] is False
        yield within(lost)
        # a client that skips the proofs gets nothing and loses the connection
        endpoint = endpoints.SSL4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port,
                                                ssl.CertificateOptions())
        plain = yield endpoints.connectProtocol(endpoint, amp.AMP())
        asked = yield within(defer.DeferredList([plain.callRemote(link.Status)],
                                                consumeErrors=True))
        assert asked[0][0] is False and asked[0][1].check(link.Refused)
    finally:
        yield port.stopListening()


def test_proofs_bind_role_node_nonces_and_certificate():
    base = dict(secret=SECRET, role="callserver", node="cs-a", first=b"1" * 16,
                second=b"2" * 16, certificate=b"c" * 32)
    proof = link.make_proof(**base)
    for key, other in (("role", "frontend"), ("node", "cs-b"), ("first", b"3" * 16),
                       ("certificate", b"d" * 32), ("secret", b"x" * 16)):
        assert link.make_proof(**dict(base, **{key: other})) != proof, key
