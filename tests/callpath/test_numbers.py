"""The one number normalizer (callgw/numbers.py): national and international dialling by the
E.164 and national numbering-plan rules, URIs, separators, other scripts, lengths, rewriting."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callgw.numbers import (DialPlan, NumberError, check, interpretations, normalize,
                            rewrite)

US, DE, GB, IT, JP = (DialPlan.for_country(c) for c in ("1", "49", "44", "39", "81"))


@pytest.mark.parametrize("text, plan, e164", [
    ("+1 (212) 555-0123", US, "+12125550123"),
    ("1 212 555 0123", US, "+12125550123"),            # NANP trunk prefix 1
    ("212.555.0123", US, "+12125550123"),              # ten-digit national
    ("011 44 20 7946 0958", US, "+442079460958"),      # NANP international prefix
    ("00 44 20 7946 0958", DE, "+442079460958"),
    ("030 1234567", DE, "+49301234567"),               # trunk 0
    ("020 7946 0958", GB, "+442079460958"),
    ("06 1234 5678", IT, "+390612345678"),             # Italy keeps its leading 0
    ("010 1 212 555 0123", JP, "+12125550123"),        # Japan's international prefix
    ("tel:+1-212-555-0123", DE, "+12125550123"),
    ("sip:+442079460958@gw.example;user=phone", US, "+442079460958"),
    ("＋４９ ３０ １２３４５６７", US, "+49301234567"),  # fullwidth digits and plus
    ("+٤٩٣٠١٢٣٤٥٦٧", US, "+49301234567"),             # Arabic-Indic digits
    ("+49\u00a030\u20111234567", US, "+49301234567"),  # no-break space, non-breaking hyphen
])
def test_dialled_forms_become_e164(text, plan, e164):
    assert normalize(text, plan) == e164


@pytest.mark.parametrize("text, plan, why", [
    ("1 900 555 1234", US, None),          # valid: +19005551234 (the rules block it, not here)
    ("1 190 555 1234", US, "area code and exchange start with 2-9"),
    ("011 1 900 555", US, r"\+1 numbers have 10 digits"),
    ("+99912345", US, "no such country code"),
    ("+4930", DE, r"\+49 numbers have 5-13 digits"),
    ("1-800-FLOWERS", US, "not a telephone number"),
    ("*21#", DE, "not a telephone number"),
    ("tel:5550123;phone-context=+1-212", US, "tel: parameters"),
    ("tel:5550123", US, "local tel: number"),
    ("sip:alice@example.com", US, "not a telephone number"),
    ("+49 30 1234\u0410567", DE, "is not a digit"),     # a Cyrillic letter
    ("+1" + "2" * 20, US, "not an E.164 number"),
    ("", US, "no number"),
])
def test_undialable_forms_are_refused_with_a_reason(text, plan, why):
    if why is None:
        assert normalize(text, plan) == "+19005551234"
        return
    with pytest.raises(NumberError, match=why):
        normalize(text, plan)


def test_plans_by_country():
    assert (US.international, US.trunk) == (("011",), "1")
    assert (DE.international, DE.trunk) == (("00",), "0")
    assert IT.trunk == ""
    with pytest.raises(NumberError, match="not assigned"):
        DialPlan.for_country("999")


def test_rewriting_and_what_the_gateway_may_reach():
    assert rewrite("+4930123", 2, "0", False) == "030123"
    assert rewrite("+4930123") == "+4930123"
    assert rewrite("+4930123", keep_plus=False) == "4930123"
    de_gateway = {"prefixes": ["+49"]}
    # "19005550123" sent without its plus may be read as NANP premium rate +1 900
    assert interpretations("19005550123", de_gateway) == {"+19005550123", "+4919005550123"}
    assert interpretations("030123456", de_gateway) == {"+4930123456"}
    assert interpretations("+4930123456", {"prefixes": ["+"]}) == {"+4930123456"}


@given(st.text(max_size=40))
def test_the_normalizer_never_crashes_and_only_returns_valid_e164(text):
    for plan in (US, DE, IT):
        try:
            result = normalize(text, plan)
        except NumberError as e:
            assert e.reason and e.text
        else:
            assert check(result) == result
