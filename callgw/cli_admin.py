"""``callgw admin add|list|passwd|remove``: the accounts that may use callgw's admin surfaces.

Owned by operations (the admin command line; ``callgw.cli`` mounts these commands). The
password comes from ``CALLGW_PASSWORD``, from a prompt (asked twice), or from one line of
standard input with ``--password -``; never from the command line itself, where other users
could read it in the process list. It is stored like a user's: the scram-scrypt credential
(``callgw.passwords``). A running gateway picks changes up within ``reload_interval`` seconds:
a removed admin, or one whose password changed, loses its sessions at that moment.

Tests: tests/test_cli_admin.py.
"""
from __future__ import annotations

import getpass
import os
import sys
import time

from callgw import passwords


def admin_password(args) -> str:
    """The new password: ``--password -`` (stdin), ``CALLGW_PASSWORD``, or a prompt."""
    if args.password == "-":
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get("CALLGW_PASSWORD"):
        password = os.environ["CALLGW_PASSWORD"]
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for admin {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
    else:
        raise ValueError("a password is needed: CALLGW_PASSWORD, a terminal to prompt on, "
                         "or --password - (one line on stdin)")
    if len(password) < 8:
        raise ValueError("an admin password needs at least 8 characters")
    return password


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def cmd_admin_add(db, args, out):
    db.add_admin(args.name, passwords.hash_password(admin_password(args)), time.time())
    print(f"admin {args.name} added", file=out)


def cmd_admin_list(db, args, out):
    rows = db.list_admins()
    if not rows:
        print("(none)", file=out)
        return
    width = max(4, *(len(r["name"]) for r in rows))
    print(f"{'name'.ljust(width)}  created              password changed", file=out)
    for r in rows:
        print(f"{r['name'].ljust(width)}  {_when(r['created'])}  {_when(r['changed'])}",
              file=out)


def cmd_admin_passwd(db, args, out):
    db.set_admin_password(args.name, passwords.hash_password(admin_password(args)), time.time())
    print(f"password of admin {args.name} changed", file=out)


def cmd_admin_remove(db, args, out):
    db.remove_admin(args.name)
    print(f"admin {args.name} removed", file=out)


def add_commands(sub) -> None:
    """The ``admin`` command group under the top-level subparsers ``sub``."""
    group = sub.add_parser("admin", help="admin accounts (/api, /metrics, /admin/)",
                           description="admin accounts: who may use /api, /metrics and /admin/")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, fn, help_, with_password in (
            ("add", cmd_admin_add, "add an admin", True),
            ("list", cmd_admin_list, "list admins", False),
            ("passwd", cmd_admin_passwd, "change an admin's password", True),
            ("remove", cmd_admin_remove, "remove an admin (its sessions end)", False)):
        sp = actions.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        if name != "list":
            sp.add_argument("name")
        if with_password:
            sp.add_argument("--password", choices=["-"],
                            help="'-': read the password as one line from stdin "
                                 "(default: CALLGW_PASSWORD, or a prompt)")
