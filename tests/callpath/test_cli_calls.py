"""`callgw calls` and `callgw cdr` show what the call logger wrote."""
from __future__ import annotations

import io

from callgw import cli
from callgw.store.db import Database


def test_calls_and_cdr(tmp_path):
    path = tmp_path / "callgw.sqlite3"
    (tmp_path / "c.toml").write_text(f'[general]\ndatabase = "{path}"\n')
    db = Database(str(path))
    db.migrate()
    row = {"call_id": "n-1", "username": "alice", "target": "+4930123", "gateway": "gw1",
           "call_server": "n/cs1", "node": "n", "state": "active", "media_mode": "relay",
           "started": 100.0, "updated": 101.0}
    cdr = {"call_id": "n-0", "username": "alice", "tenant": "default", "target": "+4930999",
           "gateway": "gw1", "call_server": "n/cs1", "requested": 1.0, "ringing": 2.0,
           "answered": 3.0, "ended": 13.0, "duration": 10.0, "cause": 16,
           "cause_text": "client hung up", "media_mode": "relay", "stats": {"attempts": 1}}
    db.call_log_batch([row], [{"call_id": "n-1", "kind": "launched", "at": 100.0}], [],
                      [cdr], [])
    db.close()
    out = io.StringIO()
    assert cli.main(["--config", str(tmp_path / "c.toml"), "calls"], out=out) == 0
    assert "n-1" in out.getvalue() and "active" in out.getvalue()
    out = io.StringIO()
    assert cli.main(["--config", str(tmp_path / "c.toml"), "cdr"], out=out) == 0
    assert "client hung up" in out.getvalue()
    db = Database(str(path))
    db.call_log_batch([], [], [], [], ["n-1"])
    assert db.active_calls() == [] and db.get_cdr("n-0")["stats"] == {"attempts": 1}
    assert db.close_calls("n", [], []) == []
    db.close()
