"""Gateway health (callgw/proxy/health.py) with per-gateway modes, intervals and thresholds, on a
task.Clock with a scripted pinger; and against sipp's built-in UAS, which answers calls but
never OPTIONS (README's example gateway)."""
from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from callgw.proxy.gateways import GatewayDirectory
from callgw.proxy.health import HealthPoller
from protocols.sip.adapter import PingError
from tests.callpath.fakes import gateway
from tests.peers import require_peer


class Pinger:
    """Answers each probe as scripted per gateway: 'ok', 'no answer', or 'hold' (in flight)."""

    def __init__(self):
        self.answers: dict[str, str] = {}
        self.calls: list[tuple[float, str]] = []
        self.held: list[Deferred] = []
        self.clock = None

    def __call__(self, gw):
        self.calls.append((self.clock.seconds(), gw["name"]))
        answer = self.answers.get(gw["name"], "ok")
        if answer == "ok":
            return succeed(0.002)
        if answer == "hold":
            d = Deferred()
            self.held.append(d)
            return d
        return fail(PingError(408, "Request Timeout"))


def setup(*rows, interval=10.0, answers=None):
    clock = Clock()
    directory = GatewayDirectory()
    directory.load([dict(gateway(r.pop("name")), **r) for r in rows])
    pinger = Pinger()
    pinger.clock = clock
    pinger.answers = dict(answers or {})
    poller = HealthPoller(directory, {"sip": pinger}, clock, interval=interval)
    poller.startService()
    return clock, directory, pinger, poller


def test_each_gateway_on_its_own_interval_and_mode():
    clock, directory, pinger, poller = setup(
        {"name": "a"}, {"name": "b", "probe_interval": 3.0}, {"name": "c", "probe": "off"})
    clock.pump([1.0] * 10)
    times = {n: [t for t, g in pinger.calls if g == n] for n in "abc"}
    assert times["a"] == [0.0, 10.0]
    assert times["b"] == [0.0, 3.0, 6.0, 9.0]
    assert times["c"] == []                                  # probing off: never probed
    assert directory.status == {"a": "up", "b": "up", "c": "unknown"}
    poller.stopService()


def test_thresholds_per_gateway():
    clock, directory, pinger, poller = setup(
        {"name": "quick", "down_after": 1, "up_after": 1},
        {"name": "slow", "down_after": 3, "up_after": 3}, interval=1.0,
        answers={"quick": "no answer", "slow": "no answer"})
    clock.pump([1.0] * 2)                                   # probes at 0, 1, 2
    assert directory.status == {"quick": "down", "slow": "down"}
    pinger.answers = {}
    clock.advance(1.0)
    assert directory.status == {"quick": "up", "slow": "down"}
    clock.pump([1.0] * 2)
    assert directory.status["slow"] == "up"
    poller.stopService()


def test_a_gateway_that_answers_calls_stays_up_whatever_its_probes_say():
    clock, directory, pinger, poller = setup({"name": "gw", "down_after": 2}, interval=5.0,
                                             answers={"gw": "hold"})
    clock.advance(0.5)
    directory.answered("gw", clock.seconds())                # a call answered meanwhile
    pinger.held.pop().errback(PingError(408, "Request Timeout"))
    assert directory.status["gw"] == "up" and poller.failures["gw"] == 0
    pinger.answers = {"gw": "no answer"}
    clock.pump([5.0, 5.0])                                   # two unanswered, no calls
    assert directory.status["gw"] == "down"
    directory.answered("gw", clock.seconds())                # it answers a call again
    assert directory.status["gw"] == "up"
    poller.stopService()


@pytest_twisted.inlineCallbacks
def test_sipp_answering_calls_but_not_options_stays_selectable(tmp_path):
    """sipp's built-in UAS ignores OPTIONS: with ``--probe off`` (README's example) it is never
    probed, never marked down, and the calls it answers mark it up."""
    from tests.callpath.callgw_env import Sipp, prepare_db, sleep, start, within
    from tests.callpath.test_sipp_calls import finish, login
    require_peer("sipp")
    sipp = Sipp("uas_answer.xml", tmp_path, calls=2).start()
    prepare_db(tmp_path, gateways=[("quiet", sipp.port, ["+"],
                                    {"probe": "off", "down_after": 1})])
    gw = yield start(tmp_path, health=0.5, calls={"setup_timeout": 2.0})
    try:
        yield sleep(2.0)                                     # four poll rounds
        assert gw.callpath.directory.status["quiet"] == "unknown"
        session = yield login(gw)
        for _ in range(2):
            call = session.call("+4930123456")
            yield within(call.connected)
            call.hangup()
            yield within(call.disconnected)
        assert gw.callpath.directory.status["quiet"] == "up"
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()
    finally:
        yield finish(gw, sipp)
