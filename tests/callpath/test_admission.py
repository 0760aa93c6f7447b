"""Admission control (callgw/callserver/admission.py) on a Clock with a fake load: no timing
assertions, the lag is made by advancing the clock past the probe's due time; the CPU clock is
the Clock too (a process busy all the time) unless a test says otherwise."""
from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import task

from callgw.callserver.admission import Admission


def handler(state="call-initiated"):
    return SimpleNamespace(state=SimpleNamespace(value=state))


def run(adm, clock, seconds, late=0.0):
    """Let the probe run ``seconds``; each probe fires ``late`` seconds after it was due
    (a reactor busy for that long)."""
    end = clock.seconds() + seconds
    while clock.seconds() < end:
        clock.advance(adm.interval + late)


def test_set_ups_in_flight_are_bounded_and_answered_calls_leave():
    clock = task.Clock()
    adm = Admission(clock, initial_limit=10, min_limit=4, max_limit=10, cpu=clock.seconds,
                    wall=clock.seconds)
    calls = {}
    for i in range(10):
        assert adm.admits()
        adm.began(f"c{i}")
        calls[f"c{i}"] = handler()
        adm.settle(f"c{i}", calls[f"c{i}"])
    assert not adm.admits() and adm.refused == 1 and "10 call set-ups" in adm.reason
    assert "10 call set-ups" in adm.refusal() and adm.refused == 1   # asked, not counted
    calls["c3"].state.value = "active"              # answered: no longer in flight
    calls["c4"].state.value = "released"
    assert adm.refusal() is None and adm.admits() and adm.in_flight == 8
    adm.settle("c9", None)                         # a launch refused or failed leaves at once
    assert adm.in_flight == 7
    adm.stop()


def test_lag_shrinks_the_limit_and_drowning_refuses_everything_then_recovers():
    clock = task.Clock()
    adm = Admission(clock, initial_limit=64, min_limit=8, max_limit=1000, cpu=clock.seconds,
                    wall=clock.seconds)
    assert adm.admits()                             # starts the probe
    run(adm, clock, 1.0)
    assert adm.lag < 0.001 and adm.limit == 64      # idle: nothing in flight, no growth
    run(adm, clock, 10.0, late=0.2)                 # 200 ms late: over the 100 ms target
    assert adm.lag > adm.target_lag and adm.limit == 8
    run(adm, clock, 3.0, late=0.4)                  # 400 ms late: over max_lag
    assert adm.lag > adm.max_lag
    for i in range(7):                              # fewer than min_limit in flight: the lag
        assert adm.admits()                         # is not our calls' doing
        adm.began(f"c{i}")
        adm.settle(f"c{i}", handler())
    assert adm.admits()
    adm.began("c7")
    adm.settle("c7", handler())
    assert not adm.admits() and "reactor lag" in adm.reason
    run(adm, clock, 2.0)                            # the load went: lag decays, calls admitted
    assert adm.lag < adm.target_lag and adm.admits()
    adm.stop()


def test_lag_from_other_work_refuses_nothing_while_few_calls_are_in_flight():
    clock = task.Clock()
    adm = Admission(clock, min_limit=8, cpu=clock.seconds,
                    wall=clock.seconds)
    assert adm.admits()
    run(adm, clock, 3.0, late=0.5)                  # a starved process, no calls of ours
    assert adm.lag > adm.max_lag
    for i in range(7):
        assert adm.admits()
        adm.began(f"c{i}")
        adm.settle(f"c{i}", handler("delivered"))
    assert adm.refused == 0
    adm.stop()


def test_the_limit_grows_while_it_is_used_without_lag():
    clock = task.Clock()
    adm = Admission(clock, initial_limit=8, min_limit=8, max_limit=100, cpu=clock.seconds,
                    wall=clock.seconds)
    assert adm.admits()
    for i in range(8):
        adm.began(f"c{i}")
        adm.settle(f"c{i}", handler("delivered"))   # ringing: in flight for a while
    assert not adm.admits()
    run(adm, clock, 2.0)
    assert adm.limit > 8 and adm.admits()
    for i in range(8, 200):
        if adm.admits():
            adm.began(f"c{i}")
            adm.settle(f"c{i}", handler("delivered"))
        run(adm, clock, 0.05)
    assert int(adm.limit) == 100 and adm.in_flight == 100    # capped by capacity
    adm.stop()
    assert not clock.getDelayedCalls()


def test_a_clock_jump_is_not_load():
    clock = task.Clock()
    adm = Admission(clock, cpu=clock.seconds, wall=clock.seconds)
    assert adm.admits()
    clock.advance(30)                               # suspended, or a test's clock: one probe
    clock.advance(0.05)
    assert adm.lag == 0.0 and adm.admits()
    adm.stop()


def test_lag_while_the_process_is_mostly_idle_is_not_ours_to_cure():
    """A process starved by other work (or blocked) lags without being busy: its set-ups in
    flight are not cut and nothing is refused; once it is busy, the same lag counts."""
    clock = task.Clock()
    spent = [0.0]                                   # CPU seconds: 1% of the wall clock
    adm = Admission(clock, min_limit=8, initial_limit=64, cpu=lambda: spent[0],
                    wall=clock.seconds)
    assert adm.admits()
    for i in range(40):
        adm.began(f"c{i}")
        adm.settle(f"c{i}", handler("delivered"))
    for _ in range(60):
        clock.advance(adm.interval + 0.4)
        spent[0] += (adm.interval + 0.4) * 0.01
    assert adm.lag > adm.max_lag and adm.busy < adm.busy_threshold
    assert adm.limit >= 64 and adm.admits() and adm.refused == 0     # not cut
    limit = adm.limit
    for _ in range(10):                             # now busy: the lag is the calls' doing
        clock.advance(adm.interval + 0.4)
        spent[0] += adm.interval + 0.4
    assert adm.busy >= adm.busy_threshold and adm.limit < limit
    assert not adm.admits() and "reactor lag" in adm.reason
    adm.stop()
