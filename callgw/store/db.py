"""The synchronous database: every query callgw makes, over SQLite or PostgreSQL.

Owned by the store. This class blocks: the running gateway calls it only through
``callgw.store.threaded.ThreadedStore`` (dedicated threads); the admin CLI, a separate process,
calls it directly. ``Database(target)`` opens a SQLite file (WAL mode with a busy timeout, so
both can write) or, for a ``postgresql://`` URL, a PostgreSQL server shared by several callgw
processes. The SQL is written once, with ``?`` placeholders, in what both engines share;
callgw/store/dialect.py holds every difference (placeholders, the schema version, column types,
transactions, locks, upserts). All SQL lives in this package. Every write to a configuration table bumps ``meta.change_serial`` so running nodes
reload within their ``reload_interval``. ``now`` is always passed in (no wall-clock reads here).

Tests: tests/store/test_db.py.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

from callgw.store.admins import AdminAccounts
from callgw.store.admission import Admission
from callgw.store.cluster import Cluster
from callgw.store.dialect import Connection, connect, upsert_sql
from callgw.store.errors import StoreError
from callgw.store.reports import CallReports
from callgw.store.schema import MIGRATIONS, DataStep

E164 = re.compile(r"^\+[1-9][0-9]{0,14}$")
PREFIX = re.compile(r"^\+[0-9]{0,14}$")
RULE_KINDS = ("allow", "block", "max_concurrent", "max_per_minute", "hours", "max_duration",
              "tenant_max_concurrent", "tenant_max_per_minute")
#: Limits on a tenant's total across its users: tenant rules only.
TENANT_WIDE_KINDS = ("tenant_max_concurrent", "tenant_max_per_minute")

#: A tenant's shipped rules: ordinary E.164 destinations allowed; premium-rate and high-risk
#: ranges blocked (international premium rate +979, satellite and international networks
#: +870/+881/+882/+883, North American +1900/+1976, and national premium ranges).
DEFAULT_RULES: tuple[tuple[str, str, str], ...] = (
    ("allow", "+", "ordinary E.164 destinations"),
    ("block", "+979", "international premium rate"),
    ("block", "+870", "Inmarsat satellite"),
    ("block", "+881", "global mobile satellite"),
    ("block", "+882", "international networks"),
    ("block", "+883", "international networks"),
    ("block", "+1900", "NANP premium rate"),
    ("block", "+1976", "NANP premium rate"),
    ("block", "+449", "UK premium rate"),
    ("block", "+4970", "DE personal numbers"),
    ("block", "+49900", "DE premium rate"),
    ("block", "+49137", "DE mass calling"),
    ("block", "+3389", "FR premium rate"),
    ("block", "+3989", "IT premium rate"),
    ("block", "+4190", "CH premium rate"),
    ("block", "+4390", "AT premium rate"),
    ("max_concurrent", "4", "calls at once per user"),
    ("max_per_minute", "10", "call attempts per minute per user"),
)
DEFAULT_BRANDING = {"display_name": "callgw", "logo": "", "primary_color": "#1d4ed8",
                    "accent_color": "#f59e0b", "greeting": "Welcome to callgw"}


class NoEntry(StoreError):
    """The address book has no entry of that name."""


class EntryExists(StoreError):
    """The address book already has an entry of that name."""


class BookFull(StoreError):
    """The address book holds its maximum of entries."""


def check_book_name(name: str) -> str:
    """An address-book entry's name: 1-64 characters, no control characters (what the client
    protocol's ``CONTACT`` carries)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or any(
            ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise StoreError(f"entry name {name!r}: 1-64 characters, no control characters")
    return name


def check_e164(number: str, what: str = "number") -> str:
    if not isinstance(number, str) or not E164.match(number):
        raise StoreError(f"{what} {number!r} is not E.164 (+ and up to 15 digits)")
    return number


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not PREFIX.match(prefix):
        raise StoreError(f"prefix {prefix!r} must be '+' and up to 14 digits, e.g. +1 or +4930")
    return prefix


class Database(AdminAccounts, CallReports, Admission, Cluster):
    """One connection to the callgw database. Not thread-safe: one owner thread at a time."""

    def __init__(self, path: str, busy_timeout: float = 10.0):
        """``path``: a SQLite file (or ``:memory:``) or a ``postgresql://`` URL.
        ``busy_timeout``: seconds to wait for a lock another connection holds (the admin
        CLI waits 10 s; the running gateway less, see ``ThreadedStore``)."""
        self.conn: Connection = connect(path, busy_timeout)

    @property
    def shared(self) -> bool:
        """Whether other callgw processes (other hosts) may share this database."""
        return self.conn.shared

    def close(self) -> None:
        self.conn.close()

    # -- schema -------------------------------------------------------------------------------
    def schema_version(self) -> int:
        return self.conn.schema_version()

    def migrate(self) -> int:
        """Apply the migrations not yet applied, each in one transaction; returns the schema
        version now in force. Processes starting together on one database take turns."""
        while True:
            with self._tx():
                self.conn.lock("callgw-migrate")
                version = self.conn.schema_version()
                if version >= len(MIGRATIONS):
                    return version
                for sql in MIGRATIONS[version]:
                    if isinstance(sql, DataStep):
                        getattr(self, "migrate_" + sql)()
                    else:
                        self.conn.execute(self.conn.ddl(sql))
                self.conn.set_schema_version(version + 1)

    def migrate_gateway_options(self) -> None:
        """Migration 2: SIP's transport, outbound proxy and credentials into ``options``."""
        for row in self._rows("SELECT name, transport, outbound_proxy, auth_user, "
                              "auth_password FROM gateways"):
            options = {"transport": row["transport"] or "udp"}
            for column, key in (("outbound_proxy", "proxy"), ("auth_user", "auth_user"),
                                ("auth_password", "auth_password")):
                if row[column]:
                    options[key] = row[column]
            self.conn.execute("UPDATE gateways SET options = ? WHERE name = ?",
                              (json.dumps(options, sort_keys=True), row["name"]))

    def _tx(self):
        return _Transaction(self.conn)

    def _changed(self) -> None:
        self.conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'change_serial'")

    def change_serial(self) -> int:
        """The counter every configuration write bumps (compared by the running gateway)."""
        return self.conn.execute(
            "SELECT value FROM meta WHERE key = 'change_serial'").fetchone()[0]

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        cur = self.conn.execute(sql, tuple(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    # -- tenants ------------------------------------------------------------------------------
    def add_tenant(self, name: str, now: float, timezone: str = "UTC", country: str = "1",
                   branding: dict | None = None, default_rules: bool = True) -> dict:
        """Create a tenant with the shipped default rules. Raises StoreError if it exists."""
        _check_timezone(timezone)
        if not country.isdigit():
            raise StoreError(f"country code {country!r} must be digits, e.g. 1 or 49")
        row = {"name": name, "timezone": timezone, "country": country,
               "branding": json.dumps({**DEFAULT_BRANDING, **(branding or {})}), "created": now}
        with self._tx():
            if self.get_tenant(name):
                raise StoreError(f"tenant {name!r} exists")
            self.conn.insert("tenants", row)
            if default_rules:
                for kind, value, note in DEFAULT_RULES:
                    self._insert_rule(kind, value, note, now, tenant=name)
            self._changed()
        return self.get_tenant(name)

    def get_tenant(self, name: str) -> dict | None:
        rows = self._rows("SELECT * FROM tenants WHERE name = ?", [name])
        if not rows:
            return None
        rows[0]["branding"] = json.loads(rows[0]["branding"])
        return rows[0]

    def set_tenant_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable a tenant (a disabled tenant's users cannot log in, and running
        gateways end their sessions). Raises StoreError for an unknown tenant."""
        with self._tx():
            cur = self.conn.execute("UPDATE tenants SET enabled = ? WHERE name = ?",
                                    (1 if enabled else 0, name))
            if cur.rowcount == 0:
                raise StoreError(f"no tenant {name!r}")
            self._changed()

    def change_tenant(self, name: str, timezone: str, country: str, branding: dict) -> dict:
        """Set a tenant's time zone, country code and branding (the whole of it). Raises
        StoreError for an unknown tenant or a wrong value."""
        _check_timezone(timezone)
        if not country.isdigit():
            raise StoreError(f"country code {country!r} must be digits, e.g. 1 or 49")
        with self._tx():
            cur = self.conn.execute(
                "UPDATE tenants SET timezone = ?, country = ?, branding = ? WHERE name = ?",
                (timezone, country, json.dumps(branding), name))
            if cur.rowcount == 0:
                raise StoreError(f"no tenant {name!r}")
            self._changed()
        return self.get_tenant(name)

    def list_tenants(self) -> list[dict]:
        return [self.get_tenant(r["name"]) for r in self._rows("SELECT name FROM tenants")]

    def ensure_default_tenant(self, now: float) -> None:
        if not self.get_tenant("default"):
            self.add_tenant("default", now)

    # -- users --------------------------------------------------------------------------------
    def add_user(self, username: str, credential: str, now: float, tenant: str = "default",
                 number: str | None = None, country: str | None = None) -> dict:
        """Add a user with an already-hashed ``credential`` (see callgw.passwords)."""
        if not re.match(r"^[A-Za-z0-9._@-]{1,64}$", username or ""):
            raise StoreError(f"user name {username!r}: use 1-64 letters, digits or . _ @ -")
        if number is not None:
            check_e164(number, "caller number")
        with self._tx():
            if not self.get_tenant(tenant):
                raise StoreError(f"tenant {tenant!r} does not exist")
            if self.get_user(username):
                raise StoreError(f"user {username!r} exists")
            self.conn.insert("users", {"username": username, "tenant": tenant,
                                       "password": credential, "number": number,
                                       "country": country, "enabled": 1, "created": now})
            self._changed()
        return self.get_user(username)

    def get_user(self, username: str) -> dict | None:
        """The user's row, with ``tenant_enabled`` (0 when the user's tenant is disabled)."""
        rows = self._rows("SELECT users.*, COALESCE(tenants.enabled, 1) AS tenant_enabled "
                          "FROM users LEFT JOIN tenants ON tenants.name = users.tenant "
                          "WHERE username = ?", [username])
        return rows[0] if rows else None

    def disabled_accounts(self, usernames: list[str]) -> dict[str, str]:
        """Of ``usernames``, those that may no longer be logged in, each with why: ``user
        removed``, ``user disabled`` or ``tenant disabled``."""
        out = {name: "user removed" for name in usernames}
        names = list(usernames)
        for i in range(0, len(names), 500):
            chunk = names[i:i + 500]
            rows = self._rows(
                "SELECT users.username, users.enabled, COALESCE(tenants.enabled, 1) AS tenant "
                "FROM users LEFT JOIN tenants ON tenants.name = users.tenant WHERE "
                f"users.username IN ({', '.join('?' * len(chunk))})", chunk)
            for row in rows:
                if not row["enabled"]:
                    out[row["username"]] = "user disabled"
                elif not row["tenant"]:
                    out[row["username"]] = "tenant disabled"
                else:
                    del out[row["username"]]
        return out

    def list_users(self) -> list[dict]:
        return self._rows("SELECT * FROM users ORDER BY username")

    def set_password(self, username: str, credential: str) -> None:
        self._update_user(username, "password", credential)

    def set_enabled(self, username: str, enabled: bool) -> None:
        self._update_user(username, "enabled", 1 if enabled else 0)

    def _update_user(self, username: str, column: str, value: Any) -> None:
        with self._tx():
            cur = self.conn.execute(f"UPDATE users SET {column} = ? WHERE username = ?",
                                    (value, username))
            if cur.rowcount == 0:
                raise StoreError(f"no user {username!r}")
            self._changed()

    # -- rules --------------------------------------------------------------------------------
    def add_rule(self, kind: str, value: str, now: float, tenant: str | None = None,
                 username: str | None = None, note: str = "") -> int:
        """Add an authorization rule for a user or a tenant; returns its id."""
        if (tenant is None) == (username is None):
            raise StoreError("a rule belongs to exactly one of a user or a tenant")
        check_rule(kind, value)
        if kind in TENANT_WIDE_KINDS and username is not None:
            raise StoreError(f"{kind} limits a tenant's total: give --tenant, not --user")
        with self._tx():
            if username is not None and not self.get_user(username):
                raise StoreError(f"no user {username!r}")
            if tenant is not None and not self.get_tenant(tenant):
                raise StoreError(f"no tenant {tenant!r}")
            rule_id = self._insert_rule(kind, value, note, now, tenant=tenant, username=username)
            self._changed()
        return rule_id

    def _insert_rule(self, kind, value, note, now, tenant=None, username=None) -> int:
        value = check_rule(kind, value)
        cur = self.conn.execute(
            "INSERT INTO rules (tenant, username, kind, value, note, created) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id", (tenant, username, kind, value, note, now))
        return cur.fetchone()[0]

    def list_rules(self, tenant: str | None = None, username: str | None = None) -> list[dict]:
        if username is not None:
            return self._rows("SELECT * FROM rules WHERE username = ? ORDER BY id", [username])
        if tenant is not None:
            return self._rows("SELECT * FROM rules WHERE tenant = ? ORDER BY id", [tenant])
        return self._rows("SELECT * FROM rules ORDER BY id")

    def rules_for(self, username: str) -> list[dict]:
        """The rules in force for a user: their own if they have any, else their tenant's."""
        own = self.list_rules(username=username)
        if own:
            return own
        user = self.get_user(username)
        return self.list_rules(tenant=user["tenant"]) if user else []

    def remove_rule(self, rule_id: int) -> None:
        with self._tx():
            if self.conn.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount == 0:
                raise StoreError(f"no rule {rule_id}")
            self._changed()

    # -- address book -------------------------------------------------------------------------
    def book_add(self, username: str, name: str, number: str) -> None:
        check_e164(number)
        check_book_name(name)
        with self._tx():
            if not self.get_user(username):
                raise StoreError(f"no user {username!r}")
            if self._rows("SELECT 1 FROM address_book WHERE username = ? AND name = ?",
                          [username, name]):
                raise StoreError(f"{username!r} already has an entry {name!r}")
            self.conn.insert("address_book", {"username": username, "name": name,
                                              "number": number})
            self._changed()

    def book_put(self, username: str, name: str, number: str, was: str | None = None,
                 limit: int | None = None) -> None:
        """Save an entry: a new one (``was`` None), or entry ``was`` changed to ``name`` and
        ``number``. StoreError: ``was`` does not exist (``NoEntry``), ``name`` is another
        entry's (``EntryExists``), or a new entry would make more than ``limit`` (``BookFull``)."""
        check_e164(number)
        check_book_name(name)
        with self._tx():
            if not self.get_user(username):
                raise StoreError(f"no user {username!r}")
            names = {r["name"] for r in self._rows(
                "SELECT name FROM address_book WHERE username = ?", [username])}
            if was is not None and was not in names:
                raise NoEntry(f"no entry named {was!r}")
            if name in names and name != was:
                raise EntryExists(f"an entry named {name!r} exists")
            if was is None and limit is not None and len(names) >= limit:
                raise BookFull(f"the address book is full ({limit} entries)")
            if was is not None:
                self.conn.execute("DELETE FROM address_book WHERE username = ? AND name = ?",
                                  (username, was))
            self.conn.insert("address_book", {"username": username, "name": name,
                                              "number": number})
            self._changed()

    def book_list(self, username: str) -> list[dict]:
        return self._rows("SELECT name, number FROM address_book WHERE username = ? "
                          "ORDER BY name", [username])

    def book_remove(self, username: str, name: str) -> None:
        with self._tx():
            cur = self.conn.execute("DELETE FROM address_book WHERE username = ? AND name = ?",
                                    (username, name))
            if cur.rowcount == 0:
                raise NoEntry(f"{username!r} has no entry {name!r}")
            self._changed()

    # -- gateways -----------------------------------------------------------------------------
    def add_gateway(self, name: str, protocol: str, host: str, port: int, prefixes: list[str],
                    now: float, capacity: int = 100, priority: int = 10, weight: int = 100,
                    strip_digits: int = 0, prepend: str = "", keep_plus: bool = True,
                    caller_id: str = "pass", options: dict | None = None, probe: str = "",
                    probe_interval: float | None = None, down_after: int = 3,
                    up_after: int = 2) -> dict:
        """Add a PSTN gateway. Raises StoreError naming the field that is wrong.

        ``options`` are the protocol's own (checked by its registry entry in
        callgw/callserver/legs/ before they get here: the store does not know protocols)."""
        row = {"name": name, **_gateway_columns(
            protocol, host, port, prefixes, capacity, priority, weight, strip_digits, prepend,
            keep_plus, caller_id, options, probe, probe_interval, down_after, up_after),
               "status": "unknown", "rtt_ms": None, "enabled": 1, "created": now}
        with self._tx():
            if self.get_gateway(name):
                raise StoreError(f"gateway {name!r} exists")
            self.conn.insert("gateways", row)
            self._changed()
        return self.get_gateway(name)

    def change_gateway(self, name: str, **fields) -> dict:
        """Change gateway ``name``: ``fields`` are ``add_gateway``'s keywords (all of them: the
        whole new configuration, checked the same way; its name, status and whether it is
        enabled stay). Raises StoreError (no such gateway, a field that is wrong)."""
        columns = _gateway_columns(**fields)
        with self._tx():
            if not self.get_gateway(name):
                raise StoreError(f"no gateway {name!r}")
            names = sorted(columns)
            self.conn.execute(
                "UPDATE gateways SET " + ", ".join(f"{c} = ?" for c in names) + " WHERE name = ?",
                (*(columns[c] for c in names), name))
            self._changed()
        return self.get_gateway(name)

    def set_gateway_enabled(self, name: str, enabled: bool) -> dict:
        """Enable a gateway, or drain it (disabled: selection passes it over, its calls go on)."""
        with self._tx():
            cur = self.conn.execute("UPDATE gateways SET enabled = ? WHERE name = ?",
                                    (1 if enabled else 0, name))
            if cur.rowcount == 0:
                raise StoreError(f"no gateway {name!r}")
            self._changed()
        return self.get_gateway(name)

    def get_gateway(self, name: str) -> dict | None:
        rows = self._rows("SELECT * FROM gateways WHERE name = ?", [name])
        return _gateway(rows[0]) if rows else None

    def list_gateways(self) -> list[dict]:
        return [_gateway(r) for r in self._rows("SELECT * FROM gateways ORDER BY name")]

    def remove_gateway(self, name: str) -> None:
        with self._tx():
            if self.conn.execute("DELETE FROM gateways WHERE name = ?", (name,)).rowcount == 0:
                raise StoreError(f"no gateway {name!r}")
            self._changed()

    def set_gateway_status(self, name: str, status: str, rtt_ms: float | None) -> None:
        """Record a health-poll result (not a configuration change: no reload)."""
        self.conn.execute("UPDATE gateways SET status = ?, rtt_ms = ? WHERE name = ?",
                          (status, rtt_ms, name))

    # -- call servers -------------------------------------------------------------------------
    def upsert_call_server(self, name: str, address: str, now: float, capacity: int = 1000,
                           weight: int = 100, healthy: bool = True, draining: bool = False,
                           active_calls: int = 0) -> None:
        self.conn.upsert(
            "call_servers", {"name": name, "address": address, "capacity": capacity, "weight": weight,
             "healthy": int(healthy), "draining": int(draining), "active_calls": active_calls,
             "updated": now}, "name")

    def list_call_servers(self) -> list[dict]:
        return self._rows("SELECT * FROM call_servers ORDER BY name")

    # -- registrations ------------------------------------------------------------------------
    def register(self, username: str, contact: str, transport: str, node: str,
                 expires: float) -> None:
        self.conn.upsert(
            "registrations", {"username": username, "contact": contact, "transport": transport,
                              "node": node, "expires": expires}, ("username", "contact"))

    def unregister(self, username: str, contact: str) -> None:
        self.conn.execute("DELETE FROM registrations WHERE username = ? AND contact = ?",
                          (username, contact))

    def registrations(self, username: str, now: float) -> list[dict]:
        return self._rows("SELECT * FROM registrations WHERE username = ? AND expires > ?",
                          [username, now])

    def expire_registrations(self, now: float) -> int:
        return self.conn.execute("DELETE FROM registrations WHERE expires <= ?",
                                 (now,)).rowcount

    # -- calls --------------------------------------------------------------------------------
    def call_started(self, row: dict) -> None:
        self.conn.upsert("active_calls", row, "call_id")

    def call_updated(self, call_id: str, now: float, **fields: Any) -> None:
        fields["updated"] = now
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE active_calls SET {sets} WHERE call_id = ?",
                          (*fields.values(), call_id))

    def active_calls(self, node: str | None = None) -> list[dict]:
        """The active-call rows (of every node, or ``node``'s), without the re-attach key
        digest (a lookup key, not a display's)."""
        where, params = ("WHERE node = ? ", [node]) if node is not None else ("", [])
        rows = self._rows(f"SELECT * FROM active_calls {where}ORDER BY started", params)
        for row in rows:
            row.pop("attach_key", None)
        return rows

    def write_call_log(self, events: list[dict], traces: list[dict], cdrs: list[dict],
                       ended: list[str]) -> None:
        """Write one batch from the call logger in one transaction (nothing half-written).

        ``events``: call_id, kind, at, data (dict); ``traces``: call_id, leg, direction,
        summary, at; ``cdrs``: full CDR rows (stats as a dict); ``ended``: call ids to drop from
        the active-call table.
        """
        with self._tx():
            if events:
                self.conn.executemany(
                    "INSERT INTO call_events (call_id, kind, at, data) VALUES (?, ?, ?, ?)",
                    [(e["call_id"], e["kind"], e["at"], json.dumps(e.get("data", {})))
                     for e in events])
            if traces:
                self.conn.executemany(
                    "INSERT INTO call_traces (call_id, leg, direction, summary, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(t["call_id"], t["leg"], t["direction"], t["summary"], t["at"])
                     for t in traces])
            for cdr in cdrs:
                row = dict(cdr, stats=json.dumps(cdr.get("stats", {})))
                self.conn.upsert("cdrs", row, "call_id")
            if ended:
                self.conn.executemany("DELETE FROM active_calls WHERE call_id = ?",
                                      [(c,) for c in ended])

    def call_events(self, call_id: str) -> list[dict]:
        rows = self._rows("SELECT kind, at, data FROM call_events WHERE call_id = ? "
                          "ORDER BY id", [call_id])
        for r in rows:
            r["data"] = json.loads(r["data"])
        return rows

    def call_trace(self, call_id: str) -> list[dict]:
        return self._rows("SELECT leg, direction, summary, at FROM call_traces "
                          "WHERE call_id = ? ORDER BY id", [call_id])

    def cdrs(self, limit: int = 50, username: str | None = None) -> list[dict]:
        if username is None:
            rows = self._rows("SELECT * FROM cdrs ORDER BY ended DESC LIMIT ?", [limit])
        else:
            rows = self._rows("SELECT * FROM cdrs WHERE username = ? ORDER BY ended DESC "
                              "LIMIT ?", [username, limit])
        for r in rows:
            r["stats"] = json.loads(r["stats"])
        return rows

    def cdrs_before(self, username: str, before: tuple[float, str] | None,
                    limit: int) -> list[dict]:
        """The user's CDRs newest first (by ``ended``, then ``call_id``), those older than
        ``before`` (an ``(ended, call_id)`` of the page before) when given."""
        if before is None:
            rows = self._rows("SELECT * FROM cdrs WHERE username = ? ORDER BY ended DESC, "
                              "call_id DESC LIMIT ?", [username, limit])
        else:
            rows = self._rows("SELECT * FROM cdrs WHERE username = ? AND (ended < ? OR "
                              "(ended = ? AND call_id < ?)) ORDER BY ended DESC, call_id DESC "
                              "LIMIT ?", [username, before[0], before[0], before[1], limit])
        for r in rows:
            r["stats"] = json.loads(r["stats"])
        return rows

    def get_cdr(self, call_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM cdrs WHERE call_id = ?", [call_id])
        if rows:
            rows[0]["stats"] = json.loads(rows[0]["stats"])
        return rows[0] if rows else None

    # -- call path (issue 5): snapshots for the director's cache, the call logger's batch ------
    def director_snapshot(self, username: str, tenant: str) -> dict:
        """Everything the call director caches for one user, read in one go: ``rules`` (in
        force for the user), ``tenant_rules`` (the tenant's own), ``book`` and ``tenant``."""
        user = self.get_user(username)
        tenant_name = user["tenant"] if user else tenant
        return {"rules": self.rules_for(username) if user else
                self.list_rules(tenant=tenant_name),
                "tenant_rules": self.list_rules(tenant=tenant_name),
                "book": self.book_list(username),
                "tenant": self.get_tenant(tenant_name)}

    def call_log_batch(self, active: list[dict], events: list[dict], traces: list[dict],
                       cdrs: list[dict], ended: list[str]) -> None:
        """One call-logger flush in one transaction: upsert ``active`` rows of the
        active-call table, then ``write_call_log`` (events, traces, CDRs, ended calls)."""
        with self._tx():
            if active:
                self.conn.executemany(
                    upsert_sql("active_calls", _ACTIVE_COLUMNS, "call_id"),
                    [tuple(json.dumps(row.get("recovery") or []) if c == "recovery" else
                           row.get(c, _ACTIVE_DEFAULTS.get(c)) for c in _ACTIVE_COLUMNS)
                     for row in active])
            if cdrs:
                self.conn.executemany(
                    upsert_sql("cdrs", _CDR_COLUMNS, "call_id"),
                    [tuple(json.dumps(cdr.get("stats") or {}) if c == "stats" else cdr.get(c)
                           for c in _CDR_COLUMNS) for cdr in cdrs])
            self.write_call_log(events, traces, [], ended)


_ACTIVE_COLUMNS = ("call_id", "username", "target", "gateway", "call_server", "node", "state",
                   "media_mode", "started", "updated", "tenant", "answered", "recovery", "attach_key")
_ACTIVE_DEFAULTS = {"tenant": "default"}
_CDR_COLUMNS = ("call_id", "username", "tenant", "target", "gateway", "call_server",
                "requested", "ringing", "answered", "ended", "duration", "cause", "cause_text",
                "media_mode", "stats")


class _Transaction:
    """``BEGIN`` (SQLite: ``IMMEDIATE``) ... ``COMMIT`` (``ROLLBACK`` on error); nests as a
    no-op."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.outer = False

    def __enter__(self):
        if not self.conn.in_transaction:
            self.conn.begin()
            self.outer = True
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.outer:
            self.conn.end(commit=exc_type is None)
        return False


def _gateway_columns(protocol: str, host: str, port: int, prefixes: list[str],
                     capacity: int = 100, priority: int = 10, weight: int = 100,
                     strip_digits: int = 0, prepend: str = "", keep_plus: bool = True,
                     caller_id: str = "pass", options: dict | None = None, probe: str = "",
                     probe_interval: float | None = None, down_after: int = 3,
                     up_after: int = 2) -> dict:
    """A gateway's configuration columns, checked; StoreError names the field that is wrong."""
    if not re.match(r"^[a-z][a-z0-9]{1,15}$", protocol or ""):
        raise StoreError(f"protocol {protocol!r}: expected a protocol name such as sip")
    if options is not None and not isinstance(options, dict):
        raise StoreError("gateway options must be a mapping")
    if probe_interval is not None and not 1.0 <= float(probe_interval) <= 3600.0:
        raise StoreError(f"probe interval {probe_interval}: expected 1-3600 seconds")
    if not (1 <= int(down_after) <= 100 and 1 <= int(up_after) <= 100):
        raise StoreError("down-after and up-after: expected 1-100 probes")
    if not prefixes:
        raise StoreError("a gateway needs at least one prefix (e.g. +1, or + for all)")
    for p in prefixes:
        check_prefix(p)
    if not 1 <= int(port) <= 65535:
        raise StoreError(f"port {port} out of range 1-65535")
    if capacity < 1 or weight < 0 or strip_digits < 0:
        raise StoreError("capacity must be >= 1, weight and strip digits >= 0")
    if prepend and not re.match(r"^\+?[0-9]*$", prepend):
        raise StoreError(f"prepend {prepend!r} must be digits")
    if caller_id not in ("pass", "withhold") and not (
            caller_id.startswith("fixed:") and E164.match(caller_id[6:])):
        raise StoreError(f"caller id {caller_id!r}: expected pass, withhold or fixed:+E164")
    return {"protocol": protocol, "host": host, "port": int(port),
            "prefixes": json.dumps(sorted(set(prefixes))),
            "capacity": capacity, "priority": priority, "weight": weight,
            "options": json.dumps(options or {}, sort_keys=True), "probe": probe,
            "probe_interval": probe_interval, "down_after": int(down_after),
            "up_after": int(up_after),
            "strip_digits": strip_digits, "prepend": prepend,
            "keep_plus": 1 if keep_plus else 0, "caller_id": caller_id}


def _gateway(row: dict) -> dict:
    row["prefixes"] = json.loads(row["prefixes"])
    row["options"] = json.loads(row["options"])
    row["keep_plus"] = bool(row["keep_plus"])
    row["enabled"] = bool(row["enabled"])
    return row


def check_rule(kind: str, value: str) -> str:
    """Check a rule's value for its kind; returns it normalized or raises StoreError."""
    if kind not in RULE_KINDS:
        raise StoreError(f"rule kind {kind!r}: expected one of {', '.join(RULE_KINDS)}")
    value = str(value).strip()
    if kind in ("allow", "block"):
        return check_prefix(value)
    if kind in ("max_concurrent", "max_per_minute", "max_duration") + TENANT_WIDE_KINDS:
        if not value.isdigit() or int(value) < 1:
            raise StoreError(f"{kind} needs a whole number >= 1, got {value!r}")
        return value
    # hours: "HH:MM-HH:MM", optionally preceded by days "mon-fri " (tenant's time zone)
    m = re.match(r"^(?:([a-z]{3})(?:-([a-z]{3}))? )?([0-2][0-9]):([0-5][0-9])-"
                 r"([0-2][0-9]):([0-5][0-9])$", value.lower())
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    if not m or int(m.group(3)) > 24 or int(m.group(5)) > 24 or any(
            d and d not in days for d in (m.group(1), m.group(2))):
        raise StoreError(f"hours {value!r}: expected HH:MM-HH:MM, optionally after "
                         "mon-fri (days: mon tue wed thu fri sat sun)")
    return value.lower()


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise StoreError(f"unknown time zone {name!r} (e.g. UTC, Europe/Berlin)") from None
