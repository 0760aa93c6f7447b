"""The admin surfaces on the running site (callgw/web/admin.py): /api and /metrics answer 401
without credentials and say nothing about calls; HTTP Basic, the admin session cookie (with its
CSRF token) and, for /metrics, the bearer token let an admin in; /admin/ signs in and out."""
from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource

from callgw import passwords
from tests.frontend.gateway import FakeFrontEnd, start_gateway, stop_gateway
from tests.web import rawhttp
from tests.web.admins import ADMIN, ADMIN_PASSWORD, basic

TOKEN = "scrape-token-0123456789"


@defer.inlineCallbacks
def _start(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd(), admin={"metrics_token": TOKEN})
    yield gw.store.run("add_admin", ADMIN, passwords.hash_password(ADMIN_PASSWORD, n=1024), 1.0)
    yield gw.web.admin.reload()
    return gw


def _cookie(headers) -> str:
    (set_cookie,) = headers["set-cookie"]
    return set_cookie.split(";", 1)[0]


@pytest_twisted.inlineCallbacks
def test_api_and_metrics_need_an_admin(tmp_path):
    gw = yield _start(tmp_path)
    try:
        host, port = gw.client.address("https")

        def get(path, **headers):
            return deferToThread(rawhttp.https, host, port, "GET", path, headers)

        for path in ("/api", "/api/calls", "/api/calls?limit=5", "/api/gateways",
                     "/api/servers", "/api/openapi.json", "/metrics"):
            status, headers, body = yield get(path)
            assert status == 401, path
            assert headers["www-authenticate"] == ['Basic realm="callgw admin", charset="UTF-8"']
            assert set(json.loads(body)) == {"error"}
        status, _, body = yield get("/api/calls", Authorization=basic())
        assert status == 200 and set(json.loads(body)) == {"active", "recent"}
        status, _, _ = yield get("/api/calls?limit=" + "9" * 3000, Authorization=basic())
        assert status == 200
        status, _, _ = yield get("/api/calls", Authorization=basic(ADMIN, "wrong-password"))
        assert status == 401
        status, _, _ = yield get("/api/calls", Authorization="Basic !!not base64!!")
        assert status == 401
        status, _, body = yield get("/metrics", Authorization=basic())
        assert status == 200 and b"callgw_" in body
        status, _, body = yield get("/metrics", Authorization="Bearer " + TOKEN)
        assert status == 200 and b"callgw_" in body
        status, _, _ = yield get("/metrics", Authorization="Bearer " + TOKEN[:-1] + "x")
        assert status == 401
        status, _, _ = yield get("/api/calls", Authorization="Bearer " + TOKEN)
        assert status == 401                         # the token is for /metrics only
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_session_sign_in_csrf_and_sign_out(tmp_path):
    gw = yield _start(tmp_path)
    try:
        host, port = gw.client.address("https")

        def call(method, path, headers=None, body=None):
            return deferToThread(rawhttp.https, host, port, method, path, headers or {}, body)

        def sign_in(user, password, ctype="application/json"):
            return call("POST", "/admin/session", {"Content-Type": ctype},
                        json.dumps({"user": user, "password": password}).encode())

        status, _, _ = yield sign_in(ADMIN, "wrong-password")
        assert status == 401
        status, _, _ = yield sign_in(ADMIN, ADMIN_PASSWORD, "application/x-www-form-urlencoded")
        assert status == 415                          # a cross-site form cannot sign in
        status, _, _ = yield call("POST", "/admin/session", {"Content-Type": "application/json",
                                                             "Origin": "https://evil.example"},
                                  json.dumps({"user": ADMIN, "password": ADMIN_PASSWORD}).encode())
        assert status == 403
        status, headers, body = yield sign_in(ADMIN, ADMIN_PASSWORD)
        assert status == 200
        attributes = {a.strip().lower() for a in headers["set-cookie"][0].split(";")[1:]}
        assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
        cookie, csrf = _cookie(headers), json.loads(body)["csrf"]
        assert cookie.startswith("__Host-callgw-admin=") and json.loads(body)["user"] == ADMIN
        status, _, body = yield call("GET", "/admin/session", {"Cookie": cookie})
        assert status == 200 and json.loads(body)["csrf"] == csrf
        status, _, body = yield call("GET", "/api/calls", {"Cookie": cookie})
        assert status == 200 and "active" in json.loads(body)
        status, _, _ = yield call("POST", "/api/calls", {"Cookie": cookie})
        assert status == 403                          # a change needs the CSRF token
        status, _, _ = yield call("POST", "/api/calls", {"Cookie": cookie, "X-CSRF-Token": "x"})
        assert status == 403
        status, _, _ = yield call("POST", "/api/calls", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                         "Origin": "https://evil.example"})
        assert status == 403
        status, _, _ = yield call("POST", "/api/calls", {"Cookie": cookie, "X-CSRF-Token": csrf})
        assert status == 405                          # past the guard: GET only there
        status, _, _ = yield call("DELETE", "/admin/session", {"Cookie": cookie})
        assert status == 403
        status, headers, _ = yield call("DELETE", "/admin/session",
                                        {"Cookie": cookie, "X-CSRF-Token": csrf})
        assert status == 204 and "max-age=0" in headers["set-cookie"][0].lower()
        status, headers, _ = yield call("GET", "/api/calls", {"Cookie": cookie})
        assert status == 401 and "www-authenticate" not in headers    # no browser dialog
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_sign_in_page_and_admin_paths(tmp_path):
    gw = yield _start(tmp_path)
    try:
        host, port = gw.client.address("https")
        status, headers, body = yield deferToThread(rawhttp.https, host, port, "GET", "/admin/")
        assert status == 200 and headers["content-type"][0].startswith("text/html")
        assert "script-src 'self'" in headers["content-security-policy"][0]
        for name in (b'>User name</label>', b'>Password</label>', b'>Sign in</button>'):
            assert body.count(name) == 1
        status, headers, _ = yield deferToThread(rawhttp.https, host, port, "GET", "/admin")
        assert status == 302 and headers["location"] == ["/admin/"]
        status, _, body = yield deferToThread(rawhttp.https, host, port, "GET",
                                              "/admin/signin.js")
        assert status == 200 and b"/admin/session" in body
        with pytest.raises(ValueError, match="admin path"):
            gw.web.add_resource("api", Resource())
    finally:
        yield stop_gateway(gw)
