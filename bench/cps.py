"""Call set-up and tear-down rate through the whole call path, with the ceiling and Sippy.

Three rows in one run, each device under test pinned to core 1 and its load to core 0
(``taskset``), rates stepped up until a step is not *held* (at least 99.9% of the calls succeed and the
achieved rate is at least 95% of the offered one):

1. **ceiling**: sipp UAC -> sipp UAS directly (INVITE/100/180/200/ACK, BYE/200);
2. **sippy**: sipp UAC -> Sippy B2BUA 2.5 (Python, no media) -> sipp UAS;
3. **callgw**: client protocol over TCP (users log in once, then reuse their sessions) ->
   callgw (one process: front end, director, handler, SIP slave, logger writing events, traces
   and CDRs to SQLite) -> sipp UAS. The client hangs up as soon as it is connected.

For each step: offered and achieved rate, success ratio, p50/p99 set-up latency (sipp: INVITE
to 200, from ``-trace_rtt``; callgw: ``call`` sent to ``connected`` received, measured in the
load generator), the CPU seconds per call of the device under test, and the load generator's
CPU share (it must not be the bottleneck).

    .venv/bin/python bench/cps.py [--rates 200,400,...] [--seconds 8] [--rows ceiling,sippy,callgw]
                                  [--baseline REV]

``--overload FACTOR`` ends each callgw row with one run on the same 32 sessions: the highest
rate it held for ``--overload-warmup`` seconds (35: the SIP stack keeps each call's dialog 32 s
after it ends, so its memory is at its steady size first), then FACTOR times that rate for
``--overload-seconds`` (30; ``--overload-rate RATE``: that rate for every row), 5 s without
calls, and the held rate again for 5 s. It reports offered, completed (and its share of the
held rate), refused with cause ``congestion`` (admission control,
callgw/callserver/admission.py) and failed with any other cause, p50/p99 of set-ups and of
refusals (and when the slowest refusals came), client sessions still up, the device's RSS
(sampled every 0.25 s) and its growth over the last 20 s of the overload, its CPU share, and
p50 set-up before against 5 s after.

``--hold 500,1000 [--hold-media]`` measures memory per call instead (issue 17 target 4): the
callgw row only, calls placed at ``--hold-rate`` (200/s) and held up at each level in turn
(no hang-up; the media inactivity timeout is off for the run), RSS sampled every 0.25 s and
read 5 s after a level is all connected; per call both the marginal figure (between two levels)
and the average since no call. With ``--hold-media`` every call sends a 20 ms PCMU frame each
20 ms over its session; callgw relays it as RTP to sipp, which echoes it (``-rtp_echo``), and
the frames coming back are counted. Kernel socket buffers are not in RSS.

``--baseline REV`` adds a row for callgw as of git revision REV (exported from this checkout's
history and run from its own tree) in the same run, to compare a change against the code before
it on the same machine at the same time.

``--callservers 1,2`` runs the process roles instead (bench/roles.py): a front end and N call
servers over PostgreSQL, with the CPU per call of each role.

Internal modes: ``_serve CONFIG`` runs callgw; ``_load ...`` is the client-protocol load.
Experiments (environment of the run): ``CALLGW_BENCH_NO_TRACE=1`` drops message traces,
``CALLGW_BENCH_NO_STORE=1`` drops every call-log write, ``CALLGW_BENCH_GC=default`` keeps the
interpreter's collector thresholds (``N,N,N``: those), ``CALLGW_PROFILE=FILE`` profiles
callgw's reactor thread, ``CALLGW_BENCH_GCLOG=FILE`` times every collection (pauses over
10 ms), ``CALLGW_BENCH_MEMORY=FILE`` writes the heap by type and the cyclic garbage after each
step, ``CALLGW_BENCH_ADMISSION=target_lag=0.02,max_lag=0.06`` tries other admission settings.
Results are printed as a Markdown table (copied into docs/performance.md by hand).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
USERS = 8
SESSIONS = 32           # client sessions of the load (USERS users, several sessions each)
SESSION_CALLS = 64      # live calls one session may have (callgw/frontend/connection.py)
UAS_SCENARIO = os.path.join(ROOT, "bench", "uas.xml")
PASSWORD = "bench password"


# ---------------------------------------------------------------------------- helpers

_GIVEN: set[int] = set()


def free_port(kind=socket.SOCK_DGRAM, both=True) -> int:
    """A port free now on 127.0.0.1 in 25000-26999, never the same twice in this run."""
    for port in range(25000 + os.getpid() % 1500, 27000):
        if port in _GIVEN:
            continue
        try:
            for k in ((socket.SOCK_DGRAM, socket.SOCK_STREAM) if both else (kind,)):
                with socket.socket(socket.AF_INET, k) as s:
                    s.bind(("127.0.0.1", port))
            _GIVEN.add(port)
            return port
        except OSError:
            continue
    raise RuntimeError("no free port in 25000-26999")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


#: ``--rt``: every process of a row runs SCHED_FIFO (``chrt -f 10``) on its core, so a shared
#: machine's other work cannot take the cores away mid-step (bench/relay.py does the same).
REALTIME: list[str] = []
#: callgw itself runs SCHED_RR rather than SCHED_FIFO under ``--rt``: it has two busy threads
#: on its one core (the reactor and the store's writer). Under FIFO the one running keeps the
#: core until it blocks: a saturated reactor starved the writer, which then wrote the backlog
#: in one go while the reactor waited (stalls of 1.2 s in the overload run); round-robin gives
#: each at most a time slice (``sched_rr_timeslice_ms``, 100 ms here) in turn, as the normal
#: scheduler would share the core.
#: The kernel's RT throttling (``sched_rt_runtime_us`` 950000 of every 1000000) caps a saturated
#: SCHED_RR callgw at 95% of its core and stops it for about 50 ms each second: in the overload
#: run without call-log writes the reactor's longest lags (80-130 ms) came once a second.
#: ``CALLGW_BENCH_DUT_NICE=1`` (experiment) runs callgw at nice -20 under the normal scheduler
#: instead: no throttling and its threads share the core finely, but other work on the
#: machine then takes its share.
DUT_REALTIME = ["nice", "-n", "-20"] if os.environ.get("CALLGW_BENCH_DUT_NICE") else \
    ["chrt", "-r", "10"]


def spawn(argv, core, cwd, env=None, log="out.log", realtime=None):
    out = open(os.path.join(cwd, log), "wb")
    realtime = REALTIME if realtime is None or not REALTIME else realtime
    return subprocess.Popen(realtime + ["taskset", "-c", str(core)] + argv, cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def stop(proc, sig=signal.SIGTERM):
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_bound(port, kind=socket.SOCK_DGRAM, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing bound port {port}")


def sipp_uas(work, core, echo=False):
    """sipp's UAS on ``core``; with ``echo`` it echoes the RTP it gets (``-rtp_echo``)."""
    port, cport = free_port(), free_port(both=False)
    media = ["-mi", "127.0.0.1", "-mp", str(free_port()), "-rtp_echo"] if echo else []
    proc = spawn(["sipp", "-sf", UAS_SCENARIO, "-i", "127.0.0.1", "-p", str(port),
                  "-ci", "127.0.0.1", "-cp", str(cport), "-nostdin", "-timeout", "3600s"]
                 + media, core, work, log=f"uas-{port}.log")
    wait_bound(port)
    return proc, port


def sipp_uac(work, target, rate, seconds, core):
    """Run sipp's built-in UAC at ``rate`` calls/s for ``seconds``; returns its figures."""
    port, cport = free_port(), free_port(both=False)
    total = int(rate * seconds)
    for old in glob.glob(os.path.join(work, "uac_*_rtt.csv")):
        os.unlink(old)
    argv = ["sipp", "-sn", "uac", target, "-i", "127.0.0.1", "-p", str(port),
            "-ci", "127.0.0.1", "-cp", str(cport), "-nostdin", "-r", str(rate), "-m",
            str(total), "-d", "0", "-timeout", f"{seconds + 20}s", "-trace_rtt",
            "-rtt_freq", "1", "-max_socket", "1000", "-l", str(max(1000, rate * 4))]
    started = time.monotonic()
    proc = spawn(argv, core, work, log="uac.log")
    proc.wait(seconds + 40)
    elapsed = time.monotonic() - started
    screen = open(os.path.join(work, "uac.log"), errors="replace").read()
    ok = _counter(screen, "Successful call")
    failed = _counter(screen, "Failed call")
    rtts = []
    for path in glob.glob(os.path.join(work, "uac_*_rtt.csv")):
        for line in open(path):
            parts = line.strip().split(";")
            if len(parts) >= 2 and re.match(r"^[0-9.]+$", parts[1]):
                rtts.append(float(parts[1]))
    return {"offered": rate, "calls": total, "ok": ok, "failed": failed,
            "elapsed": elapsed, "p50_ms": percentile(rtts, 50), "p99_ms": percentile(rtts, 99)}


def _counter(screen, name):
    found = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(found[-1]) if found else 0


# ---------------------------------------------------------------------------- rows

def row_ceiling(work, rates, seconds):
    def step(rate):
        uas, port = sipp_uas(work, 1)
        try:
            return _with_cpu(uas.pid, lambda: sipp_uac(work, f"127.0.0.1:{port}", rate,
                                                       seconds, 0))
        finally:
            stop(uas)
    return _steps(rates, step)


def row_sippy(work, rates, seconds):
    # CALLGW_BENCH_B2BUA: Sippy's b2bua script from a virtualenv of its own (Sippy 2.5 brings
    # Flask and more: kept out of callgw's), run with that virtualenv's Python
    own = os.environ.get("CALLGW_BENCH_B2BUA")
    b2bua = own or shutil.which("b2bua") or os.path.join(os.path.dirname(PY), "b2bua")
    if not os.path.exists(b2bua):
        return [{"error": "Sippy B2BUA not installed (pip install sippy==2.5.0, or its "
                          "virtualenv's bin/b2bua in CALLGW_BENCH_B2BUA)"}]
    python = os.path.join(os.path.dirname(b2bua), "python") if own else PY
    uas, uas_port = sipp_uas(work, 0)
    port = free_port()
    env = dict(os.environ, SIPLOG_BEND="none")
    proc = spawn([python, b2bua, "-f", "-u", "-A", "0", "--sip_address=127.0.0.1",
                  f"--sip_port={port}", "-s", f"127.0.0.1:{uas_port}",
                  "-c", os.path.join(work, "b2bua.sock")], 1, work, env=env, log="b2bua.log")
    try:
        wait_bound(port)
        return _steps(rates, lambda r: _with_cpu(proc.pid, lambda: sipp_uac(
            work, f"127.0.0.1:{port}", r, seconds, 0)))
    finally:
        stop(proc)
        stop(uas)


def row_callgw(work, rates, seconds, root=ROOT, tag="callgw", overload=None, hold=None):
    """callgw from ``root`` (this checkout, or a baseline revision's tree: its own store
    code prepares the database and its own ``bench/cps.py _serve`` runs it)."""
    work = os.path.join(work, tag)
    os.makedirs(work, exist_ok=True)
    uas, uas_port = sipp_uas(work, 0, echo=bool(hold and hold.get("media")))
    db = os.path.join(work, "callgw.sqlite3")
    subprocess.run([PY, os.path.abspath(__file__), "_prepare", db, str(uas_port), root],
                   check=True)
    client_port = free_port()
    sip_port = free_port()
    config = os.path.join(work, "callgw.toml")
    knows = subprocess.run([PY, "-c", "from callgw.config import SCHEMA; "
                            "print('health_interval' in SCHEMA['calls'])"],
                           env=dict(os.environ, PYTHONPATH=root), cwd=root,
                           capture_output=True, text=True, check=True).stdout.strip() == "True"
    polling = "health_interval = 0\n" if knows else ""     # older revisions: off in _serve
    with open(config, "w") as f:
        f.write(f'[general]\ndatabase = "{db}"\nnode = "bench"\n'
                f'[client]\nudp = "off"\ntcp = "127.0.0.1:{client_port}"\ntls = "off"\n'
                f'[web]\nhttps = "off"\n[manhole]\ntelnet = "off"\n'
                f'[sip]\nudp = "127.0.0.1:{sip_port}"\ntcp = "off"\n'
                f'[calls]\nmax_attempts = 1\n{polling}'
                # held calls without media stay up (no inactivity timeout in the run)
                + ('[media]\ninactivity_timeout = 3600\n' if hold else ''))
    env = dict(os.environ, PYTHONPATH=root)
    server = spawn([PY, os.path.join(root, "bench", "cps.py"), "_serve", config], 1, work,
                   env=env, log="callgw.log", realtime=DUT_REALTIME)
    try:
        wait_bound(client_port, socket.SOCK_STREAM, 20)
        time.sleep(0.5)

        def step(rate, seconds=seconds, plan=None, tag=None):
            tag = tag or str(rate)
            out = os.path.join(work, f"load-{tag}.json")
            plan = plan or [{"name": "step", "rate": rate, "seconds": seconds}]
            load = spawn([PY, os.path.abspath(__file__), "_load", f"tcp://127.0.0.1:{client_port}",
                          out, json.dumps(plan)], 0, work, env=env, log=f"load-{tag}.log")
            load.wait(sum(p["seconds"] + p.get("gap", 0) for p in plan) + 90)
            if os.environ.get("CALLGW_BENCH_MEMORY"):
                os.kill(server.pid, signal.SIGUSR1)
                time.sleep(2)
            with open(out) as f:
                return json.load(f)
        if hold is not None:
            return [hold_step(server.pid, work, client_port, env, hold)]
        rows = _steps(rates, lambda r: _with_cpu(server.pid, lambda: step(r)))
        if overload is not None:
            rows.append(overload_step(server.pid, rows, rates, overload, step))
        return rows
    finally:
        stop(server)
        stop(uas)


def overload_step(pid, rows, rates, overload, step):
    """One run of three phases on the same sessions: ``before`` (the highest rate held for
    ``warmup`` seconds: long enough by default for the SIP stack's 32 s of state kept after
    each call, RFC 6026 Timer M, to reach its steady size, so RSS growth in the overload is
    the overload's), ``overload`` (FACTOR times it), then 5 s without calls and ``after``
    (the held rate again, 5 s), with the device's RSS and CPU sampled every 0.25 s."""
    factor, over_seconds, fixed, warmup = overload
    held = max([r["offered"] for r in rows if r.get("held")] or [rates[0]])
    rate = fixed or int(held * factor)
    factor = round(rate / held, 2)
    plan = [{"name": "before", "rate": held, "seconds": warmup},
            {"name": "overload", "rate": rate, "seconds": over_seconds, "gap": 1},
            {"name": "after", "rate": held, "seconds": 5, "gap": 5}]
    print(f"overload: offering {rate}/s ({factor} x {held:.0f}/s held) for "
          f"{over_seconds:g} s, between {held:.0f}/s for {warmup:g} s before and 5 s after a "
          "5 s pause",
          flush=True)
    samples = []
    stopping = threading.Event()

    def sample():
        while not stopping.is_set():
            try:
                samples.append((time.monotonic(), rss_kib(pid), cpu_seconds(pid)))
            except OSError:
                return
            stopping.wait(0.25)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = step(rate, plan=plan, tag=f"overload-{rate}")
    finally:
        stopping.set()
        sampler.join(5)
    phases = {p["name"]: p for p in result["phases"]}
    over = phases["overload"]
    out = dict(over, overload=True, held_rate=held, factor=factor,
               sessions=result["sessions"], sessions_up=result["sessions_up"],
               load_cpu_share=result.get("load_cpu_share"),
               before=phases["before"], after=phases["after"])
    out["achieved"] = over["ok"] / over["placing_seconds"]
    start, end = over["started"], over["ended"]
    window = [s for s in samples if start <= s[0] <= end]
    if window:
        late = [s for s in window if s[0] >= end - 20] or window
        out["rss_mib_start"] = window[0][1] / 1024
        out["rss_mib_last20_first"] = late[0][1] / 1024
        out["rss_mib_end"] = late[-1][1] / 1024
        out["rss_growth_last20_pct"] = 100.0 * (late[-1][1] - late[0][1]) / late[0][1]
        out["dut_cpu"] = window[-1][2] - window[0][2]
        out["dut_cpu_share"] = out["dut_cpu"] / max(1e-9, window[-1][0] - window[0][0])
    out["cpu_ms_per_call"] = 1000.0 * out.get("dut_cpu", 0.0) / max(1, over["calls"])
    print(json.dumps(out), flush=True)
    return out


def hold_step(pid, work, client_port, env, hold):
    """Calls held up at each level of ``hold["levels"]`` (bench's ``_hold``), the device's
    RSS sampled every 0.25 s; RSS at a level is the mean of the samples of the 2 s before its
    mark. Per call: the *marginal* figure (RSS between two levels over the calls between
    them: what one more call costs, without start-up and warm-up) and the average from the
    state before any call."""
    out = os.path.join(work, "hold.json")
    samples = []
    stopping = threading.Event()

    def sample():
        while not stopping.is_set():
            try:
                samples.append((time.monotonic(), rss_kib(pid), cpu_seconds(pid)))
            except OSError:
                return
            stopping.wait(0.25)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        load = spawn([PY, os.path.abspath(__file__), "_hold", f"tcp://127.0.0.1:{client_port}",
                      out, json.dumps(hold)], 0, work, env=env, log="hold.log")
        load.wait(max(hold["levels"]) / hold["rate"] * 2 + 60 * len(hold["levels"]) + 120)
    finally:
        stopping.set()
        sampler.join(5)
    with open(out) as f:
        result = json.load(f)
    for mark in result["marks"]:
        window = [s for s in samples if mark["at"] - 2.0 <= s[0] <= mark["at"]]
        mark["rss_kib"] = sum(s[1] for s in window) / len(window) if window else float("nan")
        cpu = [s for s in samples if mark["at"] - 2.0 <= s[0] <= mark["at"]]
        if len(cpu) > 1:
            mark["cpu_share"] = (cpu[-1][2] - cpu[0][2]) / (cpu[-1][0] - cpu[0][0])
    marks = result["marks"]
    base = marks[0]
    for prev, mark in zip(marks, marks[1:]):
        calls = mark["calls"] - prev["calls"]
        mark["marginal_kib_per_call"] = (mark["rss_kib"] - prev["rss_kib"]) / max(1, calls)
        mark["average_kib_per_call"] = (mark["rss_kib"] - base["rss_kib"]) / max(1, mark["calls"])
    result.update(hold=True, media=bool(hold.get("media")))
    print(json.dumps(result), flush=True)
    return result


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def export_revision(rev: str, work: str) -> str:
    """The tree of git revision ``rev`` of this checkout, exported under ``work``."""
    dest = os.path.join(work, "baseline-" + re.sub(r"[^A-Za-z0-9_.-]", "_", rev))
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def _with_cpu(pid, run):
    before = cpu_seconds(pid)
    result = run()
    result["dut_cpu"] = cpu_seconds(pid) - before
    return result


def _steps(rates, run):
    rows = []
    for rate in rates:
        result = run(rate)
        done = result["ok"] + result["failed"]
        result["success"] = result["ok"] / result["calls"] if result["calls"] else 0.0
        result["achieved"] = result["ok"] / result["elapsed"] if result["elapsed"] else 0.0
        result["cpu_ms_per_call"] = 1000.0 * result["dut_cpu"] / max(1, done)
        result["held"] = result["success"] >= 0.999 and result["achieved"] >= 0.95 * rate
        rows.append(result)
        print(json.dumps(result), flush=True)
        if not result["held"]:
            break
    return rows


def _prepare(path, uas_port, root=ROOT):
    """The bench users and the sipp gateway, written by ``root``'s own store code (run as
    ``_prepare`` in a process of its own)."""
    sys.path.insert(0, root)
    from callgw import passwords
    from callgw.store.db import Database
    db = Database(path)
    db.migrate()
    db.ensure_default_tenant(0.0)
    cred = passwords.hash_password(PASSWORD, n=1024)
    for i in range(USERS):
        name = f"bench{i}"
        db.add_user(name, cred, 0.0, number=f"+4930999{i:04d}")
        for kind, value in (("allow", "+"), ("max_concurrent", "100000"),
                            ("max_per_minute", "1000000")):
            db.add_rule(kind, value, 0.0, username=name)
    db.add_gateway("sipp", "sip", "127.0.0.1", uas_port, ["+"], 0.0, capacity=100000)
    db.close()


# ---------------------------------------------------------------------------- callgw side

def serve(config_path):
    """Run callgw from ``config_path`` until SIGTERM (no status polling: sipp's built-in UAS
    does not expect OPTIONS)."""
    sys.path.insert(0, ROOT)
    from twisted.internet import reactor

    from callgw.config import load
    from callgw.service import GatewayService
    from callgw.runtime import GC_THRESHOLD, tune_collector
    gw = GatewayService(load(config_path), reactor)
    if os.environ.get("CALLGW_BENCH_NO_TRACE"):         # experiment: what traces cost
        gw.callpath.logger.trace = lambda call_id, trace: None
    if os.environ.get("CALLGW_BENCH_NO_STORE"):         # experiment: what the writes cost
        logger = gw.callpath.logger

        def discard():
            logger._events, logger._traces, logger._cdrs, logger._ended = [], [], [], []
            logger._dirty = set()
        logger.flush = discard
    reactor.callWhenRunning(gw.startService)
    gc_setting = os.environ.get("CALLGW_BENCH_GC")    # experiment: "default" or N,N,N
    if gc_setting != "default":                       # as twistd does (callgw.runtime)
        threshold = tuple(int(x) for x in gc_setting.split(",")) if gc_setting else \
            GC_THRESHOLD
        gw.ready.addCallback(lambda _: tune_collector(threshold))
    reactor.addSystemEventTrigger("before", "shutdown", gw.stopService)
    admission = os.environ.get("CALLGW_BENCH_ADMISSION")   # experiment: other settings
    if admission:
        from callgw.callserver.admission import Admission
        settings = {k: float(v) for k, v in (kv.split("=") for kv in admission.split(","))}
        for server in gw.callpath.servers:
            server.admission = Admission(reactor, max_limit=server.capacity, **settings)
    gclog_to = os.environ.get("CALLGW_BENCH_GCLOG")   # experiment: the collector's pauses
    if gclog_to:
        _log_collections(gclog_to, reactor, gw.store)
    memory_to = os.environ.get("CALLGW_BENCH_MEMORY")
    if memory_to:                                     # experiment: what the heap holds
        signal.signal(signal.SIGUSR1, lambda *_: reactor.callFromThread(
            _memory_report, memory_to, gw))
    profile_to = os.environ.get("CALLGW_PROFILE")
    if profile_to:
        import cProfile
        cProfile.runctx("reactor.run()", globals(), {"reactor": reactor}, profile_to)
    else:
        reactor.run()


def _log_collections(path, reactor, store):
    """Time every collection of the cyclic collector; at shutdown write one JSON line: count
    and total ms per generation, and each pause over 10 ms (monotonic time, generation, ms);
    with the reactor's lateness over 40 ms (a 10 ms probe) and store calls over 30 ms (on
    their thread), each with the time it ended, to tell which stalls are whose."""
    import gc
    started = {}
    figures = {"count": [0, 0, 0], "total_ms": [0.0, 0.0, 0.0], "pauses": [], "lags": [],
               "store_calls": []}
    due = [time.monotonic() + 0.01]

    def probe():
        now = time.monotonic()
        if now - due[0] > 0.04:
            figures["lags"].append((round(now, 2), round((now - due[0]) * 1000, 1)))
        due[0] = now + 0.01
        reactor.callLater(0.01, probe)
    reactor.callLater(0.01, probe)
    call = store._call

    def timed_call(fn, pool=None):
        def work():
            begun = time.perf_counter()
            try:
                return fn()
            finally:
                ms = (time.perf_counter() - begun) * 1000
                if ms > 30:
                    figures["store_calls"].append((round(time.monotonic(), 2), round(ms, 1)))
        return call(work, pool)
    store._call = timed_call

    def timed(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
            return
        ms = (time.perf_counter() - started.pop("t", time.perf_counter())) * 1000
        gen = info["generation"]
        figures["count"][gen] += 1
        figures["total_ms"][gen] += ms
        if ms > 10:
            figures["pauses"].append((round(time.monotonic(), 2), gen, round(ms, 1),
                                      info.get("collected")))
    gc.callbacks.append(timed)

    def write():
        with open(path, "a") as f:
            f.write(json.dumps(figures) + "\n")
    reactor.addSystemEventTrigger("before", "shutdown", write)


def _cycles_through(garbage, names):
    """For the first garbage object of each type in ``names``: the shortest reference path
    from it back to itself through garbage (what keeps it for the cyclic collector)."""
    import gc
    inside = {id(o) for o in garbage}
    found = {}
    for start in garbage:
        name = type(start).__name__
        if name not in names or name in found:
            continue
        paths = {id(start): [start]}
        frontier = [start]
        done = None
        while frontier and done is None and len(paths) < 20000:
            nxt = []
            for obj in frontier:
                for ref in gc.get_referents(obj):
                    if ref is start:
                        done = paths[id(obj)] + [ref]
                        break
                    if id(ref) in inside and id(ref) not in paths:
                        paths[id(ref)] = paths[id(obj)] + [ref]
                        nxt.append(ref)
                if done:
                    break
            frontier = nxt
        if done:
            found[name] = [_describe(o) for o in done]
    return found


def _describe(obj):
    name = type(obj).__name__
    if name == "method":
        return f"method {type(obj.__self__).__name__}.{obj.__func__.__name__}"
    if name == "function":
        return f"function {obj.__qualname__}"
    if isinstance(obj, dict):
        return "dict(" + ",".join(sorted(map(str, obj))[:6]) + ")"
    return name


def _memory_report(path, gw):
    """Append one JSON line: RSS, live objects by type (top 25), then what a full collection
    frees (cyclic garbage the raised thresholds left) and RSS after it."""
    import collections
    import gc
    before = rss_kib(os.getpid())
    objects = gc.get_objects()
    kinds = collections.Counter(type(o).__name__ for o in objects)
    count = len(objects)
    del objects
    started = time.perf_counter()
    gc.set_debug(gc.DEBUG_SAVEALL)          # what the collection frees: which types in cycles
    freed = gc.collect()
    pause = time.perf_counter() - started
    garbage = collections.Counter(type(o).__name__ for o in gc.garbage)
    cycles = _cycles_through(gc.garbage, ("CallHandler", "ClientLeg", "RelaySession",
                                          "RtpEndpoint", "CallMediaSession", "Playout"))
    gc.garbage.clear()
    gc.set_debug(0)
    report = {"rss_kib": before, "objects": count, "gc_count": gc.get_count(),
              "freed_by_full_collection": freed, "collection_ms": pause * 1000,
              "rss_kib_after": rss_kib(os.getpid()), "frozen": gc.get_freeze_count(),
              "handlers": len(gw.callpath.servers[0].handlers)
              if hasattr(gw.callpath, "servers") else None,
              "top": kinds.most_common(25), "garbage": garbage.most_common(40),
              "cycles": cycles}
    with open(path, "a") as f:
        f.write(json.dumps(report) + "\n")


def load_generator(url, out_path, plan):
    """Offer calls over SESSIONS logged-in sessions as ``plan`` says; write figures.

    ``plan`` is a list of phases ``{"name", "rate", "seconds", "gap"}``: ``gap`` seconds
    without new calls, then ``rate`` calls/s for ``seconds``. Each call counts in the phase
    that placed it. A session never has more than SESSION_CALLS live calls (the protocol's
    limit: callgw answers more with an error, and ends a session after ten errors): a call due
    while every session is full is not placed and counted as ``client_limited``. Times are
    ``time.monotonic()`` (the system's clock, comparable with the orchestrator's samples)."""
    sys.path.insert(0, ROOT)
    from twisted.internet import defer, reactor, task

    from callgw.client.links import connect
    from protocols.client import messages as m

    phases = []
    for spec in plan:
        phases.append({"name": spec["name"], "offered": float(spec["rate"]),
                       "seconds": float(spec["seconds"]), "gap": float(spec.get("gap", 0)),
                       "calls": 0, "ok": 0, "failed": 0, "refused": 0, "client_limited": 0,
                       "causes": {}, "_latencies": [], "_refusals": [], "_refused_at": [],
                       "_pending": []})
    result = {"sessions": SESSIONS}

    @defer.inlineCallbacks
    def run():
        sessions = []
        for i in range(SESSIONS):
            session = yield connect(url, reactor)
            transport = getattr(session.link, "transport", None)
            if transport is not None and hasattr(transport, "setTcpNoDelay"):
                transport.setTcpNoDelay(True)
            yield session.login(f"bench{i % USERS}", PASSWORD)
            sessions.append(session)
        live = [0] * SESSIONS
        turn = [0]
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        run_started = time.monotonic()

        def place(n, phase):
            for _ in range(SESSIONS):
                index = turn[0] % SESSIONS
                turn[0] += 1
                if live[index] < SESSION_CALLS and not sessions[index].is_closed:
                    break
            else:
                phase["client_limited"] += 1
                return
            live[index] += 1
            session = sessions[index]
            sent = time.perf_counter()
            call = session.call(f"+4930{n % 1000000:07d}")

            def connected(msg):
                phase["_latencies"].append((time.perf_counter() - sent) * 1000.0)
                call.hangup()
            call.connected.addCallback(connected)

            def ended(msg):
                live[index] -= 1
                if isinstance(msg, m.Disconnected) and msg.cause == "normal" \
                        and call.connected.called:
                    phase["ok"] += 1
                elif isinstance(msg, m.Disconnected) and msg.cause == "congestion" \
                        and not call.connected.called:
                    phase["refused"] += 1         # turned away at admission
                    phase["_refusals"].append((time.perf_counter() - sent) * 1000.0)
                    phase["_refused_at"].append(time.monotonic())
                else:
                    phase["failed"] += 1
                    key = getattr(msg, "cause", None) or type(msg).__name__
                    phase["causes"][key] = phase["causes"].get(key, 0) + 1
            call.disconnected.addCallback(ended)
            phase["_pending"].append(call.disconnected)

        n = 0
        for phase in phases:
            if phase["gap"]:
                yield task.deferLater(reactor, phase["gap"], lambda: None)
            total = int(phase["offered"] * phase["seconds"])
            placed = 0
            started = phase["started"] = time.monotonic()
            while placed < total:
                due = min(total, int((time.monotonic() - started) * phase["offered"]) + 1)
                while placed < due:
                    place(n, phase)
                    placed += 1
                    n += 1
                yield task.deferLater(reactor, 0.002, lambda: None)
            phase["ended"] = time.monotonic()
            phase["calls"] = placed - phase["client_limited"]
            phase["sessions_up_at_end"] = sum(not s.is_closed for s in sessions)
        finished = defer.DeferredList([d for p in phases for d in p["_pending"]])
        finished.addTimeout(30, reactor)
        try:
            yield finished
        except defer.TimeoutError:
            pass
        now = time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
        result["load_cpu_share"] = cpu / (now - run_started)
        result["sessions_up"] = sum(not s.is_closed for s in sessions)
        for phase in phases:
            phase["elapsed"] = now - phase["started"]
            phase["placing_seconds"] = phase["ended"] - phase["started"]
            phase["failed"] = phase["calls"] - phase["ok"] - phase["refused"]
            lat, ref = phase.pop("_latencies"), phase.pop("_refusals")
            at = phase.pop("_refused_at")
            # when the slowest refusals were answered (monotonic s, ms): a stall, or spread out
            phase["refusal_slowest"] = sorted(((round(t, 2), round(ms, 1))
                                               for t, ms in zip(at, ref)),
                                              key=lambda x: -x[1])[:20]
            phase.pop("_pending")
            phase["p50_ms"] = percentile(lat, 50)
            phase["p99_ms"] = percentile(lat, 99)
            phase["refusal_p50_ms"] = percentile(ref, 50)
            phase["refusal_p99_ms"] = percentile(ref, 99)
            phase["refusal_max_ms"] = max(ref) if ref else float("nan")

    def done(outcome):
        if hasattr(outcome, "getTraceback"):
            result["error"] = outcome.getErrorMessage()
        for phase in phases:
            phase.pop("_pending", None)
            phase.pop("_latencies", None)
            phase.pop("_refusals", None)
            phase.pop("_refused_at", None)
        result["phases"] = phases
        if len(phases) == 1:            # a plain step: its figures at the top level
            result.update({k: v for k, v in phases[0].items() if k != "name"})
            result["failed"] = result["calls"] - result["ok"]
        with open(out_path, "w") as f:
            json.dump(result, f)
        reactor.stop()
    reactor.callWhenRunning(lambda: run().addBoth(done))
    reactor.run()


def hold_generator(url, out_path, spec):
    """Hold calls up (no hang-up) at each level of ``spec["levels"]`` in turn, placed at
    ``spec["rate"]`` calls/s; once a level is all connected, ``spec["settle"]`` seconds later
    its time is marked (the orchestrator reads the device's RSS around the marks). With
    ``spec["media"]`` every connected call sends a 20 ms PCMU frame per 20 ms (what arrives
    back is counted). Then every call is hung up. ``base`` is marked after the logins, before
    any call."""
    sys.path.insert(0, ROOT)
    from twisted.internet import defer, reactor, task

    from callgw.client.links import connect
    from protocols.client import framing as fr
    from protocols.client import messages as m

    result = {"sessions": SESSIONS, "marks": [], "failed": 0, "causes": {},
              "frames_sent": 0, "frames_received": 0}
    up = []                 # (session, call) connected
    hung_up = set()         # ids of the calls we hung up
    silence = b"\xff" * 160

    @defer.inlineCallbacks
    def run():
        sessions = []
        for i in range(SESSIONS):
            session = yield connect(url, reactor)
            transport = getattr(session.link, "transport", None)
            if transport is not None and hasattr(transport, "setTcpNoDelay"):
                transport.setTcpNoDelay(True)
            yield session.login(f"bench{i % USERS}", PASSWORD)

            def media(data, session=session):
                result["frames_received"] += 1
            session.on_media = media
            sessions.append(session)
        yield task.deferLater(reactor, spec["settle"], lambda: None)
        result["marks"].append({"name": "base", "calls": 0, "at": time.monotonic()})
        tick = [0]

        def send_frames():
            tick[0] += 1
            seq, ts = tick[0] & 0xFFFF, (tick[0] * 160) & 0xFFFFFFFF
            for session, call in up:
                if call.key is not None and not call.ended:
                    session.link.send_media(fr.encode_media(
                        fr.MediaFrame(call.key, 0, seq, ts, silence)))
                    result["frames_sent"] += 1
        frames = task.LoopingCall(send_frames)
        if spec.get("media"):
            frames.start(0.02)
        placed = 0
        ended = []
        for level in spec["levels"]:
            started = time.monotonic()
            first = placed
            while placed < level:
                due = min(level, first + int((time.monotonic() - started) * spec["rate"]) + 1)
                while placed < due:
                    session = sessions[placed % SESSIONS]
                    call = session.call(f"+4930{placed:07d}")
                    call.connected.addCallback(lambda _, s=session, c=call: up.append((s, c)))

                    def gone(msg, call=call):
                        if id(call) not in hung_up:
                            result["failed"] += 1
                            key = getattr(msg, "cause", None) or type(msg).__name__
                            result["causes"][key] = result["causes"].get(key, 0) + 1
                    call.disconnected.addCallback(gone)
                    ended.append(call.disconnected)
                    placed += 1
                yield task.deferLater(reactor, 0.005, lambda: None)
            deadline = time.monotonic() + 30
            while len(up) < level - result["failed"] and time.monotonic() < deadline:
                yield task.deferLater(reactor, 0.1, lambda: None)
            yield task.deferLater(reactor, spec["settle"], lambda: None)
            result["marks"].append({"name": f"{level} calls", "calls": len(up),
                                    "at": time.monotonic(),
                                    "frames_sent": result["frames_sent"],
                                    "frames_received": result["frames_received"]})
        if frames.running:
            frames.stop()
        for session, call in up:
            hung_up.add(id(call))
            call.hangup()
        finished = defer.DeferredList(ended)
        finished.addTimeout(30, reactor)
        try:
            yield finished
        except defer.TimeoutError:
            pass
        result["sessions_up"] = sum(not s.is_closed for s in sessions)

    def done(outcome):
        if hasattr(outcome, "getTraceback"):
            result["error"] = outcome.getErrorMessage()
        with open(out_path, "w") as f:
            json.dump(result, f)
        reactor.stop()
    reactor.callWhenRunning(lambda: run().addBoth(done))
    reactor.run()


# ---------------------------------------------------------------------------- main

def table(results):
    lines = ["| path | offered/s | achieved/s | success | held | p50 set-up ms | p99 set-up ms | "
             "DUT CPU ms/call | load CPU |",
             "|---|---:|---:|---:|:-:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        for r in rows:
            if r.get("overload"):
                continue
            if "error" in r and "offered" not in r:
                lines.append(f"| {name} | {r['error']} | | | | | | | |")
                continue
            share = r.get("load_cpu_share")
            lines.append(
                f"| {name} | {r['offered']:.0f} | {r['achieved']:.0f} | "
                f"{100 * r['success']:.2f}% | {'yes' if r.get('held') else 'no'} | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['cpu_ms_per_call']:.2f} | "
                f"{'' if share is None else f'{100 * share:.0f}%'} |")
    over = [(name, r) for name, rows in results.items() for r in rows if r.get("overload")]
    if over:
        lines += ["", "| overload | offered/s | held/s before | completed/s (% of held) | "
                  "completed | refused `congestion` | failed (other causes) | "
                  "p50 / p99 set-up ms | p50 / p99 / max refusal ms | sessions up | "
                  "RSS MiB (growth over the last 20 s) | DUT CPU | p50 set-up before / 5 s "
                  "after ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in over:
            other = {k: v for k, v in r["causes"].items() if k != "congestion"}
            if r.get("client_limited"):
                other["not placed: every session at its call limit"] = r["client_limited"]
            failed = r["calls"] - r["ok"] - r["refused"]
            rss = (f"{r['rss_mib_end']:.0f} ({r['rss_growth_last20_pct']:+.1f}%)"
                   if "rss_mib_end" in r else "-")
            share = f"{100 * r['dut_cpu_share']:.0f}%" if "dut_cpu_share" in r else "-"
            lines.append(
                f"| {name} ({r['factor']} x, {r['placing_seconds']:.0f} s) | "
                f"{r['offered']:.0f} | {r['held_rate']:.0f} | "
                f"{r['achieved']:.0f} ({100 * r['achieved'] / r['held_rate']:.0f}%) | "
                f"{r['ok']} of {r['calls']} | {r['refused']} | "
                f"{failed} {json.dumps(other) if other else ''} | "
                f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | "
                f"{r['refusal_p50_ms']:.1f} / {r['refusal_p99_ms']:.1f} / "
                f"{r['refusal_max_ms']:.1f} | {r['sessions_up']} of {r['sessions']} | "
                f"{rss} | {share} | "
                f"{r['before']['p50_ms']:.1f} / {r['after']['p50_ms']:.1f} |")
    return "\n".join(lines)


def hold_table(r):
    media = "with media (20 ms frames both ways)" if r["media"] else "without media"
    lines = [f"| calls held {media} | calls up | RSS MiB | marginal KiB per call | "
             "average KiB per call since no call | frames sent / received by the client "
             "in the level | DUT CPU |", "|---|---:|---:|---:|---:|---:|---:|"]
    prev = {"frames_sent": 0, "frames_received": 0}
    for mark in r["marks"]:
        frames = ""
        if r["media"] and "frames_sent" in mark:
            frames = (f"{mark['frames_sent'] - prev['frames_sent']} / "
                      f"{mark['frames_received'] - prev['frames_received']}")
            prev = mark
        share = mark.get("cpu_share")
        lines.append(
            f"| {mark['name']} | {mark['calls']} | {mark['rss_kib'] / 1024:.1f} | "
            f"{mark.get('marginal_kib_per_call', float('nan')):.1f} | "
            f"{mark.get('average_kib_per_call', float('nan')):.1f} | {frames} | "
            f"{'' if share is None else f'{100 * share:.0f}%'} |")
    lines.append(f"\nfailed: {r['failed']} {json.dumps(r['causes'])}; sessions up after: "
                 f"{r.get('sessions_up')} of {r['sessions']}" + (f"; error: {r['error']}"
                                                               if r.get("error") else ""))
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        return serve(sys.argv[2])
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        return load_generator(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "_hold":
        return hold_generator(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "_prepare":
        return _prepare(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="100,200,400,600,800,1000")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rows", default="ceiling,sippy,callgw")
    p.add_argument("--baseline", metavar="REV",
                   help="also run callgw as of git revision REV (its own tree, exported to the "
                        "work directory) in the same run, as the row callgw@REV")
    p.add_argument("--rt", action="store_true",
                   help="run each row's processes SCHED_FIFO (chrt -f 10): a loaded machine")
    p.add_argument("--overload", type=float, metavar="FACTOR",
                   help="after the callgw rows' steps, offer FACTOR times the highest rate "
                        "held (e.g. 1.3) and report completed, refused (congestion) and "
                        "failed calls")
    p.add_argument("--overload-seconds", type=float, default=30.0)
    p.add_argument("--hold", metavar="LEVELS",
                   help="memory per call instead of rates: hold this many calls up at each "
                        "level in turn (e.g. 500,1000) and report RSS per call")
    p.add_argument("--hold-media", action="store_true",
                   help="with --hold: every call sends a 20 ms frame each 20 ms (relayed to "
                        "sipp, which echoes the RTP back)")
    p.add_argument("--hold-rate", type=float, default=200.0,
                   help="with --hold: calls placed per second (default 200)")
    p.add_argument("--overload-warmup", type=float, default=35.0,
                   help="seconds at the held rate before the overload (default 35: the SIP "
                        "stack keeps each call's dialog 32 s after it ends)")
    p.add_argument("--overload-rate", type=int, metavar="RATE",
                   help="offer this rate in the overload step instead (the same for every "
                        "row, to compare rows)")
    p.add_argument("--callservers", metavar="N[,N]",
                   help="instead of the rows: the process roles, one front end and N call "
                        "servers over PostgreSQL (bench/roles.py), CPU per call of each role")
    args = p.parse_args()
    if args.callservers:            # bench/roles.py: the same steps through the roles
        import roles
        return roles.main(["--callservers", args.callservers, "--rates", args.rates,
                           "--seconds", str(args.seconds)] + (["--rt"] if args.rt else []))
    if args.rt:
        REALTIME[:] = ["chrt", "-f", "10"]
    rates = [int(r) for r in args.rates.split(",")]
    work = tempfile.mkdtemp(prefix="callgw-cps-")
    print(f"work directory: {work}; {os.cpu_count()} CPUs; load on core 0, DUT on core 1",
          flush=True)
    overload = (args.overload or 1.3, args.overload_seconds, args.overload_rate,
                args.overload_warmup) \
        if args.overload or args.overload_rate else None
    hold = None
    if args.hold:
        hold = {"levels": [int(n) for n in args.hold.split(",")], "rate": args.hold_rate,
                "media": args.hold_media, "settle": 5.0}
    runners = {"ceiling": row_ceiling, "sippy": row_sippy,
               "callgw": lambda w, r, s: row_callgw(w, r, s, overload=overload, hold=hold)}
    rows = ["callgw"] if hold else args.rows.split(",")
    if args.baseline:
        base = export_revision(args.baseline, work)
        tag = f"callgw@{args.baseline}"
        runners[tag] = lambda w, r, s: row_callgw(w, r, s, root=base, tag=tag,
                                                  overload=overload)
        rows.append(tag)
    results = {}
    for name in rows:
        print(f"== {name}", flush=True)
        results[name] = runners[name](work, rates, args.seconds)
    if hold:
        print(hold_table(results["callgw"][0]))
        return
    print(table(results))
    best = {name: max([r["offered"] for r in rows if r.get("held") and not r.get("overload")]
                      or [0])
            for name, rows in results.items()}
    print("highest rate held: " + ", ".join(f"{k} {v:.0f}/s" for k, v in best.items()))


if __name__ == "__main__":
    main()
