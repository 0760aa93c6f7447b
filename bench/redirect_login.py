"""What a redirect costs a client's login: logins straight at a call server against logins a
front end redirects there (tests/client/redirector.py: two callgw gateways in this process,
the first with a fixture front end that redirects every login), per framing.

Run: ``python bench/redirect_login.py [--logins 15] [--scrypt-n 16384]``. Each login is a new
connection, ``login`` with a password (SCRAM over scrypt, the client's key derived once per
login -- a redirect reuses it), then ``logout``. Prints median and p90 milliseconds per framing
and path. 127.0.0.1 only; stops by itself.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

import tests.client.redirector as fixture  # noqa: E402
from callgw import passwords  # noqa: E402
from callgw.client.links import connect  # noqa: E402
from callgw.store.db import Database  # noqa: E402


def users(n: int):
    def prepare(tmp_path) -> None:
        stored = passwords.hash_password(fixture.PASSWORD, n=n)
        for name in ("front.sqlite3", "gw2.sqlite3"):
            db = Database(str(tmp_path / name))
            db.migrate()
            db.ensure_default_tenant(1.0)
            db.add_user("alice", stored, 1.0)
            db.close()
    return prepare


@defer.inlineCallbacks
def run(reactor, args):
    fixture.prepare = users(args.scrypt_n)
    front, gw2, _ = yield fixture.two_gateways(Path(tempfile.mkdtemp(prefix="redirect-bench")))
    cacert = front.client.cert.cert_path
    try:
        for scheme in ("udp", "tcp", "wss"):
            for label, gw in (("direct", gw2), ("redirected", front)):
                times = []
                for _ in range(args.logins):
                    start = time.perf_counter()
                    session = yield connect(fixture.url(gw, scheme), reactor, cacert=cacert)
                    yield session.login("alice", fixture.PASSWORD).addTimeout(30, reactor)
                    times.append((time.perf_counter() - start) * 1000)
                    yield session.logout().addTimeout(5, reactor)
                times.sort()
                print(f"scrypt N={args.scrypt_n} {scheme:4} {label:10} median "
                      f"{statistics.median(times):6.1f} ms  p90 "
                      f"{times[int(0.9 * (len(times) - 1))]:6.1f} ms", flush=True)
    finally:
        yield fixture.stop(gw2, front)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logins", type=int, default=15)
    p.add_argument("--scrypt-n", type=int, default=16384)
    args = p.parse_args()
    task.react(run, [args])


if __name__ == "__main__":
    main()
