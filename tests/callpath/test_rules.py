"""Rules: each kind, time windows in the tenant's zone, E.164 normalization."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from callgw.callserver.rules import Refused, RuleSet, Window
from callgw.store.db import DEFAULT_RULES


def rules(*rows, tenant_rows=()):
    return RuleSet.compile([{"kind": k, "value": v, "note": n} for k, v, n in rows],
                           [dict(r, tenant="t") for r in tenant_rows])


def ts(text, zone):
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_default_rules_allow_ordinary_block_premium():
    rs = rules(*DEFAULT_RULES)
    rs.check_destination("+4930123456")
    for number in ("+19005551234", "+4990012345", "+979123456", "+881123"):
        with pytest.raises(Refused) as e:
            rs.check_destination(number)
        assert e.value.code == 411 and e.value.reason == "blocked"


def test_longer_allow_beats_block():
    rs = rules(("allow", "+", ""), ("block", "+1900", ""), ("allow", "+1900555", ""))
    rs.check_destination("+19005551234")
    with pytest.raises(Refused):
        rs.check_destination("+19006661234")


def test_not_in_allowed_prefixes():
    rs = rules(("allow", "+49", ""))
    with pytest.raises(Refused) as e:
        rs.check_destination("+15551234")
    assert e.value.reason == "not-allowed"


def test_limits():
    rs = rules(("max_concurrent", "2", ""), ("max_per_minute", "5", ""),
               tenant_rows=[{"kind": "tenant_max_concurrent", "value": "3", "note": "all"}])
    rs.check_limits(1, 4, 2, 0)
    for args, reason in (((2, 0, 0, 0), "concurrent"), ((0, 5, 0, 0), "rate"),
                         ((0, 0, 3, 0), "tenant-concurrent")):
        with pytest.raises(Refused) as e:
            rs.check_limits(*args)
        assert e.value.reason == reason and e.value.code == 412


def test_hours_in_tenant_zone():
    rs = rules(("hours", "mon-fri 08:00-18:00", ""))
    zone = "Europe/Berlin"
    rs.check_hours(ts("2026-11-25T09:00:00", zone), zone)        # a Wednesday
    with pytest.raises(Refused) as e:
        rs.check_hours(ts("2026-11-25T19:00:00", zone), zone)
    assert e.value.reason == "hours"
    with pytest.raises(Refused):
        rs.check_hours(ts("2026-11-28T10:00:00", zone), zone)    # a Saturday
    # 07:30 UTC is 08:30 in Berlin: allowed there, not in New York (02:30)
    t = ts("2026-11-25T07:30:00", "UTC")
    rs.check_hours(t, zone)
    with pytest.raises(Refused):
        rs.check_hours(t, "America/New_York")


def test_window_past_midnight():
    w = Window.parse("fri 22:00-06:00")
    assert w.holds(4, 23 * 60) and w.holds(5, 60)
    assert not w.holds(5, 23 * 60) and not w.holds(4, 60)


def test_max_duration_smallest():
    assert rules(("max_duration", "600", ""), ("max_duration", "60", "")).max_duration == 60


def test_only_tenant_wide_kinds_limit_the_tenant_total():
    # a tenant's plain max_concurrent is every user's default, not a cap on the tenant's sum
    rs = rules(tenant_rows=[{"kind": "max_concurrent", "value": "1", "note": ""}])
    rs.check_limits(0, 0, 5, 0)
    rs = rules(tenant_rows=[{"kind": "tenant_max_per_minute", "value": "4", "note": ""}])
    with pytest.raises(Refused) as e:
        rs.check_limits(0, 0, 0, 4)
    assert e.value.reason == "tenant-rate"
