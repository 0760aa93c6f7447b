"""Nothing lost on a crash: ``kill -9`` of a real ``twistd -n callgw`` with calls up to sipp.

The next start of the same node closes every call the dead process left open: one CDR each
(cause 41, the restart named in its text), no active-call row left, and the gateway released:
sipp, which answered the calls and waits for a BYE for each, gets them (built from the dialog
stored with the active-call row at answer) and ends its scenario with success. On SQLite and on a
real PostgreSQL server (``db_target``, tests/pgserver.py).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from callgw.store.db import Database
from tests.callpath.callgw_env import PASSWORD, Sipp, prepare_db
from tests.ports import free_port
from tests.processes import ROOT, stop, twistd, wait_for

CALLS = 3
pytestmark = pytest.mark.peers("sipp")


def active_until(db_target, node, done, limit=30.0):
    """Poll ``node``'s active-call rows until ``done(rows)``; AssertionError after ``limit``."""
    deadline = time.monotonic() + limit
    db = Database(db_target)
    try:
        while True:
            rows = db.active_calls(node)
            if done(rows):
                return rows
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)
    finally:
        db.close()


def test_kill_9_with_calls_up_then_restart_closes_and_releases_them(tmp_path, db_target):
    sipp = Sipp("uas_answer.xml", tmp_path, calls=CALLS, timeout=60).start()
    prepare_db(tmp_path, gateways=[("paid", sipp.port, ["+49"], {"probe": "off"})],
               target=db_target)
    config = tmp_path / "callgw.toml"
    sip_port = free_port()          # a provider's SIP port is configured: the same after restart
    config.write_text(
        f'[general]\ndatabase = "{db_target}"\nnode = "crashy"\n'
        '[client]\nudp = "off"\ntcp = "127.0.0.1:0"\ntls = "off"\n[web]\nhttps = "off"\n'
        '[manhole]\ntelnet = "off"\n'
        f'[sip]\nudp = "127.0.0.1:{sip_port}"\ntcp = "off"\n'
        '[mgcp]\nudp = "off"\n[calls]\nhealth_interval = 0\n')
    dials, first, second = [], None, None
    try:
        first, log = twistd(tmp_path, config)
        found, _ = wait_for(log, r"listening: client-tcp tcp 127\.0\.0\.1:(\d+)", first)
        wait_for(log, "callgw ready", first)
        env = dict(os.environ, PYTHONPATH=str(ROOT), CALLGW_PASSWORD=PASSWORD)
        for i in range(CALLS):
            dials.append(subprocess.Popen(
                [sys.executable, "-m", "callgw.client.dial", "--server",
                 f"tcp://127.0.0.1:{found.group(1)}", "--user", "alice", "--duration", "60",
                 "--no-media-after", "0", f"+49301234{i:03d}"],
                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # answered and flushed with its dialog: what a crash may lose
        active_until(db_target, "crashy", lambda rows: sum(
            1 for r in rows if r["answered"] and r["recovery"] != "[]") == CALLS)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        for dial in dials:                  # the clients lose their server with it
            dial.kill()
            dial.wait()

        second, log2 = twistd(tmp_path, config)
        wait_for(log2, "callgw ready", second)
        _, text = wait_for(log2, r"start-up: 3 call\(s\) left open by the previous run of "
                                  r"crashy closed", second)
        code = None
        deadline = time.monotonic() + 20
        while code is None and time.monotonic() < deadline:
            code = sipp.process.poll()
            time.sleep(0.1)
        assert code == 0, sipp.log()         # every call got its BYE: sipp's scenario passed
        assert len(re.findall(r"released at paid", wait_for(
            log2, r"(?s)(released at paid.*){3}", second)[1])) == 3

        db = Database(db_target)
        try:
            assert db.active_calls() == [] and db.admitted_calls() == []
            cdrs = db.cdrs(10, "alice")
            assert len(cdrs) == CALLS
            for cdr in cdrs:
                assert cdr["cause"] == 41 and "restarted" in cdr["cause_text"]
                assert cdr["answered"] and cdr["duration"] > 0 and cdr["gateway"] == "paid"
                assert cdr["stats"]["recovered"] is True
        finally:
            db.close()
    finally:
        for dial in dials:
            if dial.poll() is None:
                dial.kill()
                dial.wait()
        for proc in (first, second):
            if proc is not None:
                stop(proc)
        sipp.stop()


def test_kill_9_while_ringing_then_restart_cancels_the_invite(tmp_path):
    """The gateway rings and never answers; callgw dies. The INVITE's state was stored with
    the active-call row when it was sent: the next start sends the CANCEL (the INVITE's own
    Via, so the gateway matches it) and writes the CDR of the unanswered call."""
    sipp = Sipp("uas_ring_orphan.xml", tmp_path, calls=1, timeout=60).start()
    prepare_db(tmp_path, gateways=[("paid", sipp.port, ["+49"], {"probe": "off"})])
    db_target = str(tmp_path / "callgw.sqlite3")
    config = tmp_path / "callgw.toml"
    config.write_text(
        f'[general]\ndatabase = "{db_target}"\nnode = "ringing"\n'
        '[client]\nudp = "off"\ntcp = "127.0.0.1:0"\ntls = "off"\n[web]\nhttps = "off"\n'
        '[manhole]\ntelnet = "off"\n'
        f'[sip]\nudp = "127.0.0.1:{free_port()}"\ntcp = "off"\n'
        '[mgcp]\nudp = "off"\n[calls]\nhealth_interval = 0\nno_answer_timeout = 120\n')
    dial, first, second = None, None, None
    try:
        first, log = twistd(tmp_path, config)
        found, _ = wait_for(log, r"listening: client-tcp tcp 127\.0\.0\.1:(\d+)", first)
        wait_for(log, "callgw ready", first)
        env = dict(os.environ, PYTHONPATH=str(ROOT), CALLGW_PASSWORD=PASSWORD)
        dial = subprocess.Popen(
            [sys.executable, "-m", "callgw.client.dial", "--server",
             f"tcp://127.0.0.1:{found.group(1)}", "--user", "alice", "--timeout", "100",
             "--reattach", "0", "+4930123400"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # ringing, flushed with the INVITE's state
        active_until(db_target, "ringing", lambda rows: rows and '"early"' in rows[0][
            "recovery"] and rows[0]["state"] != "null")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        dial.kill()
        dial.wait()

        second, log2 = twistd(tmp_path, config)
        wait_for(log2, r"start-up: 1 call\(s\) left open by the previous run of ringing "
                       r"closed", second)
        wait_for(log2, r"released at paid", second)
        deadline = time.monotonic() + 20
        while sipp.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sipp.process.poll() == 0, sipp.log()     # CANCEL taken, 200 and 487 sent
        db = Database(db_target)
        try:
            assert db.active_calls() == []
            [cdr] = db.cdrs(10, "alice")
            assert cdr["cause"] == 41 and cdr["answered"] is None
            assert cdr["stats"]["outcome"] == "failed" and cdr["stats"]["recovered"] is True
        finally:
            db.close()
    finally:
        if dial is not None and dial.poll() is None:
            dial.kill()
            dial.wait()
        for proc in (first, second):
            if proc is not None:
                stop(proc)
        sipp.stop()
