"""Failed-login throttling per user name and per source address.

Owned by the client protocol; the spec is docs/protocol.md ("Throttling"). Each key (a user
name, or a source address: IPv4 as is, IPv6 by its /64) may fail ``free`` times; each further
failure blocks that key for ``base * 2**k`` seconds (k = failures beyond the free ones, capped
at ``max_delay``). A key is forgotten ``forget`` seconds after its last failure. A successful
login clears the user's count only: a valid account must not reset the count of the address
it guesses other accounts from. Memory is bounded (least recently failed keys go first).

Time is passed in (``now``). Tests: tests/client_proto/test_throttle.py.
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

    def __init__(self, *, user_free: int = 5, source_free: int = 20, base: float = 1.0,
                 max_delay: float = 900.0, forget: float = 3600.0,
                 max_entries: int = 100_000) -> None:
        self._free = {"user": user_free, "source": source_free}
        self._base, self._max, self._forget = base, max_delay, forget
        self._max_entries = max_entries
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

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

    def _keys(self, user: str | None, source: str | None) -> list[tuple[str, str]]:
        keys = []
        if user is not None:
            keys.append(("user", user))
        if source is not None:
            keys.append(("source", self.source_key(source)))
        return keys

    def _get(self, key: tuple[str, str], now: float) -> _Record | None:
        rec = self._records.get(key)
        if rec is not None and now - rec.last > self._forget and now >= rec.blocked_until:
            del self._records[key]
            return None
        return rec

    def retry_after(self, user: str | None, source: str | None, now: float) -> float:
        """Seconds until a login for ``user`` from ``source`` may be tried (0.0: now)."""
        wait = 0.0
        for key in self._keys(user, source):
            rec = self._get(key, now)
            if rec is not None:
                wait = max(wait, rec.blocked_until - now)
        return wait

    def failed(self, user: str | None, source: str | None, now: float) -> None:
        """Count one failed login."""
        for key in self._keys(user, source):
            rec = self._get(key, now) or _Record(0, now, now)
            rec.failures += 1
            rec.last = now
            over = rec.failures - self._free[key[0]]
            if over > 0:
                rec.blocked_until = now + min(self._max, self._base * 2 ** min(over - 1, 40))
            self._records[key] = rec
            self._records.move_to_end(key)
        while len(self._records) > self._max_entries:
            self._records.popitem(last=False)

    def succeeded(self, user: str | None, source: str | None, now: float) -> None:
        """A login succeeded: forget the user's failures (not the source's)."""
        if user is not None:
            self._records.pop(("user", user), None)

    def __len__(self) -> int:
        return len(self._records)
