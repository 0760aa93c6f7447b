"""The display over the running HTTPS site: /api/calls, /api/gateways, /api/servers, /metrics
(for an admin: HTTP Basic; without credentials 401)."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest_twisted
from twisted.internet import reactor, threads

from callgw.service import GatewayService
from tests.callpath.callgw_env import prepare_db
from tests.helpers import make_config, started
from tests.web.admins import add_admin, basic


def fetch(url, authorization=basic()):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE       # callgw's self-signed test certificate
    request = urllib.request.Request(url, headers={"Authorization": authorization}
                                     if authorization else {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.headers.get("content-type"), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest_twisted.inlineCallbacks
def test_api_and_metrics(tmp_path):
    prepare_db(tmp_path, gateways=[("gw1", 25999, ["+49"], {})])
    add_admin(tmp_path / "callgw.sqlite3")
    gw = GatewayService(make_config(tmp_path, calls={"health_interval": 0}), reactor)
    yield started(gw)
    try:
        host, port = gw.client.address("https")
        base = f"https://{host}:{port}"
        for path in ("/api/calls", "/api/gateways", "/metrics"):
            code, body = yield threads.deferToThread(fetch, base + path, None)
            assert code == 401 and "gw1" not in body and "active" not in body
        kind, body = yield threads.deferToThread(fetch, base + "/api/calls")
        assert kind == "application/json"
        assert json.loads(body) == {"active": [], "recent": []}
        _, body = yield threads.deferToThread(fetch, base + "/api/gateways")
        assert [g["name"] for g in json.loads(body)] == ["gw1"]
        _, body = yield threads.deferToThread(fetch, base + "/api/servers")
        assert json.loads(body)[0]["capacity"] == 1000
        kind, body = yield threads.deferToThread(fetch, base + "/metrics")
        assert "callgw_calls_total" in body and "callgw_active_calls 0.0" in body
    finally:
        yield gw.stopService()
