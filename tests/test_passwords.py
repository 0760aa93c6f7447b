"""Stored credentials: scrypt-derived keys, never the password."""
from callgw import passwords
from protocols.client import scram


def test_hash_verifies_and_hides_the_password():
    stored = passwords.hash_password("correct horse", n=1024)
    assert "correct horse" not in stored
    assert passwords.verify_password(stored, "correct horse")
    assert not passwords.verify_password(stored, "correct hors")
    assert not passwords.verify_password("garbage", "correct horse")


def test_salts_differ():
    assert passwords.hash_password("pw", n=1024) != passwords.hash_password("pw", n=1024)


def test_stored_keys_check_a_scram_proof():
    stored = passwords.hash_password("pw", n=1024)
    cred = passwords.parse(stored)
    salted = scram.salted_password("pw", cred.salt, cred.n, cred.r, cred.p)
    proof = scram.client_proof(salted, b"auth-message")
    assert scram.verify_proof(cred.stored_key, b"auth-message", proof)
    assert not scram.verify_proof(cred.stored_key, b"other-message", proof)
