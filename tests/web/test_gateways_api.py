"""The admin API's gateway changes (callgw/web/gateways_api.py over callgw/admin_service.py)
against a running callgw's HTTPS site: without credentials every route is 401; an admin (HTTP
Basic over TLS) adds, changes, drains, enables and removes a gateway, each reflected in
``GET /api/gateways`` and, within the reload interval, in the running call path's gateway
selection; mistakes get the CLI's one-line reasons as 400s; from a signed-in session a change
needs its CSRF token.
"""
from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest_twisted
from twisted.internet import threads

from tests.callpath.callgw_env import prepare_db, sleep
from tests.web.admins import ADMIN, ADMIN_PASSWORD, add_admin, basic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import start  # noqa: E402

COOKIE = "__Host-callgw-admin"


def call(base, path, method="GET", body=None, auth=True, headers=None, raw=None):
    """(status, headers, parsed JSON or text) of one request, without raising on 4xx."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE           # callgw's self-signed test certificate
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, method=method, data=data)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", basic())
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as r:
            status, head, text = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        status, head, text = e.code, e.headers, e.read().decode()
    try:
        return status, head, json.loads(text)
    except ValueError:
        return status, head, text


def api(base, *args, **kw):
    return threads.deferToThread(call, base, *args, **kw)


@pytest_twisted.inlineCallbacks
def selected(gw, target, want, rounds=50):
    """The names the call path selects for ``target``, once they are ``want`` (the reload
    interval is 0.2 s) or after ``rounds`` tries."""
    names = None
    for _ in range(rounds):
        names = [g["name"] for g in gw.callpath.directory.select(target)]
        if names == want:
            break
        yield sleep(0.1)
    return names


@pytest_twisted.inlineCallbacks
def test_an_admin_adds_changes_drains_and_removes_a_gateway(tmp_path):
    prepare_db(tmp_path)
    add_admin(tmp_path / "callgw.sqlite3")
    gw = yield start(tmp_path, web=True)
    host, port = gw.client.address("https")
    base = f"https://{host}:{port}"
    try:
        for method, path in (("GET", "/api/gateways"), ("POST", "/api/gateways"),
                             ("GET", "/api/gateways/gw1"), ("PATCH", "/api/gateways/gw1"),
                             ("DELETE", "/api/gateways/gw1"),
                             ("POST", "/api/gateways/gw1/drain")):
            code, _, _ = yield api(base, path, method, body={}, auth=False)
            assert code == 401, (method, path)

        new = {"name": "gw1", "protocol": "sip", "host": "127.0.0.1", "port": 25999,
               "prefixes": ["+4930"], "capacity": 7, "options": {"transport": "tcp"}}
        code, _, row = yield api(base, "/api/gateways", "POST", body=new)
        assert code == 201, row
        assert (row["name"], row["port"], row["capacity"], row["enabled"]) == (
            "gw1", 25999, 7, True)
        assert row["options"]["transport"] == "tcp"
        assert (yield selected(gw, "+4930123", ["gw1"])) == ["gw1"]
        _, _, listing = yield api(base, "/api/gateways")
        assert [(g["name"], g["capacity"]) for g in listing] == [("gw1", 7)]

        # mistakes: the same words as `callgw gateway add`
        for body, code_, words in (
                (dict(new), 400, "exists"),
                (dict(new, name="g2", protocol="iax"), 400, "not available"),
                (dict(new, name="g2", prefixes=["49"]), 400, "49"),
                (dict(new, name="g2", probe="auep"), 400, "sip gateways take options or off"),
                (dict(new, name="g2", host="no-such-host.invalid"), 400, "does not resolve"),
                (dict(new, name="g2", capacity="many"), 400, "capacity: expected int"),
                (dict(new, name="g2", colour="red"), 400, "colour: not a gateway field"),
                (dict(new, name="g2", options={"endpoint": "x@y"}), 400, "no option")):
            code, _, answer = yield api(base, "/api/gateways", "POST", body=body)
            assert code == code_ and words in answer["error"], (body, answer)
        code, _, _ = yield api(base, "/api/gateways", "POST", raw=b"name=gw3")
        assert code == 415

        code, _, row = yield api(base, "/api/gateways/gw1", "PATCH",
                                 body={"prefixes": ["+33"], "capacity": 3, "port": None})
        assert code == 200, row
        assert (row["prefixes"], row["capacity"], row["port"]) == (["+33"], 3, 5060)
        assert row["options"]["transport"] == "tcp" and row["protocol"] == "sip"
        assert (yield selected(gw, "+33123", ["gw1"])) == ["gw1"]
        assert (yield selected(gw, "+4930123", [])) == []
        _, _, listing = yield api(base, "/api/gateways")
        assert [(g["name"], g["capacity"], g["port"]) for g in listing] == [("gw1", 3, 5060)]
        code, _, answer = yield api(base, "/api/gateways/gw1", "PATCH",
                                    body={"protocol": "h323"})
        assert code == 400 and "cannot change" in answer["error"], answer
        code, _, answer = yield api(base, "/api/gateways/gw1", "PATCH",
                                    body={"options": {"transport": "carrier-pigeon"}})
        assert code == 400 and "--transport" in answer["error"], answer
        code, _, answer = yield api(base, "/api/gateways/nope", "PATCH", body={"capacity": 2})
        assert code == 404, answer

        code, _, row = yield api(base, "/api/gateways/gw1/drain", "POST")
        assert code == 200 and row["enabled"] is False, row
        assert (yield selected(gw, "+33123", [])) == []
        _, _, listing = yield api(base, "/api/gateways")
        assert [(g["name"], g["status"]) for g in listing] == [("gw1", "draining")]
        code, _, row = yield api(base, "/api/gateways/gw1/enable", "POST")
        assert code == 200 and row["enabled"] is True, row
        assert (yield selected(gw, "+33123", ["gw1"])) == ["gw1"]
        code, _, _ = yield api(base, "/api/gateways/nope/drain", "POST")
        assert code == 404

        code, _, answer = yield api(base, "/api/gateways/gw1", "DELETE")
        assert code == 200 and answer == {"removed": "gw1"}, answer
        assert (yield selected(gw, "+33123", [])) == []
        for _ in range(50):
            _, _, listing = yield api(base, "/api/gateways")
            if listing == []:
                break
            yield sleep(0.1)
        assert listing == []
        code, _, _ = yield api(base, "/api/gateways/gw1")
        assert code == 404
        code, _, _ = yield api(base, "/api/gateways/gw1", "DELETE")
        assert code == 404

        # from a signed-in session, a change needs the session's CSRF token
        code, head, who = yield api(base, "/admin/session", "POST", auth=False,
                                    body={"user": ADMIN, "password": ADMIN_PASSWORD})
        assert code == 200, who
        sid = head["Set-Cookie"].split(";")[0]
        assert sid.startswith(COOKIE + "=")
        code, _, _ = yield api(base, "/api/gateways", "POST", body=new, auth=False,
                               headers={"Cookie": sid})
        assert code == 403
        code, _, row = yield api(base, "/api/gateways", "POST", body=new, auth=False,
                                 headers={"Cookie": sid, "X-CSRF-Token": who["csrf"]})
        assert code == 201 and row["name"] == "gw1", row
        assert (yield selected(gw, "+4930123", ["gw1"])) == ["gw1"]
        code, _, listing = yield api(base, "/api/gateways", auth=False,
                                     headers={"Cookie": sid})
        assert code == 200 and [g["name"] for g in listing] == ["gw1"]
    finally:
        yield gw.stopService()
