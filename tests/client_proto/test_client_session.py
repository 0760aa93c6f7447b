"""The client session machine: login (scrypt asked for, never done inside), mutual auth,
calls, crossing messages, pings and server silence."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client.client_session import ClientSession, ClientState
from protocols.client.errors import AuthCode, ErrorCode, LocalProtocolError

from .builders import Harness, client_session
from .strategies import message_of


def test_login_asks_for_scrypt_instead_of_doing_it():
    c = client_session()
    c.login("alice", 0)
    [send] = c.next_actions()
    assert isinstance(send.message, m.Login) and send.message.proof is None
    nonce = send.message.nonce
    c.receive_message(m.Challenge(nonce=nonce + "S" * 24, salt=b"s" * 16, n=16384, r=8, p=1), 0)
    assert c.next_actions() == [ev.DeriveKey(b"s" * 16, 16384, 8, 1)]
    assert c.state is ClientState.DERIVING
    c.key_derived(b"k" * 32, 0)
    seal, send = c.next_actions()
    assert send.message.proof is not None and send.message.nonce == nonce + "S" * 24
    # UDP: the welcome will come sealed with the server's key; plain input is still taken
    assert seal.send_key is None and len(seal.receive_key) == 32 and not seal.required


@pytest.mark.parametrize("nonce", ["X" * 40, None])
def test_a_challenge_for_another_nonce_is_ignored(nonce):
    c = client_session()
    c.login("alice", 0)
    own = c.next_actions()[0].message.nonce
    c.receive_message(m.Challenge(nonce=nonce or own, salt=b"s" * 16, n=16, r=1, p=1), 0)
    [event] = c.next_actions()
    assert isinstance(event, ev.SessionEvent) and event.message.code == ErrorCode.OUT_OF_ORDER
    assert c.state is ClientState.AWAIT_CHALLENGE


def test_welcome_without_signature_after_a_password_login_is_refused():
    h = Harness()
    h.client.login("alice", 0)
    h.pump()
    c = client_session()
    c.login("alice", 0)
    nonce = c.next_actions()[0].message.nonce
    c.receive_message(m.Challenge(nonce=nonce + "S" * 24, salt=b"s" * 16, n=16, r=1, p=1), 0)
    c.next_actions()
    c.key_derived(b"k" * 32, 0)
    c.next_actions()
    c.receive_message(h.client.welcome.__class__(**{**h.client.welcome.__dict__,
                                                    "signature": None}), 0)
    actions = c.next_actions()
    assert actions[0].code == AuthCode.BAD_CREDENTIALS and c.state is ClientState.CLOSED


def test_throttled_login_reports_retry():
    c = client_session()
    c.login("alice", 0)
    c.next_actions()
    c.receive_message(m.Unauthorized(code=AuthCode.THROTTLED, retry=8), 0)
    assert c.next_actions() == [ev.LoginFailed(AuthCode.THROTTLED, "", 8)]
    assert c.state is ClientState.CONNECTED


def test_commands_need_the_right_state():
    c = client_session()
    with pytest.raises(LocalProtocolError):
        c.call(0, number="+4930123")
    h = Harness()
    h.login()
    with pytest.raises(LocalProtocolError):
        h.client.hangup("c9", 0)
    with pytest.raises(LocalProtocolError):
        h.client.call(0, number="030123")               # invalid: nothing is sent
    assert h.client.next_actions() == [] and h.client.calls == {}


def test_crossing_hangup_and_disconnected():
    h = Harness()
    h.login()
    c = h.client.call(0, number="+4930123")
    h.pump()
    h.server.connected(c)
    h.client.hangup(c, 0)                                # in flight
    h.server.disconnected(c, "normal")                   # crossing
    h.pump()
    assert h.call_messages(c)[-1] == "disconnected" and c not in h.client.calls
    # the server answered the late hangup with unknown call: not fatal
    assert h.client.state is ClientState.AUTHENTICATED


def test_after_logout_the_server_still_reports_how_each_call_ended():
    h = Harness()
    h.login()
    c = h.client.call(0, number="+4930123")
    h.pump()
    h.server.connected(c)
    h.pump()
    h.client.logout(0)
    h.pump()                        # the server sends disconnected, then closes
    assert h.client.state is ClientState.CLOSED
    assert h.call_messages(c)[-1] == "disconnected"
    ends = [a.message for a in h.client_events if isinstance(a, ev.CallEvent)
            and isinstance(a.message, m.Disconnected)]
    assert ends and ends[-1].cause == "normal"
    h.client.receive_message(m.Disconnected(call=c, cause="normal"), 0)   # only once
    h.client.receive_message(m.Disconnected(call="c99", cause="normal"), 0)
    assert not [a for a in h.client.next_actions() if isinstance(a, ev.CallEvent)]


def test_pings_and_server_silence():
    h = Harness()
    h.login()
    c = h.client
    assert c.get_timer() == 30.0
    c.handle_timer(30.0)
    [send] = c.next_actions()
    assert send.message == m.Ping()
    assert c.get_timer() == 60.0
    c.handle_timer(60.0)
    c.next_actions()
    c.handle_timer(90.0)
    assert c.next_actions()[-1] == ev.Close(ErrorCode.IDLE_TIMEOUT,
                                            "the server stopped answering")


def test_fatal_server_errors_close_the_client():
    h = Harness()
    h.login()
    h.client.receive_message(m.Error(code=ErrorCode.IDLE_TIMEOUT, text="session expired"), 0)
    assert h.client.next_actions()[-1] == ev.Close(ErrorCode.IDLE_TIMEOUT, "session expired")


def test_media_needs_the_call_key():
    h = Harness()
    h.login()
    c = h.client.call(0, number="+4930123")
    h.pump()
    assert not h.client.send_media(c, payload_type=0, sequence=0, timestamp=0, payload=b"")
    h.server.connected(c)
    h.pump()
    assert h.client.send_media(c, payload_type=0, sequence=0, timestamp=0, payload=b"x")


_server_messages = st.one_of([message_of(cls) for cls in m.SERVER_MESSAGES])


@settings(max_examples=150)
@given(st.lists(st.one_of(_server_messages, st.binary(max_size=40)), max_size=20))
def test_random_server_input_never_raises(items):
    h = Harness()
    h.login()
    h.client.call(0, number="+4930123")
    h.client.next_actions()
    for item in items:
        if isinstance(item, bytes):
            h.client.receive_payload(item, 0)
        else:
            h.client.receive_message(item, 0)
        for action in h.client.next_actions():
            if isinstance(action, ev.Send):
                m.encode(action.message)


def test_pong_is_reported_for_the_library_ping():
    h = Harness()
    h.login()
    h.client.ping(0)
    h.pump()
    assert ev.SessionEvent(m.Pong()) in h.client_events


def test_a_second_answer_moves_an_active_call_to_relay():
    h = Harness()
    h.login()
    c = h.client.call(0, number="+4930123", mode="direct", address="127.0.0.1", port=4000)
    h.client.next_actions()
    h.client.receive_message(m.Connected(call=c), 0)
    h.client.next_actions()
    h.client.answer(c, 0, mode="relay")                 # no media arrived: relay it
    [send] = h.client.next_actions()
    assert send.message == m.Answer(call=c, mode="relay")
    h.client.receive_message(m.Connected(call=c, key=b"K" * 16), 0)
    assert h.client.calls[c] == {"state": "active", "key": b"K" * 16}
    with pytest.raises(LocalProtocolError):
        h.client.answer("c9", 0)


def test_without_local_checks_the_server_refuses():
    c = ClientSession(now=0, local_checks=False)
    call = c.call(0, number="+4930123")                 # before login: sent anyway
    assert [a.message for a in c.next_actions()] == [m.Call(call=call, number="+4930123",
                                                                 mode="relay")]
    h = Harness(client=ClientSession(now=0, local_checks=False))
    h.login()
    h.client.login_token("v1.a.b.c", 0)                 # a second login: the server says no
    h.pump()
    assert h.client.state is ClientState.AUTHENTICATED
    h.client.login_token("v1.a.b.c", 0)
    h.client.next_actions()
    h.client.receive_message(m.Unauthorized(code=AuthCode.THROTTLED, retry=8), 0)
    assert h.client.next_actions() == [ev.LoginFailed(AuthCode.THROTTLED, "", 8)]
    assert h.client.state is ClientState.AUTHENTICATED
    h.client.receive_message(m.Error(code=ErrorCode.BAD_FRAME, text="binary control"), 0)
    assert h.client.state is ClientState.AUTHENTICATED    # the server closes if it must
    h.client.logout(0)
    with pytest.raises(LocalProtocolError):
        h.client.call(0, number="+4930123")
