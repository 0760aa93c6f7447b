"""Where SQLite and PostgreSQL differ, in one place: opening a connection, placeholders, the
schema version, column types in migrations, transactions, locks for admission, upserts.

Owned by the store. ``connect(target, busy_timeout)`` opens a ``Connection`` for a database
target: a ``postgresql://`` (or ``postgres://``) URL is PostgreSQL through psycopg 3, anything
else a SQLite file (or ``:memory:``). ``Database`` (callgw/store/db.py) writes its SQL once, in
the dialect both engines share, with ``?`` placeholders; the ``Connection`` here translates:

- placeholders: ``?`` becomes ``%s`` for psycopg (and a literal ``%`` becomes ``%%``);
- migrations (``ddl``): ``INTEGER PRIMARY KEY`` ids become identity columns and ``REAL``
  becomes ``DOUBLE PRECISION`` on PostgreSQL (its ``REAL`` is single precision: a Unix time
  would lose its seconds);
- the schema version: ``PRAGMA user_version`` on SQLite, a one-row ``schema_version`` table on
  PostgreSQL;
- transactions: ``BEGIN IMMEDIATE`` on SQLite (the write lock at once), ``BEGIN`` on
  PostgreSQL; ``lock(key)`` serializes transactions on one key across processes (PostgreSQL's
  transaction-scoped advisory lock; SQLite's write lock already serializes every writer);
- ``insert``/``upsert``: ``INSERT ... ON CONFLICT (pk) DO UPDATE SET c = excluded.c``, the same
  text on both (SQLite 3.24+), built here from a row mapping.

Both connections run in autocommit mode with explicit transactions. A PostgreSQL connection the
server dropped is opened again before the next statement (never inside a transaction).

Tests: tests/store/test_db.py (every test runs on both engines), tests/store/test_dialect.py.
"""
from __future__ import annotations

import re
import sqlite3
import time
import zlib
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterable, Sequence


def is_postgresql(target: str) -> bool:
    """Whether a ``[general] database`` value names a PostgreSQL server (a URL)."""
    return target.startswith(("postgresql://", "postgres://"))


def redacted(target: str) -> str:
    """``target`` fit for a log line: a URL's password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", target)


def connect(target: str, busy_timeout: float) -> "Connection":
    """A connection to ``target`` (a SQLite path or a PostgreSQL URL); a lock held by another
    connection is waited for at most ``busy_timeout`` seconds."""
    if is_postgresql(target):
        return PostgresConnection(target, busy_timeout)
    return SqliteConnection(target, busy_timeout)


class Connection:
    """What ``Database`` uses of a connection; subclasses hold the engine's own."""

    engine = ""
    #: whether several processes on several hosts may share this database
    shared = False

    def execute(self, sql: str, params: Sequence[Any] = ()):
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def end(self, commit: bool) -> None:
        """``COMMIT`` or ``ROLLBACK`` the transaction ``begin`` opened (a rollback on a
        connection that is gone is a no-op: the server rolled it back)."""
        self.execute("COMMIT" if commit else "ROLLBACK")

    def ddl(self, sql: str) -> str:
        """A migration statement as this engine needs it."""
        return sql

    def schema_version(self) -> int:
        raise NotImplementedError

    def set_schema_version(self, number: int) -> None:
        raise NotImplementedError

    def lock(self, key: str) -> None:
        """Inside a transaction: hold a lock on ``key`` until it ends (other processes'
        transactions locking the same key wait)."""

    # -- rows ----------------------------------------------------------------------------------
    def insert(self, table: str, row: dict) -> None:
        cols = list(row)
        self.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                     f"({', '.join('?' * len(cols))})", [row[c] for c in cols])

    def upsert(self, table: str, row: dict, pk: str | tuple[str, ...]) -> None:
        """Insert ``row``, or update the row with its primary key ``pk`` to it."""
        self.execute(upsert_sql(table, tuple(row), pk), list(row.values()))

    def upsert_many(self, table: str, columns: tuple[str, ...], pk: str,
                    rows: Iterable[Sequence[Any]]) -> None:
        self.executemany(upsert_sql(table, columns, pk), rows)


@lru_cache(maxsize=256)
def upsert_sql(table: str, columns: tuple[str, ...], pk: str | tuple[str, ...]) -> str:
    keys = (pk,) if isinstance(pk, str) else tuple(pk)
    rest = [c for c in columns if c not in keys]
    action = (f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}" if rest
              else "DO NOTHING")
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))}) ON CONFLICT ({', '.join(keys)}) {action}")


class SqliteConnection(Connection):
    """SQLite: WAL, ``synchronous=NORMAL``, foreign keys on, a busy timeout."""

    engine = "sqlite"

    def __init__(self, path: str, busy_timeout: float):
        import os
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self._use_wal(conn, busy_timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self.raw = conn

    @staticmethod
    def _use_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
        """Put the file in WAL mode (a setting the file keeps). SQLite answers "database is
        locked" at once, without its busy timeout, when another connection holds the file
        while this one changes the journal mode (processes starting together on a new file):
        that is retried until ``busy_timeout`` has passed."""
        deadline = time.monotonic() + busy_timeout
        pause = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def execute(self, sql, params=()):
        return self.raw.execute(sql, tuple(params))

    def executemany(self, sql, rows):
        self.raw.executemany(sql, rows)

    def close(self):
        self.raw.close()

    @property
    def in_transaction(self):
        return self.raw.in_transaction

    def begin(self):
        self.raw.execute("BEGIN IMMEDIATE")

    def schema_version(self):
        return self.raw.execute("PRAGMA user_version").fetchone()[0]

    def set_schema_version(self, number):
        self.raw.execute(f"PRAGMA user_version = {int(number)}")


@lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


_SESSION_GONE = re.compile(r"terminating connection|server closed the connection|"
                           r"connection (is )?(closed|lost)|consuming input failed", re.I)
_PK = re.compile(r"\bINTEGER PRIMARY KEY\b")
_REAL = re.compile(r"\bREAL\b")


class PostgresConnection(Connection):
    """PostgreSQL through psycopg 3 (sync API: it runs on the store's own thread)."""

    engine = "postgresql"
    shared = True

    def __init__(self, url: str, busy_timeout: float):
        self.url = url
        self.busy_timeout = busy_timeout
        self.raw = self._open()

    def _open(self):
        import psycopg
        ms = max(1, int(self.busy_timeout * 1000))
        return psycopg.connect(self.url, autocommit=True,
                               connect_timeout=max(2, int(self.busy_timeout + 0.999)),
                               options=f"-c lock_timeout={ms}")

    def _live(self):
        """The connection, opened again when the server dropped it between transactions."""
        if (self.raw.closed or self.raw.broken) and not self._in_tx:
            self.raw = self._open()
        return self.raw

    @property
    def _in_tx(self) -> bool:
        from psycopg.pq import TransactionStatus
        return (not self.raw.closed and
                self.raw.info.transaction_status != TransactionStatus.IDLE)

    def execute(self, sql, params=()):
        params = tuple(params)
        conn = self._live()
        with self._watch():
            return conn.execute(_pg_sql(sql), params) if params else conn.execute(sql)

    def executemany(self, sql, rows):
        with self._watch(), self._live().cursor() as cur:
            cur.executemany(_pg_sql(sql), list(rows))

    @contextmanager
    def _watch(self):
        """A statement that finds the session gone (the server restarted, an administrator
        ended it) closes the connection, so the next transaction opens a new one."""
        import psycopg
        try:
            yield
        except psycopg.OperationalError as e:
            if self.raw.broken or _SESSION_GONE.search(str(e)):
                self.raw.close()
            raise

    def close(self):
        self.raw.close()

    @property
    def in_transaction(self):
        return self._in_tx and not self.raw.broken

    def begin(self):
        self.execute("BEGIN")

    def end(self, commit: bool) -> None:
        if commit or not self.raw.closed:
            self.execute("COMMIT" if commit else "ROLLBACK")

    def ddl(self, sql):
        return _REAL.sub("DOUBLE PRECISION", _PK.sub(
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", sql))

    def schema_version(self):
        if self.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
            return 0
        row = self.execute("SELECT version FROM schema_version").fetchone()
        return row[0] if row else 0

    def set_schema_version(self, number):
        self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        if self.execute("UPDATE schema_version SET version = ?", [int(number)]).rowcount == 0:
            self.execute("INSERT INTO schema_version (version) VALUES (?)", [int(number)])

    def lock(self, key):
        # a signed 32-bit key from the text (crc32: the same in every process)
        k = zlib.crc32(key.encode()) - (1 << 31)
        self.execute("SELECT pg_advisory_xact_lock(?)", [k])
