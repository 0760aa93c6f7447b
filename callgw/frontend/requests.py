"""A logged-in user's requests about their own data: the address book and the call history.

Owned by the front-end listeners; the spec is docs/protocol.md section 18 ("Requests"). The
protocol core turns ``book-list``, ``book-put``, ``book-delete`` and ``history`` into a
``UserRequest``; ``ClientConnection`` hands it to ``UserRequests.answer(user, message)``, which
runs the store calls (on the store's thread) and fires with the answer for the core's
``answer_request``: ``book``, ``done``, ``records``, or ``error`` with the request's ``req``
(6xx codes for what the data refuses). The book is the same as ``callgw book``'s (the
``address_book`` table); the history is the user's own CDRs, newest first.

Pages are packed to fit one control message (at most ``MAX_MESSAGE`` bytes, and the kinds'
``MAX_ENTRIES`` / ``MAX_RECORDS``); ``next`` is an opaque cursor (base64url of the last entry's
name, or of the last record's ``ended`` and call id).

Tests: tests/frontend/test_requests.py.
"""
from __future__ import annotations

import json
import math

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from callgw.causes import client_cause
from callgw.store import db as store_db
from protocols.client import messages as m
from protocols.client.errors import ErrorCode

BOOK_LIMIT = 500                # entries in one user's address book (book-put refuses more)
_BUDGET = m.MAX_MESSAGE - 400   # bytes of entries/records in one page (the rest: envelope)
_REFUSALS = ((store_db.NoEntry, ErrorCode.NO_ENTRY), (store_db.EntryExists,
                                                      ErrorCode.ENTRY_EXISTS),
             (store_db.BookFull, ErrorCode.BOOK_FULL))


class BadCursor(ValueError):
    """An ``after`` this server did not make."""


def _cursor(value) -> str:
    return m.b64e(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _uncursor(text: str):
    try:
        return json.loads(m.b64d(text, 1, 300, "cursor").decode("utf-8"))
    except (ValueError, UnicodeDecodeError, m.FieldError):
        raise BadCursor(text) from None


def _size(item: dict) -> int:
    return len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8")) + 1


def book_page(rows: list[dict], after: str | None) -> tuple[tuple[dict, ...], str | None]:
    """The entries of ``rows`` (sorted by name) after the cursor, as many as fit one page,
    and the cursor of the next page (None on the last)."""
    if after is not None:
        last = _uncursor(after)
        if not isinstance(last, str):
            raise BadCursor(after)
        rows = [r for r in rows if r["name"] > last]
    page, used = [], 0
    for row in rows:
        entry = {"name": row["name"], "number": row["number"]}
        try:
            m.ENTRIES.load([entry])
        except m.FieldError:
            continue                # a name or number the protocol cannot carry (CLI-made)
        if len(page) == m.MAX_ENTRIES or used + _size(entry) > _BUDGET:
            return tuple(page), _cursor(page[-1]["name"])
        page.append(entry)
        used += _size(entry)
    return tuple(page), None


def record_of(cdr: dict) -> dict:
    """One CDR as a ``records`` entry."""
    out = {"number": cdr["target"], "start": int(cdr["requested"]),
           "duration": min(86400, int(math.ceil(cdr["duration"] or 0))),
           "cause": client_cause(int(cdr["cause"]))}
    if cdr.get("answered") is not None:
        out["answered"] = int(cdr["answered"])
    if 1 <= int(cdr["cause"]) <= 127:
        out["q850"] = int(cdr["cause"])
    text = "".join(c for c in str(cdr.get("cause_text") or "") if ord(c) >= 0x20)[:256]
    if text:
        out["text"] = text
    return out


class UserRequests:
    """Answers a session's user requests from the store (``store.run(name, *args)``)."""

    log = Logger()

    def __init__(self, store, book_limit: int = BOOK_LIMIT):
        self.store = store
        self.book_limit = book_limit

    def answer(self, user: str, message: m.Message) -> Deferred:
        """Fires with the answer to ``message`` (never fails: a store failure is an ``error``
        INTERNAL with the ``req``, logged)."""
        handler = {m.BookList: self._book_list, m.BookPut: self._book_put,
                   m.BookDelete: self._book_delete, m.History: self._history}[type(message)]
        d = handler(user, message)
        d.addErrback(self._failed, user, message)
        return d

    def _book_list(self, user: str, msg: m.BookList) -> Deferred:
        d = self.store.run("book_list", user)

        def page(rows):
            entries, next_ = book_page(rows, msg.after)
            return m.Book(req=msg.req, entries=entries, next=next_)
        return d.addCallback(page)

    def _book_put(self, user: str, msg: m.BookPut) -> Deferred:
        d = self.store.run("book_put", user, msg.name, msg.number, msg.was, self.book_limit)
        return d.addCallback(lambda _: m.Done(req=msg.req))

    def _book_delete(self, user: str, msg: m.BookDelete) -> Deferred:
        d = self.store.run("book_remove", user, msg.name)
        return d.addCallback(lambda _: m.Done(req=msg.req))

    def _history(self, user: str, msg: m.History) -> Deferred:
        try:
            before = None if msg.after is None else _uncursor(msg.after)
            if before is not None and not (isinstance(before, list) and len(before) == 2 and
                                           isinstance(before[0], (int, float)) and
                                           isinstance(before[1], str)):
                raise BadCursor(msg.after)
        except BadCursor as e:
            d = Deferred()
            d.errback(e)
            return d
        d = self.store.run("cdrs_before", user, tuple(before) if before else None,
                           m.MAX_RECORDS + 1)

        def page(rows):
            more = len(rows) > m.MAX_RECORDS
            records, used, last = [], 0, None
            for row in rows[:m.MAX_RECORDS]:
                try:
                    record = record_of(row)
                    m.RECORDS.load([record])
                except (m.FieldError, TypeError, ValueError, KeyError):
                    last = row      # e.g. a CDR whose target is not E.164: skipped
                    continue
                if used + _size(record) > _BUDGET:
                    more = True
                    break
                records.append(record)
                used += _size(record)
                last = row
            next_ = _cursor([last["ended"], last["call_id"]]) if more and last else None
            return m.Records(req=msg.req, records=tuple(records), next=next_)
        return d.addCallback(page)

    def _failed(self, failure, user: str, message: m.Message) -> m.Error:
        if failure.check(BadCursor):
            return m.Error(code=ErrorCode.BAD_CURSOR, text="after: not a cursor of this server",
                           re=message.command, req=message.req)
        for kind, code in _REFUSALS:
            if failure.check(kind):
                return m.Error(code=code, text=str(failure.value)[:256], re=message.command,
                               req=message.req)
        if failure.check(store_db.StoreError):
            return m.Error(code=ErrorCode.BAD_FIELD, text=str(failure.value)[:256],
                           re=message.command, req=message.req)
        self.log.failure("{command} request of {user} failed", failure,
                         command=message.command, user=user)
        return m.Error(code=ErrorCode.INTERNAL, text="server error", re=message.command,
                       req=message.req)
