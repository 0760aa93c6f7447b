"""The telnet manhole: a Python prompt into the running gateway, on loopback, behind a password.

Owned by operations. Twisted's stock manhole reads a plaintext passwd file; ours checks the
``[manhole] password_hash`` credential (``callgw hash-password``) with scrypt on a worker thread,
so the reactor never blocks on it. The namespace holds the running service tree. With no
credential configured the manhole stays off and start-up says so.

Tests: tests/test_manhole.py.
"""
from __future__ import annotations

from twisted.conch import manhole, telnet
from twisted.conch.insults import insults
from twisted.conch.manhole_tap import _StupidRealm, makeTelnetProtocol
from twisted.cred import credentials, error, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import protocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from callgw import passwords
from callgw.connlimits import ConnectionLimits
from callgw.listeners import StreamListener

log = Logger()


@implementer(ICredentialsChecker)
class ScryptChecker:
    """Checks one user name against a stored scram-scrypt credential, off the reactor thread."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, username: str, credential: str, reactor):
        self.username = username.encode("utf-8")
        self.credential = credential
        self.reactor = reactor

    def requestAvatarId(self, creds):
        """Fires with the user name, or fails with UnauthorizedLogin."""
        password = creds.password.decode("utf-8", "replace")
        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                              passwords.verify_password, self.credential, password)

        def decide(ok):
            if ok and creds.username == self.username:
                return creds.username
            log.warn("manhole: refused login for {user!r}", user=creds.username)
            raise error.UnauthorizedLogin("wrong user name or password")
        return d.addCallback(decide)


def make_manhole(config, namespace: dict, reactor):
    """A service for the manhole, or None when it is off (no listener or no credential)."""
    listener = config.listener("manhole", "telnet")
    credential = config["manhole"]["password_hash"]
    if listener is None:
        return None
    if not credential:
        log.info("manhole off: no [manhole] password_hash configured "
                 "(make one with `callgw hash-password`)")
        return None
    realm = _StupidRealm(telnet.TelnetBootstrapProtocol, insults.ServerProtocol,
                         manhole.ColoredManhole, namespace)
    checker = ScryptChecker(config["manhole"]["user"], credential, reactor)
    factory = protocol.ServerFactory()
    factory.protocol = makeTelnetProtocol(portal.Portal(realm, [checker]))
    return StreamListener("manhole", listener, factory, reactor,
                          limits=ConnectionLimits.from_config(config))
