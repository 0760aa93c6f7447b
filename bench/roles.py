"""Call set-up through the process roles: a front end and N call servers over PostgreSQL.

``bench/cps.py --callservers N`` runs this row (or ``bench/roles.py --callservers 1,2``): a
throwaway PostgreSQL cluster (tests/pgserver.py's, a fixture peer), sipp's UAS as the gateway,
N call servers (``[cluster] role = "callserver"``) and one front end (``"frontend"``), each a
``twistd -n callgw`` process; the load generator of bench/cps.py logs its 32 sessions in
at the front end, which redirects each to a call server (least calls), and places calls there.
The rates step up as in bench/cps.py. Per step it reports the CPU milliseconds per call of the
front end, of the call servers together and of PostgreSQL, and how the calls spread over the
call servers: the figures a sizing rule needs (calls/s per core of each role).

The device processes share core 1 (``taskset``; SCHED_RR with ``--rt``) and the load, sipp and
PostgreSQL core 0, as bench/cps.py pins its rows: on a 2-core machine N call servers cannot
grow the rate linearly (they share one core); the CPU per call of each role is what carries
over to more cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cps  # noqa: E402  (bench/cps.py: its helpers and its _serve/_load modes)

SECRET = "bench-cluster-secret-0123456789"
#: each role as deployed: ``twistd -n callgw`` (its log says when it joined and linked)
TWISTD = [cps.PY, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
          "callgw", "--config"]


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of PostgreSQL's postmaster and every process it forked (its backends)."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(name) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _config(work, name, url, role, client_port, sip_port=None, amp_port=None, rtp=None):
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f'[general]\ndatabase = "{url}"\nnode = "{name}"\n'
                f'[cluster]\nrole = "{role}"\nsecret = "{SECRET}"\nheartbeat = 1.0\n'
                + (f'amp = "127.0.0.1:{amp_port}"\n' if amp_port else '')
                + f'[client]\nudp = "off"\ntcp = "127.0.0.1:{client_port}"\ntls = "off"\n'
                '[web]\nhttps = "off"\n[manhole]\ntelnet = "off"\n[mgcp]\nudp = "off"\n'
                + (f'[sip]\nudp = "127.0.0.1:{sip_port}"\ntcp = "off"\n' if sip_port else '')
                + '[calls]\nmax_attempts = 1\nhealth_interval = 0\n'
                + (f'[media]\nrtp_ports = "{rtp}"\n' if rtp else ''))
    return path


def _wait_for(path, text, count=1, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            if f.read().count(text) >= count:
                return
        time.sleep(0.2)
    raise RuntimeError(f"no {text!r} ({count}) in {path}")


def row_roles(work, rates, seconds, callservers: int):
    """One front end and ``callservers`` call servers; the steps of bench/cps.py."""
    from tests.pgserver import Cluster
    work = os.path.join(work, f"roles-{callservers}")
    os.makedirs(work, exist_ok=True)
    pg = Cluster()
    procs = []
    uas = None
    try:
        pg.start()
        dbname = "bench_" + uuid.uuid4().hex[:8]
        pg.admin(f"CREATE DATABASE {dbname}")
        url = pg.url(dbname)
        with open(os.path.join(pg.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        uas, uas_port = cps.sipp_uas(work, 0)
        subprocess.run([cps.PY, os.path.join(cps.ROOT, "bench", "cps.py"), "_prepare", url,
                        str(uas_port), cps.ROOT], check=True)
        env = dict(os.environ, PYTHONPATH=cps.ROOT)
        servers = []
        for i in range(callservers):
            name = f"cs-{i + 1}"
            config = _config(work, name, url, "callserver", cps.free_port(), cps.free_port(),
                             cps.free_port(), rtp=f"{20000 + 2000 * i}-{21999 + 2000 * i}")
            proc = cps.spawn(TWISTD + [config], 1, work, env=env, log=f"{name}.log",
                             realtime=cps.DUT_REALTIME)
            procs.append(proc)
            servers.append(proc)
        for i in range(callservers):
            _wait_for(os.path.join(work, f"cs-{i + 1}.log"), "cluster: joined as call server")
        fe_port = cps.free_port()
        fe = cps.spawn(TWISTD + [_config(work, "fe", url, "frontend", fe_port)], 1, work,
                       env=env, log="fe.log", realtime=cps.DUT_REALTIME)
        procs.append(fe)
        _wait_for(os.path.join(work, "fe.log"), "cluster: link to call server", callservers)

        def step(rate):
            out = os.path.join(work, f"load-{rate}.json")
            before = (cps.cpu_seconds(fe.pid), sum(cps.cpu_seconds(p.pid) for p in servers),
                      postgres_cpu(postmaster))
            load = cps.spawn([cps.PY, os.path.join(cps.ROOT, "bench", "cps.py"), "_load",
                              f"tcp://127.0.0.1:{fe_port}", out,
                              json.dumps([{"name": "step", "rate": rate, "seconds": seconds}])],
                             0, work, env=env, log=f"load-{rate}.log")
            load.wait(seconds + 120)
            after = (cps.cpu_seconds(fe.pid), sum(cps.cpu_seconds(p.pid) for p in servers),
                     postgres_cpu(postmaster))
            with open(out) as f:
                result = json.load(f)
            done = max(1, result["ok"] + result["failed"])
            result["dut_cpu"] = (after[0] - before[0]) + (after[1] - before[1])
            result["fe_ms_per_call"] = 1000.0 * (after[0] - before[0]) / done
            result["cs_ms_per_call"] = 1000.0 * (after[1] - before[1]) / done
            result["pg_ms_per_call"] = 1000.0 * (after[2] - before[2]) / done
            return result
        rows = cps._steps(rates, step)
        from callgw.store.db import Database
        db = Database(url)
        try:
            spread = db._rows("SELECT call_server, COUNT(*) AS n FROM cdrs GROUP BY "
                              "call_server ORDER BY call_server")
        finally:
            db.close()
        for r in rows:
            r["spread"] = {s["call_server"]: s["n"] for s in spread}
        return rows
    finally:
        for proc in reversed(procs):
            cps.stop(proc)
        cps.stop(uas)
        pg.stop()


def table(results) -> str:
    lines = ["| call servers | offered/s | achieved/s | success | held | p50 / p99 set-up ms | "
             "front end CPU ms/call | call servers CPU ms/call | PostgreSQL CPU ms/call | "
             "calls per call server (whole run) |",
             "|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---|"]
    for n, rows in results.items():
        for r in rows:
            lines.append(
                f"| {n} | {r['offered']:.0f} | {r['achieved']:.0f} | "
                f"{100 * r['success']:.2f}% | {'yes' if r['held'] else 'no'} | "
                f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['fe_ms_per_call']:.3f} | "
                f"{r['cs_ms_per_call']:.2f} | {r['pg_ms_per_call']:.2f} | "
                f"{', '.join(f'{k}: {v}' for k, v in r['spread'].items())} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--callservers", default="1,2", help="call-server counts to run, e.g. 1,2")
    p.add_argument("--rates", default="100,200,300,400,500,600")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rt", action="store_true", help="as bench/cps.py --rt")
    args = p.parse_args(argv)
    if args.rt:
        cps.REALTIME[:] = ["chrt", "-f", "10"]
    work = tempfile.mkdtemp(prefix="callgw-roles-")
    print(f"work directory: {work}; {os.cpu_count()} CPUs", flush=True)
    rates = [int(r) for r in args.rates.split(",")]
    results = {n: row_roles(work, rates, args.seconds, int(n))
               for n in args.callservers.split(",")}
    print(table(results))


if __name__ == "__main__":
    main()
