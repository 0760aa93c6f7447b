"""The SIP port as a UAS core for requests outside our dialogs (RFC 3261 section 8.2).

A sans-I/O core: ``UasCore.handle(request, source, now)`` returns a ``Response`` to send (through
a server transaction the adapter makes) or None (drop: an ACK, a rate-limited source). The checks
run in the RFC's order: 8.2.1 method inspection (405 with Allow), 8.2.2.1 Request-URI scheme (416),
8.2.2.3 Require (420 with Unsupported; not for ACK or CANCEL), 8.2.3 content (415 with Accept and
Accept-Encoding), then 12.2.2 (a To tag naming no dialog of ours: 481) and the methods: OPTIONS
gets 200 with Allow, Accept and Supported (11.2); an INVITE gets 403 until inbound calls exist;
BYE and CANCEL for nothing we know get 481. Malformed requests get the parser's status (400
with a reason phrase naming the fault, 505 for a bad version): ``bad_request_response`` builds
that answer from the raw bytes when the parser gave up. Responses are never answered (8.1.3.5
drops them at the adapter). Every source address is rate-limited by a token bucket.
``screen`` runs the same checks (8.2.1-8.2.3) alone, for an INVITE the adapter offers to its
inbound-call hook (a ``protocols.sip.uas_session.UasSession`` answers it then).

Not done: merged-request detection (8.2.2.2, 482), Request-URI ownership (404).

Tests: tests/sip/test_uas.py.
"""
from __future__ import annotations

import os
import re

from protocols.sip.message import Headers, Response, make_response
from protocols.sip.uri import AbsoluteURI

ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS")
ACCEPT = ("application/sdp",)
SUPPORTED = ()


class RateLimiter:
    """A token bucket per source host: ``rate`` requests per second, bursts of ``burst``.

    ``allow(source, now)`` takes ``now`` from the caller (no clock here). The table is bounded:
    when it holds ``max_sources`` entries, idle (full) buckets are dropped.
    """

    __slots__ = ("rate", "burst", "max_sources", "_buckets")

    def __init__(self, rate=200.0, burst=400.0, max_sources=10000):
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets = {}

    def allow(self, source, now):
        """True when ``source`` may send one more request at ``now``."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._prune(now)
            self._buckets[source] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prune(self, now):
        full = [s for s, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for source in full:
            del self._buckets[source]
        if len(self._buckets) >= self.max_sources:
            self._buckets.clear()


def _token():
    return os.urandom(6).hex()


class UasCore:
    """Answers requests that belong to no dialog and no transaction of ours."""

    def __init__(self, allow=ALLOW, accept=ACCEPT, supported=SUPPORTED, limiter=None,
                 token=_token, user_agent="callgw"):
        self.allow = frozenset(allow)
        self.allow_header = ", ".join(allow)
        self.accept = frozenset(a.lower() for a in accept)
        self.accept_header = ", ".join(accept)
        self.supported = frozenset(s.lower() for s in supported)
        self.supported_header = ", ".join(supported)
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.token = token
        self.user_agent = user_agent

    def screen(self, request, source, now):
        """The checks of 8.2.1-8.2.3 (and the rate limit) for a request some other core may
        serve (an inbound INVITE): ``("drop", None)``, ``("answer", response)`` when a check
        failed, or ``("pass", None)``."""
        if not self.limiter.allow(source, now):
            return "drop", None
        failure = self._check(request)
        return ("answer", failure) if failure is not None else ("pass", None)

    def _check(self, request):
        method = request.method
        if method not in self.allow:                                     # 8.2.1
            return self._answer(request, 405, [("Allow", self.allow_header)])
        if isinstance(request.request_uri, AbsoluteURI):                  # 8.2.2.1
            return self._answer(request, 416)
        if method != "CANCEL":                                            # 8.2.2.3
            unsupported = [o for o in request.headers.get_all("Require")
                           if o.strip().lower() not in self.supported]
            if unsupported:
                return self._answer(request, 420, [("Unsupported", ", ".join(unsupported))])
        return self._content(request)                                     # 8.2.3

    def handle(self, request, source, now):
        """The response to an out-of-dialog ``request`` from ``source`` (host), or None."""
        if not self.limiter.allow(source, now):
            return None
        method = request.method
        if method == "ACK":
            return None
        failure = self._check(request)
        if failure is not None:
            return failure
        if request.to_tag is not None:                                    # 12.2.2
            return self._answer(request, 481)
        if method == "OPTIONS":                                           # 11.2
            extra = [("Allow", self.allow_header), ("Accept", self.accept_header),
                     ("Accept-Encoding", "identity"), ("Accept-Language", "en")]
            if self.supported_header:
                extra.append(("Supported", self.supported_header))
            else:
                extra.append(("Supported", ""))
            return self._answer(request, 200, extra)
        if method == "INVITE":
            return self._answer(request, 403, reason="Inbound calls not served")
        return self._answer(request, 481)                                  # BYE, CANCEL

    def _content(self, request):
        if not request.body:
            return None
        ctype = request.headers.get("Content-Type")
        if ctype is None or ctype.split(";", 1)[0].strip().lower() not in self.accept:
            return self._answer(request, 415, [("Accept", self.accept_header),
                                               ("Accept-Encoding", "identity")])
        encoding = request.headers.get("Content-Encoding")
        if encoding and encoding.strip().lower() != "identity":
            return self._answer(request, 415, [("Accept-Encoding", "identity"),
                                               ("Accept", self.accept_header)])
        return None

    def _answer(self, request, status, extra=(), reason=None):
        extra = list(extra) + [("Server", self.user_agent)]
        return make_response(request, status, reason, to_tag=self.token(), headers=extra)


_COPY = ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")
_LINE_RE = re.compile(rb"\r?\n")


def bad_request_response(data, error, to_tag=None):
    """A response to a request the parser rejected with ``error`` (a ``SipParseError``).

    Copies the Via, From, To, Call-ID and CSeq lines it can find (8.2.6.2 needs them); returns
    None when ``data`` is a response or an ACK, or when there is no Via to send an answer to.
    """
    head = bytes(data[:8192]).lstrip(b"\r\n")
    if head[:4] in (b"SIP/", b"ACK "):        # a response, or an ACK: never answered
        return None
    end = head.find(b"\r\n\r\n")
    lines = _LINE_RE.split(head if end < 0 else head[:end])
    pairs = []
    for raw in lines[1:]:
        name, colon, value = raw.partition(b":")
        if not colon:
            continue
        key = name.strip().lower().decode("latin-1")
        if key in _COPY:
            text = value.strip().decode("utf-8", "replace")
            if key in ("to", "t") and to_tag and ";tag=" not in text.replace(" ", ""):
                text += f";tag={to_tag}"
            pairs.append((key, text))
    if not any(k in ("via", "v") for k, _ in pairs):
        return None
    try:
        headers = Headers(pairs)
    except Exception:  # noqa: BLE001 - a name we cannot even normalize: give up answering
        return None
    return Response(error.status, error.reason, headers)
