"""What a store failure means to its callers: the database is unavailable for now, or it
rejected what it was given.

Owned by the store. ``ThreadedStore`` (and any other ``IStore``) fails a call with
``StoreUnavailable`` when the database cannot do the work right now -- locked by another
process, a read-only file, a full disk, an I/O error, a PostgreSQL server that is down or
dropped the connection -- so callers can tell a passing fault
(keep the records and retry; serve from memory; answer with the cause) from a request the data
refuses (``StoreError``, also importable from ``callgw.store.db``) or a bug. ``describe`` names the fault in a few words
for logs, metrics and answers to clients.

Tests: tests/store/test_threaded.py.
"""
from __future__ import annotations

import sqlite3

class StoreError(ValueError):
    """A request the data refuses: a duplicate, a missing row, a bad value. The text says which."""


#: Short names of database faults, for metric labels and log lines.
FAULTS = ("locked", "read-only", "disk-full", "io-error", "cannot-open", "corrupt", "slow",
          "other")


class StoreUnavailable(Exception):
    """The database cannot do this now (``fault``: one of FAULTS; ``str()`` the cause)."""

    def __init__(self, fault: str, text: str):
        super().__init__(f"database unavailable ({fault}): {text}")
        self.fault = fault
        self.text = text


def fault_of(error: BaseException) -> str | None:
    """The FAULTS name of a database error that may pass with time, or None when it is not
    one (a constraint, a programming error: retrying the same work cannot help)."""
    if isinstance(error, StoreUnavailable):
        return error.fault
    # the DB-API names, as sqlite3 and psycopg (and its subclasses of them) both spell them
    names = {c.__name__ for c in type(error).__mro__}
    if names & {"IntegrityError", "ProgrammingError", "InterfaceError", "DataError",
                "NotSupportedError"} and not _connection_gone(error):
        return None
    if not isinstance(error, sqlite3.DatabaseError) and not names & {
            "OperationalError", "InternalError", "DatabaseError"}:
        return None
    text = str(error).lower()
    for words, fault in ((("locked", "busy", "lock timeout", "deadlock"), "locked"),
                         (("readonly", "read-only", "read only"), "read-only"),
                         (("full", "no space left"), "disk-full"),
                         (("i/o", "disk i/o", "server closed the connection",
                           "connection is closed", "connection is lost",
                           "terminating connection"), "io-error"),
                         (("unable to open", "connection failed", "could not connect",
                           "connection refused", "does not exist"), "cannot-open"),
                         (("malformed", "not a database", "corrupt"), "corrupt")):
        if any(w in text for w in words):
            return fault
    return "other"


def _connection_gone(error: BaseException) -> bool:
    """psycopg reports a statement on a dropped connection as an ``InterfaceError`` or
    ``OperationalError`` whose text says so: a passing fault, not a bug."""
    text = str(error).lower()
    return "connection is closed" in text or "connection is lost" in text


def log_write_failure(log, failure, text: str, **fields) -> None:
    """Log a failed store write whose data is written again later (status, publication): a
    database fault is one warning line (``text: cause``), anything else a failure with its
    traceback. ``failure`` may wrap the fault in a ``FirstError`` (``gatherResults``)."""
    value = failure.value
    inner = getattr(value, "subFailure", None)
    if inner is not None:
        value = inner.value
    if isinstance(value, StoreUnavailable):
        log.warn(text + ": {cause}", cause=str(value), **fields)
    else:
        log.failure(text, failure, **fields)


def unavailable(error: BaseException) -> BaseException:
    """``error`` as a ``StoreUnavailable`` when it is a passing database fault, else itself."""
    fault = fault_of(error)
    if fault is None or isinstance(error, StoreUnavailable):
        return error
    return StoreUnavailable(fault, str(error))
