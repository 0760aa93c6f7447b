"""The call logger during a database fault: records held and retried until written, said so
in the log and metrics; every call still gets exactly one CDR (unit tests: a store that fails
like SQLite does, task.Clock). The same against a real process and a real lock or read-only
file: tests/callpath/test_db_faults.py."""
from __future__ import annotations

import sqlite3

from prometheus_client import generate_latest
from twisted.internet.defer import fail
from twisted.logger import globalLogPublisher

from callgw.callserver import events as ev
from callgw.callserver.metrics import CallMetrics
from callgw.store.errors import StoreUnavailable, fault_of, unavailable
from tests.callpath.test_handler import make, start
from tests.logcheck import logs_failure


class FaultyStore:
    """Wraps a SyncStore: while ``fault`` is set, ``call_log_batch`` fails as SQLite would."""

    def __init__(self, store):
        self.store = store
        self.fault: Exception | None = None
        self.tries = 0

    def run(self, name, *args, **kwargs):
        if name == "call_log_batch":
            self.tries += 1
            if self.fault is not None:
                return fail(unavailable(self.fault))
        return self.store.run(name, *args, **kwargs)


class Logged:
    def __init__(self):
        self.events = []

    def __enter__(self):
        globalLogPublisher.addObserver(self.events.append)
        return self

    def __exit__(self, *exc):
        globalLogPublisher.removeObserver(self.events.append)

    def texts(self):
        from twisted.logger import formatEvent
        return [formatEvent(e) for e in self.events]


def answered_call(**kw):
    h, a, slaves, clock, logger, store, _ = make(scripts={"gw1": {"Setup": (ev.Connect(),)}},
                                                 **kw)
    faulty = FaultyStore(store)
    logger.store = faulty
    logger.metrics = CallMetrics()
    logger.startService()
    return h, a, clock, logger, store, faulty


def metric(logger, name):
    for line in generate_latest(logger.metrics.registry).decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return line
    return None


def test_sqlite_errors_are_named_faults():
    assert fault_of(sqlite3.OperationalError("database is locked")) == "locked"
    assert fault_of(sqlite3.OperationalError("attempt to write a readonly database")) == \
        "read-only"
    assert fault_of(sqlite3.OperationalError("database or disk is full")) == "disk-full"
    assert fault_of(sqlite3.OperationalError("disk I/O error")) == "io-error"
    assert fault_of(sqlite3.IntegrityError("NOT NULL constraint failed")) is None
    assert fault_of(ValueError("bug")) is None
    e = unavailable(sqlite3.OperationalError("database is locked"))
    assert isinstance(e, StoreUnavailable) and "locked" in str(e)


@logs_failure(match="call logger: cannot write to the database")
def test_a_fault_holds_the_records_and_the_retry_writes_them_once():
    h, a, clock, logger, store, faulty = answered_call()
    start(h)
    clock.advance(0.2)                                       # the active row is written
    assert [r["call_id"] for r in store.db.active_calls()] == ["call-1"]
    faulty.fault = sqlite3.OperationalError("attempt to write a readonly database")
    with Logged() as logged:
        a.emit(ev.Release(16, "client hung up"))
        for _ in range(50):                                  # 10 s of flushes while it fails
            clock.advance(0.2)
    assert store.db.get_cdr("call-1") is None
    assert logger.held is not None and "call-1" in logger.held.cdrs
    assert logger.fault == "read-only"
    errors = [t for t in logged.texts() if "cannot write to the database" in t]
    assert len(errors) == 1 and "read-only" in errors[0] and "1 CDRs" in errors[0]
    assert 3 <= faulty.tries <= 12                           # backed off, not every 200 ms
    assert metric(logger, "callgw_call_log_database_ok") == "callgw_call_log_database_ok 0.0"
    assert float(metric(logger, "callgw_call_log_held_records").split()[-1]) == len(logger.held)
    assert 'fault="read-only"' in metric(logger, "callgw_call_log_write_failures_total")
    assert logger.active_calls() == []                       # the live list already knows
    faulty.fault = None
    with Logged() as logged:
        for _ in range(30):
            clock.advance(0.2)
    assert store.db.get_cdr("call-1")["cause"] == 16
    assert store.db.active_calls() == []                     # the ended call left the table
    assert len(store.db.cdrs(50)) == 1
    assert logger.held is None and logger.fault is None
    assert any("database writable again" in t for t in logged.texts())
    assert metric(logger, "callgw_call_log_database_ok") == "callgw_call_log_database_ok 1.0"
    assert metric(logger, "callgw_call_log_held_records") == "callgw_call_log_held_records 0.0"
    kinds = [e["kind"] for e in store.db.call_events("call-1")]
    assert kinds.count("launched") == 1 and kinds[-1] == "disconnected"
    logger.stopService()


@logs_failure(match="call logger: cannot write to the database")
def test_a_call_that_starts_and_ends_during_the_fault_never_shows_as_active():
    h, a, clock, logger, store, faulty = answered_call()
    faulty.fault = sqlite3.OperationalError("database is locked")
    start(h)
    clock.advance(1.0)
    assert logger.held is not None and "call-1" in logger.held.active
    a.emit(ev.Release(16))
    clock.advance(1.0)
    assert "call-1" not in logger.held.active and "call-1" in logger.held.cdrs
    faulty.fault = None
    clock.advance(6.0)
    assert store.db.active_calls() == [] and store.db.get_cdr("call-1") is not None


@logs_failure(sqlite3.IntegrityError, match="the database refused a batch")
@logs_failure(match="call log record not written")
def test_a_record_the_database_refuses_does_not_take_the_others_with_it():
    h, a, clock, logger, store, faulty = answered_call()
    start(h)
    a.emit(ev.Release(16))
    logger.cdr({"call_id": "bad", "username": None})            # NOT NULL: refused
    with Logged() as logged:
        clock.advance(0.2)
    assert store.db.get_cdr("call-1") is not None
    assert logger.rejected == 1 and logger.held is None
    assert any("call log record not written" in t and '"bad"' in t for t in logged.texts())


@logs_failure(match="call logger: cannot write to the database")
def test_held_events_and_traces_are_capped_but_cdrs_are_not():
    h, a, clock, logger, store, faulty = answered_call()
    logger.hold_limit = 100
    faulty.fault = sqlite3.OperationalError("database or disk is full")
    start(h)
    for i in range(300):
        logger.trace("call-1", ev.Trace("sip", "out", f"INFO {i}"))
    a.emit(ev.Release(16))
    clock.advance(1.0)
    assert len(logger.held.events) + len(logger.held.traces) == 100
    assert logger.dropped > 0 and "call-1" in logger.held.cdrs
    faulty.fault = None
    clock.advance(6.0)
    assert store.db.get_cdr("call-1") is not None


@logs_failure(match="call logger: cannot write to the database")
@logs_failure(match="call log records not written at shutdown")
def test_stopping_during_the_fault_logs_the_unwritten_cdrs_in_full():
    h, a, clock, logger, store, faulty = answered_call()
    faulty.fault = sqlite3.OperationalError("database is locked")
    start(h)
    a.emit(ev.Release(16, "client hung up"))
    clock.advance(0.2)
    with Logged() as logged:
        d = logger.stopService()
    assert d.called
    text = [t for t in logged.texts() if "not written at shutdown" in t]
    assert len(text) == 1 and '"call_id": "call-1"' in text[0] and "client hung up" in text[0]


def test_a_status_write_lost_to_a_fault_is_one_warning_line():
    from twisted.internet.defer import FirstError
    from twisted.logger import Logger
    from twisted.python.failure import Failure

    from callgw.store.errors import log_write_failure
    fault = Failure(unavailable(sqlite3.OperationalError("database is locked")))
    with Logged() as logged:
        log_write_failure(Logger(), Failure(FirstError(fault, 0)), "publishing call servers")
    assert [e.get("log_level").name for e in logged.events] == ["warn"]
    assert "publishing call servers: database unavailable (locked)" in logged.texts()[0]
