"""The cluster link between a front end and a call server: Twisted AMP over TLS, both sides
proving the shared secret, bound to the call server's certificate.

Owned by operations (docs/operations.md, "Cluster link"). A front end connects to each call
server's ``[cluster] amp`` listener. Before anything else the two prove the ``[cluster] secret``
to each other without sending it:

1. the front end calls ``Hello(node, nonce)``; the call server answers with its own ``node``,
   ``nonce`` and ``proof = HMAC-SHA256(secret, "callserver" | its node | front-end nonce |
   its nonce | SHA-256 of its TLS certificate)``;
2. the front end checks that proof (with the certificate it was shown) and calls
   ``Prove(proof)`` with the mirror image (``"frontend"``, its node, the nonces swapped).

Binding the proofs to the certificate the front end saw makes a relay in the middle (with a
certificate of its own) fail; the secret authenticates, the certificate needs no CA. A wrong
proof closes the connection with one log line naming the peer. Until proven, ``Status`` is
refused. ``Status`` answers the call server's load and state (the front end's balancer reads
it every heartbeat).

Tests: tests/cluster/test_link.py.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os

from twisted.logger import Logger
from twisted.protocols import amp


class Refused(Exception):
    """The peer did not prove the secret (or asked before it did)."""


class Hello(amp.Command):
    arguments = [(b"node", amp.Unicode()), (b"nonce", amp.String())]
    response = [(b"node", amp.Unicode()), (b"nonce", amp.String()), (b"proof", amp.String())]
    fatalErrors = {Refused: b"REFUSED"}


class Prove(amp.Command):
    arguments = [(b"proof", amp.String())]
    response: list = []
    fatalErrors = {Refused: b"REFUSED"}


class Status(amp.Command):
    arguments: list = []
    response = [(b"node", amp.Unicode()), (b"active", amp.Integer()),
                (b"capacity", amp.Integer()), (b"weight", amp.Integer()),
                (b"healthy", amp.Boolean()), (b"draining", amp.Boolean()),
                (b"admits", amp.Boolean()), (b"listeners", amp.Unicode())]
    fatalErrors = {Refused: b"REFUSED"}


def make_proof(secret: bytes, role: str, node: str, first: bytes, second: bytes,
          certificate: bytes) -> bytes:
    """What ``role`` (``callserver`` or ``frontend``) named ``node`` sends: the HMAC of the
    nonces (the other side's first) and the call server's certificate digest."""
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    for part in (role.encode(), node.encode(), first, second, certificate):
        mac.update(len(part).to_bytes(4, "big") + part)
    return mac.digest()


def certificate_digest(x509) -> bytes:
    """SHA-256 of a pyOpenSSL certificate's DER form (b"" when there is none)."""
    if x509 is None:
        return b""
    from cryptography.hazmat.primitives import hashes
    return x509.to_cryptography().fingerprint(hashes.SHA256())


def new_nonce() -> bytes:
    return os.urandom(16)


class CallServerLink(amp.AMP):
    """The call server's side of one link. ``status()`` (of the ``ClusterMember``) gives the
    load ``Status`` answers."""

    log = Logger()

    def __init__(self, node: str, secret: bytes, status, certificate):
        """``certificate()``: SHA-256 of this node's TLS certificate (DER)."""
        super().__init__()
        self.node = node
        self.secret = secret
        self.status = status
        self.certificate = certificate
        self.proven = False
        self._nonce: bytes | None = None
        self._peer_nonce = b""
        self._peer_node = ""

    def _peer(self) -> str:
        peer = self.transport.getPeer()
        return f"{peer.host}:{peer.port}"          # a TCP link: IPv4Address or IPv6Address

    @Hello.responder
    def hello(self, node: str, nonce: bytes):
        if self._nonce is not None:
            raise Refused("hello twice")
        self._nonce, self._peer_nonce, self._peer_node = new_nonce(), nonce, node
        return {"node": self.node, "nonce": self._nonce,
                "proof": make_proof(self.secret, "callserver", self.node, nonce, self._nonce,
                               self.certificate())}

    @Prove.responder
    def prove(self, proof: bytes):
        if self._nonce is None:
            raise Refused("prove before hello")
        expected = make_proof(self.secret, "frontend", self._peer_node, self._nonce,
                         self._peer_nonce, self.certificate())
        if not hmac.compare_digest(expected, proof):
            self.log.warn("cluster link from {peer} ({node}): refused: it does not prove the "
                          "[cluster] secret", peer=self._peer(), node=self._peer_node)
            raise Refused("wrong secret")
        self.proven = True
        self.log.info("cluster link from front end {node} at {peer} up", node=self._peer_node,
                      peer=self._peer())
        return {}

    @Status.responder
    def answer_status(self):
        if not self.proven:
            raise Refused("not proven")
        status = dict(self.status())
        status["listeners"] = json.dumps(status["listeners"], sort_keys=True)
        return status


class FrontEndLink(amp.AMP):
    """The front end's side of one link; ``ready`` fires once both sides proved the secret
    (or fails, the connection then closing)."""

    log = Logger()

    def __init__(self, node: str, secret: bytes, expected_node: str, ready, lost):
        """``ready`` fires with this link once proven; ``lost(link, reason)`` is called when
        the connection ends."""
        super().__init__()
        self.node = node
        self.secret = secret
        self.expected_node = expected_node
        self.ready = ready
        self.lost = lost
        self.proven = False

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.lost(self, reason)

    def connectionMade(self):
        super().connectionMade()
        nonce = new_nonce()
        d = self.callRemote(Hello, node=self.node, nonce=nonce)
        d.addCallback(self._check, nonce)
        d.addCallback(lambda _: self._proven())
        d.addErrback(self._failed)

    def _check(self, answer: dict, nonce: bytes):
        certificate = certificate_digest(self.transport.getPeerCertificate())
        expected = make_proof(self.secret, "callserver", answer["node"], nonce, answer["nonce"],
                         certificate)
        if answer["node"] != self.expected_node or \
                not hmac.compare_digest(expected, answer["proof"]):
            raise Refused(f"{answer['node']} does not prove the [cluster] secret")
        mine = make_proof(self.secret, "frontend", self.node, answer["nonce"], nonce,
                          certificate)
        return self.callRemote(Prove, proof=mine)

    def _proven(self) -> None:
        self.proven = True
        self.ready.callback(self)

    def _failed(self, failure) -> None:
        peer = self.transport.getPeer()
        self.log.warn("cluster link to {node} at {host}:{port}: {why}", node=self.expected_node,
                      host=peer.host, port=peer.port,
                      why=failure.getErrorMessage())
        self.transport.loseConnection()
        if not self.ready.called:
            self.ready.errback(failure)

    def status(self):
        """Fires with the call server's ``Status`` (listeners decoded)."""
        d = self.callRemote(Status)
        d.addCallback(lambda s: dict(s, listeners=json.loads(s["listeners"])))
        return d
