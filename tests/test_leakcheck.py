"""The leak check (tests/leakcheck.py): a test that leaves a thread pool, a process or a
listening port running fails, named, and the leftover is stopped so the next test and the run's
end are unaffected; a thread nobody can stop does not keep the run from ending. Each case runs a
small test file in its own pytest process (pytester)."""
from __future__ import annotations

import pytest

CONFTEST = 'pytest_plugins = ["tests.logcheck", "tests.leakcheck"]\n'


@pytest.fixture
def run(pytester, monkeypatch, request):
    monkeypatch.setenv("PYTHONPATH", str(request.config.rootpath))
    pytester.makeconftest(CONFTEST)

    def run(source, *args):
        pytester.makepyfile(test_it=source)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", *args,
                                             timeout=120)
    return run


def test_a_thread_pool_left_running_fails_that_test_and_is_stopped(run):
    result = run('''
from twisted.python.threadpool import ThreadPool

def test_leaks_a_pool():
    pool = ThreadPool(minthreads=1, maxthreads=1, name="callgw-store")
    pool.start()
    pool.callInThread(lambda: None)

def test_stops_its_pool():
    pool = ThreadPool(minthreads=1, maxthreads=1, name="tidy")
    pool.start()
    pool.callInThread(lambda: None)
    pool.stop()
''')
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "ERROR at teardown of test_leaks_a_pool" in out
    assert "thread 'PoolThread-callgw-store-0'" in out
    assert "left running at the end of the session" not in out      # stopped after reporting
    assert result.ret == 1


def test_a_process_left_running_fails_that_test_and_is_killed(run):
    result = run('''
import subprocess

def test_leaks_a_process():
    subprocess.Popen(["sleep", "300"])

def test_waits_for_its_process():
    subprocess.run(["true"], check=True)
''')
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "process" in out and "sleep 300" in out
    assert "left running at the end of the session" not in out


def test_a_listening_port_left_open_fails_that_test_and_is_closed(run):
    result = run('''
import pytest_twisted
from twisted.internet import protocol, reactor

def test_leaks_a_port():
    reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")

@pytest_twisted.inlineCallbacks
def test_closes_its_port():
    port = reactor.listenUDP(0, protocol.DatagramProtocol(), interface="127.0.0.1")
    yield port.stopListening()
''')
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "ERROR at teardown of test_leaks_a_port" in out
    assert "listening port IPv4Address(type='TCP', host='127.0.0.1'" in out


def test_a_thread_nobody_stops_cannot_keep_the_run_from_ending(run, pytester):
    pytester.makeconftest(CONFTEST + '''
import threading
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    forever = threading.Event()
    threading.Thread(target=forever.wait, name="stuck-forever").start()
''')
    result = run('''
def test_fine():
    pass
''')
    assert result.ret == 1                   # the test passed; the leftover fails the run
    assert "thread 'stuck-forever'" in result.stdout.str()
    assert "keep the interpreter from exiting" in result.stderr.str()


def test_a_clean_run_exits_0(run):
    result = run('''
import threading

def test_joins_its_thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
''')
    assert result.ret == 0
    result.assert_outcomes(passed=1)
