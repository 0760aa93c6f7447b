"""rtpengine's ng control protocol, sans-I/O: bencode, cookies, offer/answer/delete, statistics.

Owns the ng protocol as rtpengine documents it (rtpengine's README, "The NG Control Protocol"):
each request is one UDP datagram ``<cookie> <bencoded dictionary>``, the reply repeats the
cookie; a retransmission with the same cookie gets the same reply (rtpengine detects the
duplicate). Bencoding is BitTorrent's (BEP 3, "bencoding"): integers ``i42e``, byte strings
``4:spam``, lists ``l...e`` and dictionaries ``d...e`` with sorted keys.

``NgCodec`` makes request datagrams (``request(message) -> (cookie, datagram)``) and matches
replies (``reply(datagram) -> (cookie, dict)``, ``NgError`` for a malformed one); timers and
sockets belong to the adapter (callgw/media/rtpengine.py). ``offer``/``answer``/``delete``
build the three call messages; ``result(reply)`` raises ``NgError`` with rtpengine's
``error-reason`` when the result is not ``ok``; ``query`` asks for a live call's statistics;
``media_stats(reply)`` turns a ``delete`` or ``query`` reply into per-direction
packets/bytes/errors by tag, with the quality rtpengine derived from RTCP per SSRC when it has
any (its ``SSRC`` dictionary: ``average MOS`` with MOS x 10, jitter in ms, packet loss in
percent, round-trip time in microseconds; rtpengine 10.5 forwarding in userspace leaves it
empty, measured with and without RTCP from both ends).

Tests: tests/media/test_ng_codec.py.
"""
from __future__ import annotations

import itertools
import os

__all__ = ["NgError", "bencode", "bdecode", "NgCodec", "offer", "answer", "delete", "query",
           "result", "media_stats"]


class NgError(ValueError):
    """A malformed ng datagram, or rtpengine answered ``error``."""


def bencode(value) -> bytes:
    """BEP 3 bencoding of ints, str/bytes, lists/tuples and dicts with str/bytes keys."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes):
    """The value of one whole bencoded ``data``; dictionary keys and strings stay bytes
    except keys, which are decoded as UTF-8. Raises ``NgError`` when malformed."""
    try:
        value, end = _decode(data, 0, 0)
    except (ValueError, IndexError, RecursionError) as exc:
        raise NgError(f"malformed bencoding: {exc}") from None
    if end != len(data):
        raise NgError(f"malformed bencoding: {len(data) - end} bytes after the value")
    return value


def _decode(data: bytes, i: int, depth: int):
    if depth > 32:
        raise ValueError("nested too deep")
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c in (b"l", b"d"):
        items, i = [], i + 1
        while data[i:i + 1] != b"e":
            if i >= len(data):
                raise ValueError("unterminated container")
            item, i = _decode(data, i, depth + 1)
            items.append(item)
        if c == b"l":
            return items, i + 1
        if len(items) % 2 or not all(isinstance(k, bytes) for k in items[::2]):
            raise ValueError("dictionary keys must be strings")
        return {items[k].decode("utf-8", "replace"): items[k + 1]
                for k in range(0, len(items), 2)}, i + 1
    if not c.isdigit():
        raise ValueError(f"unexpected byte {c!r} at {i}")
    colon = data.index(b":", i)
    n = int(data[i:colon])
    if colon + 1 + n > len(data):
        raise ValueError("string runs past the end")
    return data[colon + 1:colon + 1 + n], colon + 1 + n


class NgCodec:
    """Cookies and datagrams of one ng client (no I/O)."""

    def __init__(self, prefix: bytes | None = None):
        self.prefix = prefix if prefix is not None else os.urandom(4).hex().encode()
        self._counter = itertools.count(1)

    def request(self, message: dict) -> tuple[bytes, bytes]:
        cookie = b"%s_%d" % (self.prefix, next(self._counter))
        return cookie, cookie + b" " + bencode(message)

    @staticmethod
    def reply(datagram: bytes) -> tuple[bytes, dict]:
        cookie, sep, body = datagram.partition(b" ")
        if not sep or not cookie:
            raise NgError("no cookie in the reply")
        value = bdecode(body)
        if not isinstance(value, dict):
            raise NgError("the reply is not a dictionary")
        return cookie, value


_FLAGS = {"replace": ["origin", "session-connection"], "ICE": "remove"}


def offer(call_id: str, from_tag: str, sdp: bytes) -> dict:
    """An ``offer``: rtpengine rewrites ``sdp`` with its own address for the answerer."""
    return dict(_FLAGS, command="offer", **{"call-id": call_id, "from-tag": from_tag,
                                            "sdp": sdp})


def answer(call_id: str, from_tag: str, to_tag: str, sdp: bytes) -> dict:
    """An ``answer``: rtpengine rewrites the answerer's ``sdp`` for the offerer."""
    return dict(_FLAGS, command="answer", **{"call-id": call_id, "from-tag": from_tag,
                                             "to-tag": to_tag, "sdp": sdp})


def delete(call_id: str, from_tag: str) -> dict:
    """A ``delete`` of the call its offerer ``from_tag`` made; the reply holds the call's
    statistics (rtpengine 10.5 answers a ``delete`` without a tag with a bare ``ok``)."""
    return {"command": "delete", "call-id": call_id, "from-tag": from_tag}


def query(call_id: str) -> dict:
    """A ``query``: the call's statistics so far, in the shape of a ``delete`` reply."""
    return {"command": "query", "call-id": call_id}


def result(reply: dict) -> dict:
    """``reply`` when its result is ``ok`` (``pong`` for a ping); else ``NgError`` with
    rtpengine's reason."""
    outcome = reply.get("result")
    if outcome not in (b"ok", b"pong"):
        reason = reply.get("error-reason", reply.get("warning", b"no reason given"))
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise NgError(f"rtpengine answered {outcome!r}: {reason}")
    return reply


def _num(value) -> int:
    return value if isinstance(value, int) else 0


def media_stats(reply: dict) -> dict:
    """Per tag (the side that sent it), what rtpengine received over RTP and RTCP:
    ``{"tags": {tag: {"rtp": {packets, bytes, errors}, "rtcp": {...},
    "endpoint": "addr:port", "local": "addr:port", "ssrc": N, "quality": {...}}},
    "totals": {"rtp": ..., "rtcp": ...}}``; ``quality`` (``mos``, ``jitter_ms``, ``loss`` as
    a fraction, ``rtt_ms``) only when rtpengine reported the side's SSRC."""
    out: dict = {"tags": {}, "totals": {}}
    quality = _ssrc_quality(reply.get("SSRC"))
    totals = reply.get("totals")
    if isinstance(totals, dict):
        for name in ("RTP", "RTCP"):
            part = totals.get(name)
            if isinstance(part, dict):
                out["totals"][name.lower()] = {k: _num(part.get(k))
                                               for k in ("packets", "bytes", "errors")}
    tags = reply.get("tags")
    for tag, info in (tags.items() if isinstance(tags, dict) else ()):
        side: dict = {"rtp": {"packets": 0, "bytes": 0, "errors": 0},
                      "rtcp": {"packets": 0, "bytes": 0, "errors": 0}}
        for media in info.get("medias", []) if isinstance(info, dict) else []:
            for stream in media.get("streams", []) if isinstance(media, dict) else []:
                if not isinstance(stream, dict):
                    continue
                flags = stream.get("flags", [])
                kind = "rtcp" if b"RTCP" in flags else "rtp"
                for k in ("packets", "bytes", "errors"):
                    side[kind][k] += _num(stream.get("stats", {}).get(k))
                if kind == "rtp":
                    ssrc = stream.get("SSRC")
                    if isinstance(ssrc, int):
                        side["ssrc"] = ssrc
                        if ssrc in quality:
                            side["quality"] = quality[ssrc]
                    endpoint = stream.get("endpoint", {})
                    if isinstance(endpoint, dict) and "address" in endpoint:
                        side["endpoint"] = "%s:%d" % (
                            endpoint["address"].decode("ascii", "replace"),
                            _num(endpoint.get("port")))
                    if "local address" in stream:
                        side["local"] = "%s:%d" % (
                            stream["local address"].decode("ascii", "replace"),
                            _num(stream.get("local port")))
        out["tags"][tag] = side
    return out


def _ssrc_quality(section) -> dict:
    """``{ssrc: {mos, jitter_ms, loss, rtt_ms}}`` from a reply's ``SSRC`` dictionary (the
    ``average MOS`` of each SSRC rtpengine has RTCP reports about)."""
    out: dict = {}
    for key, entry in (section.items() if isinstance(section, dict) else ()):
        average = entry.get("average MOS") if isinstance(entry, dict) else None
        if not isinstance(average, dict) or not str(key).isdigit():
            continue
        mos = average.get("MOS")
        if not isinstance(mos, int) or mos <= 0:
            continue
        out[int(key)] = {"mos": round(mos / 10.0, 2),
                         "jitter_ms": float(_num(average.get("jitter"))),
                         "loss": round(_num(average.get("packet loss")) / 100.0, 5),
                         "rtt_ms": round(_num(average.get("round-trip time")) / 1000.0, 2)}
    return out
