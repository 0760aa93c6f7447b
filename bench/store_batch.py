"""The call logger's batch write rate on SQLite and on PostgreSQL: ``Database.call_log_batch``
(one transaction: active-call upserts, events, traces, CDRs, ended calls), as the logger's 200 ms
flush makes it, timed on one connection.

Run: ``python bench/store_batch.py [--batches 200] [--calls 50] [--postgresql URL]``. Without
``--postgresql`` it starts a throwaway cluster (tests/pgserver.py's, so ``fsync`` is off there:
say so next to any figure). SQLite runs as callgw runs it (WAL, ``synchronous=NORMAL``). Prints
calls/s (each call: 1 active row written, 1 ended, 4 events, 6 traces, 1 CDR) per engine.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from callgw.store.db import Database  # noqa: E402


def batch(n: int, base: int, now: float) -> tuple:
    active, events, traces, cdrs, ended = [], [], [], [], []
    for i in range(base, base + n):
        cid = f"call-{i}"
        active.append({"call_id": cid, "username": "alice", "target": "+4930123456",
                       "gateway": "gw1", "call_server": "cs1", "node": "bench",
                       "state": "answered", "media_mode": "relay", "started": now,
                       "updated": now, "tenant": "default", "answered": now,
                       "recovery": [{"leg": "sip"}]})
        events += [{"call_id": cid, "kind": k, "at": now, "data": {"i": i}}
                   for k in ("launched", "attempt", "established", "disconnected")]
        traces += [{"call_id": cid, "leg": "sip", "direction": d, "summary": s, "at": now}
                   for d, s in (("out", "INVITE"), ("in", "100"), ("in", "180"),
                                ("in", "200"), ("out", "ACK"), ("out", "BYE"))]
        cdrs.append({"call_id": cid, "username": "alice", "tenant": "default",
                     "target": "+4930123456", "gateway": "gw1", "call_server": "cs1",
                     "requested": now, "ringing": now, "answered": now, "ended": now + 30,
                     "duration": 30.0, "cause": 16, "cause_text": "normal clearing",
                     "media_mode": "relay", "stats": {"mos": 4.3}})
        ended.append(cid)
    return active, events, traces, cdrs, ended


def measure(target: str, batches: int, calls: int) -> float:
    db = Database(target)
    try:
        db.migrate()
        start = time.perf_counter()
        for b in range(batches):
            db.call_log_batch(*batch(calls, b * calls, 1_700_000_000.0 + b))
        return batches * calls / (time.perf_counter() - start)
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--calls", type=int, default=50, help="calls per batch")
    parser.add_argument("--postgresql", help="a postgresql:// URL (default: a throwaway cluster)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rate = measure(os.path.join(work, "bench.sqlite3"), args.batches, args.calls)
        print(f"sqlite      {rate:9.0f} calls/s  ({args.calls} calls per batch)")
    cluster = None
    url = args.postgresql
    if url is None:
        from tests.pgserver import Cluster
        cluster = Cluster()
        cluster.start()
        url = cluster.url()
    try:
        rate = measure(url, args.batches, args.calls)
        note = " (throwaway cluster, fsync off)" if cluster is not None else ""
        print(f"postgresql  {rate:9.0f} calls/s  ({args.calls} calls per batch){note}")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
