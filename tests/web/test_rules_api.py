"""The admin API's authorization rules and address books (callgw/web/rules_api.py over
callgw/admin_service.py) against a running callgw: without credentials 401; an admin (HTTP
Basic over TLS) adds a rule blocking callgw's echo number for a user, whose call with
``callgw-dial`` (a subprocess) is then refused, and removes it, after which the call goes
through; adds and removes address-book entries; mistakes get the CLI's one line as 400s, unknown
rules, users and entries 404s.
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import pytest_twisted

from tests.callpath.callgw_env import PASSWORD, prepare_db, sleep
from tests.web.admins import add_admin
from tests.web.test_gateways_api import api

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import dial, start, url  # noqa: E402

ECHO = "+4930999999"


@pytest_twisted.inlineCallbacks
def test_an_admin_blocks_a_number_for_a_user_and_keeps_their_address_book(tmp_path):
    prepare_db(tmp_path)
    add_admin(tmp_path / "callgw.sqlite3")
    gw = yield start(tmp_path, web=True, calls={"echo_number": ECHO})
    host, port = gw.client.address("https")
    base = f"https://{host}:{port}"

    def call_echo():
        return dial("--server", url(gw, "tcp"), "--user", "alice", "--duration", "0.5", ECHO,
                    password=PASSWORD, timeout=60)
    try:
        for method, path in (("GET", "/api/rules"), ("POST", "/api/rules"),
                             ("DELETE", "/api/rules/1"), ("GET", "/api/books/alice"),
                             ("POST", "/api/books/alice"), ("DELETE", "/api/books/alice/x")):
            code, _, _ = yield api(base, path, method, body={}, auth=False)
            assert code == 401, (method, path)

        code, out = yield call_echo()
        assert code == 0, out
        _, _, defaults = yield api(base, "/api/rules?tenant=default")
        assert defaults and all(r["tenant"] == "default" for r in defaults)

        code, _, rule = yield api(base, "/api/rules", "POST", body={
            "kind": "block", "value": "+4930999", "user": "alice", "note": "no echo"})
        assert code == 201, rule
        assert (rule["username"], rule["kind"], rule["value"]) == ("alice", "block", "+4930999")
        _, _, rules = yield api(base, "/api/rules?user=alice")
        assert [r["id"] for r in rules] == [rule["id"]]
        yield sleep(0.5)                               # the reload interval (0.2 s)
        code, out = yield call_echo()
        assert code != 0 and "block" in out.lower(), out

        for body, words in (({"kind": "block", "value": "49"}, "49"),
                            ({"kind": "teleport", "value": "+1"}, "teleport"),
                            ({"kind": "block", "value": "+1", "user": "nobody"}, "no user"),
                            ({"kind": "block", "value": "+1", "user": "alice",
                              "tenant": "default"}, "not both"),
                            ({"value": "+1"}, "expected")):
            code, _, answer = yield api(base, "/api/rules", "POST", body=body)
            assert code == 400 and words in answer["error"], (body, answer)

        code, _, answer = yield api(base, f"/api/rules/{rule['id']}", "DELETE")
        assert code == 200 and answer == {"removed": rule["id"]}, answer
        code, _, _ = yield api(base, f"/api/rules/{rule['id']}", "DELETE")
        assert code == 404
        code, _, _ = yield api(base, "/api/rules/abc", "DELETE")
        assert code == 404
        yield sleep(0.5)
        code, out = yield call_echo()
        assert code == 0, out

        code, _, entry = yield api(base, "/api/books/alice", "POST",
                                   body={"name": "Echo test", "number": ECHO})
        assert code == 201 and entry == {"name": "Echo test", "number": ECHO}, entry
        _, _, book = yield api(base, "/api/books/alice")
        assert [(e["name"], e["number"]) for e in book] == [("Echo test", ECHO)]
        code, _, answer = yield api(base, "/api/books/alice", "POST",
                                    body={"name": "Echo test", "number": ECHO})
        assert code == 400 and "already has" in answer["error"], answer
        code, _, answer = yield api(base, "/api/books/alice", "POST",
                                    body={"name": "Bad", "number": "0301"})
        assert code == 400, answer
        code, _, _ = yield api(base, "/api/books/nobody", "POST",
                               body={"name": "X", "number": ECHO})
        assert code == 404
        code, _, _ = yield api(base, "/api/books/nobody")
        assert code == 404
        code, _, answer = yield api(base, "/api/books/alice/" + quote("Echo test"), "DELETE")
        assert code == 200 and answer == {"removed": "Echo test"}, answer
        code, _, _ = yield api(base, "/api/books/alice/" + quote("Echo test"), "DELETE")
        assert code == 404
        _, _, book = yield api(base, "/api/books/alice")
        assert book == []
    finally:
        yield gw.stopService()
