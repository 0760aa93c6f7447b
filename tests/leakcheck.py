"""A test stops every thread, process and listener it starts, and a run always ends (a pytest
plugin, loaded by the top-level conftest.py).

Per test: what is alive when the test's teardown is over (non-daemon threads, child processes
of pytest and their children, listening ports in the reactor) is compared with what was alive
before its setup. Whatever the test added and left running fails that test at teardown, named
(thread name, process pid and command line, port address), also when the test failed: its
failure path must clean up too (a gateway whose start failed, left with its store's thread
running, is what used to keep whole runs from exiting). The leftovers are then stopped here
(Twisted thread pools found through the garbage collector are stopped, processes killed, ports
closed), so one leaky test does not make the next one fail or hang the run. Threads and
processes get a short grace period to end first (a pool being stopped, a peer exiting on
SIGTERM).

End of the session: non-daemon threads other than the main thread, the reactor's own pool and
pytest-timeout's timers, and child processes, are listed and make the exit status non-zero. As a
last resort, after pytest-twisted has stopped the reactor, threads that still remain are
reported and the process leaves with ``os._exit(status)``: a forgotten thread pool must never
keep the interpreter waiting at shutdown (CI would wait until its time limit).

Tests: tests/test_leakcheck.py.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import pytest

GRACE = 2.0                   # seconds a leftover thread or process gets to end by itself
_before_key = pytest.StashKey["Snapshot"]()
_IGNORED_THREAD_PREFIXES = (
    "PoolThread-twisted.internet.reactor",   # the reactor's own pool, stopped with the reactor
    "pytest_timeout ",                        # pytest-timeout's per-test timer
)


# -- what is alive -----------------------------------------------------------------------------
def _threads() -> dict[int, threading.Thread]:
    return {t.ident: t for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()
            and not t.name.startswith(_IGNORED_THREAD_PREFIXES)}


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, from /proc (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200]
    except OSError:
        return "?"


def _child_pids(pid: int) -> list[int]:
    """Children of ``pid`` (any of its threads), from /proc/PID/task/*/children."""
    pids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


def _children() -> dict[int, str]:
    """Descendants of this process that are running (zombies are over: not a leak),
    pid -> command line. Empty where there is no /proc."""
    found, todo = {}, _child_pids(os.getpid())
    while todo:
        pid = todo.pop()
        st = _proc_stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        found[pid] = _cmdline(pid)
        todo.extend(_child_pids(pid))
    return found


def _listening_ports() -> dict[int, object]:
    """Listening ports (TCP, UDP, Unix) the global reactor reads from, by id."""
    if "twisted.internet.reactor" not in sys.modules:
        return {}
    from twisted.internet import reactor
    from twisted.internet.interfaces import IListeningPort
    try:
        readers = reactor.getReaders()
    except Exception:
        return {}
    return {id(r): r for r in readers if IListeningPort.providedBy(r)}


@dataclass
class Snapshot:
    threads: dict
    children: dict
    ports: dict

    @classmethod
    def now(cls) -> "Snapshot":
        return cls(_threads(), _children(), _listening_ports())

    def added_since(self, before: "Snapshot") -> "Snapshot":
        return Snapshot({k: v for k, v in self.threads.items() if k not in before.threads},
                        {k: v for k, v in self.children.items() if k not in before.children},
                        {k: v for k, v in self.ports.items() if k not in before.ports})

    def __bool__(self) -> bool:
        return bool(self.threads or self.children or self.ports)

    def describe(self) -> list[str]:
        lines = [f"thread {t.name!r}" for t in self.threads.values()]
        lines += [f"process {pid}: {cmd}" for pid, cmd in self.children.items()]
        lines += [f"listening port {_port_address(p)} ({type(p).__module__}."
                  f"{type(p).__qualname__})" for p in self.ports.values()]
        return lines


def _port_address(port) -> str:
    try:
        return str(port.getHost())
    except Exception:
        return repr(port)


def _settle(before: Snapshot) -> Snapshot:
    """What the test added that is still alive after a grace period for threads and
    processes that are on their way out."""
    deadline = time.monotonic() + GRACE
    while True:
        left = Snapshot.now().added_since(before)
        if not (left.threads or left.children) or time.monotonic() >= deadline:
            return left
        for t in left.threads.values():
            t.join(max(0.0, min(0.1, deadline - time.monotonic())))
        if left.children and not left.threads:
            time.sleep(0.05)


# -- cleaning up after a leaky test ------------------------------------------------------------
def _clean(left: Snapshot) -> None:
    from twisted.python.threadpool import ThreadPool
    if left.threads:
        gc.unfreeze()                   # the log check freezes survivors: find them all
        names = {t.name for t in left.threads.values()}
        for obj in gc.get_objects():
            if isinstance(obj, ThreadPool) and obj.started and any(
                    n.startswith(f"PoolThread-{obj.name}-") for n in names):
                try:
                    obj.stop()
                except Exception:
                    pass
    for pid in left.children:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for port in left.ports.values():
        try:
            port.stopListening()
        except Exception:
            pass
    if left.children or left.ports:
        _spin_reactor(left.children)


def _spin_reactor(pids, limit: float = 1.0) -> None:
    """Let the reactor run (pytest-twisted runs it only while a test waits) until Twisted has
    seen the killed processes end (their ``processEnded``) and the closed ports go, at most
    ``limit`` seconds, so what that logs belongs to the leaky test."""
    if "twisted.internet.reactor" not in sys.modules or "pytest_twisted" not in sys.modules:
        return
    import pytest_twisted
    from twisted.internet import process, reactor, task
    if pytest_twisted._instances.gr_twisted is None:
        return
    deadline = time.monotonic() + limit
    while True:
        pytest_twisted.blockon(task.deferLater(reactor, 0.05, lambda: None))
        if time.monotonic() >= deadline or not any(
                pid in process.reapProcessHandlers for pid in pids):
            return


# -- pytest hooks ------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_before_key] = Snapshot.now()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Inside the log check's teardown wrapper, so what stopping a leftover logs counts for the
    test that left it."""
    error = None
    try:
        result = yield
    except BaseException as e:
        error = e
        result = None
    before = item.stash.get(_before_key, None)
    left = _settle(before) if before is not None else Snapshot({}, {}, {})
    problem = None
    if left:
        problem = "the test left running (stopped now by the leak check):\n" + \
            "\n".join("    " + line for line in left.describe())
        _clean(left)
    if error is not None:
        if problem:
            error.add_note(problem)
        raise error
    if problem:     # also after a failed test: its failure path must clean up too
        pytest.fail(problem, pytrace=False)
    return result


def _session_leftovers() -> list[str]:
    return Snapshot(_threads(), _children(), {}).describe()


def pytest_sessionfinish(session, exitstatus):
    left = _session_leftovers()
    session.config.stash[_status_key] = int(session.exitstatus)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "left running at the end of the session", red=True)
        for line in left:
            reporter.write_line(line)
    if session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.stash[_status_key] = int(session.exitstatus)


_status_key = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Runs after pytest-twisted stopped the reactor (and with it the reactor's pool). A
    non-daemon thread still alive now would keep the interpreter waiting forever."""
    deadline = time.monotonic() + GRACE
    for t in list(threading.enumerate()):
        if t is not threading.main_thread() and not t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not stuck:
        return
    status = config.stash.get(_status_key, 0) or int(pytest.ExitCode.TESTS_FAILED)
    sys.stdout.flush()
    sys.stderr.write("\nleakcheck: these threads would keep the interpreter from exiting; "
                     f"leaving with status {status}:\n")
    for t in stuck:
        sys.stderr.write(f"    thread {t.name!r}\n")
    sys.stderr.flush()
    os._exit(status)
