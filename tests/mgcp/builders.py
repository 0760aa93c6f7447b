"""MGCP messages for tests, shaped like the examples of RFC 3435 and RFC 3660, as bytes.

The RFC writes its examples with bare LF line ends; so do these (MGCP takes CRLF or LF).
``lines(...)`` joins text lines; the named builders fill in the RFC's example values
(``aaln/1@rgw-2567.whatever.net``, call id ``A3C47F21456789F0``, request id ``0123456789AC``).
Used by tests/mgcp/ and the fixture gateway (tests/mgcp/fixture_gateway.py).
"""
from __future__ import annotations

GW = "rgw-2567.whatever.net"
LINE = f"aaln/1@{GW}"
CALL_ID = "A3C47F21456789F0"
REQUEST_ID = "0123456789AC"

SDP_GATEWAY = (
    b"v=0\n"
    b"o=- 25678 753849 IN IP4 128.96.41.1\n"
    b"s=-\n"
    b"c=IN IP4 128.96.41.1\n"
    b"t=0 0\n"
    b"m=audio 3456 RTP/AVP 0\n"
)

SDP_CALLGW = (
    b"v=0\r\n"
    b"o=- 4711 1 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 26000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=ptime:20\r\n"
)


def lines(*text: str, sdp: bytes = b"", eol: str = "\n") -> bytes:
    data = (eol.join(text) + eol).encode()
    return data + eol.encode() + sdp if sdp else data


def crcx(tid=1204, endpoint=LINE, call_id=CALL_ID, mode="recvonly", sdp=b"") -> bytes:
    """RFC 3435 2.3.5's CreateConnection example."""
    return lines(f"CRCX {tid} {endpoint} MGCP 1.0", f"C: {call_id}", "L: p:10, a:PCMU",
                 f"M: {mode}", sdp=sdp)


def crcx_ok(tid=1204, connection_id="FDE234C8", z=None, sdp=SDP_GATEWAY, k=False) -> bytes:
    """The gateway's 200 to ``crcx`` with its session description (RFC 3435 2.3.5)."""
    text = [f"200 {tid} OK"] + (["K:"] if k else []) + [f"I: {connection_id}"]
    if z:
        text.append(f"Z: {z}")
    return lines(*text, sdp=sdp)


def dlcx_ok(tid=1210) -> bytes:
    """A 250 with the connection's statistics (RFC 3435 2.3.7's example values)."""
    return lines(f"250 {tid} OK", "P: PS=1245, OS=62345, PR=780, OR=45123, PL=10, JI=27, LA=48")


def rqnt_ring(tid=1201, endpoint=LINE, request_id=REQUEST_ID) -> bytes:
    """Ring the line and watch for off-hook (RFC 3660 line package: S: L/rg, R: L/hd)."""
    return lines(f"RQNT {tid} {endpoint} MGCP 1.0", "N: ca@ca1.whatever.net:5678",
                 f"X: {request_id}", "R: L/hd(N)", "S: L/rg")


def ntfy(tid=2002, endpoint=LINE, request_id=REQUEST_ID, observed="L/hd") -> bytes:
    """RFC 3435 2.3.4's Notify example: the gateway reports what it observed."""
    return lines(f"NTFY {tid} {endpoint} MGCP 1.0", "N: ca@ca1.whatever.net:5678",
                 f"X: {request_id}", f"O: {observed}")


def rsip(tid=1200, endpoint=f"*@{GW}", method="restart", delay=None, reason=None) -> bytes:
    """RFC 3435 2.3.12's RestartInProgress."""
    text = [f"RSIP {tid} {endpoint} MGCP 1.0", f"RM: {method}"]
    if delay is not None:
        text.append(f"RD: {delay}")
    if reason is not None:
        text.append(f"E: {reason}")
    return lines(*text)


def gateway_dlcx(tid=1213, endpoint=LINE, call_id=CALL_ID, connection_id="FDE234C8",
                 reason="900 - Hardware error") -> bytes:
    """RFC 3435 2.3.8: the gateway deletes a connection itself and says why, with statistics."""
    return lines(f"DLCX {tid} {endpoint} MGCP 1.0", f"C: {call_id}", f"I: {connection_id}",
                 f"E: {reason}", "P: PS=1245, OS=62345, PR=780, OR=45123, PL=10, JI=27, LA=48")


def ok(tid, code=200, comment="OK") -> bytes:
    return lines(f"{code:03d} {tid} {comment}".rstrip())
