"""The manhole over real TCP on 127.0.0.1: a hashed credential, an expression, a refusal."""
import re

import pytest_twisted
from twisted.conch.telnet import (ECHO, LINEMODE, SGA, OptionRefused, TelnetProtocol,
                                  TelnetTransport)
from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory

from callgw import passwords
from callgw.service import GatewayService
from tests.helpers import make_config, started
from tests.logcheck import logs_failure

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


class ManholeClient(TelnetProtocol):
    """Answers the prompts, types one line, and collects everything it sees (minus escapes)."""

    def __init__(self, user: str, password: str, line: str):
        self.steps = [("sername:", user), ("assword:", password), (">>> ", line)]
        self.seen = ""
        self.done = defer.Deferred()

    def enableRemote(self, option):
        return option in (ECHO, SGA, LINEMODE)  # accept the server's WILL ECHO

    def enableLocal(self, option):
        return option == SGA

    def dataReceived(self, data):
        self.seen += data.decode("utf-8", "replace")
        while self.steps and self.steps[0][0] in self.seen:
            prompt, answer = self.steps.pop(0)
            self.seen = self.seen.split(prompt, 1)[1]
            self.transport.write(answer.encode() + b"\n")  # the transport sends CR LF

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(self.seen)


def _login(port, user, password, line, wait=1.0):
    client = ManholeClient(user, password, line)
    factory = ClientFactory()
    factory.protocol = lambda: TelnetTransport(lambda: client)
    reactor.connectTCP("127.0.0.1", port, factory)

    def finish():
        if not client.done.called:
            client.transport.loseConnection()
    reactor.callLater(wait, finish)
    return client.done.addTimeout(15, reactor)


# This small client refuses the server's DO NAWS and DO LINEMODE (it has no window and no line
# editing); Twisted's telnet bootstrap logs each refusal as a failure.
@logs_failure(OptionRefused)
@pytest_twisted.inlineCallbacks
def test_manhole_login_evaluates_and_refuses_a_wrong_password(tmp_path):
    cfg = make_config(tmp_path, manhole={"password_hash": passwords.hash_password("pw!", n=1024),
                                         "user": "ops"})
    gw = GatewayService(cfg, reactor)
    yield started(gw)
    try:
        manhole = gw.child("manhole")
        host, port = manhole.address
        assert host == "127.0.0.1"
        seen = yield _login(port, "ops", "pw!", "(6*7, gateway.config['general']['node'])", 2.0)
        assert "(42, 'callgw-1')" in ANSI.sub("", seen).splitlines()[-2:][0]
        refused = yield _login(port, "ops", "wrong", "6*7", 2.0)
        assert "Authentication failed" in refused and "42" not in refused
    finally:
        yield gw.stopService()
