"""Tests for protocols.sip.digest against the RFC 2617 and RFC 7616 worked examples."""
import hashlib

import pytest
from hypothesis import given, strategies as st

from protocols.sip.digest import (Challenge, DigestError, authorization, best_challenge,
                                  parse_challenge)
from protocols.sip.headers import Headers

RFC2617 = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
           'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
RFC7616 = ('Digest\r\n realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
           'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
           'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"').replace("\r\n", "")
CNONCE_7616 = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def params_of(value):
    from protocols.sip.digest import _auth_params
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    return _auth_params(rest)


def test_parse_challenge():
    c = parse_challenge(RFC2617)
    assert (c.realm, c.nonce, c.algorithm, c.qop, c.opaque, c.stale) == (
        "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "MD5", ["auth", "auth-int"],
        "5ccc069c403ebaf9f0171e9517f40e41", False)
    c = parse_challenge('digest realm="a\\"b", nonce="n", algorithm=sha-256-sess, stale=TRUE')
    assert (c.realm, c.algorithm, c.qop, c.stale, c.opaque) == (
        'a"b', "SHA-256-SESS", [], True, None)


def test_rfc2617_example():
    value = authorization(parse_challenge(RFC2617), "GET", "/dir/index.html", "Mufasa",
                          "Circle Of Life", "0a4f113b")
    p = params_of(value)
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert (p["qop"], p["nc"], p["cnonce"]) == ("auth", "00000001", "0a4f113b")
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert p["uri"] == "/dir/index.html" and p["username"] == "Mufasa"


def test_rfc2069_form_without_qop():
    c = parse_challenge('Digest realm="testrealm@host.com", '
                        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"')
    p = params_of(authorization(c, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "x"))
    assert p["response"] == "670fd8c2df070c60b045671b8b24ff02"
    assert "qop" not in p and "nc" not in p and "cnonce" not in p


@pytest.mark.parametrize("alg, expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_examples(alg, expected):
    c = parse_challenge(RFC7616.format(alg=alg))
    value = authorization(c, "GET", "/dir/index.html", "Mufasa", "Circle of Life", CNONCE_7616)
    p = params_of(value)
    assert p["response"] == expected and p["algorithm"] == alg


def _independent(alg, user, realm, pw, method, uri, nonce, cnonce, nc, qop, body=b""):
    names = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
    name = names[alg.replace("-sess", "")]
    H = lambda s: hashlib.new(name, s.encode()).hexdigest()  # noqa: E731
    ha1 = H(f"{user}:{realm}:{pw}")
    if alg.endswith("-sess"):
        ha1 = H(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + hashlib.new(name, body).hexdigest()
    return H(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{H(a2)}")


@pytest.mark.parametrize("alg", ["MD5-sess", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"])
def test_sess_and_sha512_256(alg):
    c = parse_challenge(f'Digest realm="gw.example.net", nonce="abc123", algorithm={alg}, '
                        'qop="auth"')
    p = params_of(authorization(c, "INVITE", "sip:+12125551212@gw.example.net", "callgw", "s3cret",
                                "0123abcd", nc=2))
    assert p["response"] == _independent(alg, "callgw", "gw.example.net", "s3cret", "INVITE",
                                         "sip:+12125551212@gw.example.net", "abc123", "0123abcd",
                                         "00000002", "auth")
    assert p["algorithm"] == alg and p["nc"] == "00000002"


def test_auth_int_when_only_auth_int_offered():
    c = parse_challenge('Digest realm="r", nonce="n", qop="auth-int", algorithm=SHA-256')
    body = b"v=0\r\n"
    p = params_of(authorization(c, "INVITE", "sip:a@b", "u", "p", "c", body=body))
    assert p["qop"] == "auth-int"
    assert p["response"] == _independent("SHA-256", "u", "r", "p", "INVITE", "sip:a@b", "n", "c",
                                         "00000001", "auth-int", body)


def test_best_challenge_prefers_strongest():
    values = ['Digest realm="r", nonce="1", algorithm=MD5, qop="auth"',
              'Basic realm="r"',
              'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"']
    assert best_challenge(values).nonce == "2"
    with pytest.raises(DigestError):
        best_challenge(['Basic realm="r"', 'Digest realm="r", nonce="3", algorithm=AKAv1-MD5'])


@pytest.mark.parametrize("value", [
    'Basic realm="x"', 'Digest nonce="n"', 'Digest realm="r"', 'Digest realm="r, nonce="n"',
    'Digest realm="r", nonce="n", algorithm=SHA-1', 'Digest realm',
    'Digest realm="r", nonce="n", qop="auth-conf"',
])
def test_bad_challenges(value):
    with pytest.raises(DigestError):
        c = parse_challenge(value)
        authorization(c, "INVITE", "sip:a@b", "u", "p", "c")


def test_value_survives_a_sip_header():
    c = parse_challenge(RFC2617)
    value = authorization(c, "REGISTER", "sip:example.com", 'we"ird\\user', "p", "c")
    h = Headers([("Authorization", value)])
    assert h.get_all("Authorization") == [value]
    assert params_of(h.get("Authorization"))["username"] == 'we"ird\\user'


@given(st.text(max_size=80))
def test_random_challenges_raise_only_digest_error(text):
    for value in (text, "Digest " + text):
        try:
            c = parse_challenge(value)
            assert isinstance(c, Challenge)
            authorization(c, "INVITE", "sip:a@b", "u", "p", "c")
        except DigestError:
            pass
