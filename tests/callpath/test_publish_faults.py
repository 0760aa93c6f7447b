"""Call-server publishing during a database fault (callgw/callserver/server.py): a real gateway
whose database another process holds locked says so in one warning, not a traceback per
attempt, and says when publishing works again."""
from __future__ import annotations

import pytest_twisted
from twisted.logger import globalLogPublisher

from tests.callpath.callgw_env import prepare_db, start
from tests.callpath.test_db_faults import Fault, LogWatch, until


@pytest_twisted.inlineCallbacks
def test_a_locked_database_is_one_warning_and_publishing_resumes(tmp_path):
    prepare_db(tmp_path)
    db_path = str(tmp_path / "callgw.sqlite3")
    watch = LogWatch()
    globalLogPublisher.addObserver(watch)
    gw = yield start(tmp_path)
    fault = Fault("locked", db_path)
    try:
        fault.begin()
        assert (yield until(lambda: watch.having("call servers not published"), 30)), \
            watch.lines[-20:]
        yield until(lambda: False, gw.callpath.publish_interval * 2)   # two more attempts
        warned = watch.having("call servers not published")
        assert len(warned) == 1 and "(locked)" in warned[0], warned
        assert not watch.having("publishing call servers")           # no traceback
        fault.end()
        assert (yield until(lambda: watch.having("call servers published again"), 30))
    finally:
        fault.end()
        globalLogPublisher.removeObserver(watch)
        yield gw.stopService()
