"""The call director: authorization of call requests against the rules database.

Owned by the call path (ARCHITECTURE.md, "Call director"). ``CallDirector.authorize`` takes a
logged-in user's record, their tenant and the requested target (an E.164 number or an
address-book entry) and fires with an ``Authorization`` (the E.164 target, the caller identity
for the slave's ``Setup``, the longest allowed duration), or fails with ``rules.Refused`` (an
``AuthCode`` with a reason and text for the client's ``unauthorized``).

Per-call work is in memory: each user's compiled ``RuleSet``, tenant and address book are loaded
from the store once and kept until the admin CLI changes a configuration table
(``store.watch``), concurrency counts come from ``call_began``/``call_ended`` and rates from a
sliding minute of request times on the injected clock. When the store is shared by several
callgw processes (``shared``: PostgreSQL), the limits are counted in the database instead: the
request's admission (``Database.admit_call``, one transaction under the tenant's lock) counts the
calls of every process and records this one, ``call_ended``/``withdraw`` release it. Login (SCRAM) lives with the client
listeners; ``authenticate`` here is the interface's hook for other front ends.

Tests: tests/callpath/test_director.py.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from callgw import numbers
from callgw.callserver.rules import Refused, RuleSet
from callgw.interfaces import IDirector
from protocols.client.errors import AuthCode


@dataclass(frozen=True)
class Authorization:
    """What the director allowed: ``target`` (E.164), ``caller`` (E.164 or None when
    withheld), ``privacy``, ``max_duration`` seconds, ``contact`` (the book entry used)."""
    target: str
    caller: str | None
    privacy: bool
    max_duration: float
    contact: str | None = None
    screen: object = None       # screen(e164) -> Refused or None: the destination rules

    def refusal(self, number: str):
        """Why the rules refuse ``number`` (E.164) for this caller, or None."""
        return self.screen(number) if self.screen is not None else None


@dataclass
class _UserCache:
    rules: RuleSet
    book: dict
    tenant: dict


@implementer(IDirector)
class CallDirector:
    """Checks call requests; keeps per-user caches, concurrency counts and rate windows."""

    log = Logger()

    def __init__(self, store, clock, max_duration: float = 14400.0, shared: bool = False,
                 node: str = "node1"):
        """``shared``: count the limits in the store (several processes share it); ``node``:
        this process's name on its admissions (crash recovery drops a node's own)."""
        self.store = store
        self.shared = shared
        self.node = node
        self.clock = clock
        self.max_duration = max_duration
        self._cache: dict[str, _UserCache] = {}
        self._loading: dict[str, list] = {}
        self._generation = 0
        self.active_by_user: dict[str, int] = defaultdict(int)
        self.active_by_tenant: dict[str, int] = defaultdict(int)
        self._recent_user: dict[str, deque] = defaultdict(deque)
        self._recent_tenant: dict[str, deque] = defaultdict(deque)

    # -- caches -------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget every cached rule set, tenant and book (configuration changed)."""
        self._generation += 1
        self._cache.clear()
        self._loading.clear()

    def _load(self, username: str, tenant_name: str) -> Deferred:
        """Fires with the user's ``_UserCache`` (from memory when warm); concurrent requests
        for a user share one store read."""
        cached = self._cache.get(username)
        if cached is not None:
            return succeed(cached)
        d = Deferred()
        waiters = self._loading.get(username)
        if waiters is not None:
            waiters.append(d)
            return d
        waiters = self._loading[username] = [d]
        generation = self._generation

        def built(snapshot):
            entry = _UserCache(
                RuleSet.compile(snapshot["rules"], snapshot["tenant_rules"]),
                {row["name"]: row["number"] for row in snapshot["book"]},
                snapshot["tenant"] or {"name": tenant_name, "timezone": "UTC", "country": "1"})
            if generation == self._generation:
                self._cache[username] = entry
            return entry

        def settle(result):
            if self._loading.get(username) is waiters:
                del self._loading[username]
            for waiter in waiters:
                waiter.callback(result) if not isinstance(result, Failure) else \
                    waiter.errback(result)
        read = self.store.run("director_snapshot", username, tenant_name)
        read.addCallback(built)
        read.addBoth(settle)
        return d

    # -- IDirector ----------------------------------------------------------------------------
    def authenticate(self, username, proof):
        """Login is the client listeners' (SCRAM); this director never accepts a bare proof."""
        return fail(Refused(AuthCode.BAD_CREDENTIALS, "login", "log in through a listener"))

    def authorize(self, user: dict, target: str | None = None, contact: str | None = None,
                  tenant: str | None = None, call_id: str | None = None) -> Deferred:
        """Fires with an ``Authorization`` or fails with ``Refused`` (with a shared store also
        with ``StoreUnavailable`` when the admission cannot be counted).

        ``user`` is the store's user row; ``target`` an E.164 number (or a national form),
        ``contact`` an address-book entry name: exactly one of them. ``call_id`` names the
        admission in a shared store (released by ``call_ended`` or ``withdraw``).
        """
        username = user["username"]
        tenant_name = tenant or user.get("tenant") or "default"
        if not user.get("enabled", 1):
            return fail(Refused(AuthCode.ACCOUNT_DISABLED, "disabled", "account disabled"))
        admit = self.shared and call_id is not None
        cached = self._cache.get(username)
        if cached is not None and not admit:
            try:
                return succeed(self._decide(user, cached, target, contact))
            except Refused as refusal:
                return fail(refusal)
        d = succeed(cached) if cached is not None else self._load(username, tenant_name)
        if not admit:
            d.addCallback(lambda entry: self._decide(user, entry, target, contact))
            return d

        def admission(entry):
            auth = self._decide(user, entry, target, contact, counted_here=False)
            tenant_of = entry.tenant.get("name", tenant_name)
            a = self.store.run("admit_call", call_id, username, tenant_of, self.node,
                               self.clock.seconds(), entry.rules.check_limits, auth.target)
            return a.addCallback(lambda _: auth)
        return d.addCallback(admission)

    def _decide(self, user: dict, entry: _UserCache, target, contact,
                counted_here: bool = True) -> Authorization:
        tenant = entry.tenant
        country = user.get("country") or tenant.get("country") or "1"
        try:
            number = self._number(entry, country, target, contact)
        except numbers.NumberError as e:
            raise Refused(AuthCode.CALL_REFUSED, e.reason, e.text) from None
        now = self.clock.seconds()
        rules = entry.rules
        rules.check_destination(number)
        rules.check_hours(now, tenant.get("timezone") or "UTC")
        username, tenant_name = user["username"], tenant.get("name", "default")
        if counted_here:
            ru = _window(self._recent_user[username], now)
            rt = _window(self._recent_tenant[tenant_name], now)
            rules.check_limits(self.active_by_user[username], len(ru),
                               self.active_by_tenant[tenant_name], len(rt))
            ru.append(now)
            rt.append(now)
        caller = user.get("number")
        duration = self.max_duration
        if rules.max_duration is not None:
            duration = min(duration, rules.max_duration)
        return Authorization(number, caller, caller is None, duration, contact,
                             rules.refusal)

    @staticmethod
    def _number(entry: _UserCache, country: str, target, contact) -> str:
        """The E.164 number to check against the rules, through the one normalizer: the
        protocol's strict ``number``, an address-book entry, or a free-form ``contact``
        dialled as in the user's country."""
        if contact is not None:
            booked = entry.book.get(contact)
            if booked is not None:
                return numbers.check(booked)
            if not any(c.isdigit() for c in contact):
                raise numbers.NumberError("unknown-contact",
                                          f"no address-book entry {contact!r}")
            return numbers.normalize(contact, numbers.DialPlan.for_country(country))
        if not target or not target.startswith("+"):
            return numbers.normalize(target or "", numbers.DialPlan.for_country(country))
        return numbers.check(target)

    # -- counts -------------------------------------------------------------------------------
    def call_began(self, username: str, tenant: str, call_id: str | None = None) -> None:
        self.active_by_user[username] += 1
        self.active_by_tenant[tenant] += 1

    def call_ended(self, username: str, tenant: str, call_id: str | None = None) -> None:
        for table, key in ((self.active_by_user, username), (self.active_by_tenant, tenant)):
            n = table.get(key, 0) - 1
            if n > 0:
                table[key] = n
            else:
                table.pop(key, None)
        self.withdraw(call_id)

    def withdraw(self, call_id: str | None) -> None:
        """An authorized call ended, or never started: release its admission in a shared
        store (a failed write is logged; the next start of this node drops its leftovers)."""
        if not self.shared or call_id is None:
            return
        d = self.store.run("release_call", call_id, self.clock.seconds())
        d.addErrback(lambda f: self.log.failure(
            "call {call_id}: releasing its admission", f, call_id=call_id))


def _window(times: deque, now: float) -> deque:
    """Drop request times older than a minute; returns the deque."""
    while times and times[0] <= now - 60.0:
        times.popleft()
    return times
