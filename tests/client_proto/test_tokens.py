"""Tokens: format, signature, expiry, rotation, tampering."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.client import messages as m
from protocols.client.errors import AuthCode
from protocols.client.tokens import TokenError, TokenSigner

from .builders import KEY_A, KEY_B


def test_issue_and_verify():
    signer = TokenSigner(KEY_A, ttl=600)
    token, expires = signer.issue("alice", 1000.7)
    assert expires == 1600 and token.startswith("v1.k1.")
    assert m.TOKEN.load(token) == token                      # fits the wire field
    claims = signer.verify(token, 1599.9)
    assert (claims.user, claims.issued, claims.expires, claims.kid) == ("alice", 1000, 1600, "k1")


def _code(signer, token, now):
    with pytest.raises(TokenError) as e:
        signer.verify(token, now)
    return e.value.code


def test_expiry():
    signer = TokenSigner(KEY_A, ttl=60)
    token, _ = signer.issue("alice", 0)
    assert _code(signer, token, 60) == AuthCode.TOKEN_EXPIRED


def test_rotation_keeps_previous_keys_for_a_while():
    old = TokenSigner(KEY_A)
    token, _ = old.issue("alice", 0)
    new = old.rotated(KEY_B)
    assert new.accepted_kids == ("k1", "k2") and new.issue("bob", 0)[0].startswith("v1.k2.")
    assert new.verify(token, 1).user == "alice"
    newer = new.rotated(("k3", b"C" * 32))
    assert set(newer.accepted_kids) == {"k2", "k3"}
    assert _code(newer, token, 1) == AuthCode.TOKEN_INVALID


def test_a_key_with_the_same_id_but_another_secret_refuses():
    token, _ = TokenSigner(KEY_A).issue("alice", 0)
    assert _code(TokenSigner(("k1", b"Z" * 32)), token, 1) == AuthCode.TOKEN_INVALID


def test_bad_keys_are_refused_at_configuration():
    with pytest.raises(ValueError):
        TokenSigner(("k1", b"short"))
    with pytest.raises(ValueError):
        TokenSigner(("bad kid!", b"A" * 32))


def test_future_tokens_are_invalid():
    signer = TokenSigner(KEY_A)
    token, _ = signer.issue("alice", 10_000)
    assert _code(signer, token, 0) == AuthCode.TOKEN_INVALID


@given(st.integers(0, 200), st.integers(0, 255))
def test_tampered_tokens_are_invalid(pos, byte):
    signer = TokenSigner(KEY_A)
    token, _ = signer.issue("alice", 0)
    chars = list(token)
    chars[pos % len(chars)] = chr(byte)
    tampered = "".join(chars)
    if tampered == token:
        return
    assert _code(signer, tampered, 1) in (AuthCode.TOKEN_INVALID, AuthCode.TOKEN_EXPIRED)


@given(st.text(max_size=300))
def test_random_tokens_are_invalid(text):
    assert _code(TokenSigner(KEY_A), text, 0) == AuthCode.TOKEN_INVALID
