"""SCRAM over scrypt: the key math, the auth message and interplay with the stored format."""
from __future__ import annotations

from protocols.client import scram

from .builders import FAST


def test_proof_verifies_only_with_the_right_password():
    salt = b"0123456789abcdef"
    stored, server = scram.keys_for("pw", salt, **FAST)
    auth = scram.auth_message("alice", "c" * 24, "c" * 24 + "s" * 24, salt, 16, 1, 1)
    proof = scram.client_proof(scram.salted_password("pw", salt, **FAST), auth)
    assert scram.verify_proof(stored, auth, proof)
    assert not scram.verify_proof(stored, auth + b"x", proof)
    wrong = scram.client_proof(scram.salted_password("pW", salt, **FAST), auth)
    assert not scram.verify_proof(stored, auth, wrong)
    assert not scram.verify_proof(stored, auth, proof[:-1])
    salted = scram.salted_password("pw", salt, **FAST)
    assert scram.server_signature(scram.server_key(salted), auth) == \
        scram.server_signature(server, auth)


def test_auth_message_binds_every_parameter():
    base = ("alice", "c" * 24, "c" * 48, b"salt" * 4, 16, 1, 1)
    msgs = {scram.auth_message(*base)}
    for i, other in enumerate(["bob", "d" * 24, "d" * 48, b"pepp" * 4, 32, 2, 2]):
        args = list(base)
        args[i] = other
        msgs.add(scram.auth_message(*args))
    assert len(msgs) == 8
    assert scram.auth_message(*base).startswith(b"callgw-v1,n=alice,r=cccc")


def test_fake_salt_is_stable_and_per_user():
    assert scram.fake_salt(b"k" * 16, "x") == scram.fake_salt(b"k" * 16, "x")
    assert scram.fake_salt(b"k" * 16, "x") != scram.fake_salt(b"k" * 16, "y")
    assert len(scram.fake_salt(b"k" * 16, "x")) == 16


def test_stored_credential_format_interoperates():
    from callgw import passwords       # the test may import callgw; protocols/ never does
    stored = passwords.hash_password("pw", n=16, r=1, p=1, salt=b"s" * 16)
    cred = passwords.parse(stored)
    auth = scram.auth_message("alice", "c" * 24, "c" * 48, cred.salt, cred.n, cred.r, cred.p)
    proof = scram.client_proof(scram.salted_password("pw", cred.salt, cred.n, cred.r, cred.p),
                               auth)
    assert scram.verify_proof(cred.stored_key, auth, proof)
