"""A real PostgreSQL server for the store's tests, started by the tests themselves (a pytest
plugin, loaded by the top-level conftest.py).

- ``pg_cluster`` (session): a throwaway cluster (Debian ``postgresql``: ``initdb``, then
  ``pg_ctl start``) in a temporary directory, listening on 127.0.0.1 at a free port picked by
  tests/ports.py (another pick when the port was taken meanwhile) and on a Unix socket in its own
  directory. PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres``
  user. ``fsync`` is off (a test cluster holds nothing worth a disk flush). The cluster is
  stopped (``pg_ctl stop -m immediate``) and its directory removed at the end of the session,
  also when tests failed; ``pg_ctl`` leaves the server detached, so it is not a child the
  per-test leak check would count.
- ``pg_url``: a fresh database on that cluster for one test (a ``postgresql://`` URL), dropped
  after it (``WITH (FORCE)``: a connection the test left open does not keep it).
- ``db_target``: parametrized ``sqlite`` / ``postgresql``: what ``[general] database`` would
  say, a SQLite file in the test's directory or a ``pg_url``; a test taking it runs on both.

Without PostgreSQL installed the PostgreSQL cases skip (fail with ``CI=true``), like every peer.

Tests: the tests using it (tests/store/, tests/callpath/test_shared_store.py).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from tests.peers import require_peer
from tests.ports import PortTaken, free_port, port_taken, retry_ports


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return found[0] if found else (shutil.which(name) or name)


class Cluster:
    """One throwaway PostgreSQL cluster (a fixture peer, not a mock)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="callgw-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.as_root = os.geteuid() == 0
        self.port = None
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self._run([_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-locale", "--no-sync"])

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}")
        return result

    def start(self) -> None:
        def attempt():
            port = free_port(__import__("socket").SOCK_STREAM)
            options = (f"-k {self.dir} -h 127.0.0.1 -p {port} -c fsync=off "
                       f"-c synchronous_commit=off -c full_page_writes=off "
                       f"-c max_connections=200")
            result = self._run([_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-o", options,
                                "-w", "-t", "30", "start"], check=False)
            if result.returncode != 0:
                text = result.stdout + result.stderr + self.server_log()
                if port_taken(text):
                    raise PortTaken(text)
                raise RuntimeError(f"pg_ctl start failed: {text}")
            self.port = port
        retry_ports(attempt)

    def server_log(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        import psycopg
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        try:
            if self.port is not None:
                self._run([_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"],
                          check=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    require_peer("pg_ctl", "psql")
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    name = "t_" + uuid.uuid4().hex[:16]
    pg_cluster.admin(f"CREATE DATABASE {name}")
    yield pg_cluster.url(name)
    pg_cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "callgw.sqlite3")
