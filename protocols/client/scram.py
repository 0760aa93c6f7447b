"""SCRAM-style proof of a password over its scrypt-derived key (after RFC 5802 / RFC 7677).

Owned by the client protocol. The server stores only ``(salt, n, r, p, stored_key, server_key)``;
the password never crosses the wire. Both sides use these functions; nothing here does I/O.

    salted      = scrypt(password, salt, n, r, p, 32)
    client_key  = HMAC-SHA256(salted, "Client Key");  stored_key = SHA256(client_key)
    server_key  = HMAC-SHA256(salted, "Server Key")
    signature   = HMAC-SHA256(stored_key, auth_message)
    proof       = client_key XOR signature          (client -> server)
    server_sig  = HMAC-SHA256(server_key, auth_message)  (server -> client, mutual proof)

``auth_message`` binds everything both sides said in the login (user, both nonces, salt and
scrypt parameters); docs/protocol.md ("Login") gives its exact bytes.

Tests: tests/client_proto/test_scram.py.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

KEY_LEN = 32
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2 ** 14, 8, 1


def salted_password(password: str, salt: bytes, n: int = DEFAULT_N, r: int = DEFAULT_R,
                    p: int = DEFAULT_P) -> bytes:
    """The scrypt-derived key of ``password`` (CPU-heavy: call it off the reactor thread)."""
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + 1024 * 1024, dklen=KEY_LEN)


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def client_key(salted: bytes) -> bytes:
    return _hmac(salted, b"Client Key")


def server_key(salted: bytes) -> bytes:
    return _hmac(salted, b"Server Key")


def stored_key(ckey: bytes) -> bytes:
    return hashlib.sha256(ckey).digest()


def keys_for(password: str, salt: bytes, n: int = DEFAULT_N, r: int = DEFAULT_R,
             p: int = DEFAULT_P) -> tuple[bytes, bytes]:
    """Return ``(stored_key, server_key)``: what the server keeps for ``password``."""
    salted = salted_password(password, salt, n, r, p)
    return stored_key(client_key(salted)), server_key(salted)


def client_proof(salted: bytes, auth_message: bytes) -> bytes:
    """The client's proof for ``auth_message``, from its salted password."""
    ckey = client_key(salted)
    sig = _hmac(stored_key(ckey), auth_message)
    return bytes(a ^ b for a, b in zip(ckey, sig))


def verify_proof(stored: bytes, auth_message: bytes, proof: bytes) -> bool:
    """True when ``proof`` shows knowledge of the password behind ``stored``."""
    if len(proof) != KEY_LEN:
        return False
    sig = _hmac(stored, auth_message)
    ckey = bytes(a ^ b for a, b in zip(proof, sig))
    return hmac.compare_digest(stored_key(ckey), stored)


def recover_client_key(stored: bytes, auth_message: bytes, proof: bytes) -> bytes:
    """The client key a (verified) ``proof`` carries: what the server keys datagram
    authentication from (an eavesdropper, who lacks ``stored``, cannot recover it)."""
    sig = _hmac(stored, auth_message)
    return bytes(a ^ b for a, b in zip(proof, sig))


def server_signature(server: bytes, auth_message: bytes) -> bytes:
    """The server's signature, proving to the client that it knows ``server_key``."""
    return _hmac(server, auth_message)


def auth_message(user: str, client_nonce: str, nonce: str, salt: bytes, n: int, r: int,
                 p: int) -> bytes:
    """The bytes both sides sign: the client's first login, the challenge, and the proof's
    header, comma-separated (user names and nonces cannot contain commas)."""
    salt_text = base64.urlsafe_b64encode(salt).rstrip(b"=").decode("ascii")
    return (f"callgw-v1,n={user},r={client_nonce},r={nonce},s={salt_text},"
            f"i={n}:{r}:{p},c=none,r={nonce}").encode("utf-8")


def fake_salt(secret: bytes, user: str) -> bytes:
    """A stable salt for a user that does not exist, so a challenge does not reveal it."""
    return _hmac(secret, b"fake-salt:" + user.encode("utf-8"))[:16]
