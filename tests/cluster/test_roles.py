"""Front end and call servers as real processes (``twistd -n callgw --role ...``) over a real
PostgreSQL server, calls to a sipp gateway, one call server killed with ``kill -9``.

One front end and two call servers: the front end authenticates each client and redirects it
to a call server (callgw-dial follows), calls spread over both; a second process under a name
already in use is refused at start; after ``kill -9`` of one call server, the other closes its
calls (a CDR each, cause 41, a BYE to the gateway) and new calls go to the survivor; the dead
one restarted rejoins and takes calls again; calls placed while it dies each get an answer,
and those that reached the gateway a CDR; an operator's drain (``callgw server drain``)
sends new calls elsewhere. In the end every call has exactly one CDR and sipp, which answered
every call and waits for a BYE for each, ends its scenario with success.
"""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from callgw import cli
from callgw.store.db import Database
from tests.callpath.callgw_env import PASSWORD, Sipp, prepare_db
from tests.ports import free_port
from tests.processes import ROOT, output, stop, twistd, wait_for

pytestmark = pytest.mark.peers("sipp")
SECRET = "cluster-secret-for-the-test"
FIRST = 4                   # long calls placed before the crash (the tenant's limit: 4)
LATER = 3                   # short calls after it: survivor, restarted node, drained node
MIDLOAD = 4                 # bob's short calls placed as a call server dies


RTP_PORTS = {"cs-a": "20000-20999", "cs-b": "21000-21999"}     # below the ephemeral ports


def config(tmp_path, db_url, node, sip_port=None):
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / f"{node}.toml"
    path.write_text(
        f'[general]\ndatabase = "{db_url}"\nnode = "{node}"\nreload_interval = 0.5\n'
        f'[cluster]\nsecret = "{SECRET}"\nheartbeat = 0.5\ndead_after = 3\n'
        'amp = "127.0.0.1:0"\n'
        '[client]\nudp = "off"\ntcp = "127.0.0.1:0"\ntls = "off"\nreattach_grace = 0\n'
        '[web]\nhttps = "off"\n[manhole]\ntelnet = "off"\n[mgcp]\nudp = "off"\n'
        + (f'[sip]\nudp = "127.0.0.1:{sip_port}"\ntcp = "off"\n' if sip_port else '')
        + '[calls]\nhealth_interval = 0\n'
        '[media]\ninactivity_timeout = 600\n'       # sipp's gateway sends no RTP
        f'rtp_ports = "{RTP_PORTS.get(node, "22000-22999")}"\n')
    return path


def dial(tmp_path, port, number, duration, user="alice"):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CALLGW_PASSWORD=PASSWORD)
    out = open(tmp_path / f"dial-{number}.log", "w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "callgw.client.dial", "--server", f"tcp://127.0.0.1:{port}",
         "--user", user, "--duration", str(duration), "--no-media-after", "0",
         "--reattach", "0", number],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, out


def until(check, limit=30.0, what="condition"):
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {limit} s"
        time.sleep(0.1)


def rows(db_url, method, *args):
    db = Database(db_url)
    try:
        return getattr(db, method)(*args)
    finally:
        db.close()


def test_front_end_two_call_servers_kill_9_rejoin_and_drain(tmp_path, pg_url):
    sipp = Sipp("uas_answer.xml", tmp_path, calls=FIRST + LATER, timeout=120).start()
    # bob's calls, placed as cs-a dies, go to a gateway of their own (what it sees varies)
    (tmp_path / "uk").mkdir()
    uk = Sipp("uas_answer.xml", tmp_path / "uk", calls=1000, timeout=120).start()
    prepare_db(tmp_path, users=("alice", "bob"),
               gateways=[("paid", sipp.port, ["+49"], {"probe": "off"}),
                         ("paid-uk", uk.port, ["+44"], {"probe": "off"})], target=pg_url)
    cs_config = {n: config(tmp_path, pg_url, n, free_port()) for n in ("cs-a", "cs-b")}
    procs, dials, midload = {}, [], []
    try:
        for name, path in cs_config.items():
            procs[name] = twistd(tmp_path, path, "--role", "callserver", name=name)
        for name in cs_config:
            wait_for(procs[name][1], r"cluster: joined as call server " + name, procs[name][0])
        procs["fe"] = twistd(tmp_path, config(tmp_path, pg_url, "fe"), "--role", "frontend",
                             name="fe")
        fe, fe_log = procs["fe"]
        port = int(wait_for(fe_log, r"listening: client-tcp tcp 127\.0\.0\.1:(\d+)", fe)[0]
                   .group(1))
        for name in cs_config:
            wait_for(fe_log, f"cluster: link to call server {name} up", fe)

        # a second process under a live node's name does not start
        twin = config(tmp_path / "twin", pg_url, "cs-a", free_port())  # its own ports
        dup, dup_log = twistd(tmp_path, twin, "--role", "callserver", name="dup")
        try:
            assert dup.wait(60) == 1
        finally:
            stop(dup)
        assert "node name 'cs-a' is in use by a running process" in output(dup_log)

        # calls through the front end spread over both call servers
        for i in range(FIRST):
            dials.append(dial(tmp_path, port, f"+49301234{i:03d}", 120))
        answered = until(lambda: [r for r in rows(pg_url, "active_calls")
                                  if r["answered"] and r["recovery"] != "[]"]
                         if len([r for r in rows(pg_url, "active_calls")
                                 if r["answered"] and r["recovery"] != "[]"]) == FIRST
                         else None, 60, "every first call answered")
        on_a = {r["call_id"] for r in answered if r["node"] == "cs-a"}
        assert on_a and len(on_a) < FIRST, [r["node"] for r in answered]

        # kill -9 one call server while bob's calls are being placed: the survivor closes its
        # calls, new calls go to the survivor
        for i in range(MIDLOAD):
            midload.append((f"+44207946{i:04d}", dial(tmp_path, port, f"+44207946{i:04d}", 3,
                                                      user="bob")))
        until(lambda: sum("trying" in output(out) for _, (_, out) in midload) >= MIDLOAD // 2,
              60, "bob's calls under way")
        procs["cs-a"][0].send_signal(signal.SIGKILL)
        procs["cs-a"][0].wait(10)
        wait_for(procs["cs-b"][1], r"call\(s\) left open by dead call server cs-a closed",
                 procs["cs-b"][0])
        cdrs = {c["call_id"]: c for c in rows(pg_url, "cdrs", 50, "alice")}
        assert set(cdrs) == on_a and all(c["cause"] == 41 for c in cdrs.values())
        assert all("call server cs-a died" in c["cause_text"] for c in cdrs.values())
        # every one of bob's call requests got an answer, and every call that reached a
        # gateway (it rang or connected) has its CDR
        for number, (proc, out) in midload:
            proc.wait(90)
            text = output(out)
            assert re.search(r"^(disconnected|unauthorized|error): ", text, re.M), text
            if re.search(r"^(ringing|connected)$", text, re.M):
                until(lambda: [c for c in rows(pg_url, "cdrs", 50, "bob")
                               if c["target"] == number], 20, f"the CDR of {number}")

        def short_call(number, node):
            proc, out = dial(tmp_path, port, number, 1)
            assert proc.wait(60) == 0, output(out)
            newest = until(lambda: [c for c in rows(pg_url, "cdrs", 50, "alice")
                                    if c["target"] == number], 20, f"the CDR of {number}")
            assert newest[0]["call_server"].startswith(node + "/"), newest
            assert newest[0]["cause"] == 16, newest

        short_call("+49301239001", "cs-b")

        # the dead call server restarted rejoins and, least loaded, takes the next call
        procs["cs-a"] = twistd(tmp_path, cs_config["cs-a"], "--role", "callserver", name="cs-a2")
        wait_for(procs["cs-a"][1], "cluster: joined as call server cs-a", procs["cs-a"][0])
        until(lambda: output(fe_log).count("cluster: link to call server cs-a up") >= 2, 30,
              "the front end's link to the restarted cs-a")
        short_call("+49301239002", "cs-a")

        # the operator drains cs-a: the next call goes to cs-b although cs-a is idle
        out = io.StringIO()
        assert cli.main(["--config", str(cs_config["cs-a"]), "server", "drain", "cs-a"],
                        out=out) == 0
        wait_for(procs["cs-a"][1], r"call server cs-a draining: no new calls", procs["cs-a"][0])
        time.sleep(1.5)                     # the front end's next status poll (0.5 s beats)
        short_call("+49301239003", "cs-b")

        # the calls left end normally; every call has one CDR and sipp saw a BYE for each
        for proc, _ in dials:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in dials:
            proc.wait(60)
        until(lambda: len(rows(pg_url, "cdrs", 50, "alice")) == FIRST + LATER, 30,
              "a CDR for every call")
        assert rows(pg_url, "active_calls") == [] and rows(pg_url, "admitted_calls") == []
        code = until(lambda: sipp.process.poll() is not None and [sipp.process.returncode],
                     60, "sipp's end")
        assert code == [0], sipp.log()
    finally:
        for proc, _ in dials + [d for _, d in midload]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for proc, _ in procs.values():
            stop(proc)
        sipp.stop()
        uk.stop()
