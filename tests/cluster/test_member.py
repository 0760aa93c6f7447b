"""When a call server may take another for dead (callgw/cluster/member.py), with a fake clock
and a fake store: a survivor that has written its heartbeats all along closes the calls of a
node whose heartbeat stopped; after a database outage (or a hang) longer than ``dead_after``
heartbeats, no node judges the others until it has written ``dead_after`` heartbeats again, so
the first one back does not close the calls of call servers that are alive (seen on loopback
before: a 12 s PostgreSQL stop, and cs-1 closed a live call of cs-2)."""
from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed

from callgw.cluster.member import ClusterMember
from callgw.config import defaults
from callgw.store.errors import StoreUnavailable

HEARTBEAT, DEAD_AFTER = 2.0, 3


class FakeStore:
    """A fixture standing in for the ThreadedStore: the heartbeat succeeds or fails as the
    test says; ``dead_nodes`` always names cs-2 (its row is stale in every case here)."""

    def __init__(self):
        self.up = True
        self.hang: Deferred | None = None
        self.asked: list[float] = []            # the clock when dead_nodes was asked

    def run(self, name, *args):
        if name == "heartbeat_node":
            if self.hang is not None:
                return self.hang
            if not self.up:
                return fail(StoreUnavailable("cannot-open", "connection refused"))
            return succeed({"draining": 0})
        if name == "dead_nodes":
            self.asked.append(self.now())
            return succeed(["cs-2"])
        raise AssertionError(name)


class FakeCallPath:
    """A fixture for the call path: records take-overs, which finish at once."""

    def __init__(self):
        self.servers: list = []
        self.taken: list[tuple[str, float]] = []

    def drain(self, draining: bool) -> bool:
        return False

    def take_over(self, node: str, dead_before: float):
        self.taken.append((node, dead_before))
        return succeed(1)


def member():
    clock = task.Clock()
    config = defaults().with_overrides({
        "general": {"node": "cs-1"},
        "cluster": {"role": "callserver", "secret": "0123456789abcdef-secret",
                    "heartbeat": HEARTBEAT, "dead_after": DEAD_AFTER}})
    store, callpath = FakeStore(), FakeCallPath()
    store.now = clock.seconds
    client = SimpleNamespace(cert=SimpleNamespace(digest=lambda: b"", context=lambda: None))
    node = ClusterMember(config, store, callpath, client, clock)
    node._joined({"draining": 0, "link": "10.0.0.10:7710"})   # joined at t=0
    return node, clock, store, callpath


def beats(clock, n):
    for _ in range(n):
        clock.advance(HEARTBEAT)


def test_a_survivor_writing_all_along_closes_a_dead_nodes_calls():
    node, clock, store, callpath = member()
    beats(clock, DEAD_AFTER - 1)                 # t=2, 4: joined too recently to judge
    assert store.asked == [] and callpath.taken == []
    beats(clock, 1)                             # t=6: three heartbeats written since joining
    assert store.asked == [6.0]
    assert callpath.taken == [("cs-2", 6.0 - HEARTBEAT * DEAD_AFTER)]
    node._loop.stop()


def test_after_a_database_outage_nobody_is_judged_until_dead_after_beats_are_written():
    node, clock, store, callpath = member()
    beats(clock, 4)                             # t=2..8 written; judged at 6 and 8
    store.asked.clear()
    callpath.taken.clear()
    store.up = False
    beats(clock, 5)                             # t=10..18: heartbeats not written
    store.up = True
    beats(clock, DEAD_AFTER)                    # t=20, 22, 24: written again, nobody judged
    assert store.asked == [] and callpath.taken == []
    beats(clock, 1)                             # t=26: three heartbeats since the outage
    assert store.asked == [26.0]
    assert callpath.taken == [("cs-2", 26.0 - HEARTBEAT * DEAD_AFTER)]
    node._loop.stop()


def test_a_hung_database_counts_as_a_gap_too():
    node, clock, store, callpath = member()
    beats(clock, 3)                             # t=2, 4, 6 written; judged at 6
    store.asked.clear()
    store.hang = Deferred()
    beats(clock, 5)                             # t=8 waits on the store; 10..16 skipped
    hung, store.hang = store.hang, None
    hung.callback({"draining": 0})              # the beat of t=8 is written at t=16
    # that beat had no gap before it: judged against its own time (rows older than t=2)
    assert store.asked == [16.0] and callpath.taken[-1] == ("cs-2", 8.0 - 6.0)
    store.asked.clear()
    beats(clock, 3)                             # t=18 (10 s after the last beat), 20, 22
    assert store.asked == []
    beats(clock, 1)                             # t=24: three heartbeats since 18
    assert store.asked == [24.0]
    node._loop.stop()
