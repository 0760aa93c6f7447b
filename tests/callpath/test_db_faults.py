"""Database faults injected into a running callgw while calls go to sipp: the database locked by
another process, the file made read-only (``chattr +i``), the disk full (a small tmpfs). Calls
and logins go on; the call logger holds the records, says so in the log and the metrics, and
writes them when the fault ends: every call has exactly one CDR and no ended call stays in the
active-call table. (Unit tests of the same: tests/callpath/test_logger_faults.py.)

Clients are ``callgw-dial`` processes running the code under test; the fault comes from outside
the gateway: another process holding SQLite's write lock, ``chattr``, a full file system.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import formatEvent, globalLogPublisher

from tests.callpath.callgw_env import (PASSWORD, Sipp, client_url, prepare_db, sleep,
                                       start)

pytestmark = pytest.mark.peers("sipp")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CI = os.environ.get("CI") == "true"
#: How SQLite names each fault: a file made immutable under an open connection fails its
#: writes with EPERM, which SQLite reports as "disk I/O error"; a full disk as "database or disk
#: is full" or, when the journal cannot grow, an I/O error.
NAMED = {"locked": ("locked",), "read-only": ("read-only", "io-error"),
         "disk-full": ("disk-full", "io-error")}
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def dial(gw, user, target, *extra):
    """callgw-dial as a separate process; fires with (exit code, output)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT, "CALLGW_PASSWORD": PASSWORD}
    d = getProcessOutputAndValue(
        sys.executable, ["-m", "callgw.client.dial", "--server", client_url(gw, "tcp"),
                         "--user", user, "--timeout", "8", "--duration", "0.5", *extra, target],
        env=env, path=ROOT, reactor=reactor)
    d.addCallback(lambda r: (r[2], (r[0] + r[1]).decode("utf-8", "replace")))
    return d.addTimeout(40, reactor)


class LogWatch:
    """The gateway's log lines (formatted), while the test runs."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, event):
        try:
            self.lines.append(formatEvent(event))
        except Exception:       # noqa: BLE001 - a log line this watch cannot format
            pass

    def having(self, text):
        return [line for line in self.lines if text in line]


class Fault:
    """A database fault made from outside the gateway: ``kind`` locked, read-only, disk-full."""

    def __init__(self, kind, path):
        self.kind, self.path = kind, path
        self.locker = None
        self.filler = None

    def begin(self):
        if self.kind == "locked":
            self.locker = subprocess.Popen([sys.executable, "-c", LOCKER, self.path],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           text=True)
            assert self.locker.stdout.readline().strip() == "locked"
        elif self.kind == "read-only":
            for name in (self.path, self.path + "-wal"):
                subprocess.run(["chattr", "+i", name], check=True, capture_output=True)
        else:   # disk-full: the database lives on a small tmpfs; fill it up
            self.filler = os.path.join(os.path.dirname(self.path), "filler")
            with open(self.filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass

    def end(self):
        if self.locker is not None and self.locker.poll() is None:
            self.locker.stdin.write("\n")
            self.locker.stdin.flush()
            self.locker.wait(10)
        self.locker = None
        if self.kind == "read-only":
            for name in (self.path, self.path + "-wal"):
                subprocess.run(["chattr", "-i", name], capture_output=True)
        if self.filler is not None and os.path.exists(self.filler):
            os.unlink(self.filler)


def capability(kind, tmp_path):
    """Whether this machine lets the test make the fault; the database directory to use."""
    problem = None
    if kind == "read-only":
        probe = tmp_path / "probe"
        probe.write_text("x")
        r = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        if shutil.which("chattr") is None or r.returncode != 0:
            problem = f"chattr +i not permitted here: {r.stderr.strip()}"
    elif kind == "disk-full":
        mnt = tmp_path / "small"
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problem = f"cannot mount a small tmpfs here: {r.stderr.strip()}"
        else:
            return mnt
    if problem:
        if CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return tmp_path


def cdr_counts(path):
    """``{target: CDRs}`` read by a connection of this test (WAL lets it read under a lock)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT target, COUNT(*) FROM cdrs GROUP BY target").fetchall()
        active = conn.execute("SELECT COUNT(*) FROM active_calls").fetchone()[0]
        return dict(rows), active
    finally:
        conn.close()


@defer.inlineCallbacks
def until(predicate, limit=20.0):
    waited = 0.0
    while not predicate():
        if waited >= limit:
            return False
        yield sleep(0.1)
        waited += 0.1
    return True


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("kind", ["locked", "read-only", "disk-full"])
def test_calls_and_logins_go_on_during_a_database_fault_and_no_cdr_is_lost(tmp_path, kind,
                                                                            expect_logged_failure):
    expect_logged_failure(match="call logger: cannot write to the database")
    home = capability(kind, tmp_path)
    sipp = Sipp("uas_answer.xml", tmp_path, calls=4, timeout=60).start()
    prepare_db(home, users=("alice", "bob"), gateways=[("gw1", sipp.port, ["+49"], {})])
    if home != tmp_path:        # the database on the small file system; the rest in tmp_path
        os.symlink(home / "callgw.sqlite3", tmp_path / "callgw.sqlite3")
    db_path = str(home / "callgw.sqlite3")
    watch = LogWatch()
    globalLogPublisher.addObserver(watch)
    gw = yield start(tmp_path, general={"database": db_path})
    fault = Fault(kind, db_path)
    try:
        code, out = yield dial(gw, "alice", "+4930100001")          # before the fault
        assert code == 0, out
        assert (yield until(lambda: cdr_counts(db_path)[0] == {"+4930100001": 1}))
        fault.begin()
        # during the fault: a known user twice, a user who never logged in before, all normal
        results = yield defer.gatherResults([
            dial(gw, "alice", "+4930100002"), dial(gw, "alice", "+4930100003"),
            dial(gw, "bob", "+4930100004")])
        for code, out in results:
            assert code == 0, out
            assert "disconnected: normal" in out
        logger = gw.callpath.logger
        assert (yield until(lambda: logger.held is not None and len(logger.held.cdrs) == 3))
        assert logger.fault in NAMED[kind], logger.fault
        assert cdr_counts(db_path)[0] == {"+4930100001": 1}     # not written yet...
        assert logger.active_calls() == []                      # ...but no call is live
        failed = watch.having("call logger: cannot write to the database")
        assert len(failed) == 1 and f"({logger.fault}:" in failed[0], watch.lines[-20:]
        metrics = generate_latest(gw.callpath.metrics.registry).decode()
        assert "callgw_call_log_database_ok 0.0" in metrics
        assert f'callgw_call_log_write_failures_total{{fault="{logger.fault}"}}' in metrics
        fault.end()
        # the database is back: everything held is written, once
        every = {f"+493010000{i}": 1 for i in range(1, 5)}
        # (``held`` is None as soon as the retry takes the records: wait for the commit)
        assert (yield until(lambda: logger.held is None and cdr_counts(db_path)[0] == every,
                            15)), (logger.fault, cdr_counts(db_path))
        counts, active = cdr_counts(db_path)
        assert counts == every, counts
        assert active == 0
        assert len(watch.having("database writable again")) == 1
        metrics = generate_latest(gw.callpath.metrics.registry).decode()
        assert "callgw_call_log_database_ok 1.0" in metrics
        assert "callgw_call_log_held_records 0.0" in metrics
        assert (yield sipp.wait(reactor)) == 0, sipp.log()
    finally:
        fault.end()
        globalLogPublisher.removeObserver(watch)
        yield gw.stopService()
        sipp.stop()
        if home != tmp_path:
            subprocess.run(["umount", "-l", str(home)], capture_output=True)
