"""Stored password credentials: the scrypt-derived SCRAM keys, one string per user.

Owned by the foundation. Format (no clear password, nothing password-equivalent):
``scram-scrypt$N$r$p$<salt b64>$<stored_key b64>$<server_key b64>``.
``verify_password`` is CPU-heavy (scrypt): callers on the reactor run it in a thread.

Tests: tests/test_passwords.py.
"""
from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass

from protocols.client import scram

PREFIX = "scram-scrypt"


@dataclass(frozen=True)
class Credential:
    n: int
    r: int
    p: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = scram.DEFAULT_N, r: int = scram.DEFAULT_R,
                  p: int = scram.DEFAULT_P, salt: bytes | None = None) -> str:
    """Return the stored form of ``password``. Raises ValueError for an empty password."""
    if not password:
        raise ValueError("empty password")
    salt = salt if salt is not None else os.urandom(16)
    stored, server = scram.keys_for(password, salt, n, r, p)
    return "$".join([PREFIX, str(n), str(r), str(p), _b64(salt), _b64(stored), _b64(server)])


def parse(stored: str) -> Credential:
    """Parse the stored form; raises ValueError naming what is wrong."""
    parts = (stored or "").split("$")
    if len(parts) != 7 or parts[0] != PREFIX:
        raise ValueError(f"not a {PREFIX} credential")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, skey, srv = (base64.b64decode(x, validate=True) for x in parts[4:7])
    except ValueError as e:
        raise ValueError(f"malformed {PREFIX} credential: {e}") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or len(skey) != scram.KEY_LEN:
        raise ValueError(f"bad {PREFIX} parameters")
    return Credential(n, r, p, salt, skey, srv)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches ``stored``; False for a wrong or unusable credential."""
    try:
        cred = parse(stored)
    except ValueError:
        return False
    salted = scram.salted_password(password, cred.salt, cred.n, cred.r, cred.p)
    return hmac.compare_digest(scram.stored_key(scram.client_key(salted)), cred.stored_key)
