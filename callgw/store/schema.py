"""The database schema, as numbered migrations applied in order.

Owned by the store. Each migration is a list of statements in the SQL that SQLite and PostgreSQL
share (TEXT, INTEGER, REAL; ids as ``INTEGER PRIMARY KEY`` that the engine numbers), applied as
they are to SQLite and through ``Connection.ddl`` (callgw/store/dialect.py: identity ids, double
precision) to PostgreSQL: one description for both. A ``DataStep`` names a store method that
moves data where one statement cannot portably (written once, in Python, with the store's
portable queries). ``meta`` holds the schema version and the change serial
that tells running nodes to reload what the admin CLI changed.

Tests: tests/store/test_db.py (on both engines).
"""

class DataStep(str):
    """A migration step that moves data rather than running one statement: the store calls
    its method ``migrate_<name>`` (written once, with the portable queries of the store)."""


MIGRATIONS: list[list[str]] = [
    # 1: the first schema
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        """CREATE TABLE tenants (
            name TEXT PRIMARY KEY, timezone TEXT NOT NULL, country TEXT NOT NULL,
            branding TEXT NOT NULL, created REAL NOT NULL)""",
        """CREATE TABLE users (
            username TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(name),
            password TEXT NOT NULL, number TEXT, country TEXT, enabled INTEGER NOT NULL,
            created REAL NOT NULL)""",
        """CREATE TABLE rules (
            id INTEGER PRIMARY KEY, tenant TEXT, username TEXT, kind TEXT NOT NULL,
            value TEXT NOT NULL, note TEXT NOT NULL, created REAL NOT NULL)""",
        "CREATE INDEX rules_owner ON rules (tenant, username)",
        """CREATE TABLE address_book (
            username TEXT NOT NULL REFERENCES users(username), name TEXT NOT NULL,
            number TEXT NOT NULL, PRIMARY KEY (username, name))""",
        """CREATE TABLE call_servers (
            name TEXT PRIMARY KEY, address TEXT NOT NULL, capacity INTEGER NOT NULL,
            weight INTEGER NOT NULL, healthy INTEGER NOT NULL, draining INTEGER NOT NULL,
            active_calls INTEGER NOT NULL, updated REAL NOT NULL)""",
        """CREATE TABLE gateways (
            name TEXT PRIMARY KEY, protocol TEXT NOT NULL, host TEXT NOT NULL,
            port INTEGER NOT NULL, transport TEXT NOT NULL, prefixes TEXT NOT NULL,
            capacity INTEGER NOT NULL, priority INTEGER NOT NULL, weight INTEGER NOT NULL,
            status TEXT NOT NULL, rtt_ms REAL, outbound_proxy TEXT, auth_user TEXT,
            auth_password TEXT, strip_digits INTEGER NOT NULL, prepend TEXT NOT NULL,
            keep_plus INTEGER NOT NULL, caller_id TEXT NOT NULL, enabled INTEGER NOT NULL,
            created REAL NOT NULL)""",
        """CREATE TABLE registrations (
            username TEXT NOT NULL, contact TEXT NOT NULL, transport TEXT NOT NULL,
            node TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (username, contact))""",
        """CREATE TABLE active_calls (
            call_id TEXT PRIMARY KEY, username TEXT NOT NULL, target TEXT NOT NULL,
            gateway TEXT, call_server TEXT NOT NULL, node TEXT NOT NULL, state TEXT NOT NULL,
            media_mode TEXT NOT NULL, started REAL NOT NULL, updated REAL NOT NULL)""",
        """CREATE TABLE call_events (
            id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, kind TEXT NOT NULL,
            at REAL NOT NULL, data TEXT NOT NULL)""",
        "CREATE INDEX call_events_call ON call_events (call_id)",
        """CREATE TABLE call_traces (
            id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, leg TEXT NOT NULL,
            direction TEXT NOT NULL, summary TEXT NOT NULL, at REAL NOT NULL)""",
        "CREATE INDEX call_traces_call ON call_traces (call_id)",
        """CREATE TABLE cdrs (
            call_id TEXT PRIMARY KEY, username TEXT NOT NULL, tenant TEXT NOT NULL,
            target TEXT NOT NULL, gateway TEXT, call_server TEXT NOT NULL,
            requested REAL NOT NULL, ringing REAL, answered REAL, ended REAL NOT NULL,
            duration REAL NOT NULL, cause INTEGER NOT NULL, cause_text TEXT NOT NULL,
            media_mode TEXT NOT NULL, stats TEXT NOT NULL)""",
        "CREATE INDEX cdrs_ended ON cdrs (ended)",
        "INSERT INTO meta (key, value) VALUES ('change_serial', 0)",
    ],
    # 2: per-protocol gateway options (SIP's transport, outbound proxy and digest credentials
    # move into them; number rewriting stays in protocol-neutral columns)
    [
        "ALTER TABLE gateways ADD COLUMN options TEXT NOT NULL DEFAULT '{}'",
        DataStep("gateway_options"),
        "ALTER TABLE gateways DROP COLUMN transport",
        "ALTER TABLE gateways DROP COLUMN outbound_proxy",
        "ALTER TABLE gateways DROP COLUMN auth_user",
        "ALTER TABLE gateways DROP COLUMN auth_password",
    ],
    # 3: per-gateway health probing: the mode ('' the protocol's own, 'off'), the interval
    # (NULL: [calls] health_interval) and the thresholds
    [
        "ALTER TABLE gateways ADD COLUMN probe TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE gateways ADD COLUMN probe_interval REAL",
        "ALTER TABLE gateways ADD COLUMN down_after INTEGER NOT NULL DEFAULT 3",
        "ALTER TABLE gateways ADD COLUMN up_after INTEGER NOT NULL DEFAULT 2",
    ],
    # 4: admin accounts (callgw/store/admins.py): who may use /api, /metrics and /admin/
    [
        """CREATE TABLE admins (
            name TEXT PRIMARY KEY, password TEXT NOT NULL, created REAL NOT NULL,
            changed REAL NOT NULL)""",
    ],
    # 5: what the next start needs to close a call a crashed process left up: the tenant and
    # answer time for its CDR, and each native leg's recovery state (SIP: the dialog)
    [
        "ALTER TABLE active_calls ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'",
        "ALTER TABLE active_calls ADD COLUMN answered REAL",
        "ALTER TABLE active_calls ADD COLUMN recovery TEXT NOT NULL DEFAULT '[]'",
    ],
    # 6: a tenant can be disabled (callgw tenant disable): its users can neither log in nor
    # keep their sessions
    [
        "ALTER TABLE tenants ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1",
    ],
    # 7: call admissions (callgw/store/admission.py): concurrency and rate limits counted in
    # the database, so they hold across the callgw processes sharing it
    [
        """CREATE TABLE call_admissions (
            call_id TEXT PRIMARY KEY, username TEXT NOT NULL, tenant TEXT NOT NULL,
            node TEXT NOT NULL, admitted REAL NOT NULL, ended REAL)""",
        "CREATE INDEX call_admissions_tenant ON call_admissions (tenant, admitted)",
        "CREATE INDEX call_admissions_node ON call_admissions (node)",
    ],
    # 8: process roles (callgw/store/cluster.py): a call-server node's role, the process
    # holding its name, its cluster link and client listeners; an active call's re-attach key
    # digest, so that a client coming back on another node is sent to the one holding its call
    [
        "ALTER TABLE call_servers ADD COLUMN role TEXT NOT NULL DEFAULT 'all'",
        "ALTER TABLE call_servers ADD COLUMN instance TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE call_servers ADD COLUMN link TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE call_servers ADD COLUMN listeners TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE active_calls ADD COLUMN attach_key TEXT",
        "CREATE INDEX active_calls_node ON active_calls (node)",
    ],
    # 9: an admitted call's target, so that a call a dead process admitted but had not yet
    # recorded as active still gets its CDR (callgw/store/cluster.py, ``close_calls``)
    [
        "ALTER TABLE call_admissions ADD COLUMN target TEXT",
    ],
]

#: Tables whose rows the admin CLI edits; a write to any of them bumps the change serial.
CONFIG_TABLES = ("tenants", "users", "rules", "address_book", "call_servers", "gateways",
                 "admins")
