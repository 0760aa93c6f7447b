"""``callgw``: the admin command line (users, gateways, rules, address books, calls, CDRs).

Owned by operations. A separate process from the gateway: it opens the same database directly
(SQLite in WAL mode with a busy timeout lets both write) and every configuration change it makes
reaches a running gateway within ``reload_interval`` seconds. Bad arguments exit with code 2 and
one line saying what is wrong.

Tests: tests/test_cli.py.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time

from callgw import admin_service, cli_admin, passwords
from callgw.config import ConfigError, defaults, dump, load
from callgw.callserver.legs.registry import PROTOCOLS, protocol
from callgw.store.db import RULE_KINDS, Database, StoreError
from callgw.store.dialect import redacted


class CliError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def _password(args) -> str:
    if args.password == "-":
        return sys.stdin.readline().rstrip("\n")
    if args.password:
        return args.password
    if os.environ.get("CALLGW_PASSWORD"):
        return os.environ["CALLGW_PASSWORD"]
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    raise CliError("a password is needed: --password PW, --password - (stdin) or CALLGW_PASSWORD")


def _host_port(text: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT`` (port None: the protocol's own)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else (None if not rest else "x")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, None
    if not host or (port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535)):
        raise argparse.ArgumentTypeError(f"expected HOST[:PORT], got {text!r}")
    return host, int(port) if port is not None else None


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _protocol_options() -> dict:
    """Every protocol's gateway options as CLI flags: key -> (flag, help, argparse action);
    a key several protocols share appears once, its help naming them."""
    out: dict = {}
    for name, entry in sorted(PROTOCOLS.items()):
        for option in entry.options:
            if option.key in out:
                flag, text, action = out[option.key]
                out[option.key] = (flag, f"{text}; also {name}", action)
            else:
                out[option.key] = (option.flag, f"{name}: {option.help}", option.action)
    return out


_OPTION_FLAGS = {key: flag for key, (flag, _, _) in _protocol_options().items()}


# -- commands ---------------------------------------------------------------------------------
def cmd_init(db, args, out):
    print(f"database ready: {redacted(args.database)} (schema {db.schema_version()})", file=out)


def cmd_config_show(db, args, out):
    out.write(dump(args.loaded, redact=args.redact))


def cmd_hash_password(db, args, out):
    print(passwords.hash_password(_password(args)), file=out)


def cmd_tenant_add(db, args, out):
    admin_service.add_tenant(db, args.name, timezone=args.timezone, country=args.country)
    print(f"tenant {args.name} added with the default rules", file=out)


def cmd_tenant_list(db, args, out):
    rows = [dict(r, enabled="yes" if r["enabled"] else "no") for r in db.list_tenants()]
    print(_table(rows, ["name", "timezone", "country", "enabled"]), file=out)


def cmd_tenant_disable(db, args, out):
    admin_service.set_tenant_enabled(db, args.name, False)
    print(f"tenant {args.name} disabled: its users' sessions end within the reload interval",
          file=out)


def cmd_tenant_enable(db, args, out):
    admin_service.set_tenant_enabled(db, args.name, True)
    print(f"tenant {args.name} enabled", file=out)


def cmd_user_add(db, args, out):
    admin_service.add_user(db, args.name, _password(args), tenant=args.tenant,
                           number=args.number, country=args.country)
    print(f"user {args.name} added", file=out)


def cmd_user_list(db, args, out):
    rows = [dict(r, enabled="yes" if r["enabled"] else "no") for r in db.list_users()]
    print(_table(rows, ["username", "tenant", "number", "enabled"]), file=out)


def cmd_user_passwd(db, args, out):
    admin_service.set_user_password(db, args.name, _password(args))
    print(f"password of {args.name} changed", file=out)


def cmd_user_disable(db, args, out):
    admin_service.set_user_enabled(db, args.name, False)
    print(f"user {args.name} disabled: their sessions and calls end within the reload interval",
          file=out)


def cmd_user_enable(db, args, out):
    admin_service.set_user_enabled(db, args.name, True)
    print(f"user {args.name} enabled", file=out)


def cmd_gateway_add(db, args, out):
    """Checked and stored by ``callgw.admin_service`` (the admin API's gateway writes too)."""
    entry = protocol(args.protocol)
    host, port = args.address
    given = {}
    for key, flag in _OPTION_FLAGS.items():
        value = getattr(args, "opt_" + key)
        if value is None:
            continue
        if key not in {o.key for o in entry.options}:
            raise CliError(f"{flag} is not an option of {entry.name} gateways")
        given[key] = value
    admin_service.add_gateway(db, args.name, entry.name, {
        "host": host, "port": port, "prefixes": args.prefix, "capacity": args.capacity,
        "priority": args.priority, "weight": args.weight, "strip_digits": args.strip,
        "prepend": args.prepend, "keep_plus": not args.no_plus, "caller_id": args.caller_id,
        "options": given, "probe": args.probe, "probe_interval": args.probe_interval,
        "down_after": args.down_after, "up_after": args.up_after})
    print(f"gateway {args.name} added", file=out)


def cmd_gateway_list(db, args, out):
    rows = [dict(g, address=f"{g['host']}:{g['port']}", prefixes=",".join(g["prefixes"]),
                 probe=g["probe"] or "default",
                 status=g["status"] if g["enabled"] else "draining",
                 options=" ".join(f"{k}={v}" for k, v in sorted(g["options"].items())
                                  if "password" not in k))
            for g in db.list_gateways()]
    print(_table(rows, ["name", "protocol", "address", "prefixes", "capacity", "priority",
                        "weight", "probe", "status", "options"]), file=out)


def cmd_gateway_drain(db, args, out):
    admin_service.set_gateway_enabled(db, args.name, False)
    print(f"gateway {args.name} draining: no new calls, its calls go on", file=out)


def cmd_gateway_enable(db, args, out):
    admin_service.set_gateway_enabled(db, args.name, True)
    print(f"gateway {args.name} enabled", file=out)


def cmd_gateway_remove(db, args, out):
    admin_service.remove_gateway(db, args.name)
    print(f"gateway {args.name} removed", file=out)


def cmd_rule_add(db, args, out):
    rule = admin_service.add_rule(db, args.kind, args.value, user=args.user,
                                  tenant=args.tenant if not args.user else None, note=args.note)
    print(f"rule {rule['id']} added", file=out)


def cmd_rule_list(db, args, out):
    rows = db.list_rules(tenant=args.tenant, username=args.user)
    print(_table(rows, ["id", "tenant", "username", "kind", "value", "note"]), file=out)


def cmd_rule_remove(db, args, out):
    admin_service.remove_rule(db, args.id)
    print(f"rule {args.id} removed", file=out)


def cmd_book_add(db, args, out):
    admin_service.book_add(db, args.user, args.name, args.number)
    print(f"{args.name} added to {args.user}'s address book", file=out)


def cmd_book_list(db, args, out):
    print(_table(db.book_list(args.user), ["name", "number"]), file=out)


def cmd_book_remove(db, args, out):
    admin_service.book_remove(db, args.user, args.name)
    print(f"{args.name} removed from {args.user}'s address book", file=out)


def cmd_calls(db, args, out):
    rows = db.active_calls()
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
        return
    now = time.time()
    rows = [dict(r, age=f"{now - r['started']:.0f}s") for r in rows]
    print(_table(rows, ["call_id", "username", "target", "gateway", "state", "media_mode",
                        "age"]), file=out)


def cmd_cdr(db, args, out):
    rows = db.cdrs(limit=args.limit, username=args.user)
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
        return
    rows = [dict(r, ended=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["ended"])),
                 duration=f"{r['duration']:.1f}") for r in rows]
    print(_table(rows, ["call_id", "username", "target", "gateway", "ended", "duration",
                        "cause", "cause_text"]), file=out)


def cmd_server_list(db, args, out):
    now = time.time()
    rows = [dict(r, state=_server_state(r, now), heartbeat=f"{now - r['updated']:.0f}s ago",
                 calls=f"{r['active_calls']}/{r['capacity']}")
            for r in db.list_call_servers()]
    print(_table(rows, ["name", "role", "address", "state", "calls", "heartbeat"]), file=out)


def _server_state(row: dict, now: float) -> str:
    if row["role"] == "callserver" and not row["instance"]:
        return "stopped"
    state = "up" if row["healthy"] else "unhealthy"
    return f"{state}, draining" if row["draining"] else state


def cmd_server_drain(db, args, out):
    db.set_draining(args.name, True)
    print(f"call server {args.name} draining: no new calls, its calls go on (within one "
          "heartbeat)", file=out)


def cmd_server_resume(db, args, out):
    db.set_draining(args.name, False)
    print(f"call server {args.name} takes new calls again", file=out)


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callgw", description="callgw administration")
    p.add_argument("--config", "-c", help="TOML configuration file (as for twistd callgw)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(parent, name, fn, help_):
        sp = parent.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    def group(name, help_):
        g = sub.add_parser(name, help=help_, description=help_)
        return g.add_subparsers(dest="action", required=True, metavar="ACTION")

    cmd(sub, "init", cmd_init, "create or migrate the database and the default tenant")
    cfg = group("config", "configuration")
    show = cmd(cfg, "show", cmd_config_show, "print the effective configuration as TOML")
    show.add_argument("--redact", action="store_true", help="mask secrets for sharing")
    hp = cmd(sub, "hash-password", cmd_hash_password,
             "print a credential for [manhole] password_hash")
    hp.add_argument("--password", help="the password ('-': read a line from stdin)")

    t = group("tenant", "tenants")
    a = cmd(t, "add", cmd_tenant_add, "add a tenant with the default rules")
    a.add_argument("name")
    a.add_argument("--timezone", default="UTC")
    a.add_argument("--country", default="1", help="default country code, e.g. 49")
    cmd(t, "list", cmd_tenant_list, "list tenants")
    cmd(t, "disable", cmd_tenant_disable,
        "disable a tenant: its users can no longer log in, their sessions and calls end"
        ).add_argument("name")
    cmd(t, "enable", cmd_tenant_enable, "enable a tenant again").add_argument("name")

    u = group("user", "users")
    a = cmd(u, "add", cmd_user_add, "add a user")
    a.add_argument("name")
    a.add_argument("--password", help="the password ('-': read a line from stdin; "
                                      "default: CALLGW_PASSWORD or a prompt)")
    a.add_argument("--tenant", default="default")
    a.add_argument("--number", help="the user's own E.164 number (caller id)")
    a.add_argument("--country", help="default country code for dialled national numbers")
    cmd(u, "list", cmd_user_list, "list users")
    a = cmd(u, "passwd", cmd_user_passwd, "change a user's password")
    a.add_argument("name")
    a.add_argument("--password")
    for name, fn in (("disable", cmd_user_disable), ("enable", cmd_user_enable)):
        cmd(u, name, fn, f"{name} a user").add_argument("name")

    g = group("gateway", "PSTN gateways")
    a = cmd(g, "add", cmd_gateway_add, "add a gateway")
    a.add_argument("name")
    a.add_argument("--protocol", required=True,
                   help="the gateway's protocol: " + ", ".join(sorted(PROTOCOLS)))
    a.add_argument("--address", required=True, type=_host_port,
                   help="HOST[:PORT] (an address, or a name that resolves; the port defaults "
                        "to the protocol's: " + ", ".join(
                            f"{n} {e.default_port}" for n, e in sorted(PROTOCOLS.items())) + ")")
    a.add_argument("--prefix", required=True, action="append",
                   help="E.164 prefix it serves, with its '+' (+1, +4930; '+' for all); "
                        "repeat for several")
    a.add_argument("--capacity", type=int, default=100, help="simultaneous calls")
    a.add_argument("--priority", type=int, default=10, help="lower is tried first")
    a.add_argument("--weight", type=int, default=100, help="share among equal priorities")
    a.add_argument("--probe", help="health probing in the protocol's own way: " + "; ".join(
        f"{n}: {' or '.join(e.probe_modes)}" for n, e in sorted(PROTOCOLS.items())) +
        " (the first is the default; off: the gateway is never probed, only calls tell)")
    a.add_argument("--probe-interval", type=float, help="seconds between probes (default: "
                   "[calls] health_interval)")
    a.add_argument("--down-after", type=int, default=3, help="failed probes before down")
    a.add_argument("--up-after", type=int, default=2, help="answered probes before up again")
    for key, (flag, help_text, action) in _protocol_options().items():
        a.add_argument(flag, dest="opt_" + key, default=None, help=help_text,
                       **({"action": action} if action else {}))
    a.add_argument("--strip", type=int, default=0, help="leading digits to strip")
    a.add_argument("--prepend", default="", help="digits to prepend after stripping")
    a.add_argument("--no-plus", action="store_true", help="send numbers without the '+'")
    a.add_argument("--caller-id", default="pass", help="pass, withhold or fixed:+E164")
    cmd(g, "list", cmd_gateway_list, "list gateways")
    cmd(g, "remove", cmd_gateway_remove, "remove a gateway").add_argument("name")
    cmd(g, "drain", cmd_gateway_drain,
        "drain a gateway: no new calls, its calls go on").add_argument("name")
    cmd(g, "enable", cmd_gateway_enable, "take calls on a drained gateway again").add_argument(
        "name")

    srv = group("server", "call servers (processes of the role callserver, or in-process)")
    cmd(srv, "list", cmd_server_list, "list call servers: role, state, calls, heartbeat")
    cmd(srv, "drain", cmd_server_drain,
        "drain a call server: no new calls, its calls go on").add_argument("name")
    cmd(srv, "resume", cmd_server_resume,
        "let a drained call server take new calls again").add_argument("name")

    r = group("rule", "authorization rules")
    a = cmd(r, "add", cmd_rule_add, "add a rule for a user or a tenant")
    a.add_argument("kind", choices=[k.replace("_", "-") for k in RULE_KINDS])
    a.add_argument("value", help="a prefix (+49900), a number, or hours (mon-fri 08:00-18:00)")
    owner = a.add_mutually_exclusive_group()
    owner.add_argument("--user")
    owner.add_argument("--tenant", default="default")
    a.add_argument("--note", default="")
    a = cmd(r, "list", cmd_rule_list, "list rules")
    a.add_argument("--user")
    a.add_argument("--tenant")
    cmd(r, "remove", cmd_rule_remove, "remove a rule").add_argument("id", type=int)

    cli_admin.add_commands(sub)

    b = group("book", "address books")
    a = cmd(b, "add", cmd_book_add, "add an address-book entry")
    a.add_argument("user")
    a.add_argument("name")
    a.add_argument("number", help="E.164 number with its '+'")
    cmd(b, "list", cmd_book_list, "list a user's address book").add_argument("user")
    a = cmd(b, "remove", cmd_book_remove, "remove an address-book entry")
    a.add_argument("user")
    a.add_argument("name")

    a = cmd(sub, "calls", cmd_calls, "show active calls")
    a.add_argument("--json", action="store_true")
    a = cmd(sub, "cdr", cmd_cdr, "show recent call records")
    a.add_argument("--limit", type=int, default=20)
    a.add_argument("--user")
    a.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.loaded = load(args.config) if args.config else defaults()
    except ConfigError as e:
        print(f"callgw: configuration: {e}", file=sys.stderr)
        return 2
    args.database = args.loaded["general"]["database"]
    if args.fn in (cmd_config_show, cmd_hash_password):
        try:
            args.fn(None, args, out)
        except (CliError, ValueError) as e:
            print(f"callgw: {e}", file=sys.stderr)
            return 2
        return 0
    db = Database(args.database)
    try:
        db.migrate()
        db.ensure_default_tenant(time.time())
        args.fn(db, args, out)
    except (CliError, StoreError, ValueError) as e:
        print(f"callgw: {e}", file=sys.stderr)
        return 2
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
