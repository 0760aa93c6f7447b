"""Failed-login throttling per user *and* source, so that guessing is slow and nobody who
knows only a user name can lock the real user out.

Owned by the client protocol; the spec is docs/protocol.md ("Throttling"). Failures are counted
under three keys (a source is an IPv4 address, or an IPv6 /64):

- the pair (user name, source): ``pair_free`` failures, then blocked;
- the source alone (one address guessing many accounts): ``source_free`` failures;
- the user name alone (many addresses guessing one account): ``user_free`` failures, and this
  block applies only to sources the user has *not* logged in from successfully in the last
  ``trust`` seconds. The real user, at an address that worked before, keeps access whatever an
  attacker elsewhere does; an attacker's failures block only the attacker's pairs and sources.

Each further failure blocks its key for ``base * 2**k`` seconds (k = failures beyond the free
ones, capped at ``max_delay``). A key is forgotten ``forget`` seconds after its last failure. A
success clears its pair and makes its source trusted for that user; it clears neither the
source's count (a valid account must not reset the count of an address that guesses others)
nor the user's. Memory is bounded (least recently used keys go first).

Time is passed in (``now``). Tests: tests/client_proto/test_session.py.
"""
from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int
    last: float
    blocked_until: float


class LoginThrottle:
    """Counts failed logins; ``retry_after`` says how long a login must wait (0: go ahead)."""

    def __init__(self, *, pair_free: int = 5, source_free: int = 20, user_free: int = 100,
                 base: float = 1.0, max_delay: float = 900.0, forget: float = 3600.0,
                 trust: float = 30 * 86400.0, max_entries: int = 100_000) -> None:
        self._free = {"pair": pair_free, "source": source_free, "user": user_free}
        self._base, self._max, self._forget, self._trust = base, max_delay, forget, trust
        self._max_entries = max_entries
        self._records: OrderedDict[tuple, _Record] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    @staticmethod
    def source_key(source: str) -> str:
        """The throttled unit of an address: IPv4 itself, IPv6 its /64."""
        try:
            addr = ipaddress.ip_address(source)
        except ValueError:
            return source
        if addr.version == 6:
            return str(ipaddress.ip_network(f"{addr}/64", strict=False))
        return str(addr)

    def _keys(self, user: str | None, source: str | None, now: float) -> list[tuple]:
        """The keys that apply to a login of ``user`` from ``source``."""
        src = self.source_key(source) if source is not None else None
        keys: list[tuple] = []
        if user is not None and src is not None:
            keys.append(("pair", user, src))
        if src is not None:
            keys.append(("source", src))
        if user is not None and not self.trusted(user, source, now):
            keys.append(("user", user))
        return keys

    def _get(self, key: tuple, now: float) -> _Record | None:
        rec = self._records.get(key)
        if rec is not None and now - rec.last > self._forget and now >= rec.blocked_until:
            del self._records[key]
            return None
        return rec

    def trusted(self, user: str, source: str | None, now: float) -> bool:
        """True when ``user`` logged in from ``source`` (its /64) within ``trust`` seconds."""
        if source is None:
            return False
        when = self._trusted.get((user, self.source_key(source)))
        return when is not None and now - when <= self._trust

    def retry_after(self, user: str | None, source: str | None, now: float) -> float:
        """Seconds until a login for ``user`` from ``source`` may be tried (0.0: now)."""
        wait = 0.0
        for key in self._keys(user, source, now):
            rec = self._get(key, now)
            if rec is not None:
                wait = max(wait, rec.blocked_until - now)
        return wait

    def failed(self, user: str | None, source: str | None, now: float) -> None:
        """Count one failed login (under the pair, the source and the user name)."""
        src = self.source_key(source) if source is not None else None
        keys: list[tuple] = []
        if user is not None and src is not None:
            keys.append(("pair", user, src))
        if src is not None:
            keys.append(("source", src))
        if user is not None:
            keys.append(("user", user))
        for key in keys:
            rec = self._get(key, now) or _Record(0, now, now)
            rec.failures += 1
            rec.last = now
            over = rec.failures - self._free[key[0]]
            if over > 0:
                rec.blocked_until = now + min(self._max, self._base * 2 ** min(over - 1, 40))
            self._records[key] = rec
            self._records.move_to_end(key)
        _bound(self._records, self._max_entries)

    def succeeded(self, user: str | None, source: str | None, now: float) -> None:
        """A login succeeded: forget the pair's failures and trust the source for ``user``."""
        if user is None or source is None:
            return
        src = self.source_key(source)
        self._records.pop(("pair", user, src), None)
        self._trusted[(user, src)] = now
        self._trusted.move_to_end((user, src))
        _bound(self._trusted, self._max_entries)

    def __len__(self) -> int:
        return len(self._records) + len(self._trusted)


def _bound(table: OrderedDict, limit: int) -> None:
    while len(table) > limit:
        table.popitem(last=False)
