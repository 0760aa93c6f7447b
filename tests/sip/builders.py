"""Message builders for SIP tests: call-flow-shaped requests and responses as bytes.

Tests read like RFC 3261's call flows: ``invite()`` gives a typical INVITE with SDP,
``response_to(req, 200)`` the matching answer. Used by tests/sip/ and bench/sip_parse.py.
"""
from __future__ import annotations

SDP_OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)


def request(method="INVITE", uri="sip:+12125551212@gw.example.net", *, branch="z9hG4bK776asdhds",
            call_id="a84b4c76e66710@pc33.example.com", cseq=1, from_tag="1928301774",
            to_tag=None, body=b"", extra=(), max_forwards=70, via_host="192.0.2.10:5060",
            transport="UDP") -> bytes:
    """A request as bytes with the mandatory headers (RFC 3261 8.1.1)."""
    to = "<sip:+12125551212@gw.example.net>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {via_host};branch={branch};rport",
        f"Max-Forwards: {max_forwards}",
        f"To: {to}",
        f'From: "Alice" <sip:+4930123456@callgw.example.com>;tag={from_tag}',
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:callgw@192.0.2.10:5060;transport=udp>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.extend(f"{n}: {v}" for n, v in extra)
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def invite(**kw) -> bytes:
    """A typical outbound INVITE with an audio offer."""
    kw.setdefault("body", SDP_OFFER)
    kw.setdefault("extra", (("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),
                            ("Supported", "timer"), ("User-Agent", "callgw/0.1")))
    return request("INVITE", **kw)


def ok_200(body=SDP_OFFER, to_tag="a6c85cf") -> bytes:
    """A typical 200 OK answering ``invite()``."""
    lines = [
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10",
        "To: <sip:+12125551212@gw.example.net>;tag=" + to_tag,
        'From: "Alice" <sip:+4930123456@callgw.example.com>;tag=1928301774',
        "Call-ID: a84b4c76e66710@pc33.example.com",
        "CSeq: 1 INVITE",
        "Contact: <sip:gw@198.51.100.7:5060>",
        "Record-Route: <sip:proxy.example.net;lr>",
        "Content-Type: application/sdp",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
