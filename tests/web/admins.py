"""An admin account for tests that read the admin surfaces (/api, /metrics): made in the
database before callgw starts, sent as HTTP Basic."""
from __future__ import annotations

import base64

from callgw import passwords
from callgw.store.db import Database

ADMIN, ADMIN_PASSWORD = "root", "admin-password"


def add_admin(db_path, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
    """``name`` as an admin in the database at ``db_path`` (a cheap scrypt cost for tests)."""
    db = Database(str(db_path))
    try:
        db.migrate()
        db.add_admin(name, passwords.hash_password(password, n=1024), 1.0)
    finally:
        db.close()


def basic(name: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
    """The ``Authorization`` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()
