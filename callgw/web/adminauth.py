"""Who may use the admin surfaces: admin passwords checked off the reactor, sign-in throttling
per source, a short cache of verified credentials, and admin sessions.

Owned by the web site. ``AdminAuth(store, settings, reactor)`` is a service; the resources in
``callgw.web.admin`` ask it:

- ``check_password(name, password, source)`` fires with a ``Verdict``: ``ok`` (and the admin's
  name), ``refused`` (401), ``throttled`` (429: the source failed ``max_failures`` times within
  ``failure_window`` seconds; no password is checked until the oldest failure ages out) or
  ``busy`` (503: the checks already queued are at their bound). An admin password is a
  scram-scrypt credential (``callgw.passwords``, about 50 ms of CPU); checks run one at a time
  on a thread of their own, at most ``MAX_PENDING`` queued and one per source, so strangers
  cannot keep more than one core busy nor crowd out everyone else. An unknown name costs the
  same check against a decoy credential. A verified name and password are remembered for
  ``credential_cache`` seconds (keyed by an HMAC under a per-process key, tied to the stored
  credential), so a dashboard or a scraper does not pay a check per request; a remembered
  credential is accepted even from a throttled source.
- ``open_session(name)`` / ``session(sid)`` / ``close_session(sid)``: sessions in memory, each
  with a CSRF token, ending after ``session_idle`` seconds unused or ``session_lifetime`` in all,
  and at once when the admin is removed or its password changes (the admin list is reloaded
  whenever the admin CLI changes it: ``store.watch``).
- ``bearer_ok(token)``: the ``metrics_token`` for Prometheus.

Failed sign-ins are logged (name and source; never the password), a throttled or busy source
once a minute (``SourceLog``).

Tests: tests/web/test_adminauth.py (fake clock, a fake store), tests/web/test_admin.py (the
site) and tests/web/test_admin_attacks.py (a real callgw process).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import deque
from dataclasses import dataclass, field

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from callgw import passwords
from callgw.connlimits import SourceLog

MAX_PENDING = 4                 # password checks queued at once, all sources together
MAX_SOURCES = 10000             # sources remembered for throttling
MAX_CACHE = 1000
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class AdminSettings:
    """The ``[admin]`` settings (defaults as in callgw/config.py)."""
    metrics_token: str = ""
    session_lifetime: float = 28800.0
    session_idle: float = 1800.0
    credential_cache: float = 60.0
    max_failures: int = 5
    failure_window: float = 300.0

    @classmethod
    def from_config(cls, config) -> "AdminSettings":
        a = config["admin"]
        return cls(a["metrics_token"], float(a["session_lifetime"]), float(a["session_idle"]),
                   float(a["credential_cache"]), int(a["max_failures"]),
                   float(a["failure_window"]))


@dataclass(frozen=True)
class Verdict:
    """The outcome of a password check: ``kind`` is ok, refused, throttled or busy."""
    kind: str
    admin: str | None = None
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass
class AdminSession:
    sid: str
    admin: str
    credential: str             # the stored credential at sign-in: a change ends the session
    csrf: str
    created: float
    used: float = field(default=0.0)


class AdminAuth(Service):
    """Admin accounts as the web site sees them; see the module docstring."""

    log = Logger()
    name = "admin-auth"

    def __init__(self, store, settings: AdminSettings, reactor, clock=None,
                 verify=passwords.verify_password, run_checks=None):
        """``verify(credential, password)`` is the check run off the reactor; ``run_checks(f,
        *args)`` runs it and returns a Deferred (default: on this service's own thread);
        tests pass their own."""
        self.store = store
        self.settings = settings
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.verify = verify
        self.run_checks = run_checks or (
            lambda f, *args: deferToThreadPool(self.reactor, self.pool, f, *args))
        self.accounts: dict[str, str] | None = None     # None until loaded
        self.pool = ThreadPool(minthreads=0, maxthreads=1, name="callgw-admin-auth")
        self.report = SourceLog(self.clock, "admin")
        self._key = os.urandom(32)
        self._decoy: str | None = None
        self._cache: dict[bytes, tuple[str, str, float]] = {}
        self._failures: dict[str, deque[float]] = {}
        self._pending: dict[str, int] = {}
        self.sessions: dict[str, AdminSession] = {}
        store.watch(self.reload)

    # -- lifecycle ----------------------------------------------------------------------------
    def startService(self) -> Deferred:
        """Fires once the admin list is loaded (failures are logged, not raised)."""
        super().startService()
        self.pool.start()
        return self.reload()

    def stopService(self):
        super().stopService()
        self.pool.stop()

    def reload(self) -> Deferred:
        """Read the admin list again; drops sessions and cached credentials it invalidates."""
        d = self.store.run("admin_credentials")
        d.addCallback(self._loaded)
        d.addErrback(lambda f: self.log.failure("admin accounts: cannot load", f))
        return d

    def _loaded(self, accounts: dict[str, str]) -> None:
        first = self.accounts is None
        self.accounts = dict(accounts)
        for sid, s in list(self.sessions.items()):
            if self.accounts.get(s.admin) != s.credential:
                del self.sessions[sid]
                self.log.info("admin {admin}: session ended (account removed or password "
                              "changed)", admin=s.admin)
        self._cache = {k: v for k, v in self._cache.items()
                       if self.accounts.get(v[0]) == v[1]}
        if first:
            self.log.info("admin accounts: {n} ({names})", n=len(self.accounts),
                          names=", ".join(sorted(self.accounts)) or "none: /api and /metrics "
                          "answer 401 until `callgw admin add NAME`")

    # -- passwords ----------------------------------------------------------------------------
    def _cache_key(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, name.encode("utf-8") + b"\0" + password.encode("utf-8"),
                        hashlib.sha256).digest()

    def throttled(self, source: str) -> int:
        """Seconds ``source`` must wait before its next password is checked (0: none)."""
        now = self.clock.seconds()
        times = self._failures.get(source)
        if not times:
            return 0
        while times and now - times[0] >= self.settings.failure_window:
            times.popleft()
        if not times:
            del self._failures[source]
            return 0
        if len(times) < self.settings.max_failures:
            return 0
        return max(1, int(times[0] + self.settings.failure_window - now + 0.999))

    def check_password(self, name: str, password: str, source: str) -> Deferred:
        """Fires with a ``Verdict`` (never fails)."""
        now = self.clock.seconds()
        key = self._cache_key(name, password)
        cached = self._cache.get(key)
        if cached is not None and cached[2] > now and self.accounts \
                and self.accounts.get(cached[0]) == cached[1]:
            return succeed(Verdict("ok", cached[0]))
        wait = self.throttled(source)
        if wait:
            self.report.note(source, f"admin sign-in throttled ({self.settings.max_failures} "
                                     f"failures)")
            return succeed(Verdict("throttled", retry_after=wait))
        if self.accounts is None or sum(self._pending.values()) >= MAX_PENDING \
                or self._pending.get(source, 0) >= 1:
            self.report.note(source, "admin sign-in busy: password checks at their bound")
            return succeed(Verdict("busy", retry_after=1))
        credential = self.accounts.get(name)
        self._pending[source] = self._pending.get(source, 0) + 1
        d = self.run_checks(self._check, credential, password)
        d.addCallback(self._checked, name, credential, key, source)
        d.addErrback(self._check_failed, name, source)
        d.addBoth(self._done, source)
        return d

    def _check(self, credential: str | None, password: str) -> bool:
        """On the auth thread: scrypt against the credential, or the decoy for unknown names."""
        if credential is None:
            if self._decoy is None:
                self._decoy = passwords.hash_password(secrets.token_urlsafe(16))
            self.verify(self._decoy, password)
            return False
        return self.verify(credential, password)

    def _checked(self, ok: bool, name: str, credential: str | None, key: bytes, source: str):
        if ok and self.accounts is not None and self.accounts.get(name) == credential:
            if self.settings.credential_cache > 0:
                if len(self._cache) >= MAX_CACHE:
                    self._cache.clear()
                self._cache[key] = (name, credential,
                                    self.clock.seconds() + self.settings.credential_cache)
            return Verdict("ok", name)
        self._failed(source)
        self.log.warn("admin sign-in refused: {admin!r} from {source}", admin=name[:64],
                      source=source)
        return Verdict("refused")

    def _failed(self, source: str) -> None:
        if source not in self._failures and len(self._failures) >= MAX_SOURCES:
            for other in list(self._failures):
                self.throttled(other)                   # drops aged-out sources
            if len(self._failures) >= MAX_SOURCES:
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(source, deque()).append(self.clock.seconds())

    def _check_failed(self, failure, name: str, source: str):
        self.log.failure("admin sign-in check for {admin!r} from {source}", failure,
                         admin=name[:64], source=source)
        return Verdict("busy", retry_after=1)

    def _done(self, result, source: str):
        left = self._pending.get(source, 0) - 1
        if left > 0:
            self._pending[source] = left
        else:
            self._pending.pop(source, None)
        return result

    def bearer_ok(self, token: str) -> bool:
        """True for the configured ``metrics_token`` (never when none is configured)."""
        expected = self.settings.metrics_token
        return bool(expected) and hmac.compare_digest(token.encode("utf-8"),
                                                      expected.encode("utf-8"))

    # -- sessions -----------------------------------------------------------------------------
    def open_session(self, admin: str) -> AdminSession:
        """A new session for ``admin`` (just verified)."""
        now = self.clock.seconds()
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions.values(), key=lambda s: s.used)
            del self.sessions[oldest.sid]
        session = AdminSession(secrets.token_urlsafe(32), admin, self.accounts[admin],
                               secrets.token_urlsafe(32), now, now)
        self.sessions[session.sid] = session
        return session

    def session(self, sid: str) -> AdminSession | None:
        """The live session ``sid`` (its use time refreshed), or None."""
        s = self.sessions.get(sid)
        if s is None:
            return None
        now = self.clock.seconds()
        if (now - s.created >= self.settings.session_lifetime
                or now - s.used >= self.settings.session_idle
                or self.accounts is None or self.accounts.get(s.admin) != s.credential):
            del self.sessions[sid]
            return None
        s.used = now
        return s

    def close_session(self, sid: str) -> None:
        self.sessions.pop(sid, None)
