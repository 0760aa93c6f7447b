"""A logged-in session's requests answered from a real SQLite database (run synchronously):
the address book (list in pages, add, change, rename, delete, refusals) shared with
``callgw book``, the user's own call history in pages, token refresh, and a failing store."""
from __future__ import annotations

import pytest
from twisted.internet import defer, task

from callgw import passwords
from callgw.frontend.connection import SessionManager
from callgw.frontend.requests import BOOK_LIMIT, book_page
from callgw.store.db import Database
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.frontend.gateway import FakeFrontEnd
from tests.frontend.test_connection import PASSWORD, Writer, login, send
from tests.helpers import make_config
from tests.logcheck import logs_failure


class DbStore:
    """``run`` on a real Database, at once (the ThreadedStore's interface without the thread)."""

    def __init__(self, db):
        self.db = db
        self.broken = False

    def run(self, name, *args):
        if self.broken and name != "get_user":
            return defer.fail(RuntimeError("disk on fire"))
        return defer.maybeDeferred(getattr(self.db, name), *args)


@pytest.fixture
def env(tmp_path):
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.migrate()
    db.ensure_default_tenant(1.0)
    for user in ("alice", "bob"):
        db.add_user(user, passwords.hash_password(PASSWORD, n=1024), 1.0)
    clock = task.Clock()
    clock.advance(1_800_000_000)
    store = DbStore(db)
    manager = SessionManager(store, FakeFrontEnd(), make_config(tmp_path), clock)
    writer = Writer()
    conn = manager.open("wss", ("127.0.0.1", 40000), writer)
    login(conn, writer)
    assert isinstance(writer.sent[-1], m.Welcome)
    yield db, store, conn, writer, clock
    db.close()


def ask(conn, writer, message):
    send(conn, message)
    answer = writer.sent[-1]
    assert answer.req == message.req, answer
    return answer


def test_the_book_is_the_same_as_callgw_books(env):
    db, store, conn, writer, clock = env
    db.book_add("alice", "Zoe", "+4930111000")           # what `callgw book add` does
    db.book_add("bob", "Not alice's", "+4930111001")
    assert ask(conn, writer, m.BookPut(req=1, name="Mum", number="+4930123456")) == m.Done(req=1)
    page = ask(conn, writer, m.BookList(req=2))
    assert page.entries == ({"name": "Mum", "number": "+4930123456"},
                            {"name": "Zoe", "number": "+4930111000"}) and page.next is None
    assert db.book_list("alice") == [dict(e) for e in page.entries]


def test_change_rename_and_delete(env):
    db, store, conn, writer, clock = env
    ask(conn, writer, m.BookPut(req=1, name="Mum", number="+4930123456"))
    ask(conn, writer, m.BookPut(req=2, name="Dad", number="+4930123457"))
    assert ask(conn, writer, m.BookPut(req=3, name="Mum", number="+4930999999",
                                       was="Mum")) == m.Done(req=3)
    assert ask(conn, writer, m.BookPut(req=4, name="Mother", number="+4930999999",
                                       was="Mum")) == m.Done(req=4)
    assert db.book_list("alice") == [{"name": "Dad", "number": "+4930123457"},
                                     {"name": "Mother", "number": "+4930999999"}]
    assert ask(conn, writer, m.BookDelete(req=5, name="Dad")) == m.Done(req=5)
    assert [r["name"] for r in db.book_list("alice")] == ["Mother"]


@pytest.mark.parametrize("message, code", [
    (m.BookPut(req=7, name="Mum", number="+4930000000"), ErrorCode.ENTRY_EXISTS),
    (m.BookPut(req=7, name="Dad", number="+4930000000", was="Mum"), ErrorCode.ENTRY_EXISTS),
    (m.BookPut(req=7, name="X", number="+4930000000", was="Nobody"), ErrorCode.NO_ENTRY),
    (m.BookDelete(req=7, name="Nobody"), ErrorCode.NO_ENTRY),
    (m.BookList(req=7, after="bm90IGpzb24"), ErrorCode.BAD_CURSOR),
    (m.History(req=7, after="WyJ4Il0"), ErrorCode.BAD_CURSOR),
])
def test_refusals_are_errors_with_the_req_and_the_session_goes_on(env, message, code):
    db, store, conn, writer, clock = env
    db.book_add("alice", "Mum", "+4930123456")
    db.book_add("alice", "Dad", "+4930123457")
    answer = ask(conn, writer, message)
    assert isinstance(answer, m.Error) and answer.code == code and answer.re == message.command
    assert ask(conn, writer, m.BookList(req=8)).entries[0]["name"] == "Dad"


def test_a_full_book_refuses_a_new_entry(env):
    db, store, conn, writer, clock = env
    conn.manager.requests.book_limit = 2
    ask(conn, writer, m.BookPut(req=1, name="A", number="+4930000001"))
    ask(conn, writer, m.BookPut(req=2, name="B", number="+4930000002"))
    assert ask(conn, writer, m.BookPut(req=3, name="C", number="+4930000003")).code == \
        ErrorCode.BOOK_FULL
    assert ask(conn, writer, m.BookPut(req=4, name="B", number="+4930000009",
                                       was="B")) == m.Done(req=4)    # a change still works
    assert BOOK_LIMIT >= 100


def test_a_long_book_comes_in_pages_that_fit_a_message(env):
    db, store, conn, writer, clock = env
    names = [f"{i:03d} " + "ü" * 59 for i in range(150)]
    for i, name in enumerate(names):
        db.book_add("alice", name, f"+49301{i:06d}")
    got, after, pages = [], None, 0
    while True:
        page = ask(conn, writer, m.BookList(req=10 + pages, after=after))
        assert len(m.encode(page)) <= m.MAX_MESSAGE
        got += [e["name"] for e in page.entries]
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert got == names and pages > 3


def test_entries_the_protocol_cannot_carry_are_left_out():
    rows = [{"name": "ok", "number": "+4930123"}, {"name": "short", "number": "+1"}]
    assert book_page(rows, None) == (({"name": "ok", "number": "+4930123"},), None)


def cdr(call_id, ended, cause=16, target="+4930123456", user="alice", answered=True):
    return {"call_id": call_id, "username": user, "tenant": "default", "target": target,
            "gateway": "gw1", "call_server": "cs1", "requested": ended - 10,
            "ringing": ended - 9, "answered": ended - 8 if answered else None, "ended": ended,
            "duration": 8.2 if answered else 0.0, "cause": cause,
            "cause_text": "Normal call clearing" if cause == 16 else "User busy",
            "media_mode": "relay", "stats": {}}


def test_history_is_the_users_own_cdrs_newest_first_in_pages(env):
    db, store, conn, writer, clock = env
    rows = [cdr(f"x{i:03d}", 1_700_000_000 + i, 16 if i % 2 else 17, answered=bool(i % 2))
            for i in range(70)]
    rows.append(cdr("other", 1_700_000_100, user="bob"))
    rows.append(cdr("fixed-ended", 1_700_000_035))       # the same ended as x035
    db.call_log_batch([], [], [], rows, [])
    seen, after, n = [], None, 0
    while True:
        page = ask(conn, writer, m.History(req=100 + n, after=after))
        seen += list(page.records)
        n += 1
        if page.next is None:
            break
        after = page.next
    assert len(seen) == 71 and n >= 3
    starts = [r["start"] for r in seen]
    assert starts == sorted(starts, reverse=True)
    newest = seen[0]
    assert newest == {"number": "+4930123456", "start": 1_700_000_069 - 10,
                      "answered": 1_700_000_069 - 8, "duration": 9, "cause": "normal",
                      "q850": 16, "text": "Normal call clearing"}
    busy = seen[1]
    assert busy["cause"] == "busy" and "answered" not in busy and busy["duration"] == 0


@logs_failure(RuntimeError, match="book-list request of alice failed")
def test_refresh_and_a_failing_store(env):
    db, store, conn, writer, clock = env
    clock.advance(60)
    token = ask(conn, writer, m.Refresh(req=1))
    assert isinstance(token, m.Token)
    assert conn.manager.tokens.verify(token.token, clock.seconds()).user == "alice"
    store.broken = True
    answer = ask(conn, writer, m.BookList(req=2))
    assert answer.code == ErrorCode.INTERNAL and answer.req == 2
    store.broken = False
    assert ask(conn, writer, m.BookList(req=3)).entries == ()
