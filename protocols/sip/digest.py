"""Digest authentication for a SIP client: read a challenge, write the credentials.

Owns RFC 3261 section 22 (22.2 user-to-user and 22.3 proxy-to-user authentication, 22.4 the
digest scheme and its differences from HTTP), RFC 2617 section 3 (request-digest, A1 and A2,
qop=auth / auth-int, MD5-sess, and the RFC 2069 form with no qop), RFC 7616 (SHA-256,
SHA-256-sess, SHA-512-256 and their -sess forms, algorithm names) and RFC 8760 (those
algorithms in SIP; a UAC picks the strongest challenge it supports).

Pure: the client nonce comes in as an argument (``cnonce``), so the RFC worked examples are
reproducible; the caller makes a random one (``secrets.token_hex(8)``). ``DigestError`` is
raised for a challenge we cannot answer (not Digest, unknown algorithm, no usable qop).

Tests: tests/sip/test_digest.py.
"""
from __future__ import annotations

import hashlib

__all__ = ["DigestError", "Challenge", "parse_challenge", "authorization", "best_challenge",
           "ALGORITHMS"]


def _hasher(name: str):
    def digest(data: str) -> str:
        return hashlib.new(name, data.encode("utf-8")).hexdigest()
    return digest


# Algorithm name (upper case, as in RFC 7616 3.3 / RFC 8760 2.1) -> hash; strongest first.
ALGORITHMS = {"SHA-512-256": _hasher("sha512_256"), "SHA-256": _hasher("sha256"),
              "MD5": _hasher("md5")}


class DigestError(ValueError):
    """A challenge this client cannot answer."""


class Challenge:
    """One Digest challenge (WWW-Authenticate or Proxy-Authenticate value, RFC 2617 3.2.1).

    ``algorithm`` is upper-cased with any ``-sess`` suffix kept ("MD5" when absent); ``qop`` the
    list of offered qop values (empty for an RFC 2069 challenge); ``stale`` a bool.
    """

    __slots__ = ("realm", "nonce", "algorithm", "qop", "opaque", "stale", "params")

    def __init__(self, realm: str, nonce: str, algorithm: str = "MD5", qop=(), opaque=None,
                 stale: bool = False, params=None):
        self.realm = realm
        self.nonce = nonce
        self.algorithm = algorithm
        self.qop = list(qop)
        self.opaque = opaque
        self.stale = stale
        self.params = {} if params is None else params

    def __repr__(self) -> str:
        return (f"Challenge(realm={self.realm!r}, nonce={self.nonce!r}, "
                f"algorithm={self.algorithm!r}, qop={self.qop!r}, stale={self.stale!r})")


def _auth_params(text: str) -> dict:
    """Parse ``a=b, c="d, e"`` auth-params (RFC 2617 1.2); names lower-cased, quotes removed."""
    params, i, n = {}, 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise DigestError("Bad auth-param")
        name = text[i:eq].strip().lower()
        if not name or any(c in name for c in ' \t,"'):
            raise DigestError("Bad auth-param name")
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            out, i = [], i + 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise DigestError("Unterminated quoted string in challenge")
            value = "".join(out)
            i += 1
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            value = text[i:end].strip()
            i = end
        params[name] = value
    return params


def parse_challenge(header_value: str) -> Challenge:
    """Parse a WWW-Authenticate / Proxy-Authenticate value; raises ``DigestError``."""
    if not isinstance(header_value, str):
        raise DigestError("Challenge is not text")
    scheme, _, rest = header_value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"Unsupported authentication scheme {scheme!r}")
    params = _auth_params(rest)
    realm, nonce = params.get("realm"), params.get("nonce")
    if realm is None or not nonce:
        raise DigestError("Digest challenge without realm or nonce")
    algorithm = params.get("algorithm", "MD5").upper()
    base = algorithm[:-5] if algorithm.endswith("-SESS") else algorithm
    if base not in ALGORITHMS:
        raise DigestError(f"Unsupported digest algorithm {algorithm!r}")
    qop = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
    return Challenge(realm, nonce, algorithm, qop, params.get("opaque"),
                     params.get("stale", "").lower() == "true", params)


def best_challenge(header_values) -> Challenge:
    """Of several challenges (RFC 8760 2.4), the one with the strongest supported algorithm.

    Raises ``DigestError`` when none can be answered.
    """
    order = list(ALGORITHMS)
    found = []
    for value in header_values:
        try:
            found.append(parse_challenge(value))
        except DigestError:
            continue
    if not found:
        raise DigestError("No Digest challenge this client supports")
    return min(found, key=lambda c: order.index(c.algorithm.replace("-SESS", "")))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization(challenge: Challenge, method: str, uri: str, username: str, password: str,
                  cnonce: str, nc: int = 1, body: bytes = b"") -> str:
    """The Authorization / Proxy-Authorization value answering ``challenge`` (RFC 2617 3.2.2).

    ``uri`` is the Request-URI as sent (RFC 3261 22.4: the digest-uri). qop=auth is used when
    offered, else auth-int (hashing ``body``), else the RFC 2069 form with no qop, nc and cnonce.
    """
    algorithm = challenge.algorithm
    sess = algorithm.endswith("-SESS")
    h = ALGORITHMS.get(algorithm[:-5] if sess else algorithm)
    if h is None:
        raise DigestError(f"Unsupported digest algorithm {algorithm!r}")
    if not challenge.qop:
        qop = None
    elif "auth" in challenge.qop:
        qop = "auth"
    elif "auth-int" in challenge.qop:
        qop = "auth-int"
    else:
        raise DigestError("No supported qop in challenge")
    a1 = h(f"{username}:{challenge.realm}:{password}")
    if sess:
        a1 = h(f"{a1}:{challenge.nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + (hashlib.new(_HASH_NAMES[h], body).hexdigest())
    ha2 = h(a2)
    nc_text = f"{nc:08x}"
    if qop is None:
        response = h(f"{a1}:{challenge.nonce}:{ha2}")
    else:
        response = h(f"{a1}:{challenge.nonce}:{nc_text}:{cnonce}:{qop}:{ha2}")
    parts = [f"username={_quote(username)}", f"realm={_quote(challenge.realm)}",
             f"nonce={_quote(challenge.nonce)}", f"uri={_quote(uri)}",
             f"response={_quote(response)}", f"algorithm={_ALGORITHM_SPELLING[algorithm]}"]
    if qop is not None:
        parts += [f"cnonce={_quote(cnonce)}", f"qop={qop}", f"nc={nc_text}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


_HASH_NAMES = {ALGORITHMS["MD5"]: "md5", ALGORITHMS["SHA-256"]: "sha256",
               ALGORITHMS["SHA-512-256"]: "sha512_256"}
_ALGORITHM_SPELLING = {}
for _name in ALGORITHMS:
    _ALGORITHM_SPELLING[_name] = _name
    _ALGORITHM_SPELLING[_name + "-SESS"] = _name + "-sess"
