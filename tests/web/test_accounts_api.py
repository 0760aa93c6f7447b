"""The admin API's tenants and users (callgw/web/accounts_api.py over callgw/admin_service.py)
against a running callgw: without credentials 401; an admin (HTTP Basic over TLS) adds a tenant
with its branding (then changes the branding) and a user in it, who then places a call with
``callgw-dial`` (a subprocess) to callgw's echo number; disabled, the user is refused; enabled with a new password set over
the API, the user calls again with it. No answer carries a password or its key; mistakes get
the CLI's one line as 400s, unknown names 404s; from a session a change needs its CSRF token.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest_twisted

from tests.callpath.callgw_env import prepare_db, sleep
from tests.web.admins import ADMIN, ADMIN_PASSWORD, add_admin
from tests.web.test_gateways_api import api

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import dial, start, url  # noqa: E402

ECHO = "+4930999999"


@pytest_twisted.inlineCallbacks
def test_an_admin_manages_tenants_and_users_who_then_call(tmp_path):
    prepare_db(tmp_path, users=())
    add_admin(tmp_path / "callgw.sqlite3")
    gw = yield start(tmp_path, web=True, calls={"echo_number": ECHO})
    host, port = gw.client.address("https")
    base = f"https://{host}:{port}"

    def call_echo(user, password):
        return dial("--server", url(gw, "tcp"), "--user", user, "--duration", "0.5", ECHO,
                    password=password, timeout=60)
    try:
        for method, path in (("GET", "/api/users"), ("POST", "/api/users"),
                             ("GET", "/api/tenants"), ("POST", "/api/tenants"),
                             ("POST", "/api/users/bob/disable"),
                             ("POST", "/api/users/bob/password")):
            code, _, _ = yield api(base, path, method, body={}, auth=False)
            assert code == 401, (method, path)

        code, _, tenant = yield api(base, "/api/tenants", "POST", body={
            "name": "acme", "timezone": "Europe/Berlin", "country": "49",
            "branding": {"product": "Acme Phone"}})
        assert code == 201, tenant
        assert tenant["branding"]["product"] == "Acme Phone" and tenant["country"] == "49"
        code, _, tenant = yield api(base, "/api/tenants/acme", "PATCH", body={
            "branding": {"greeting": "Hallo", "logo": None}, "timezone": "UTC"})
        assert code == 200, tenant
        assert tenant["branding"]["greeting"] == "Hallo" and "logo" not in tenant["branding"]
        assert tenant["branding"]["product"] == "Acme Phone" and tenant["timezone"] == "UTC"
        for body, words in (({"country": "DE"}, "digits"), ({"name": "x"}, "cannot change"),
                            ({"branding": {"logo": 1}}, "text values")):
            code, _, answer = yield api(base, "/api/tenants/acme", "PATCH", body=body)
            assert code == 400 and words in answer["error"], (body, answer)
        code, _, _ = yield api(base, "/api/tenants/nope", "PATCH", body={"country": "1"})
        assert code == 404
        code, _, _ = yield api(base, "/api/users/bob", "PATCH", body={"country": "1"})
        assert code == 404
        _, _, tenants = yield api(base, "/api/tenants")
        assert sorted(t["name"] for t in tenants) == ["acme", "default"]
        for body, words in (({"name": "acme"}, "exists"),
                            ({"name": "x", "country": "DE"}, "digits"),
                            ({"name": "x", "branding": {"logo": 1}}, "text values"),
                            ({"name": "x", "colour": "red"}, "not a tenant field")):
            code, _, answer = yield api(base, "/api/tenants", "POST", body=body)
            assert code == 400 and words in answer["error"], (body, answer)

        code, _, user = yield api(base, "/api/users", "POST", body={
            "name": "bob", "password": "first secret", "tenant": "acme",
            "number": "+4930555"})
        assert code == 201, user
        assert user["tenant"] == "acme" and "password" not in user
        _, _, users = yield api(base, "/api/users")
        assert [u["username"] for u in users] == ["bob"] and "password" not in users[0]
        code, _, one = yield api(base, "/api/users/bob")
        assert code == 200 and one["number"] == "+4930555" and "password" not in one
        for body, words in (({"name": "bob", "password": "x"}, "exists"),
                            ({"name": "eve", "password": "x", "tenant": "nope"},
                             "does not exist"),
                            ({"name": "bad name!", "password": "x"}, "user name"),
                            ({"name": "eve", "password": ""}, "a password is needed"),
                            ({"name": "eve", "password": "x", "number": "0301"}, "0301")):
            code, _, answer = yield api(base, "/api/users", "POST", body=body)
            assert code == 400 and words in answer["error"], (body, answer)

        code, out = yield call_echo("bob", "first secret")
        assert code == 0, out

        code, _, one = yield api(base, "/api/users/bob/disable", "POST")
        assert code == 200 and not one["enabled"], one
        code, out = yield call_echo("bob", "first secret")
        assert code != 0, out

        code, _, one = yield api(base, "/api/users/bob/password", "POST",
                                 body={"password": "second secret"})
        assert code == 200 and "password" not in one, one
        code, _, one = yield api(base, "/api/users/bob/enable", "POST")
        assert code == 200 and one["enabled"], one
        yield sleep(0.5)                               # the reload interval (0.2 s)
        code, out = yield call_echo("bob", "second secret")
        assert code == 0, out
        code, out = yield call_echo("bob", "first secret")
        assert code != 0, out

        code, _, one = yield api(base, "/api/tenants/acme/disable", "POST")
        assert code == 200 and not one["enabled"], one
        code, out = yield call_echo("bob", "second secret")
        assert code != 0, out
        code, _, one = yield api(base, "/api/tenants/acme/enable", "POST")
        assert code == 200 and one["enabled"], one

        for method, path in (("POST", "/api/users/nobody/disable"),
                             ("GET", "/api/users/nobody"), ("GET", "/api/tenants/nope"),
                             ("POST", "/api/tenants/nope/enable"),
                             ("POST", "/api/tenants/acme/password")):
            code, _, _ = yield api(base, path, method, body={"password": "x"})
            assert code == 404, (method, path)

        code, head, who = yield api(base, "/admin/session", "POST", auth=False,
                                    body={"user": ADMIN, "password": ADMIN_PASSWORD})
        assert code == 200, who
        sid = head["Set-Cookie"].split(";")[0]
        carol = {"name": "carol", "password": "third secret"}
        code, _, _ = yield api(base, "/api/users", "POST", body=carol, auth=False,
                               headers={"Cookie": sid})
        assert code == 403
        code, _, user = yield api(base, "/api/users", "POST", body=carol, auth=False,
                                  headers={"Cookie": sid, "X-CSRF-Token": who["csrf"]})
        assert code == 201 and user["tenant"] == "default", user
    finally:
        yield gw.stopService()
