"""Authorization rules compiled for fast checks, and time windows (numbers are normalized to
E.164 before they get here: ``callgw.numbers``).

Owned by the call path. ``RuleSet.compile(rows)`` turns the store's rule rows (kinds ``allow``,
``block``, ``max_concurrent``, ``max_per_minute``, ``tenant_max_concurrent``,
``tenant_max_per_minute``, ``hours``, ``max_duration``; see
``callgw.store.db.check_rule``) into an object the director checks each call against without a
database round trip. Pure code: no clock reads (``now`` is passed in), no Twisted.

Semantics:
- destinations: the longest matching ``allow`` and the longest matching ``block`` prefix are
  compared; the call passes when an allow prefix matches and no block prefix of the same or a
  greater length does (so a user may allow ``+1900555`` inside a blocked ``+1900``).
- ``max_concurrent`` / ``max_per_minute``: the smallest value of each kind applies to the user.
  ``tenant_max_concurrent`` / ``tenant_max_per_minute`` (tenant rules only) limit the tenant's
  total across its users.
- ``hours``: ``[DAY[-DAY] ]HH:MM-HH:MM`` in the tenant's time zone; the call passes when any
  window holds ``now``. A window whose end is before its start runs past midnight.
- ``max_duration``: seconds; the smallest applies, capped by ``[calls] max_duration``.

Tests: tests/callpath/test_rules.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocols.client.errors import AuthCode

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(?:([a-z]{3})(?:-([a-z]{3}))? )?(\d\d):(\d\d)-(\d\d):(\d\d)$")


class Refused(Exception):
    """The director refuses a call: ``code`` (an ``AuthCode``), ``reason`` (a short word for
    logs and metrics) and ``text`` (said to the client)."""

    def __init__(self, code: int, reason: str, text: str):
        super().__init__(f"{int(code)} {reason}: {text}")
        self.code = int(code)
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class Window:
    """Allowed hours: days (0=Monday) and minutes since midnight [start, end)."""
    days: frozenset
    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> "Window":
        m = _HOURS.match(text.strip().lower())
        if not m:
            raise ValueError(f"hours {text!r}: expected [mon-fri ]HH:MM-HH:MM")
        first, last = m.group(1), m.group(2)
        if first is None:
            days = frozenset(range(7))
        else:
            a = DAYS.index(first)
            b = DAYS.index(last) if last else a
            days = frozenset(range(a, b + 1)) if a <= b else frozenset(
                list(range(a, 7)) + list(range(0, b + 1)))
        start = int(m.group(3)) * 60 + int(m.group(4))
        end = int(m.group(5)) * 60 + int(m.group(6))
        return cls(days, start, end)

    def holds(self, weekday: int, minute: int) -> bool:
        if self.start <= self.end:
            return weekday in self.days and self.start <= minute < self.end
        # past midnight: the evening part belongs to the listed day, the morning to the next
        if minute >= self.start:
            return weekday in self.days
        return minute < self.end and (weekday - 1) % 7 in self.days


@dataclass
class RuleSet:
    """A user's rules in force, compiled."""
    allow: tuple = ()
    block: tuple = ()
    max_concurrent: int | None = None
    max_per_minute: int | None = None
    tenant_max_concurrent: int | None = None
    tenant_max_per_minute: int | None = None
    windows: tuple = ()
    max_duration: float | None = None
    notes: dict = field(default_factory=dict)

    @classmethod
    def compile(cls, rows: list[dict], tenant_rows: list[dict] = ()) -> "RuleSet":
        """Compile the user's rules in force (``rows``) and the tenant-wide limits found in
        ``tenant_rows`` (the tenant's ``tenant_max_*`` rules)."""
        rs = cls()
        allow, block, windows = [], [], []
        for r in rows:
            kind, value = r["kind"], r["value"]
            if kind == "allow":
                allow.append(value)
            elif kind == "block":
                block.append(value)
                rs.notes[value] = r.get("note") or ""
            elif kind == "max_concurrent":
                rs.max_concurrent = _least(rs.max_concurrent, int(value))
            elif kind == "max_per_minute":
                rs.max_per_minute = _least(rs.max_per_minute, int(value))
            elif kind == "hours":
                windows.append(Window.parse(value))
            elif kind == "max_duration":
                rs.max_duration = _least(rs.max_duration, float(value))
        for r in tenant_rows:
            if r["kind"] == "tenant_max_concurrent":
                rs.tenant_max_concurrent = _least(rs.tenant_max_concurrent, int(r["value"]))
            elif r["kind"] == "tenant_max_per_minute":
                rs.tenant_max_per_minute = _least(rs.tenant_max_per_minute, int(r["value"]))
        rs.allow = tuple(sorted(allow, key=len, reverse=True))
        rs.block = tuple(sorted(block, key=len, reverse=True))
        rs.windows = tuple(windows)
        return rs

    def refusal(self, target: str) -> "Refused | None":
        """The ``Refused`` that ``check_destination`` would raise for ``target``, or None."""
        try:
            self.check_destination(target)
        except Refused as refused:
            return refused
        return None

    def check_destination(self, target: str) -> None:
        """Raise ``Refused`` unless ``target`` (E.164) is an allowed destination."""
        allowed = next((p for p in self.allow if target.startswith(p)), None)
        blocked = next((p for p in self.block if target.startswith(p)), None)
        if blocked is not None and (allowed is None or len(blocked) >= len(allowed)):
            note = self.notes.get(blocked) or "blocked prefix"
            raise Refused(AuthCode.DESTINATION_BLOCKED, "blocked",
                          f"destination blocked: {blocked} ({note})")
        if allowed is None:
            raise Refused(AuthCode.DESTINATION_BLOCKED, "not-allowed",
                          "destination not in the allowed prefixes")

    def check_hours(self, now: float, zone: str) -> None:
        """Raise ``Refused`` when windows exist and none holds ``now`` in time zone ``zone``."""
        if not self.windows:
            return
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            tz = timezone.utc
        local = datetime.fromtimestamp(now, tz)
        weekday, minute = local.weekday(), local.hour * 60 + local.minute
        if not any(w.holds(weekday, minute) for w in self.windows):
            raise Refused(AuthCode.CALL_REFUSED, "hours",
                          f"calls are not allowed at this time ({local:%a %H:%M} {zone})")

    def check_limits(self, user_active: int, user_recent: int, tenant_active: int,
                     tenant_recent: int) -> None:
        """Raise ``Refused`` when a concurrency or rate limit would be exceeded by one more."""
        if self.max_concurrent is not None and user_active >= self.max_concurrent:
            raise Refused(AuthCode.CALL_LIMIT, "concurrent",
                          f"too many calls at once (limit {self.max_concurrent})")
        if self.tenant_max_concurrent is not None and tenant_active >= self.tenant_max_concurrent:
            raise Refused(AuthCode.CALL_LIMIT, "tenant-concurrent",
                          f"too many calls at once for the tenant "
                          f"(limit {self.tenant_max_concurrent})")
        if self.max_per_minute is not None and user_recent >= self.max_per_minute:
            raise Refused(AuthCode.CALL_LIMIT, "rate",
                          f"too many calls per minute (limit {self.max_per_minute})")
        if self.tenant_max_per_minute is not None and tenant_recent >= self.tenant_max_per_minute:
            raise Refused(AuthCode.CALL_LIMIT, "tenant-rate",
                          f"too many calls per minute for the tenant "
                          f"(limit {self.tenant_max_per_minute})")


def _least(current, value):
    return value if current is None or value < current else current
