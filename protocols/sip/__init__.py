"""SIP for callgw: a sans-I/O stack (RFC 3261 and friends) plus a thin Twisted adapter.

Message level (this package's pure codec modules): ``uri`` (SIP/SIPS/tel URIs), ``headers``
(the header multi-dict, Via, name-addr, CSeq), ``message`` (parse/serialize, stream framing,
responses), ``sdp`` (RFC 4566 / 3264 audio offer-answer) and ``digest`` (RFC 3261 section 22
digest authentication). See docs/protocols/sip.md. Transactions, dialogs and the adapter live
beside them (docs/protocols/sip-sessions.md).

Tests: tests/sip/.
"""
