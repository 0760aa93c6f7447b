"""The one place that decides what an admin may change, shared by the admin CLI
(``callgw/cli.py``) and the admin JSON API (``callgw/web/gateways_api.py``): gateways for now
(add, change, drain, enable, remove).

Owned by operations. Each function takes a ``Database`` (``callgw.store.db``) and runs
synchronously: the CLI calls it in its own process; the API runs it on the store's writer
thread (``IStore.write``), never on the reactor (a host name is resolved here). A gateway's
fields are checked in two steps, whichever door they came through: the protocol's registry
entry (``callgw.callserver.legs.registry``: that callgw has the protocol, its own options, its
probing modes, checks across options and the address), then the store (prefixes, numbers,
ranges). A mistake raises ``AdminError`` (``NoSuchGateway`` when the gateway is not there) or
the store's ``StoreError``, each one line for the operator: the CLI prints it (exit code 2), the
API answers it as a 400 (404).

A change names only what changes; the rest of the gateway stays as it is, and the whole result
is checked again as if it were added (a protocol cannot change: remove the gateway and add it).
Every change bumps the store's change serial, so running gateways reload it within
``[general] reload_interval`` seconds.

Tests: tests/test_cli.py (the CLI's gateway commands), tests/web/test_gateways_api.py (the API).
"""
from __future__ import annotations

import ipaddress
import socket
import time

from callgw.callserver.legs.registry import protocol
from callgw.store.errors import StoreError


class AdminError(ValueError):
    """An admin's mistake, said in one line."""


class NoSuchGateway(AdminError):
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


def check_types(fields: dict, allowed=GATEWAY_FIELDS) -> None:
    """Each field known and of its JSON type (what the API takes from a request body)."""
    for key, value in fields.items():
        kinds = allowed.get(key)
        if kinds is None:
            raise AdminError(f"{key}: not a gateway field (fields: "
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
