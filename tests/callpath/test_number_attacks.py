"""Toll-fraud attacks on the number path, against a real callgw and sipp as the paid gateway.

A +1 user (the default tenant's country) dials premium-rate numbers in national, URI and
other-script forms, and a gateway whose rewriting turns an ordinary number into a premium one is
offered: each refused attempt answers ``unauthorized`` with the reason and sipp, the gateway
callgw pays for, sees no INVITE. An ordinary international number in the NANP's own dialling
form reaches sipp as E.164.
"""
from __future__ import annotations

import pytest
import pytest_twisted

from protocols.client import messages as m
from tests.callpath.callgw_env import (Sipp, events_of, prepare_db, settled_cdr,
                                       sleep, start, within)
from tests.callpath.test_sipp_calls import finish, login

pytestmark = pytest.mark.peers("sipp")

PREMIUM_FORMS = [
    "1 900 555 1234",           # national, with the NANP trunk prefix (once +119005551234)
    "(900) 555-1234",           # national, ten digits
    "011 1 900 555 1234",       # through the international prefix
    "tel:+1-900-555-1234",      # an RFC 3966 global number
    "sip:+19005551234@gw.example;user=phone",
    "＋１ ９００ ５５５ １２３４",  # fullwidth
    "+١٩٠٠٥٥٥١٢٣٤",             # Arabic-Indic digits
]


def _invites(tmp_path):
    log = tmp_path / "sipp_messages.log"
    return log.read_text().count("INVITE sip:") if log.exists() else 0


@pytest_twisted.inlineCallbacks
def test_premium_rate_in_any_dialled_form_never_reaches_the_gateway(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path, timeout=3).start()
    prepare_db(tmp_path, gateways=[("paid", sipp.port, ["+"], {})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        for form in PREMIUM_FORMS:
            call = session.call(contact=form)
            end = yield within(call.disconnected)
            assert isinstance(end, m.Unauthorized), (form, end)
            assert end.code == 411 and "+1900" in end.text, (form, end.text)
        garbage = session.call(contact="1-800-FLOWERS")
        end = yield within(garbage.disconnected)
        assert isinstance(end, m.Unauthorized) and "not a telephone number" in end.text
        yield sleep(0.5)
        assert _invites(tmp_path) == 0
        assert (yield gw.store.run("cdrs", 20, "alice")) == []
        refused = gw.store.db.conn.execute(
            "SELECT count(*) FROM call_events WHERE kind = 'refused'").fetchone()[0]
        assert refused == len(PREMIUM_FORMS) + 1
    finally:
        yield finish(gw, sipp)


@pytest_twisted.inlineCallbacks
def test_nanp_international_prefix_reaches_the_gateway_as_e164(tmp_path):
    sipp = Sipp("uas_answer.xml", tmp_path).start()
    prepare_db(tmp_path, gateways=[("uk", sipp.port, ["+44"], {})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call(contact="011 44 20 7946 0958")
        yield within(call.connected)
        call.hangup()
        yield within(call.disconnected)
        assert (yield sipp.wait(gw.reactor)) == 0, sipp.log()
        log = (tmp_path / "sipp_messages.log").read_text()
        assert "INVITE sip:+442079460958@" in log
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["target"] == "+442079460958" and cdr["gateway"] == "uk"
    finally:
        yield finish(gw, sipp)


@pytest_twisted.inlineCallbacks
def test_a_gateway_whose_rewriting_lands_in_a_blocked_range_is_skipped(tmp_path):
    """+49 190 ... is an ordinary German number for these rules, but a +49 gateway that strips
    the country code and drops the '+' sends 19005550123: read as an international number, the
    NANP premium rate +1 900. That gateway is skipped; with no other, the call is refused."""
    sipp = Sipp("uas_answer.xml", tmp_path, timeout=3).start()
    prepare_db(tmp_path, gateways=[("de-strip", sipp.port, ["+49"],
                                    {"strip_digits": 2, "keep_plus": False})])
    gw = yield start(tmp_path)
    try:
        session = yield login(gw)
        call = session.call("+4919005550123")
        end = yield within(call.disconnected)
        assert isinstance(end, m.Unauthorized) and end.code == 411 and "+1900" in end.text
        yield sleep(0.5)
        assert _invites(tmp_path) == 0
        call_id = gw.store.db.conn.execute(
            "SELECT call_id FROM call_events WHERE kind = 'gateway-skipped'").fetchone()[0]
        kinds = yield events_of(gw, call_id)
        assert kinds == ["gateway-skipped", "refused"]
    finally:
        yield finish(gw, sipp)
