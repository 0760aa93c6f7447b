"""Admin accounts in the database: who may use the admin surfaces (``/api``, ``/metrics``,
``/admin/``).

Owned by the store. ``AdminAccounts`` is a part of ``Database`` (a base class, so the SQL
stays in the store and ``ThreadedStore.run("admin_credentials")`` reaches it). An admin's
password is stored like a user's: the scram-scrypt credential from ``callgw.passwords``, never
the password. Every change bumps the change serial, so a running gateway reloads its admin
list within ``reload_interval`` (a removed admin or a changed password ends its sessions).
The table is migration 4 in ``callgw.store.schema``.

Tests: tests/store/test_admins.py; the command line in tests/test_cli_admin.py.
"""
from __future__ import annotations

import re

from callgw.store.errors import StoreError

ADMIN_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


class AdminAccounts:
    """The ``admins`` table; needs ``_tx``, ``_rows``, ``_changed`` and ``conn`` of
    ``Database``."""

    def add_admin(self, name: str, credential: str, now: float) -> dict:
        """Add an admin with an already-hashed ``credential``. Raises StoreError if the name
        is taken or unusable (it travels in HTTP Basic, so no ``:``)."""
        if not ADMIN_NAME.match(name or ""):
            raise StoreError(f"admin name {name!r}: use 1-64 letters, digits or . _ @ -")
        with self._tx():
            if self._rows("SELECT name FROM admins WHERE name = ?", [name]):
                raise StoreError(f"admin {name!r} exists")
            self.conn.execute("INSERT INTO admins (name, password, created, changed) "
                              "VALUES (?, ?, ?, ?)", (name, credential, now, now))
            self._changed()
        return self.list_admins_named(name)[0]

    def list_admins(self) -> list[dict]:
        """Every admin's name and times (never the credential), by name."""
        return self._rows("SELECT name, created, changed FROM admins ORDER BY name")

    def list_admins_named(self, name: str) -> list[dict]:
        return self._rows("SELECT name, created, changed FROM admins WHERE name = ?", [name])

    def admin_credentials(self) -> dict[str, str]:
        """``{name: stored credential}`` for the running gateway's admin sign-in."""
        return {r["name"]: r["password"] for r in self._rows("SELECT name, password FROM admins")}

    def set_admin_password(self, name: str, credential: str, now: float) -> None:
        with self._tx():
            cur = self.conn.execute("UPDATE admins SET password = ?, changed = ? WHERE name = ?",
                                    (credential, now, name))
            if cur.rowcount == 0:
                raise StoreError(f"no admin {name!r}")
            self._changed()

    def remove_admin(self, name: str) -> None:
        with self._tx():
            cur = self.conn.execute("DELETE FROM admins WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise StoreError(f"no admin {name!r}")
            self._changed()
