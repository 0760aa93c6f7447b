"""Session tokens of the client protocol: HMAC-SHA256 signed, expiring, with key rotation.

Owned by the client protocol; the spec is docs/protocol.md ("Tokens"). A token is

    v1.<kid>.<payload>.<mac>

``kid`` names the signing key; ``payload`` is base64url of compact JSON
``{"u": user, "iat": issued, "exp": expires}`` (integer seconds); ``mac`` is base64url of
HMAC-SHA256(key[kid], "v1.<kid>.<payload>"). The signer signs with its current key and accepts
the current and the previous keys (rotation by configuration: add a new current key, keep the
old one as previous until its tokens expired, then drop it). Clients treat tokens as opaque.

Time is always passed in (``now``, seconds). Tests: tests/client_proto/test_tokens.py.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from protocols.client.errors import AuthCode, RemoteProtocolError
from protocols.client.messages import FieldError, b64d, b64e

PREFIX = "v1"
KID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
MIN_KEY = 32
MAX_FUTURE = 300        # seconds a token's "iat" may lie ahead (clock skew between nodes)


class TokenError(RemoteProtocolError):
    """A token is refused; ``code`` is AuthCode.TOKEN_EXPIRED or AuthCode.TOKEN_INVALID (the
    answer is an ``unauthorized`` with that code, not an ``error``)."""

    def __init__(self, code: AuthCode, text: str) -> None:
        super().__init__(code, text)


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says."""
    user: str
    issued: int
    expires: int
    kid: str


class TokenSigner:
    """Issue and verify tokens. ``current`` is ``(kid, secret)``; ``previous`` maps kids of
    keys still accepted to their secrets. Secrets are at least 32 random bytes."""

    def __init__(self, current: tuple[str, bytes], previous: dict[str, bytes] | None = None,
                 ttl: int = 12 * 3600) -> None:
        keys = dict(previous or {})
        keys[current[0]] = current[1]
        for kid, secret in keys.items():
            if not KID.match(kid) or len(secret) < MIN_KEY:
                raise ValueError(f"token key {kid!r}: kid [A-Za-z0-9_-]{{1,16}}, "
                                 f"secret of at least {MIN_KEY} bytes")
        if ttl < 1:
            raise ValueError("ttl must be positive")
        self.current_kid = current[0]
        self._keys = keys
        self.ttl = ttl

    def rotated(self, current: tuple[str, bytes], keep: int = 1) -> "TokenSigner":
        """A signer with a new current key, still accepting this one's current key (and up to
        ``keep`` keys in all besides the new one)."""
        order = [self.current_kid] + [k for k in self._keys if k != self.current_kid]
        previous = {k: self._keys[k] for k in order[:keep]}
        return TokenSigner(current, previous, self.ttl)

    @property
    def accepted_kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def issue(self, user: str, now: float, ttl: int | None = None) -> tuple[str, int]:
        """Return ``(token, expires)`` for ``user``, valid from ``now`` for ``ttl`` seconds."""
        issued = int(now)
        expires = issued + (ttl or self.ttl)
        body = json.dumps({"u": user, "iat": issued, "exp": expires},
                          separators=(",", ":")).encode("utf-8")
        signed = f"{PREFIX}.{self.current_kid}.{b64e(body)}"
        return f"{signed}.{b64e(self._mac(self.current_kid, signed))}", expires

    def verify(self, token: str, now: float) -> TokenClaims:
        """The claims of a valid token; raises TokenError (expired or invalid)."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 4 or parts[0] != PREFIX or parts[1] not in self._keys:
            raise TokenError(AuthCode.TOKEN_INVALID, "unknown token format or key")
        signed = ".".join(parts[:3])
        try:
            mac = b64d(parts[3], 32, 32, "mac")
            body = json.loads(b64d(parts[2], 2, 384, "payload"))
        except (FieldError, ValueError):
            raise TokenError(AuthCode.TOKEN_INVALID, "malformed token") from None
        if not hmac.compare_digest(mac, self._mac(parts[1], signed)):
            raise TokenError(AuthCode.TOKEN_INVALID, "bad token signature")
        if (type(body) is not dict or type(body.get("u")) is not str
                or type(body.get("iat")) is not int or type(body.get("exp")) is not int):
            raise TokenError(AuthCode.TOKEN_INVALID, "malformed token claims")
        if body["iat"] > now + MAX_FUTURE:
            raise TokenError(AuthCode.TOKEN_INVALID, "token issued in the future")
        if now >= body["exp"]:
            raise TokenError(AuthCode.TOKEN_EXPIRED, "token expired")
        return TokenClaims(body["u"], body["iat"], body["exp"], parts[1])

    def _mac(self, kid: str, signed: str) -> bytes:
        return hmac.new(self._keys[kid], signed.encode("ascii"), hashlib.sha256).digest()
