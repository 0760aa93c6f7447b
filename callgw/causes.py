"""The one release-cause table of callgw: Q.850 cause values and each protocol's codes.

Every leg reports and accepts releases as Q.850 cause values (``Release.cause``); this module
translates them to and from each protocol's own codes. The SIP half follows RFC 3398 sections
7.2.4.1 (Q.850 -> SIP, ISUP to SIP) and 8.2.6.1 (SIP -> Q.850, SIP to ISUP); the RFC 3326
``Reason: Q.850;cause=N`` header, when a peer sends one, wins over the status mapping.

Room for the other stacks: ``register(protocol, to_q850, from_q850, default_code, default_cause)``
adds a protocol's table (MGCP return codes, the client protocol's causes) next to SIP's, and
``to_protocol`` / ``from_protocol`` work for any registered protocol. MGCP has two: its return
codes (RFC 3435 2.4, ``"mgcp"``) and the reason codes of a gateway's DLCX and RSIP (2.5,
``"mgcp-reason"``).

Tests: tests/sip/test_causes.py, tests/mgcp/test_leg.py.
"""
from __future__ import annotations

import re

#: Q.850 cause values and their ITU names (the subset callgw meets in practice).
Q850_NAMES: dict[int, str] = {
    1: "Unallocated (unassigned) number",
    2: "No route to specified transit network",
    3: "No route to destination",
    6: "Channel unacceptable",
    16: "Normal call clearing",
    17: "User busy",
    18: "No user responding",
    19: "No answer from user (user alerted)",
    20: "Subscriber absent",
    21: "Call rejected",
    22: "Number changed",
    23: "Redirection to new destination",
    25: "Exchange routing error",
    26: "Non-selected user clearing",
    27: "Destination out of order",
    28: "Invalid number format (address incomplete)",
    29: "Facility rejected",
    31: "Normal, unspecified",
    34: "No circuit/channel available",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    47: "Resource unavailable, unspecified",
    55: "Incoming calls barred within CUG",
    57: "Bearer capability not authorized",
    58: "Bearer capability not presently available",
    63: "Service or option not available, unspecified",
    65: "Bearer capability not implemented",
    70: "Only restricted digital information bearer capability is available",
    79: "Service or option not implemented, unspecified",
    87: "User not member of CUG",
    88: "Incompatible destination",
    102: "Recovery on timer expiry",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}

NORMAL_CLEARING = 16
USER_BUSY = 17
NO_USER_RESPONDING = 18
NO_ANSWER = 19
CALL_REJECTED = 21
TEMPORARY_FAILURE = 41
RECOVERY_ON_TIMER_EXPIRY = 102
PROTOCOL_ERROR = 111
INTERWORKING = 127

# RFC 3398 section 8.2.6.1: SIP final response -> Q.850 cause.
# 487 is not in RFC 3398 (it answers a CANCEL): it maps to 127 as most gateways do.
SIP_TO_Q850: dict[int, int] = {
    400: 41, 401: 21, 402: 21, 403: 21, 404: 1, 405: 63, 406: 79, 407: 21,
    408: 102, 410: 22, 413: 127, 414: 28, 415: 79, 416: 127, 420: 127, 421: 127,
    423: 127, 480: 18, 481: 41, 482: 25, 483: 25, 484: 28, 485: 1, 486: 17,
    487: 127, 488: 127, 500: 41, 501: 79, 502: 38, 503: 41, 504: 102, 505: 127,
    513: 127, 600: 17, 603: 21, 604: 1, 606: 58,
}

# RFC 3398 section 7.2.4.1: Q.850 cause -> SIP final response. Cause 16 is a BYE or CANCEL
# in the RFC, not a response; when a response is needed anyway we answer 480.
Q850_TO_SIP: dict[int, int] = {
    1: 404, 2: 404, 3: 404, 16: 480, 17: 486, 18: 408, 19: 480, 20: 480,
    21: 403, 22: 410, 23: 410, 26: 404, 27: 502, 28: 484, 29: 501, 31: 480,
    34: 503, 38: 503, 41: 503, 42: 503, 47: 503, 55: 403, 57: 403, 58: 503,
    65: 488, 70: 488, 79: 501, 87: 403, 88: 503, 102: 504, 111: 500, 127: 500,
}

SIP_REASONS: dict[int, str] = {
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
    485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


class _Table:
    """One protocol's codes mapped both ways, with defaults for unknown values."""

    __slots__ = ("to_q850", "from_q850", "default_code", "default_cause", "classify")

    def __init__(self, to_q850, from_q850, default_code, default_cause, classify=None):
        self.to_q850 = dict(to_q850)
        self.from_q850 = dict(from_q850)
        self.default_code = default_code
        self.default_cause = default_cause
        self.classify = classify


_TABLES: dict[str, _Table] = {}


def register(protocol, to_q850, from_q850, default_code, default_cause=INTERWORKING,
             classify=None):
    """Add (or replace) ``protocol``'s table.

    ``to_q850`` maps the protocol's codes to Q.850 causes, ``from_q850`` the other way;
    ``default_code`` answers an unmapped cause and ``default_cause`` an unmapped code;
    ``classify(code)``, when given, maps an unknown code to a known one first (SIP's x00 rule).
    """
    _TABLES[protocol] = _Table(to_q850, from_q850, default_code, default_cause, classify)


def to_protocol(protocol, cause):
    """The ``protocol`` code for Q.850 ``cause``."""
    table = _TABLES[protocol]
    code = table.from_q850.get(cause)
    return table.default_code if code is None else code


def from_protocol(protocol, code):
    """The Q.850 cause for ``protocol``'s ``code``."""
    table = _TABLES[protocol]
    cause = table.to_q850.get(code)
    if cause is None and table.classify is not None:
        cause = table.to_q850.get(table.classify(code))
    return table.default_cause if cause is None else cause


def _sip_class(status):
    # RFC 3261 section 8.1.3.2: an unknown status is treated as its class's x00.
    return (status // 100) * 100


register("sip", SIP_TO_Q850, Q850_TO_SIP, default_code=500, default_cause=INTERWORKING,
         classify=_sip_class)


def sip_to_q850(status: int) -> int:
    """Q.850 cause for a SIP final status (RFC 3398 section 8.2.6.1; unknown -> class x00)."""
    return from_protocol("sip", status)


def q850_to_sip(cause: int) -> int:
    """SIP final status for a Q.850 cause (RFC 3398 section 7.2.4.1; unknown -> 500)."""
    status = Q850_TO_SIP.get(cause)
    if status is None:
        # RFC 3398 7.2.4.1: causes of the normal class not listed -> 480, others -> 500.
        return 480 if cause < 32 else 500
    return status


def sip_reason(status: int) -> str:
    """The usual reason phrase for a SIP status."""
    return SIP_REASONS.get(status, "Unknown")


def cause_text(cause: int) -> str:
    """The Q.850 name of ``cause`` (for logs and CDRs)."""
    return Q850_NAMES.get(cause, f"Cause {cause}")


_REASON_RE = re.compile(r'^\s*Q\.850\s*;(?:.*?;)?\s*cause\s*=\s*(\d+)', re.I)


def parse_reason_header(value: str | None) -> int | None:
    """The Q.850 cause in an RFC 3326 ``Reason`` header value, or None."""
    if not value:
        return None
    for part in value.split(","):
        match = _REASON_RE.match(part)
        if match:
            return int(match.group(1))
    return None


def reason_header(cause: int) -> str:
    """An RFC 3326 ``Reason`` header value for Q.850 ``cause``."""
    return f'Q.850;cause={cause};text="{cause_text(cause)}"'


# -- the client protocol's causes (call path, issue 5) -------------------------------------------
# protocols/client/messages.py CAUSES <-> Q.850. Q.850 -> client: the cause words of
# ``disconnected``; a cause not listed maps by class (normal class < 32 -> "normal", else
# "server-error", see ``client_cause``). Client -> Q.850: a client's ``reject`` cause.
Q850_TO_CLIENT: dict[int, str] = {
    16: "normal", 31: "normal", 17: "busy", 18: "no-answer", 19: "no-answer",
    20: "unreachable", 21: "rejected", 1: "invalid-number", 22: "invalid-number",
    28: "invalid-number", 2: "unreachable", 3: "unreachable", 27: "unreachable",
    38: "network-error", 41: "network-error", 34: "congestion", 42: "congestion",
    47: "congestion", 58: "congestion", 102: "timeout", 111: "server-error",
    127: "server-error", 55: "unauthorized", 57: "unauthorized", 87: "unauthorized",
}
CLIENT_TO_Q850: dict[str, int] = {
    "normal": 16, "busy": 17, "no-answer": 19, "rejected": 21, "unreachable": 3,
    "congestion": 34, "invalid-number": 28, "unauthorized": 21, "cancelled": 16,
    "timeout": 102, "media-timeout": 41, "network-error": 41, "server-error": 41,
}
register("client", CLIENT_TO_Q850, Q850_TO_CLIENT, default_code="server-error",
         default_cause=NORMAL_CLEARING)


def client_cause(cause: int) -> str:
    """The client protocol's ``disconnected`` cause for Q.850 ``cause``."""
    word = Q850_TO_CLIENT.get(cause)
    if word is None:
        return "normal" if cause < 32 else "server-error"
    return word


# -- MGCP (RFC 3435 2.4 return codes, 2.5 reason codes; the MGCP leg, issue 14) ------------------
# A command the gateway refused ends the call with the Q.850 cause of its return code: a busy
# line (401) is "user busy"; no free or known endpoint (410, 500, 503, 540) and missing resources
# (403, 502, 526) are causes the call handler fails over on; an unreadable or unsupported
# exchange is a protocol error or "incompatible destination". A code not listed maps by class
# (4xx -> 41, 5xx/8xx -> 127, see ``_mgcp_class``).
MGCP_TO_Q850: dict[int, int] = {
    400: 41, 401: 17, 402: 18, 403: 47, 404: 47, 405: 41, 406: 102, 407: 31, 409: 42,
    410: 34, 500: 3, 501: 27, 502: 47, 503: 34, 504: 79, 505: 88, 506: 88, 507: 79,
    508: 111, 509: 88, 510: 111, 511: 111, 512: 79, 513: 79, 514: 79, 515: 41, 516: 41,
    517: 88, 518: 79, 519: 111, 520: 41, 521: 41, 522: 79, 523: 111, 524: 88, 525: 88,
    526: 47, 527: 111, 528: 111, 529: 38, 530: 111, 531: 38, 532: 88, 533: 127, 534: 88,
    535: 88, 536: 111, 537: 111, 538: 111, 539: 111, 540: 34, 541: 88,
}
# What callgw answers a gateway's command with when a call's cause must be said in MGCP.
Q850_TO_MGCP: dict[int, int] = {
    16: 200, 17: 401, 18: 402, 34: 410, 38: 529, 41: 400, 42: 409, 47: 403, 102: 406,
    111: 510, 127: 510,
}
#: RFC 3435 2.5: the gateway's reason code (``E:`` of its DLCX, of RSIP) -> Q.850.
MGCP_REASON_TO_Q850: dict[int, int] = {
    0: 16, 900: 38, 901: 27, 902: 38, 903: 47, 904: 16, 905: 38,
}
Q850_TO_MGCP_REASON: dict[int, int] = {16: 0, 27: 901, 38: 902, 47: 903}


def _mgcp_class(code):
    if 400 <= code < 500:
        return 400
    return 533 if code >= 500 else code


register("mgcp", MGCP_TO_Q850, Q850_TO_MGCP, default_code=400, default_cause=INTERWORKING,
         classify=_mgcp_class)
register("mgcp-reason", MGCP_REASON_TO_Q850, Q850_TO_MGCP_REASON, default_code=900,
         default_cause=TEMPORARY_FAILURE)


def mgcp_to_q850(code: int) -> int:
    """Q.850 cause for an MGCP return code (RFC 3435 2.4; unknown: by class)."""
    return from_protocol("mgcp", code)


def mgcp_reason_to_q850(code: int | None) -> int:
    """Q.850 cause for an MGCP reason code (RFC 3435 2.5; None or unknown: 41)."""
    return TEMPORARY_FAILURE if code is None else from_protocol("mgcp-reason", code)


# -- H.323 (issue 15) ------------------------------------------------------------------------------
# H.323 gateways speak Q.850 causes natively (the Q.931 Cause IE); what needs a table is
# H.225.0's ReleaseCompleteReason (table 5, for a ReleaseComplete without a Cause IE, and the
# reason we add to ours) and RAS AdmissionRejectReason (why a gatekeeper refused a call). The
# tables are H.225.0 facts kept by the stack (protocols/h323); they are registered here so that
# ``from_protocol("h323", reason)`` / ``to_protocol("h323", cause)`` work like SIP's.
def _register_h323():
    from protocols.h323 import causes as h323
    register("h323", h323.REASON_TO_CAUSE, h323.CAUSE_TO_REASON,
             default_code="undefinedReason", default_cause=31)
    register("h323-ras", h323.ARJ_CAUSE, {}, default_code="undefinedReason", default_cause=31)


_register_h323()

Q850_NAMES.update({
    30: "Response to STATUS ENQUIRY",
    49: "Quality of service not available",
    81: "Invalid call reference value",
    97: "Message type non-existent or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
})
