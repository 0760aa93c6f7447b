"""The attack: somebody who knows only a user name hammers wrong passwords at a running callgw
(real listeners, the real call path) from another address, while the real user logs in.

What a provider cares about: the real user keeps access, the attacker is throttled, every
failed login is logged with the user name and the source, and counted in ``/metrics``.
"""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher

from callgw.client import LoginRefused
from callgw.client.links import connect
from protocols.client.errors import AuthCode
from tests.frontend.gateway import PASSWORD, start_gateway, stop_gateway, url

ATTACKER = "127.0.0.2"          # another loopback address: another source for callgw


class LogLines:
    """Every log line formatted, while installed."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, event):
        if "log_format" in event:
            self.lines.append(formatEvent(event))

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc):
        globalLogPublisher.removeObserver(self)


@defer.inlineCallbacks
def attempt(gw, scheme, user, password, local_address=None):
    """One login on a new session; fires with the Welcome or the LoginRefused."""
    session = yield connect(url(gw, scheme), reactor, local_address=local_address,
                            timeout=10)
    try:
        result = yield session.login(user, password).addTimeout(20, reactor)
    except LoginRefused as e:
        result = e
    finally:
        session.close()
    return result


def metric(gw, name, reason):
    return gw.callpath.metrics.registry.get_sample_value(name, {"reason": reason}) or 0


@pytest_twisted.inlineCallbacks
def test_hammering_a_user_name_does_not_lock_out_the_real_user(tmp_path):
    gw = yield start_gateway(tmp_path)
    try:
        with LogLines() as log:
            # the attacker: 24 wrong passwords for alice, over UDP and TCP, 4 at a time
            results = []
            for burst in range(6):
                batch = [attempt(gw, "udp" if i % 2 else "tcp", "alice", f"guess{burst}{i}",
                                 ATTACKER) for i in range(4)]
                results += (yield defer.gatherResults(batch))
                if burst == 3:   # the real user, in the middle of the attack, from 127.0.0.1
                    welcome = yield attempt(gw, "udp", "alice", PASSWORD)
                    assert welcome.user == "alice", welcome
            codes = [r.code for r in results]
            assert all(isinstance(r, LoginRefused) for r in results)
            assert AuthCode.THROTTLED in codes and AuthCode.BAD_CREDENTIALS in codes
            # still blocked for the attacker (with the right password too: no oracle)...
            refused = yield attempt(gw, "tcp", "alice", PASSWORD, ATTACKER)
            assert refused.code == AuthCode.THROTTLED and refused.retry >= 1
            # ...never for the real user
            welcome = yield attempt(gw, "tcp", "alice", PASSWORD)
            assert welcome.user == "alice"
        failures = [line for line in log.lines if line.startswith("login refused")]
        assert len(failures) == len(results) + 1
        assert all("user alice from 127.0.0.2:" in line for line in failures)
        assert any("bad-credentials" in line for line in failures)
        assert metric(gw, "callgw_login_failures_total", "bad-credentials") == \
            codes.count(AuthCode.BAD_CREDENTIALS)
        assert metric(gw, "callgw_login_failures_total", "throttled") == \
            codes.count(AuthCode.THROTTLED) + 1
    finally:
        yield stop_gateway(gw)
