"""Failed-login throttling (protocols/client/throttle.py): per pair, per source, per user name
for untrusted sources only, exponential blocks, forgetting, bounded memory."""
from __future__ import annotations

from protocols.client.throttle import LoginThrottle

GUESSER, OTHER, HOME = "198.51.100.1", "198.51.100.2", "203.0.113.9"


def test_guesses_block_the_pair_and_the_source_not_the_user():
    t = LoginThrottle(pair_free=2, source_free=3, base=10)
    for _ in range(3):
        t.failed("alice", GUESSER, 0)
    assert t.retry_after("alice", GUESSER, 0) == 10          # the guessing pair is blocked
    assert t.retry_after("alice", HOME, 0) == 0              # the real user elsewhere is not
    assert t.retry_after("bob", GUESSER, 0) == 0             # the source has one failure left
    t.failed("carol", GUESSER, 0)
    assert t.retry_after("bob", GUESSER, 1) == 9             # now the source is blocked
    assert t.retry_after(None, GUESSER, 1) == 9              # token logins from it too


def test_blocks_double_and_are_capped():
    t = LoginThrottle(pair_free=1, source_free=1000, base=1, max_delay=8)
    waits = []
    for _ in range(7):
        t.failed("alice", GUESSER, 0)
        waits.append(t.retry_after("alice", GUESSER, 0))
    assert waits == [0, 1, 2, 4, 8, 8, 8]


def test_many_sources_against_one_user_block_only_untrusted_sources():
    t = LoginThrottle(pair_free=5, source_free=20, user_free=10, base=60)
    t.succeeded("alice", HOME, 0)                            # alice logged in from home once
    for i in range(11):
        t.failed("alice", f"192.0.2.{i}", 1)                 # a botnet, one guess per address
    assert t.retry_after("alice", "192.0.2.200", 1) == 60    # a new address waits
    assert t.retry_after("alice", HOME, 1) == 0              # home keeps access
    assert t.trusted("alice", HOME, 1) and not t.trusted("bob", HOME, 1)


def test_trust_lapses():
    t = LoginThrottle(user_free=0, base=60, trust=100, forget=10_000)
    t.succeeded("alice", HOME, 0)
    t.failed("alice", GUESSER, 50)
    assert t.retry_after("alice", HOME, 60) == 0 < t.retry_after("alice", OTHER, 60)
    t.failed("alice", GUESSER, 120)
    assert t.retry_after("alice", HOME, 130) > 0             # home is no longer trusted


def test_success_clears_the_pair_not_the_source():
    t = LoginThrottle(pair_free=1, source_free=1, base=10)
    t.failed("alice", GUESSER, 0)
    t.failed("alice", GUESSER, 0)
    t.succeeded("alice", GUESSER, 0)
    assert t.retry_after(None, GUESSER, 0) > 0               # the source's count stays
    t2 = LoginThrottle(pair_free=1, base=10)
    t2.failed("alice", GUESSER, 0)
    t2.failed("alice", GUESSER, 0)
    t2.succeeded("alice", GUESSER, 0)
    assert t2.retry_after("alice", GUESSER, 0) == 0


def test_ipv6_sources_count_by_64():
    t = LoginThrottle(source_free=1, base=10)
    assert t.source_key("2001:db8::ffff") == t.source_key("2001:db8::1") == "2001:db8::/64"
    t.failed(None, "2001:db8::1", 0)
    t.failed(None, "2001:db8::2", 0)
    assert t.retry_after(None, "2001:db8::abcd", 0) == 10
    assert t.retry_after(None, "2001:db8:0:1::1", 0) == 0


def test_forgotten_after_an_hour():
    t = LoginThrottle(pair_free=0, base=10)
    t.failed("alice", GUESSER, 0)
    assert t.retry_after("alice", GUESSER, 0) > 0
    assert t.retry_after("alice", GUESSER, 10_000) == 0


def test_memory_is_bounded():
    t = LoginThrottle(max_entries=100)
    for i in range(1000):
        t.failed(f"u{i}", f"10.0.{i // 250}.{i % 250}", i)
        t.succeeded(f"u{i}", f"10.1.{i // 250}.{i % 250}", i)
    assert len(t) <= 200
