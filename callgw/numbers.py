"""Telephone numbers: the one normalizer to E.164 before any rule, and gateway rewriting.

Owned by the call path (issue "Safe to deploy", item 1). Every target a user dials -- typed,
from the address book, from any framing -- becomes E.164 here, and only then is it checked
against the rules (``callgw.callserver.rules``). By ITU-T E.164 and national numbering plans:

- ``DialPlan.for_country(cc)``: the country's international prefixes (``00``; ``011`` in the
  North American Numbering Plan, ``010`` in Japan, ``0011`` in Australia, ``810`` in Russia...)
  and its national trunk prefix (``0``; ``1`` in the NANP; ``8`` in Russia; none where national
  numbers carry no trunk prefix, as in Italy or Spain);
- ``normalize(text, plan)``: RFC 3966 visual separators removed; ``tel:`` global numbers and
  ``sip:``/``sips:`` URIs whose user part is a telephone number accepted, local ``tel:``
  numbers, extensions, letters and service codes (``*``, ``#``) refused; digits of other
  scripts (fullwidth, Arabic-Indic, ...) read as their values, any other non-ASCII character
  refused; then ``+...``, an international prefix, the trunk prefix or a national number;
- ``check(e164)``: the country code must be assigned (ITU-T E.164 list) and the national
  significant number as long as that country's plan allows (NANP: ten digits, area code and
  exchange not starting with 0 or 1); at most 15 digits in all;
- ``rewrite(e164, gateway)``: the gateway's protocol-neutral number rewriting (strip digits,
  prepend, keep or drop the ``+``); ``interpretations(dialled, gateway)``: every E.164 number
  the dialled string may reach at that gateway (as an international number without its ``+``,
  and in the country of the gateway's prefixes), so the rules can refuse a gateway whose
  rewriting lands in a blocked range.

``NumberError`` carries a reason word and one line for the client's ``unauthorized``. Pure
code: no Twisted, no clock.

Tests: tests/callpath/test_numbers.py, tests/callpath/test_number_attacks.py.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Assigned E.164 country codes (ITU-T E.164 Annex to OB, with the international networks,
#: satellite and premium-rate codes that the default rules block).
COUNTRY_CODES = frozenset("""
1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63
64 65 66 81 82 84 86 90 91 92 93 94 95 98 211 212 213 216 218 220 221 222 223 224 225 226 227
228 229 230 231 232 233 234 235 236 237 238 239 240 241 242 243 244 245 246 247 248 249 250 251
252 253 254 255 256 257 258 260 261 262 263 264 265 266 267 268 269 290 291 297 298 299 350 351
352 353 354 355 356 357 358 359 370 371 372 373 374 375 376 377 378 379 380 381 382 383 385 386
387 389 420 421 423 500 501 502 503 504 505 506 507 508 509 590 591 592 593 594 595 596 597 598
599 670 672 673 674 675 676 677 678 679 680 681 682 683 685 686 687 688 689 690 691 692 800 808
850 852 853 855 856 870 878 880 881 882 883 886 888 960 961 962 963 964 965 966 967 968 970 971
972 973 974 975 976 977 979 992 993 994 995 996 998
""".split())

#: National significant number lengths (min, max) where the national plan fixes them; other
#: codes allow 4 digits up to the E.164 maximum of 15 in all.
NSN_LENGTHS = {
    "1": (10, 10), "7": (10, 10), "20": (8, 10), "27": (9, 9), "30": (10, 10), "31": (9, 9),
    "32": (8, 9), "33": (9, 9), "34": (9, 9), "36": (8, 9), "39": (6, 11), "41": (9, 9),
    "43": (4, 13), "44": (9, 10), "45": (8, 8), "46": (7, 13), "47": (8, 8), "48": (9, 9),
    "49": (5, 13), "52": (10, 10), "55": (10, 11), "61": (9, 9), "64": (8, 10), "65": (8, 8),
    "81": (9, 10), "82": (8, 10), "86": (7, 11), "90": (10, 10), "91": (10, 10),
    "351": (9, 9), "352": (4, 11), "353": (7, 9), "358": (5, 12),
}

#: International prefixes and trunk prefix by country where they differ from ("00",), "0".
_PLANS = {
    "1": (("011",), "1"), "7": (("810", "00"), "8"), "81": (("010",), "0"),
    "61": (("0011",), "0"), "82": (("001", "002", "00700"), "0"), "852": (("001",), ""),
    "65": (("000", "001"), ""), "55": (("0014", "0015", "0021", "0031", "00"), "0"),
    "39": (("00",), ""), "34": (("00",), ""), "45": (("00",), ""), "47": (("00",), ""),
    "30": (("00",), ""), "351": (("00",), ""), "352": (("00",), ""), "298": (("00",), ""),
    "299": (("009",), ""), "350": (("00",), ""), "354": (("00",), ""), "356": (("00",), ""),
    "357": (("00",), ""), "376": (("00",), ""), "378": (("00",), ""), "853": (("00",), ""),
    "973": (("00",), ""), "974": (("00",), ""), "968": (("00",), ""),
}

_SEPARATORS = re.compile(r"[\s\-.()/\u00a0\u2010-\u2015]")


class NumberError(ValueError):
    """A dialled string that is not a callable E.164 number: ``reason`` (a word for logs and
    metrics) and ``text`` (one line for the client)."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class DialPlan:
    """How people in a country dial: ``country`` code, ``international`` prefixes, national
    ``trunk`` prefix ('' where national numbers have none)."""
    country: str
    international: tuple[str, ...] = ("00",)
    trunk: str = "0"

    @classmethod
    def for_country(cls, country: str) -> "DialPlan":
        country = str(country or "").lstrip("+")
        if country not in COUNTRY_CODES:
            raise NumberError("bad-plan", f"country code {country!r} is not assigned")
        international, trunk = _PLANS.get(country, (("00",), "0"))
        return cls(country, tuple(sorted(international, key=len, reverse=True)), trunk)


def country_of(e164: str) -> str | None:
    """The country code of ``+digits`` (the longest assigned code that is a prefix)."""
    digits = e164.lstrip("+")
    for n in (1, 2, 3):
        if digits[:n] in COUNTRY_CODES:
            return digits[:n]
    return None


def check(e164: str) -> str:
    """``e164`` if it is a valid E.164 number, else ``NumberError`` saying why."""
    if not re.fullmatch(r"\+[1-9][0-9]{1,14}", e164):
        raise NumberError("bad-number", f"{e164!r} is not an E.164 number (+ and up to 15 "
                                        "digits)")
    cc = country_of(e164)
    if cc is None:
        raise NumberError("bad-number", f"{e164}: no such country code")
    nsn = e164[1 + len(cc):]
    low, high = NSN_LENGTHS.get(cc, (4, 15 - len(cc)))
    if not low <= len(nsn) <= high:
        raise NumberError("bad-number",
                          f"{e164}: +{cc} numbers have {low}"
                          f"{'' if low == high else f'-{high}'} digits after the country code")
    if cc == "1" and (nsn[0] in "01" or nsn[3] in "01"):
        raise NumberError("bad-number",
                          f"{e164}: a North American area code and exchange start with 2-9")
    return e164


def _ascii_digits(text: str) -> str:
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if ch.isascii():
            out.append(ch)
            continue
        value = unicodedata.decimal(ch, None)
        if value is None:
            if ch.isspace() or _SEPARATORS.fullmatch(ch):
                out.append(" ")
                continue
            raise NumberError("bad-number",
                              f"{text!r}: character {ch!r} (U+{ord(ch):04X}) is not a digit")
        out.append(str(value))
    return "".join(out)


def _from_uri(text: str) -> str:
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if params:
            raise NumberError("bad-number", f"{text!r}: tel: parameters (extension, "
                                            "phone-context) are not dialable here")
        if not number.strip().startswith("+"):
            raise NumberError("bad-number", f"{text!r}: a local tel: number; use the global "
                                            "form tel:+...")
        return number
    user = rest.split("@", 1)[0].split(";", 1)[0]
    if not user or "@" not in rest:
        raise NumberError("bad-number", f"{text!r}: a {scheme}: URI needs user@host")
    return user


def normalize(text: str, plan: DialPlan) -> str:
    """``text`` as dialled by someone in ``plan``'s country, as checked E.164."""
    if not isinstance(text, str) or not text.strip():
        raise NumberError("bad-number", "no number")
    if len(text) > 128:
        raise NumberError("bad-number", "number too long")
    raw = text.strip()
    if re.match(r"^(tel|sips?):", raw, re.I):
        raw = _from_uri(raw)
    raw = _ascii_digits(raw)
    compact = _SEPARATORS.sub("", raw)
    if compact.startswith("+"):
        digits = compact[1:]
        if not digits.isdigit():
            raise NumberError("bad-number", f"{text!r} is not a telephone number")
        return check("+" + digits)
    if not compact.isdigit():
        raise NumberError("bad-number", f"{text!r} is not a telephone number "
                                        "(digits, spaces and - . ( ) only)")
    for prefix in plan.international:
        if compact.startswith(prefix) and len(compact) > len(prefix):
            return check("+" + compact[len(prefix):])
    if plan.trunk and compact.startswith(plan.trunk):
        return check("+" + plan.country + compact[len(plan.trunk):])
    return check("+" + plan.country + compact)


def rewrite(e164: str, strip_digits: int = 0, prepend: str = "", keep_plus: bool = True) -> str:
    """A gateway's number rewriting of ``e164`` ("+4930123"): the ``+`` removed unless
    ``keep_plus``, then ``strip_digits`` leading digits removed and ``prepend`` put in front
    ("+4930123", 2, "0", False -> "030123")."""
    digits = e164[1:] if e164.startswith("+") else e164
    if strip_digits:
        digits = digits[strip_digits:]
    out = prepend + digits
    if keep_plus and not prepend and e164.startswith("+"):
        out = "+" + out
    return out


def dialled_for(e164: str, gateway: dict) -> str:
    """What a gateway row's rewriting makes of ``e164``."""
    return rewrite(e164, int(gateway.get("strip_digits") or 0), gateway.get("prepend") or "",
                   bool(gateway.get("keep_plus", True)))


def gateway_country(gateway: dict) -> str | None:
    """The country of a gateway's prefixes when they all share one country code."""
    countries = {country_of(p) if len(p) > 1 else None for p in gateway.get("prefixes") or ()}
    return countries.pop() if len(countries) == 1 else None


def interpretations(dialled: str, gateway: dict) -> set[str]:
    """Every E.164 number ``dialled`` may reach when sent to ``gateway``: as given when it has
    its ``+``; else as an international number without the ``+`` and as dialled in the
    country of the gateway's prefixes. Strings that are no valid number in a reading add
    nothing for that reading."""
    if dialled.startswith("+"):
        candidates = [lambda: check(dialled)]
    else:
        candidates = [lambda: check("+" + dialled)]
        country = gateway_country(gateway)
        if country is not None:
            candidates.append(lambda: normalize(dialled, DialPlan.for_country(country)))
    found = set()
    for reading in candidates:
        try:
            found.add(reading())
        except NumberError:
            pass
    return found
