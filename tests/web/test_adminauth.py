"""AdminAuth (callgw/web/adminauth.py) with a fake clock, a fake store and password checks the
test runs by hand: throttling per source, the bound on checks in flight, the credential cache,
sessions and their end when the admin changes."""
from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from callgw.web.adminauth import MAX_PENDING, AdminAuth, AdminSettings


class FakeStore:
    def __init__(self, accounts):
        self.accounts = dict(accounts)
        self.watchers = []

    def run(self, method_name, *args, **kwargs):
        assert method_name == "admin_credentials"
        return succeed(dict(self.accounts))

    def watch(self, callback):
        self.watchers.append(callback)

    def change(self, **accounts):
        self.accounts = accounts
        for callback in self.watchers:
            callback()


class Checks:
    """``run_checks`` that holds each check until ``finish()``; ``count`` checks done."""

    def __init__(self):
        self.held = []
        self.count = 0

    def __call__(self, f, *args):
        d = Deferred()
        self.held.append((d, f, args))
        return d

    def finish(self):
        held, self.held = self.held, []
        for d, f, args in held:
            self.count += 1
            d.callback(f(*args))


def verify(credential, password):
    return credential == "cred:" + password


def make(accounts=None, **settings):
    clock, checks = Clock(), Checks()
    store = FakeStore(accounts if accounts is not None else {"root": "cred:right-password"})
    auth = AdminAuth(store, AdminSettings(**settings), None, clock=clock, verify=verify,
                     run_checks=checks)
    auth.reload()
    auth._decoy = "cred:decoy"             # the real one costs an scrypt: not needed here
    return auth, clock, checks, store


def verdict(auth, checks, name, password, source="192.0.2.1"):
    got = []
    auth.check_password(name, password, source).addCallback(got.append)
    checks.finish()
    return got[0]


def test_right_password_then_cached():
    auth, clock, checks, _ = make()
    assert verdict(auth, checks, "root", "right-password").admin == "root"
    assert checks.count == 1
    assert verdict(auth, checks, "root", "right-password").ok       # from the cache
    assert checks.count == 1
    clock.advance(61)
    assert verdict(auth, checks, "root", "right-password").ok
    assert checks.count == 2                                         # cache entry expired


def test_failures_throttle_the_source_not_others():
    auth, clock, checks, _ = make(max_failures=3, failure_window=100.0)
    for _ in range(3):
        assert verdict(auth, checks, "root", "guess", "198.51.100.9").kind == "refused"
    throttled = verdict(auth, checks, "root", "guess", "198.51.100.9")
    assert throttled.kind == "throttled" and throttled.retry_after == 100
    assert checks.count == 3                                # no check while throttled
    # the right admin from elsewhere is not affected
    assert verdict(auth, checks, "root", "right-password", "192.0.2.1").ok
    clock.advance(100)
    assert verdict(auth, checks, "root", "guess", "198.51.100.9").kind == "refused"


def test_unknown_name_costs_a_check_and_counts():
    auth, _, checks, _ = make(max_failures=1)
    assert verdict(auth, checks, "nobody", "x").kind == "refused"
    assert checks.count == 1
    assert verdict(auth, checks, "root", "right-password").kind == "throttled"


def test_cached_credential_passes_a_throttled_source():
    auth, _, checks, _ = make(max_failures=2)
    assert verdict(auth, checks, "root", "right-password", "203.0.113.5").ok
    for _ in range(2):
        verdict(auth, checks, "root", "guess", "203.0.113.5")
    assert verdict(auth, checks, "root", "right-password", "203.0.113.5").ok


def test_checks_in_flight_are_bounded():
    auth, _, checks, _ = make()
    results = []
    for i in range(MAX_PENDING + 3):
        source = "192.0.2.1" if i < 2 else f"192.0.2.{i + 10}"
        auth.check_password("root", f"guess{i}", source).addCallback(results.append)
    busy = [r for r in results if r.kind == "busy"]
    assert len(checks.held) == MAX_PENDING            # at most this many queued
    assert len(busy) == 3                             # a second from one source, then the rest
    checks.finish()
    assert verdict(auth, checks, "root", "right-password").ok      # room again


def test_password_change_and_removal_end_sessions_and_cache():
    auth, _, checks, store = make()
    assert verdict(auth, checks, "root", "right-password").ok
    session = auth.open_session("root")
    assert auth.session(session.sid) is session
    store.change(root="cred:new-password")
    assert auth.session(session.sid) is None
    assert verdict(auth, checks, "root", "right-password").kind == "refused"   # not cached
    assert verdict(auth, checks, "root", "new-password").ok
    again = auth.open_session("root")
    store.change()
    assert auth.session(again.sid) is None
    assert verdict(auth, checks, "root", "new-password").kind == "refused"


def test_sessions_expire_idle_and_in_all():
    auth, clock, _, _ = make(session_idle=100.0, session_lifetime=250.0)
    s = auth.open_session("root")
    assert s.csrf and s.sid and s.csrf != s.sid
    clock.advance(99)
    assert auth.session(s.sid) is s
    clock.advance(99)
    assert auth.session(s.sid) is s                   # used: idle time restarts
    clock.advance(99)
    assert auth.session(s.sid) is None                # 297 s > lifetime
    idle = auth.open_session("root")
    clock.advance(100)
    assert auth.session(idle.sid) is None
    closed = auth.open_session("root")
    auth.close_session(closed.sid)
    assert auth.session(closed.sid) is None


def test_bearer_token():
    auth, *_ = make()
    assert not auth.bearer_ok("") and not auth.bearer_ok("anything")   # none configured
    auth, *_ = make(metrics_token="a-long-scrape-token-123")
    assert auth.bearer_ok("a-long-scrape-token-123")
    assert not auth.bearer_ok("a-long-scrape-token-124")
