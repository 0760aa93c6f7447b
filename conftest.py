"""Test-wide settings and checks.

- A Hypothesis profile without deadlines (two busy cores flake on them).
- tests/logcheck.py: a test fails when anything logs a failure it did not expect.
- tests/leakcheck.py: a test fails when it leaves a thread, process or listener running, and
  the session always ends.
- tests/peers.py: the ``peers`` marker; a missing real peer skips, or fails with ``CI=true``.
- tests/pgserver.py: a real PostgreSQL cluster for the store's tests (``db_target`` runs a test
  on SQLite and on PostgreSQL).
"""
import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.logcheck", "tests.leakcheck", "tests.peers", "tests.pgserver",
                  "pytester"]

settings.register_profile(
    "ci", deadline=None, max_examples=200,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
