"""The operator dashboard's admin API routes (callgw/web/dashboard.py) over a running callgw's
HTTPS site: a live call placed by ``callgw-dial`` (a subprocess) to callgw's echo number shows in
``/api/calls`` and the live stream, its story holds both legs' messages and the routing, the
operator ends it (``POST /api/calls/<id>/end``: the client is released and the CDR says so);
records by filter as JSON and CSV; refused attempts; gateways; bad filters are 400s.

Requests carry HTTP Basic credentials of an admin made with the store (what the admin guard in
front of ``/api`` asks for)."""
from __future__ import annotations

import base64
import csv
import io
import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor, threads

from callgw import passwords
from callgw.store.db import Database
from tests.callpath.callgw_env import PASSWORD, prepare_db, sleep, within

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import dial, start, url  # noqa: E402

ECHO = "+4930999999"
ADMIN, ADMIN_PASSWORD = "root", "admin secret 1"


def prepare(tmp_path):
    prepare_db(tmp_path)
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.add_admin(ADMIN, passwords.hash_password(ADMIN_PASSWORD, n=1024), 1.0)
    old = {"call_id": "old-1", "username": "bob", "tenant": "default", "target": "+4989111",
           "gateway": "gw9", "call_server": "n/cs1", "requested": 50.0, "ringing": None,
           "answered": None, "ended": 60.0, "duration": 0.0, "cause": 17,
           "cause_text": "=busy", "media_mode": "relayed", "stats": {"outcome": "busy"}}
    refused = {"call_id": "r-1", "kind": "refused", "at": 70.0, "data": {
        "user": "alice", "target": "+1900555", "reason": "blocked", "code": 403,
        "text": "destination blocked: +1900 (NANP premium rate)", "peer": "127.0.0.1"}}
    db.call_log_batch([], [refused], [], [old], [])
    db.add_gateway("gw-off", "sip", "127.0.0.1", 9, ["+33"], 1.0)
    db.conn.execute("UPDATE gateways SET enabled = 0 WHERE name = 'gw-off'")
    db.close()


def request(base, path, method="GET", auth=True):
    """(status, headers, body) of one request, without raising on 4xx."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE           # callgw's self-signed test certificate
    req = urllib.request.Request(base + path, method=method,
                                 data=b"" if method == "POST" else None)
    if auth:
        token = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def first_event(base):
    """The live stream's first event (name, data)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(base + "/api/calls/stream")
    req.add_header("Authorization", "Basic " + base64.b64encode(
        f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode())
    with urllib.request.urlopen(req, context=context, timeout=10) as r:
        assert r.headers["content-type"] == "text/event-stream"
        lines = []
        while True:
            line = r.readline().decode().rstrip("\n")
            if line.startswith(("event:", "data:")):
                lines.append(line)
            if line == "" and any(x.startswith("data:") for x in lines):
                break
    name = next(x for x in lines if x.startswith("event:"))[6:].strip()
    return name, json.loads(next(x for x in lines if x.startswith("data:"))[5:])


def get(base, path, **kw):
    return threads.deferToThread(request, base, path, **kw)


@pytest_twisted.inlineCallbacks
def test_dashboard_routes_show_and_end_a_live_call(tmp_path):
    prepare(tmp_path)
    gw = yield start(tmp_path, web=True, calls={"echo_number": ECHO})
    host, port = gw.client.address("https")
    base = f"https://{host}:{port}"
    call = dial("--server", url(gw, "tcp"), "--user", "alice", "--duration", "60", ECHO,
                password=PASSWORD, timeout=90)
    try:
        active = []
        for _ in range(100):
            _, _, body = yield get(base, "/api/calls")
            active = json.loads(body)["active"]
            if active and active[0]["state"] == "active":
                break
            yield sleep(0.1)
        assert len(active) == 1 and active[0]["state"] == "active", active
        call_id = active[0]["call_id"]
        assert active[0]["username"] == "alice" and active[0]["gateway"] == "echo"

        name, state = yield threads.deferToThread(first_event, base)
        assert name == "state"
        assert [c["call_id"] for c in state["active"]] == [call_id]
        assert state["servers"][0]["state"] == "up"
        assert {g["name"]: g["status"] for g in state["gateways"]}["gw-off"] == "draining"

        yield sleep(0.5)                               # the logger's flush
        code, _, body = yield get(base, f"/api/calls/{call_id}")
        assert code == 200, body
        story = json.loads(body)
        assert story["live"]["call_id"] == call_id and story["cdr"] is None
        legs = {t["leg"] for t in story["trace"]}
        assert {"client", "echo"} <= legs, story["trace"]
        assert all(t["direction"] in ("in", "out") for t in story["trace"])
        first = story["routing"][0]
        assert first["kind"] == "attempt" and first["data"]["candidates"] == ["echo"]

        code, _, body = yield get(base, "/api/calls/nope/end", method="POST")
        assert code == 404, body
        code, _, body = yield get(base, f"/api/calls/{call_id}/end", method="POST")
        assert code == 200 and json.loads(body) == {"ended": call_id}, body
        exit_code, out = yield within(call, 30)
        print(out)
        assert "16" in out or "operator" in out, out
        for _ in range(50):
            code, _, body = yield get(base, f"/api/calls/{call_id}")
            story = json.loads(body)
            if story["cdr"] is not None:
                break
            yield sleep(0.1)
        assert story["live"] is None
        assert story["cdr"]["cause"] == 16
        assert story["cdr"]["cause_text"] == "ended by an operator"
        kinds = [e["kind"] for e in story["events"]]
        assert "operator-ended" in kinds and kinds[-1] == "disconnected"
        _, _, body = yield get(base, "/api/calls")
        assert json.loads(body)["active"] == []

        _, _, body = yield get(base, "/api/cdrs?user=alice")
        assert [r["call_id"] for r in json.loads(body)] == [call_id]
        _, _, body = yield get(base, "/api/cdrs")
        assert [r["call_id"] for r in json.loads(body)] == [call_id, "old-1"]
        _, _, body = yield get(base, "/api/cdrs?prefix=%2B4989&cause=17&since=40&until=55")
        assert [r["call_id"] for r in json.loads(body)] == ["old-1"]
        code, headers, body = yield get(base, "/api/cdrs?prefix=%2B4989&format=csv")
        assert code == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
        assert "attachment" in headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(body)))
        assert [r["call_id"] for r in rows] == ["old-1"]
        assert rows[0]["target"] == "+4989111" and rows[0]["cause_text"] == "'=busy"
        assert rows[0]["outcome"] == "busy"
        for bad in ("since=soon", "until=nan", "cause=x", "cause=12345"):
            code, _, _ = yield get(base, "/api/cdrs?" + bad)
            assert code == 400, bad

        _, _, body = yield get(base, "/api/refused")
        refused = json.loads(body)
        assert refused[0]["reason"] == "blocked" and refused[0]["target"] == "+1900555"
        _, _, body = yield get(base, "/api/gateways")
        gateways = {g["name"]: g for g in json.loads(body)}
        assert gateways["gw-off"]["status"] == "draining"
        assert gateways["gw-off"]["failures"] == 0
        code, _, _ = yield get(base, "/api/calls/no-such-call")
        assert code == 404
    finally:
        yield gw.stopService()
        if not call.called:
            call.cancel()
            call.addErrback(lambda f: None)
