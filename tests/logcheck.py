"""A test fails when anything logs a failure it did not expect (a pytest plugin, loaded by the
top-level conftest.py).

An observer on Twisted's global log publisher collects every event that carries a
``log_failure`` (``Logger.failure``, legacy ``log.err``, the reactor's "Unhandled Error", a
Deferred garbage-collected with an unhandled error) or has level error or critical; a handler on
the stdlib root logger collects records of level ERROR and above. Events are attributed to the
test that is running (setup, call and teardown); at the end of the test's teardown the garbage
collector is run (see ``_collect_garbage``), so that Deferreds dropped with an unhandled error
log now, and then:

- every collected event must be matched by an expectation the test declared, and
- every declared expectation must have matched at least one event;

otherwise the test fails at teardown, showing the events (with their tracebacks). When the test
already failed in its call phase, the events are shown with that failure instead.

A test that expects a failure says so, by decorator or fixture (arguments are the same)::

    from tests.logcheck import logs_failure

    @logs_failure(ProtocolError, match="bad header")
    def test_x(): ...

    def test_y(expect_logged_failure):
        expect_logged_failure(ConnectionLost)
        expect_logged_failure(match=r"cannot open the database")

``expect_logged_failure(*types, match=None)``: an event matches when it carries a failure of one
of ``types`` (none given: any event, with or without a failure) and ``match`` (a regular
expression) is found in its text: the formatted message, then ``Type: message`` of its
failure. ``logs_failure`` is the ``expect_logged_failure`` marker (written
``pytest.mark.expect_logged_failure.with_args(...)``: pytest takes a lone class argument of a
bare marker for the decorated object).

Events logged outside any test (collection, session teardown) fail the run at the end of the
session. Tests: tests/test_logcheck.py.
"""
from __future__ import annotations

import gc
import logging
import re
import threading
from dataclasses import dataclass, field

import pytest
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

MARKER = "expect_logged_failure"
_MAX_SHOWN = 10             # events shown per test, the rest counted
_MAX_TRACEBACK_LINES = 40   # per event

_expectations_key = pytest.StashKey[list]()
_failed_key = pytest.StashKey[bool]()


@dataclass
class LoggedError:
    """One failure or error-level event, from Twisted's logger or from stdlib logging."""
    source: str                       # "twisted <namespace>" or "logging <logger name>"
    level: str
    text: str
    exc_type: type | None = None
    exc_text: str = ""                # "Type: message" of the failure, if any
    traceback: str = ""

    def searchable(self) -> str:
        return f"{self.text}\n{self.exc_text}"

    def describe(self) -> str:
        head = f"[{self.source}] {self.level}: {self.text}"
        if self.exc_text and self.exc_text not in self.text:
            head += f"\n    {self.exc_text}"
        if self.traceback:
            lines = self.traceback.rstrip().splitlines()
            if len(lines) > _MAX_TRACEBACK_LINES:
                lines = lines[:8] + [f"    ... {len(lines) - _MAX_TRACEBACK_LINES} lines ..."] + \
                    lines[-(_MAX_TRACEBACK_LINES - 8):]
            head += "\n" + "\n".join("    " + line for line in lines)
        return head


@dataclass
class Expectation:
    """A failure a test says it will log: one of ``types`` (any if none), text matching
    ``match``. ``seen`` counts the events it matched."""
    types: tuple = ()
    match: str | None = None
    seen: int = 0
    where: str = ""

    def __post_init__(self):
        for t in self.types:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise TypeError(f"expect_logged_failure takes exception types, not {t!r}")
        if not self.types and self.match is None:
            raise TypeError("expect_logged_failure needs exception types, match=, or both")
        self._pattern = re.compile(self.match) if self.match is not None else None

    def matches(self, event: LoggedError) -> bool:
        if self.types and not (event.exc_type is not None and issubclass(event.exc_type,
                                                                         self.types)):
            return False
        return self._pattern is None or self._pattern.search(event.searchable()) is not None

    def __str__(self) -> str:
        parts = [t.__name__ for t in self.types]
        if self.match is not None:
            parts.append(f"match={self.match!r}")
        return f"expect_logged_failure({', '.join(parts)})"


@dataclass
class _Bucket:
    name: str
    events: list = field(default_factory=list)


class Collector:
    """Collects failure and error events into the bucket of the test that runs now."""

    def __init__(self):
        self._lock = threading.Lock()
        self._outside = _Bucket("outside any test")
        self._current = self._outside
        self.handler = _StdlibHandler(self)

    # -- attribution --------------------------------------------------------------------
    def begin(self, name: str) -> None:
        with self._lock:
            self._current = _Bucket(name)

    def end(self) -> list:
        with self._lock:
            events, self._current = self._current.events, self._outside
        return events

    def peek(self) -> list:
        with self._lock:
            return list(self._current.events)

    def outside(self) -> list:
        with self._lock:
            events, self._outside.events = self._outside.events, []
        return events

    def add(self, event: LoggedError) -> None:
        with self._lock:
            self._current.events.append(event)

    # -- sources ------------------------------------------------------------------------
    def twisted_event(self, event: dict) -> None:
        """A ``twisted.logger`` observer; never raises (the publisher would drop us)."""
        try:
            failure = event.get("log_failure")
            level = event.get("log_level")
            if failure is None and not (level is not None and level >= LogLevel.error):
                return
            # A Deferred collected with an unhandled error logs "Unhandled error in Deferred:"
            # at critical, then its failure in a second event: the second one tells it all.
            if failure is None and event.get("log_format") == "Unhandled error in Deferred:":
                return
            text = formatEvent(event) if "log_format" in event else str(event.get("message"))
            if not text and event.get("log_namespace") == "twisted.internet.defer":
                text = "Unhandled error in Deferred (found when it was garbage-collected)"
            exc_type = exc_text = traceback = None
            if failure is not None:
                exc_type = failure.type
                exc_text = f"{_qualname(failure.type)}: {failure.getErrorMessage()}"
                traceback = failure.getTraceback()
            self.add(LoggedError(
                source=f"twisted {event.get('log_namespace', '?')}",
                level=level.name if level is not None else "error",
                text=text or "(no message)", exc_type=exc_type, exc_text=exc_text or "",
                traceback=traceback or ""))
        except Exception as e:          # report our own bug as an event, never lose it silently
            self.add(LoggedError(source="logcheck", level="error",
                                 text=f"could not read a log event: {e!r} {event!r:.300}"))


class _StdlibHandler(logging.Handler):
    def __init__(self, collector: Collector):
        super().__init__(level=logging.ERROR)
        self.collector = collector

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc_type = exc_text = traceback = None
            if record.exc_info and record.exc_info[0] is not None:
                exc_type = record.exc_info[0]
                exc_text = f"{_qualname(exc_type)}: {record.exc_info[1]}"
                traceback = logging.Formatter().formatException(record.exc_info)
            self.collector.add(LoggedError(
                source=f"logging {record.name}", level=record.levelname,
                text=record.getMessage(), exc_type=exc_type, exc_text=exc_text or "",
                traceback=traceback or ""))
        except Exception:
            self.handleError(record)


def _qualname(t) -> str:
    module = getattr(t, "__module__", "")
    name = getattr(t, "__qualname__", repr(t))
    return name if module in ("builtins", "") else f"{module}.{name}"


def judge(events: list, expectations: list) -> list[str]:
    """What is wrong: events no expectation matched, expectations no event matched."""
    problems = []
    unexpected = []
    for event in events:
        hits = [x for x in expectations if x.matches(event)]
        for x in hits:
            x.seen += 1
        if not hits:
            unexpected.append(event)
    if unexpected:
        problems.append(f"{len(unexpected)} failure(s) logged that the test did not expect:")
        for event in unexpected[:_MAX_SHOWN]:
            problems.append(event.describe())
        if len(unexpected) > _MAX_SHOWN:
            problems.append(f"... and {len(unexpected) - _MAX_SHOWN} more")
    for x in expectations:
        if not x.seen:
            problems.append(f"expected but never logged: {x}{x.where}")
    return problems


collector = Collector()


def logs_failure(*types, match=None):
    """Decorator: the test logs a failure of one of ``types`` and/or matching ``match``."""
    Expectation(tuple(types), match)            # refuse bad arguments at import time
    return pytest.mark.expect_logged_failure.with_args(*types, match=match)


_FULL_COLLECTION_EVERY = 50     # tests
_collections = 0


def _collect_garbage() -> None:
    """Collect what the test left as garbage, so a Deferred dropped with an unhandled error
    logs now, in its test. What survives is frozen (``gc.freeze``): the next test's collection
    then looks only at objects made since, which keeps the suite as fast as without the check
    (a full collection of the whole heap after every test doubled the CPU time of a run). Every
    ``_FULL_COLLECTION_EVERY`` tests, and at the end of the session, the frozen objects are
    collected too."""
    global _collections
    _collections += 1
    if _collections % _FULL_COLLECTION_EVERY == 0:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


# -- pytest hooks ---------------------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{MARKER}(*types, match=None): the test logs a failure of one of these "
                   "exception types (and/or whose text matches the regex); checked at teardown")
    globalLogPublisher.addObserver(collector.twisted_event)
    logging.getLogger().addHandler(collector.handler)


def pytest_unconfigure(config):
    globalLogPublisher.removeObserver(collector.twisted_event)
    logging.getLogger().removeHandler(collector.handler)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    collector.begin(item.nodeid)
    item.stash[_expectations_key] = [
        Expectation(tuple(mark.args), mark.kwargs.get("match"), where=" (marker)")
        for mark in item.iter_markers(MARKER)]
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A setup or call that failed shows what was logged so far with its own failure (which
    explains an expectation it did not reach); the teardown check then stands down."""
    report = yield
    if call.when in ("setup", "call") and report.failed:
        item.stash[_failed_key] = True
        events = collector.peek()
        if events:
            report.sections.append(("logged failures", "\n".join(e.describe() for e in events)))
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    error = None
    try:
        result = yield
    except BaseException as e:      # judged below, then raised again
        error = e
        result = None
    _collect_garbage()
    events = collector.end()
    if item.stash.get(_failed_key, False):
        problems = []
    else:
        problems = judge(events, item.stash.get(_expectations_key, []))
    if error is not None:
        if problems:
            error.add_note("\n".join(problems))
        raise error
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    return result


@pytest.fixture
def expect_logged_failure(request):
    """``expect_logged_failure(*types, match=None)``: declare a failure this test logs (checked
    at teardown: it must be logged, and nothing else unexpected may be)."""
    def expect(*types, match=None) -> Expectation:
        x = Expectation(tuple(types), match)
        request.node.stash[_expectations_key].append(x)
        return x
    return expect


def pytest_sessionfinish(session, exitstatus):
    gc.unfreeze()
    gc.collect()
    events = collector.outside()
    if not events:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    text = "\n".join([f"{len(events)} failure(s) logged outside any test:"] +
                     [e.describe() for e in events[:_MAX_SHOWN]])
    if reporter is not None:
        reporter.write_sep("=", "failures logged outside any test", red=True)
        reporter.write_line(text)
    if session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
