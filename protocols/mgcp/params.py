"""Structured MGCP parameter values: the parts of parameter lines callgw reads or writes.

Owns the value grammars of RFC 3435 3.2.2 for ResponseAck ``K:`` (transaction id ranges),
LocalConnectionOptions ``L:`` (comma-separated ``key:value``, 2.3.5), event and signal names
``[package/]name[@connection][(parameters)]`` (2.1.7) in RequestedEvents ``R:``, SignalRequests
``S:`` and ObservedEvents ``O:`` (comma-separated lists that may hold parenthesised or quoted
commas), and ConnectionParameters ``P:`` (the statistics a DLCX response carries, 2.3.7: PS, OS,
PR, OR, PL, JI, LA, plus extensions kept as text).
Values that do not parse raise ``ValueError`` with the reason; the call agent turns that into a
510 or a logged, ignored parameter.

Tests: tests/mgcp/test_params.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from protocols.mgcp.message import MAX_TID

__all__ = ["parse_ack_ranges", "format_ack_ranges", "ranges_contain", "split_list", "Event",
           "parse_events", "format_events", "parse_local_options", "format_local_options",
           "ConnectionStats", "parse_connection_parameters"]

_RANGE = re.compile(r"(\d{1,9})(?:[ \t]*-[ \t]*(\d{1,9}))?\Z")


def parse_ack_ranges(value: str) -> list[tuple[int, int]]:
    """``K: 6234-6255, 6257`` -> [(6234, 6255), (6257, 6257)]; an empty K: -> []."""
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            if value.strip():
                raise ValueError(f"empty range in ResponseAck {value!r}")
            continue
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"bad ResponseAck range {part!r}")
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) else low
        if high < low or high > MAX_TID:
            raise ValueError(f"bad ResponseAck range {part!r}")
        out.append((low, high))
    return out


def format_ack_ranges(tids) -> str:
    """Transaction ids as the shortest ``K:`` value: {1, 2, 3, 7} -> ``1-3, 7``."""
    ordered = sorted(set(tids))
    parts = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def ranges_contain(ranges, tid: int) -> bool:
    return any(low <= tid <= high for low, high in ranges)


def split_list(value: str) -> list[str]:
    """Split a comma-separated list at top-level commas (not inside ``(...)``, ``[...]`` or
    ``"..."``), stripping white space; ValueError on unbalanced brackets or quotes."""
    items, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if quoted:
            if ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in {value!r}")
        elif ch == "," and depth == 0:
            items.append(value[start:i].strip())
            start = i + 1
    if quoted or depth:
        raise ValueError(f"unbalanced brackets or quotes in {value!r}")
    last = value[start:].strip()
    if last or items:
        items.append(last)
    if any(not item for item in items):
        raise ValueError(f"empty item in list {value!r}")
    return items


_EVENT = re.compile(r"(?:([A-Za-z0-9_\-*]+)/)?([^@()\s]+?)(?:@([^()\s]+))?(?:\((.*)\))?\Z",
                    re.DOTALL)


@dataclass(frozen=True, slots=True)
class Event:
    """One event or signal name (RFC 3435 2.1.7): ``L/hd(N)`` is package "L", name "hd",
    parameters "N"; ``R/qa@0A3F58`` names connection "0A3F58"."""
    name: str
    package: str = ""
    connection: str = ""
    params: str | None = None

    def __str__(self) -> str:
        text = f"{self.package}/{self.name}" if self.package else self.name
        if self.connection:
            text += f"@{self.connection}"
        if self.params is not None:
            text += f"({self.params})"
        return text

    def is_(self, package: str, name: str) -> bool:
        """Same event as ``package/name`` (case-insensitive; an unqualified name matches)."""
        return (self.name.lower() == name.lower() and
                (not self.package or self.package.lower() == package.lower()))


def parse_events(value: str) -> list[Event]:
    """``L/hd(N), L/hu(N)`` -> [Event("hd", "L", "", "N"), Event("hu", "L", "", "N")]."""
    out = []
    for item in split_list(value):
        m = _EVENT.match(item)
        if not m:
            raise ValueError(f"bad event name {item!r}")
        package, name, connection, params = m.groups()
        out.append(Event(name, package or "", connection or "", params))
    return out


def format_events(events) -> str:
    return ", ".join(str(e) for e in events)


def parse_local_options(value: str) -> dict[str, str]:
    """``p:20, a:PCMU;PCMA, e:on`` -> {"p": "20", "a": "PCMU;PCMA", "e": "on"} (keys
    lower-cased; RFC 3435 2.3.5 / 3.2.2.4)."""
    out = {}
    for item in split_list(value):
        key, colon, val = item.partition(":")
        key = key.strip().lower()
        if not colon or not key:
            raise ValueError(f"bad LocalConnectionOptions item {item!r}")
        out[key] = val.strip()
    return out


def format_local_options(options: dict[str, str]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in options.items())


_STATS_FIELDS = {"PS": "packets_sent", "OS": "octets_sent", "PR": "packets_received",
                 "OR": "octets_received", "PL": "packets_lost", "JI": "jitter_ms",
                 "LA": "latency_ms"}


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """ConnectionParameters (``P:``) of a connection, as DLCX and AUCX responses carry them:
    packets/octets sent and received, packets lost, interarrival jitter and average latency in
    milliseconds; ``None`` where the gateway did not say; other entries in ``extra``."""
    packets_sent: int | None = None
    octets_sent: int | None = None
    packets_received: int | None = None
    octets_received: int | None = None
    packets_lost: int | None = None
    jitter_ms: int | None = None
    latency_ms: int | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name in _STATS_FIELDS.values()
               if getattr(self, name) is not None}
        out.update(self.extra)
        return out


def parse_connection_parameters(value: str) -> ConnectionStats:
    """``PS=1245, OS=62345, PR=780, OR=45123, PL=10, JI=27, LA=48`` -> ConnectionStats."""
    known, extra = {}, {}
    for item in split_list(value):
        key, eq, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not eq or not key:
            raise ValueError(f"bad ConnectionParameters item {item!r}")
        name = _STATS_FIELDS.get(key.upper())
        if name is None:
            extra[key] = val
            continue
        if not re.fullmatch(r"-?\d{1,18}", val):
            raise ValueError(f"ConnectionParameters {key}={val!r} is not a number")
        known[name] = int(val)
    return ConnectionStats(**known, extra=extra)
