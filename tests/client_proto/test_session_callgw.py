"""ServerSession: what callgw's listeners use beyond the strict spec defaults: the call path's
own media key in ``connected``, its own id for ``incoming``, ``send_error``, and
``strict_before_login=False`` (errors before login are answered and counted, not fatal; a new
first login while challenged starts over)."""
from __future__ import annotations

import pytest

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, LocalProtocolError
from protocols.client.framing import MediaFrame, encode_media
from protocols.client.session import State

from .builders import Harness, server_session


def logged_in(**config) -> Harness:
    h = Harness(server=server_session(**config))
    h.login()
    assert h.server.state is State.AUTHENTICATED
    return h


def sent(s) -> list[m.Message]:
    return [a.message for a in s.next_actions() if isinstance(a, ev.Send)]


def test_connected_keeps_the_call_paths_media_key():
    h = logged_in()
    c = h.client.call(0, number="+4930123456")
    h.pump()
    key = bytes(range(16))
    assert h.server.connected(c, key=key, codec="PCMU") == key
    h.pump()
    assert h.server.calls.call_for_key(key) == c
    h.server.receive_payload(encode_media(MediaFrame(key, 0, 1, 160, b"\xff" * 160)), 0)
    assert [type(a) for a in h.server.next_actions()] == [ev.MediaReceived]


def test_direct_mode_connected_ignores_a_key():
    h = logged_in()
    c = h.client.call(0, number="+4930123456", mode="direct", address="192.0.2.1", port=4000)
    h.pump()
    assert h.server.connected(c, address="198.51.100.2", port=5004, key=b"k" * 16) == b""


def test_incoming_with_callgws_own_id():
    h = logged_in()
    assert h.server.incoming(caller="+4930999", call="s-leg-7") == "s-leg-7"
    assert sent(h.server) == [m.Incoming(call="s-leg-7", caller="+4930999")]
    with pytest.raises(LocalProtocolError):
        h.server.incoming(call="c1")
    with pytest.raises(LocalProtocolError):
        h.server.incoming(call="s-leg-7")


def test_send_error_is_not_the_clients_fault():
    h = logged_in()
    for _ in range(12):
        h.server.send_error(ErrorCode.INTERNAL, "server error", call="c1", re="call")
    out = sent(h.server)
    assert out[0] == m.Error(code=ErrorCode.INTERNAL, text="server error", call="c1", re="call")
    assert len(out) == 12 and h.server.state is State.AUTHENTICATED


@pytest.mark.parametrize("strict", [True, False])
def test_call_before_login(strict):
    s = server_session(strict_before_login=strict)
    s.receive_message(m.Call(call="c1", number="+4930123", mode="relay"), 0)
    actions = s.next_actions()
    assert actions[0].message.code == ErrorCode.NOT_AUTHENTICATED
    assert actions[0].message.re == "call"
    assert isinstance(actions[-1], ev.Close) == strict
    assert s.state is (State.CLOSED if strict else State.CONNECTED)


@pytest.mark.parametrize("strict", [True, False])
def test_oversized_before_login(strict):
    s = server_session(strict_before_login=strict)
    s.receive_payload(b'{"v":1,"cmd":"login","user":"' + b"a" * 5000 + b'"}', 0)
    actions = s.next_actions()
    assert actions[0].message.code == ErrorCode.TOO_LARGE
    assert isinstance(actions[-1], ev.Close) == strict


def test_lenient_errors_before_login_still_count():
    s = server_session(strict_before_login=False, max_errors=3)
    for _ in range(3):
        s.receive_message(m.Hangup(call="c1"), 0)
    assert s.state is State.CLOSED
    assert sent(s)[-1].code == ErrorCode.TOO_MANY_ERRORS


def test_lenient_new_login_while_challenged_starts_over():
    h = Harness(server=server_session(strict_before_login=False))
    h.server.receive_message(m.Login(user="alice", nonce="A" * 20), 0)
    assert [type(a) for a in h.server.next_actions()] == [ev.LookupCredentials]
    h.server.credentials_found("alice", None, 0)
    first = sent(h.server)[0]
    h.server.receive_message(m.Login(user="nobody", nonce="B" * 20), 0)
    assert [type(a) for a in h.server.next_actions()] == [ev.LookupCredentials]
    h.server.credentials_found("nobody", None, 0)
    second = sent(h.server)[0]
    assert isinstance(second, m.Challenge) and second.nonce.startswith("B" * 20)
    assert second.nonce != first.nonce and h.server.state is State.CHALLENGED
    h.login()                                   # and a real login still works after it
    assert h.server.state is State.AUTHENTICATED
