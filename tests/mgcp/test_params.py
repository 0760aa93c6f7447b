"""Structured MGCP parameter values (protocols/mgcp/params.py): K: ranges, event lists with
RFC 3435's nested examples, L: options and the P: statistics of a DLCX response."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from protocols.mgcp.params import (ConnectionStats, Event, format_ack_ranges, format_events,
                                   parse_ack_ranges, parse_connection_parameters, parse_events,
                                   parse_local_options, ranges_contain, split_list)


def test_response_ack_ranges():
    assert parse_ack_ranges("6234-6255, 6257, 19030-19044") == [
        (6234, 6255), (6257, 6257), (19030, 19044)]
    assert parse_ack_ranges("") == [] and parse_ack_ranges("  ") == []
    assert ranges_contain(parse_ack_ranges("1-3, 7"), 2)
    assert not ranges_contain(parse_ack_ranges("1-3, 7"), 5)
    for bad in ("5-1", "a", "1,,2", "1-", "1000000000"):
        with pytest.raises(ValueError):
            parse_ack_ranges(bad)


@given(st.sets(st.integers(1, 999_999_999), min_size=1, max_size=30))
def test_ack_ranges_round_trip(tids):
    ranges = parse_ack_ranges(format_ack_ranges(tids))
    assert {t for lo, hi in ranges for t in range(lo, hi + 1)} == tids


def test_event_lists_with_nested_actions():
    # RFC 3435 2.3.3's example RequestedEvents
    events = parse_events("L/hd(A, E(S(L/dl),R(L/oc,L/hu,D/[0-9#*T](D))))")
    assert len(events) == 1
    assert (events[0].package, events[0].name) == ("L", "hd")
    assert events[0].params == "A, E(S(L/dl),R(L/oc,L/hu,D/[0-9#*T](D)))"
    events = parse_events("L/hd,D/9,D/1, L/hu")
    assert [str(e) for e in events] == ["L/hd", "D/9", "D/1", "L/hu"]
    assert events[0].is_("L", "hd") and Event("hd").is_("l", "HD")
    assert parse_events("R/qa@0A3F58")[0].connection == "0A3F58"
    assert format_events(parse_events('S/adsi("12, 3"), L/rg')) == 'S/adsi("12, 3"), L/rg'
    for bad in ("L/hd(", "a,,b", "(x)"):
        with pytest.raises(ValueError):
            parse_events(bad)


def test_split_list_respects_brackets_and_quotes():
    assert split_list('a, b(c,d), "e,f", [g,h]') == ["a", "b(c,d)", '"e,f"', "[g,h]"]
    assert split_list("") == []


def test_local_connection_options():
    assert parse_local_options("p:10, a:PCMU;PCMA, E:on") == {"p": "10", "a": "PCMU;PCMA",
                                                              "e": "on"}
    with pytest.raises(ValueError):
        parse_local_options("p10")


def test_connection_parameters_of_a_dlcx_response():
    stats = parse_connection_parameters("PS=1245, OS=62345, PR=780, OR=45123, PL=10, JI=27, "
                                        "LA=48")
    assert stats == ConnectionStats(1245, 62345, 780, 45123, 10, 27, 48)
    assert stats.as_dict()["jitter_ms"] == 27
    osmo = parse_connection_parameters("PS=0, OS=0, PR=0, OR=0, PL=0, JI=0")
    assert osmo.latency_ms is None and osmo.packets_sent == 0
    ext = parse_connection_parameters("PS=1, X-Osmo-CP=EC TI=0")
    assert ext.extra == {"X-Osmo-CP": "EC TI=0"}
    for bad in ("PS", "PS=x"):
        with pytest.raises(ValueError):
            parse_connection_parameters(bad)
