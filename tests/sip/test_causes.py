"""The release-cause table: RFC 3398's SIP <-> Q.850 rows, both ways, and its defaults."""
from __future__ import annotations

import pytest

from callgw import causes


@pytest.mark.parametrize("status,cause", [
    (404, 1), (486, 17), (480, 18), (403, 21), (408, 102), (503, 41), (484, 28),
    (600, 17), (603, 21), (488, 127), (502, 38), (410, 22), (401, 21), (407, 21),
])
def test_sip_to_q850_rfc3398(status, cause):
    assert causes.sip_to_q850(status) == cause


@pytest.mark.parametrize("cause,status", [
    (1, 404), (17, 486), (18, 408), (19, 480), (21, 403), (22, 410), (27, 502), (28, 484),
    (34, 503), (38, 503), (41, 503), (58, 503), (65, 488), (79, 501), (102, 504), (127, 500),
])
def test_q850_to_sip_rfc3398(cause, status):
    assert causes.q850_to_sip(cause) == status


def test_unknown_sip_status_uses_its_class():
    assert causes.sip_to_q850(499) == causes.sip_to_q850(400) == 41
    assert causes.sip_to_q850(699) == causes.sip_to_q850(600) == 17
    assert causes.sip_to_q850(599) == causes.sip_to_q850(500)


def test_unknown_q850_cause_defaults():
    assert causes.q850_to_sip(9) == 480      # normal class
    assert causes.q850_to_sip(99) == 500


def test_round_trip_of_the_common_causes():
    for cause in (1, 17, 21, 28):
        assert causes.sip_to_q850(causes.q850_to_sip(cause)) == cause


def test_reason_header_both_ways():
    assert causes.parse_reason_header("Q.850;cause=17;text=\"User busy\"") == 17
    assert causes.parse_reason_header("SIP;cause=200, Q.850 ; cause=16") == 16
    assert causes.parse_reason_header("SIP;cause=487") is None
    assert causes.parse_reason_header(None) is None
    assert causes.parse_reason_header(causes.reason_header(19)) == 19


def test_other_protocols_register_their_tables():
    causes.register("test-proto", {"busy": 17}, {17: "busy"}, default_code="fail")
    assert causes.to_protocol("test-proto", 17) == "busy"
    assert causes.to_protocol("test-proto", 1) == "fail"
    assert causes.from_protocol("test-proto", "busy") == 17
    assert causes.from_protocol("test-proto", "?") == causes.INTERWORKING
    assert causes.to_protocol("sip", 17) == 486


def test_names():
    assert causes.cause_text(16) == "Normal call clearing"
    assert causes.cause_text(250) == "Cause 250"
    assert causes.sip_reason(486) == "Busy Here"
