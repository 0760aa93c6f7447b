"""Requests of the client protocol (docs/protocol.md section 18): address book, call history,
token refresh. Both session machines joined by a perfect link, plain functions."""
from __future__ import annotations

import pytest

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocols.client.session import MAX_PENDING_REQUESTS, State

from .builders import Harness


def logged_in() -> Harness:
    h = Harness()
    h.login()
    assert h.server.state is State.AUTHENTICATED
    return h


def answered(h: Harness) -> list[ev.RequestAnswered]:
    return h.client_of(ev.RequestAnswered)


def test_book_list_is_a_request_for_callgw_and_its_answer_reaches_the_client():
    h = logged_in()
    req = h.client.book_list(h.now)
    h.pump()
    (request,) = h.server_of(ev.UserRequest)
    assert request.user == "alice" and request.message == m.BookList(req=req)
    page = m.Book(req=req, entries=({"name": "Bob", "number": "+4940111222"},), next="Qm9i")
    assert h.server.answer_request(page) is True
    h.pump()
    assert answered(h) == [ev.RequestAnswered(req, page)]
    assert h.client.requests == {}


def test_put_delete_and_history_carry_their_fields():
    h = logged_in()
    reqs = [h.client.book_put(h.now, "Mum", "+4930123456"),
            h.client.book_put(h.now, "Mum (mobile)", "+491701234567", was="Mum"),
            h.client.book_delete(h.now, "Bob"), h.client.history(h.now, after="abc")]
    h.pump()
    assert reqs == [1, 2, 3, 4]
    got = [r.message for r in h.server_of(ev.UserRequest)]
    assert got == [m.BookPut(req=1, name="Mum", number="+4930123456"),
                   m.BookPut(req=2, name="Mum (mobile)", number="+491701234567", was="Mum"),
                   m.BookDelete(req=3, name="Bob"), m.History(req=4, after="abc")]
    h.server.answer_request(m.Error(code=ErrorCode.ENTRY_EXISTS, text="exists",
                                    re="book-put", req=1))
    h.server.answer_request(m.Done(req=2))
    h.pump()
    first, second = answered(h)
    assert first.req == 1 and first.message.code == ErrorCode.ENTRY_EXISTS
    assert second == ev.RequestAnswered(2, m.Done(req=2))
    assert set(h.client.requests) == {3, 4}


def test_refresh_gives_a_fresh_token_that_logs_in():
    h = logged_in()
    first = h.client.token
    h.now = 120.0
    req = h.client.refresh(h.now)
    h.pump()
    (answer,) = answered(h)
    token = answer.message
    assert isinstance(token, m.Token) and token.req == req
    assert h.client.token == token.token != first
    assert h.client.expires == token.expires > h.client.welcome.expires
    assert not h.server_of(ev.UserRequest)          # the core answers it itself
    h2 = Harness(now=h.now)
    h2.client.login_token(token.token, h2.now)
    h2.pump()
    assert h2.server.state is State.AUTHENTICATED


def test_requests_need_a_login():
    h = Harness()
    h.server.receive_message(m.BookList(req=1), 0.0)
    errors = [a.message for a in h.server.next_actions() if isinstance(a, ev.Send)]
    assert errors[0].code == ErrorCode.OUT_OF_ORDER and errors[0].re == "book-list"
    with pytest.raises(LocalProtocolError):
        h.client.book_list(0.0)                  # local checks on: not logged in


def test_a_second_request_with_a_waiting_id_and_too_many_waiting_are_errors():
    h = logged_in()
    h.server.receive_message(m.History(req=5), h.now)
    h.server.receive_message(m.BookList(req=5), h.now)
    for req in range(6, 6 + MAX_PENDING_REQUESTS):
        h.server.receive_message(m.BookList(req=req), h.now)
    sent = [a.message for a in h.server.next_actions() if isinstance(a, ev.Send)]
    assert [(x.code, x.req) for x in sent] == [
        (ErrorCode.BAD_FIELD, 5), (ErrorCode.TOO_MANY_REQUESTS, 6 + MAX_PENDING_REQUESTS - 1)]
    assert h.server.state is State.AUTHENTICATED


def test_callgw_can_only_answer_a_waiting_request():
    h = logged_in()
    with pytest.raises(LocalProtocolError):
        h.server.answer_request(m.Done(req=9))
    h.client.book_delete(h.now, "Bob")
    h.pump()
    with pytest.raises(LocalProtocolError):
        h.server.answer_request(m.Pong())
    h.server.answer_request(m.Done(req=1))
    with pytest.raises(LocalProtocolError):
        h.server.answer_request(m.Done(req=1))    # answered already


def test_an_answer_after_the_session_ended_is_dropped_and_the_client_is_told():
    h = logged_in()
    h.client.book_list(h.now)
    h.pump()
    h.server.close(h.now)
    assert h.server.answer_request(m.Done(req=1)) is False
    h.client.close(h.now)
    h.pump()
    assert h.client_of(ev.RequestsLost) == [ev.RequestsLost((1,))]


def test_an_answer_to_no_request_is_reported_not_raised():
    h = logged_in()
    h.client.receive_message(m.Done(req=77), h.now)
    (event,) = [a for a in h.client.next_actions() if isinstance(a, ev.SessionEvent)]
    assert event.message.code == ErrorCode.OUT_OF_ORDER


@pytest.mark.parametrize("obj", [
    {"cmd": "book", "req": 1, "entries": [{"name": "A", "number": "+12"}] * 65},
    {"cmd": "book", "req": 1, "entries": [{"name": "A"}]},
    {"cmd": "book", "req": 1, "entries": [{"name": "A", "number": "+12", "x": 1}]},
    {"cmd": "book", "req": 1, "entries": [{"name": "", "number": "+12"}]},
    {"cmd": "records", "req": 1, "records": [{"number": "+12", "start": 1, "duration": 1,
                                              "cause": "sleepy"}]},
    {"cmd": "records", "req": 1, "records": [{"number": "+12", "start": 1, "duration": -1,
                                              "cause": "normal"}]},
    {"cmd": "book-list", "req": 0},
    {"cmd": "book-list", "req": 1, "after": "no spaces"},
    {"cmd": "book-put", "req": 1, "name": "A", "number": "0301234"},
])
def test_malformed_requests_and_answers_are_refused(obj):
    import json
    with pytest.raises(RemoteProtocolError):
        m.decode(json.dumps({"v": 1, **obj}))
