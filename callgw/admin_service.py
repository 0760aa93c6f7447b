"""The one place that decides what an admin may change, shared by the admin CLI
(``callgw/cli.py``) and the admin JSON API (``callgw/web/gateways_api.py``,
``callgw/web/accounts_api.py``, ``callgw/web/rules_api.py``): gateways (add, change, drain,
enable, remove), tenants with their branding (add, change, disable, enable), users (add, new
password, disable, enable), authorization rules (add, remove) and address books (add, remove).

Owned by operations. Each function takes a ``Database`` (``callgw.store.db``) and runs
synchronously: the CLI calls it in its own process; the API runs it on the store's writer
thread (``IStore.write``), never on the reactor (a host name is resolved here). A gateway's
fields are checked in two steps, whichever door they came through: the protocol's registry
entry (``callgw.callserver.legs.registry``: that callgw has the protocol, its own options, its
probing modes, checks across options and the address), then the store (prefixes, numbers,
ranges). A user's password is stored only as its scrypt-derived key (``callgw.passwords``; on
the API's side that runs on the store's writer thread, off the reactor), and no function here
returns it. A mistake raises ``AdminError`` (``NotFound`` when the thing named is not there) or
the store's ``StoreError``, each one line for the operator: the CLI prints it (exit code 2), the
API answers it as a 400 (404).

A change names only what changes; the rest of the gateway stays as it is, and the whole result
is checked again as if it were added (a protocol cannot change: remove the gateway and add it).
Every change bumps the store's change serial, so running gateways reload it within
``[general] reload_interval`` seconds.

Tests: tests/test_cli.py (the CLI's commands), tests/web/test_gateways_api.py and
tests/web/test_accounts_api.py, tests/web/test_rules_api.py (the API).
"""
from __future__ import annotations

import ipaddress
import socket
import time

from callgw import passwords
from callgw.callserver.legs.registry import protocol
from callgw.store.errors import StoreError


class AdminError(ValueError):
    """An admin's mistake, said in one line."""


class NotFound(AdminError):
    """The gateway, user or tenant named is not there."""


class NoSuchGateway(NotFound):
    """The gateway named is not configured."""


#: The gateway fields an admin sets (``add_gateway``'s keywords besides name and protocol) and
#: the JSON types the API accepts for each.
GATEWAY_FIELDS = {
    "host": (str,), "port": (int, type(None)), "prefixes": (list,), "capacity": (int,),
    "priority": (int,), "weight": (int,), "strip_digits": (int,), "prepend": (str,),
    "keep_plus": (bool,), "caller_id": (str,), "options": (dict,), "probe": (str, type(None)),
    "probe_interval": (int, float, type(None)), "down_after": (int,), "up_after": (int,)}
_KEEP = ("host", "port", "prefixes", "capacity", "priority", "weight", "strip_digits", "prepend",
         "keep_plus", "caller_id", "options", "probe", "probe_interval", "down_after",
         "up_after")


def resolvable(host: str, port: int) -> None:
    """A gateway's host must be an address or a name that resolves now (the running gateway
    resolves it again before each call)."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, port, proto=socket.IPPROTO_UDP)
    except (socket.gaierror, UnicodeError) as e:
        raise AdminError(f"--address: host name {host!r} does not resolve ({e})") from None


def check_types(fields: dict, allowed=GATEWAY_FIELDS, what: str = "gateway") -> None:
    """Each field known and of its JSON type (what the API takes from a request body)."""
    for key, value in fields.items():
        kinds = allowed.get(key)
        if kinds is None:
            raise AdminError(f"{key}: not a {what} field (fields: "
                             f"{', '.join(sorted(allowed))})")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise AdminError(f"{key}: expected {names}")
    if "prefixes" in fields and not all(isinstance(p, str) for p in fields["prefixes"]):
        raise AdminError("prefixes: expected a list of strings such as \"+4930\"")
    if "options" in fields and not all(isinstance(k, str) for k in fields["options"]):
        raise AdminError("options: expected an object")


def _checked(name: str, proto: str, fields: dict, resolve) -> dict:
    """``add_gateway``'s keywords for ``fields``, checked by the protocol's registry entry."""
    fields = dict(fields)
    try:
        entry = protocol(proto)
        fields["port"] = fields.get("port") or entry.default_port
        fields["options"] = entry.check_options(fields.get("options") or {})
        fields["probe"] = entry.check_probe(fields.get("probe"))
        entry.check_gateway({"name": name, "protocol": entry.name, "host": fields["host"],
                             "port": fields["port"], "options": fields["options"]})
    except ValueError as e:                 # the registry's one line
        raise AdminError(str(e)) from None
    resolve(fields["host"], fields["port"])
    return fields


def add_gateway(db, name: str, proto: str, fields: dict, now: float | None = None,
                resolve=resolvable) -> dict:
    """Add gateway ``name`` of protocol ``proto``; ``fields``: ``GATEWAY_FIELDS`` (``host`` and
    ``prefixes`` required). Returns the stored row."""
    if not fields.get("host"):
        raise AdminError("a gateway needs an address (host)")
    fields = _checked(name, proto, fields, resolve)
    return db.add_gateway(name, proto, fields.pop("host"), fields.pop("port"),
                          fields.pop("prefixes", None) or [],
                          time.time() if now is None else now, **fields)


def get_gateway(db, name: str) -> dict:
    gateway = db.get_gateway(name)
    if gateway is None:
        raise NoSuchGateway(f"no gateway {name!r}")
    return gateway


def change_gateway(db, name: str, changes: dict, resolve=resolvable) -> dict:
    """Change what ``changes`` names (``GATEWAY_FIELDS``; ``options`` are merged into the
    gateway's, a ``null`` option removing it); the rest stays. Returns the stored row."""
    if "protocol" in changes or "name" in changes:
        raise AdminError("a gateway's name and protocol cannot change: remove it and add it "
                         "again")
    check_types(changes)
    current = get_gateway(db, name)
    fields = {key: current[key] for key in _KEEP}
    fields.update({k: v for k, v in changes.items() if k != "options"})
    if "options" in changes:
        options = dict(current["options"])
        for key, value in changes["options"].items():
            if value is None:
                options.pop(key, None)
            else:
                options[key] = value
        fields["options"] = options
    fields = _checked(name, current["protocol"], fields, resolve)
    return db.change_gateway(name, protocol=current["protocol"], **fields)


def set_gateway_enabled(db, name: str, enabled: bool) -> dict:
    """Drain (``enabled`` False: no new calls, its calls go on) or enable gateway ``name``."""
    get_gateway(db, name)
    return db.set_gateway_enabled(name, enabled)


def remove_gateway(db, name: str) -> None:
    """Remove gateway ``name`` (its calls in progress go on)."""
    try:
        db.remove_gateway(name)
    except StoreError:
        if db.get_gateway(name) is None:
            raise NoSuchGateway(f"no gateway {name!r}") from None
        raise


# -- tenants and their branding ----------------------------------------------------------------
TENANT_FIELDS = {"timezone": (str,), "country": (str,), "branding": (dict,)}


def get_tenant(db, name: str) -> dict:
    tenant = db.get_tenant(name)
    if tenant is None:
        raise NotFound(f"no tenant {name!r}")
    return tenant


def add_tenant(db, name: str, timezone: str = "UTC", country: str = "1",
               branding: dict | None = None, now: float | None = None) -> dict:
    """Add a tenant with the shipped default rules; ``branding`` (text values: what the client
    shows its users, e.g. ``{"product": "Acme Phone"}``) over the defaults."""
    if not isinstance(name, str) or not name:
        raise AdminError("a tenant needs a name")
    if branding is not None:
        _check_branding(branding)
        branding = {k: v for k, v in branding.items() if v is not None}
    return db.add_tenant(name, time.time() if now is None else now, timezone=timezone,
                         country=country, branding=branding)


def _check_branding(branding: dict) -> None:
    if not all(isinstance(k, str) and (v is None or isinstance(v, str))
               for k, v in branding.items()):
        raise AdminError("branding: expected an object of text values")


def change_tenant(db, name: str, changes: dict) -> dict:
    """Change a tenant's ``timezone``, ``country`` or ``branding`` (merged into its branding;
    a ``null`` value removes that key). Clients see new branding at their next sign-in after
    the reload interval."""
    if "name" in changes:
        raise AdminError("a tenant's name cannot change")
    check_types(changes, TENANT_FIELDS, "tenant")
    current = get_tenant(db, name)
    branding = dict(current["branding"])
    _check_branding(changes.get("branding", {}))
    for key, value in changes.get("branding", {}).items():
        if value is None:
            branding.pop(key, None)
        else:
            branding[key] = value
    return db.change_tenant(name, changes.get("timezone", current["timezone"]),
                            changes.get("country", current["country"]), branding)


def set_tenant_enabled(db, name: str, enabled: bool) -> dict:
    """Disable a tenant (its users cannot log in; running gateways end their sessions within
    the reload interval) or enable it again."""
    get_tenant(db, name)
    db.set_tenant_enabled(name, enabled)
    return get_tenant(db, name)


# -- users -------------------------------------------------------------------------------------
USER_FIELDS = {"password": (str,), "tenant": (str,), "number": (str, type(None)),
               "country": (str, type(None))}


def public_user(row: dict) -> dict:
    """A user's row without its password key."""
    return {k: v for k, v in row.items() if k != "password"}


def get_user(db, name: str) -> dict:
    user = db.get_user(name)
    if user is None:
        raise NotFound(f"no user {name!r}")
    return public_user(user)


def _credential(password: str, hash_password) -> str:
    if not isinstance(password, str) or not password:
        raise AdminError("a password is needed")
    return hash_password(password)


def add_user(db, name: str, password: str, tenant: str = "default", number: str | None = None,
             country: str | None = None, now: float | None = None,
             hash_password=passwords.hash_password) -> dict:
    """Add a user (its password stored as a scrypt-derived key); returns it, key left out."""
    credential = _credential(password, hash_password)
    return public_user(db.add_user(name, credential, time.time() if now is None else now,
                                   tenant=tenant, number=number, country=country))


def set_user_password(db, name: str, password: str,
                      hash_password=passwords.hash_password) -> dict:
    get_user(db, name)
    db.set_password(name, _credential(password, hash_password))
    return get_user(db, name)


def set_user_enabled(db, name: str, enabled: bool) -> dict:
    """Disable a user (their sessions and calls end within the reload interval) or enable."""
    get_user(db, name)
    db.set_enabled(name, enabled)
    return get_user(db, name)


# -- authorization rules -----------------------------------------------------------------------
RULE_FIELDS = {"kind": (str,), "value": (str,), "user": (str, type(None)),
               "tenant": (str, type(None)), "note": (str,)}


def add_rule(db, kind: str, value: str, user: str | None = None, tenant: str | None = None,
             note: str = "", now: float | None = None) -> dict:
    """Add a rule (``kind`` as the CLI spells it, ``max-concurrent`` or ``max_concurrent``) for
    ``user``, else for ``tenant`` (default: the default tenant); returns the stored rule."""
    if user is not None and tenant is not None:
        raise AdminError("a rule belongs to a user or to a tenant, not both")
    rule_id = db.add_rule(kind.replace("-", "_"), value, time.time() if now is None else now,
                          tenant=None if user is not None else (tenant or "default"),
                          username=user, note=note)
    return next(r for r in db.list_rules(tenant=tenant if user is None else None,
                                         username=user) if r["id"] == rule_id)


def remove_rule(db, rule_id: int) -> None:
    if not any(r["id"] == rule_id for r in db.list_rules()):
        raise NotFound(f"no rule {rule_id}")
    db.remove_rule(rule_id)


# -- address books -----------------------------------------------------------------------------
def book_add(db, user: str, name: str, number: str) -> dict:
    """Add ``name`` with E.164 ``number`` to ``user``'s address book; returns the entry."""
    get_user(db, user)
    db.book_add(user, name, number)
    return {"name": name, "number": number}


def book_remove(db, user: str, name: str) -> None:
    if not any(e["name"] == name for e in db.book_list(user)):
        raise NotFound(f"{user!r} has no entry {name!r}")
    db.book_remove(user, name)
