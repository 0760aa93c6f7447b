"""The log check (tests/logcheck.py) fails a test that logs a failure it did not expect, and
only that test. Each case runs a small test file in its own pytest process (pytester), with the
same plugins the suite loads."""
from __future__ import annotations

import pytest

CONFTEST = 'pytest_plugins = ["tests.logcheck"]\n'


@pytest.fixture
def run(pytester, monkeypatch, request):
    monkeypatch.setenv("PYTHONPATH", str(request.config.rootpath))
    pytester.makeconftest(CONFTEST)

    def run(source, *args):
        pytester.makepyfile(test_it=source)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", *args,
                                             timeout=120)
    return run


def test_an_unexpected_twisted_failure_fails_that_test_only(run):
    result = run('''
from twisted.logger import Logger
log = Logger()

def test_logs():
    try:
        1 / 0
    except ZeroDivisionError:
        log.failure("dividing for peer {peer}", peer="127.0.0.1:5060")

def test_after():
    pass
''')
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "ERROR at teardown of test_logs" in out
    assert "dividing for peer 127.0.0.1:5060" in out
    assert "ZeroDivisionError: division by zero" in out
    assert "test_after" not in out.split("short test summary")[1]


def test_error_level_events_and_stdlib_logging_count_too(run):
    result = run('''
import logging
from twisted.logger import Logger
from twisted.python import log as legacy

def test_error_level():
    Logger().error("the gateway said {what}", what="no")

def test_stdlib():
    logging.getLogger("somelib").error("somelib broke")

def test_legacy_err():
    legacy.err(ValueError("old style"), "legacy why")

def test_warnings_are_fine():
    Logger().warn("just a warning")
    logging.getLogger("x").warning("also fine")
''')
    result.assert_outcomes(passed=4, errors=3)
    out = result.stdout.str()
    assert "the gateway said no" in out
    assert "somelib broke" in out
    assert "legacy why" in out and "ValueError: old style" in out


def test_declared_failures_pass_and_undelivered_ones_fail(run):
    result = run('''
from twisted.logger import Logger
from tests.logcheck import logs_failure
log = Logger()

def boom(exc):
    try:
        raise exc
    except Exception:
        log.failure("handling a call")

@logs_failure(KeyError)
def test_marker():
    boom(KeyError("call 7"))

def test_fixture_with_match(expect_logged_failure):
    expect_logged_failure(ValueError, match=r"call \\d+")
    boom(ValueError("call 12"))

def test_text_only(expect_logged_failure):
    expect_logged_failure(match="gave up on gateway")
    log.error("gave up on gateway gw1")

def test_expected_but_missing(expect_logged_failure):
    expect_logged_failure(KeyError)

def test_wrong_type_is_not_covered(expect_logged_failure):
    expect_logged_failure(KeyError)
    boom(ValueError("other"))
''')
    result.assert_outcomes(passed=5, errors=2)
    out = result.stdout.str()
    assert "expected but never logged: expect_logged_failure(KeyError)" in out
    assert "ERROR at teardown of test_expected_but_missing" in out
    assert "ERROR at teardown of test_wrong_type_is_not_covered" in out
    assert "ValueError: other" in out


def test_a_garbage_collected_unhandled_deferred_error_is_the_test_that_dropped_it(run):
    result = run('''
from twisted.internet import defer

class Node:
    pass

def test_drops_a_failed_deferred():
    d = defer.fail(RuntimeError("nobody listened"))
    n = Node()
    n.d, n.self = d, n          # a reference cycle: only the collector frees it

def test_next():
    pass
''')
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "ERROR at teardown of test_drops_a_failed_deferred" in out
    assert "RuntimeError: nobody listened" in out


def test_a_failure_logged_from_a_thread_and_from_the_reactor(run):
    result = run('''
import threading
import pytest_twisted
from twisted.internet import reactor, task
from twisted.logger import Logger

def test_thread():
    def work():
        try:
            {}["x"]
        except KeyError:
            Logger().failure("in a worker")
    t = threading.Thread(target=work)
    t.start()
    t.join()

@pytest_twisted.inlineCallbacks
def test_reactor_unhandled_error():
    reactor.callLater(0, lambda: 1 / 0)
    yield task.deferLater(reactor, 0.01, lambda: None)
''')
    result.assert_outcomes(passed=2, errors=2)
    out = result.stdout.str()
    assert "in a worker" in out and "KeyError" in out
    assert "ZeroDivisionError" in out


def test_a_failing_test_shows_its_logged_failures_with_its_own_failure(run):
    result = run('''
from twisted.logger import Logger

def test_fails():
    try:
        raise OSError("socket gone")
    except OSError:
        Logger().failure("sending to the gateway")
    assert False, "the call did not connect"
''')
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the call did not connect" in out
    assert "logged failures" in out and "sending to the gateway" in out
    assert "ERROR at teardown" not in out


def test_failures_logged_outside_any_test_fail_the_run(run, pytester):
    pytester.makeconftest(CONFTEST + '''
from twisted.logger import Logger

import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    Logger().error("a module-level service broke")
''')
    result = run('''
def test_fine():
    pass
''')
    assert result.ret == 1
    assert "failures logged outside any test" in result.stdout.str()
    assert "a module-level service broke" in result.stdout.str()
