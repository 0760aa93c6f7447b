"""ClientConnection with a recording writer, an in-memory store and a Clock: login (password and
token), refusals, throttling, replay, idle and login expiry, the front-end hook calls."""
from __future__ import annotations

import pytest
from twisted.internet import defer, task

from callgw import passwords
from callgw.frontend.connection import (MAX_ERRORS, MAX_LOGIN_FAILURES,
                                        SessionManager, State, auth_message)
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client import scram
from protocols.client.errors import AuthCode, ErrorCode
from tests.frontend.gateway import FakeFrontEnd
from tests.helpers import make_config

PASSWORD = "pa55word"
CRED = passwords.hash_password(PASSWORD, n=1024)


class Store:
    """``run`` over a dict of users, firing at once."""

    def __init__(self):
        self.users = {"alice": {"username": "alice", "tenant": "default", "password": CRED,
                                "number": "+4930111222", "enabled": 1}}

    def run(self, name, *args):
        if name == "get_user":
            return defer.succeed(self.users.get(args[0]))
        if name == "get_tenant":
            return defer.succeed({"name": args[0], "branding": {"display_name": "T"}})
        if name == "disabled_accounts":
            return defer.succeed({u: "user disabled" for u in args[0]
                                  if not self.users.get(u, {}).get("enabled")})
        raise AssertionError(name)


class Writer:
    def __init__(self):
        self.sent, self.media, self.lost = [], [], False

    def write_control(self, message):
        m.encode(message)                   # must be valid on the wire
        self.sent.append(message)

    def write_media(self, data):
        self.media.append(data)

    def seal_datagrams(self, action):
        self.sealed = action

    def lose(self):
        self.lost = True


@pytest.fixture
def env(tmp_path):
    clock = task.Clock()
    clock.advance(1_800_000_000)
    frontend = FakeFrontEnd()
    manager = SessionManager(Store(), frontend, make_config(tmp_path), clock)
    writer = Writer()
    conn = manager.open("tcp", ("127.0.0.1", 40000), writer)
    return manager, conn, writer, clock, frontend


def send(conn, message):
    conn.receive(m.encode(message))


def login(conn, writer, user="alice", password=PASSWORD, nonce="A" * 24):
    """Run the SCRAM exchange; returns (final login message, expected signature)."""
    send(conn, m.Login(user=user, nonce=nonce))
    challenge = writer.sent[-1]
    assert isinstance(challenge, m.Challenge) and challenge.nonce.startswith(nonce)
    salted = scram.salted_password(password, challenge.salt, challenge.n, challenge.r,
                                   challenge.p)
    auth = auth_message(user, nonce, challenge.nonce, challenge.salt, challenge.n,
                        challenge.r, challenge.p)
    final = m.Login(user=user, nonce=challenge.nonce, proof=scram.client_proof(salted, auth))
    send(conn, final)
    return final, scram.server_signature(scram.server_key(salted), auth)


def test_password_login_welcome_and_hook(env):
    manager, conn, writer, clock, frontend = env
    _, signature = login(conn, writer)
    welcome = writer.sent[-1]
    assert isinstance(welcome, m.Welcome)
    assert welcome.signature == signature
    assert (welcome.address, welcome.port, welcome.user) == ("127.0.0.1", 40000, "alice")
    assert welcome.number == "+4930111222" and welcome.branding["display_name"] == "Test Tel"
    assert manager.tokens.verify(welcome.token, clock.seconds()).user == "alice"
    assert frontend.opened == [conn] and conn.state is State.OPEN
    assert (conn.username, conn.tenant, conn.framing) == ("alice", "default", "tcp")


def test_wrong_password_and_unknown_user_look_the_same(env):
    manager, conn, writer, clock, frontend = env
    login(conn, writer, password="wrong")
    assert writer.sent[-1] == m.Unauthorized(code=AuthCode.BAD_CREDENTIALS,
                                             text="wrong user name or password")
    login(conn, writer, user="mallory")
    assert writer.sent[-1].code == AuthCode.BAD_CREDENTIALS
    assert frontend.opened == [] and conn.state is State.START


def test_decoy_challenge_is_stable_for_unknown_user(env):
    manager, conn, writer, clock, frontend = env
    send(conn, m.Login(user="nobody", nonce="B" * 20))
    first = writer.sent[-1]
    send(conn, m.Login(user="nobody", nonce="C" * 20))
    assert writer.sent[-1].salt == first.salt


def test_replayed_proof_is_refused(env):
    manager, conn, writer, clock, frontend = env
    final, _ = login(conn, writer)
    other = manager.open("tcp", ("127.0.0.1", 40001), Writer())
    send(other, final)                     # the captured final message, on a new session
    assert other.writer.sent[-1].code == AuthCode.STALE_NONCE
    other.writer.sent.clear()
    send(other, m.Login(user="alice", nonce="A" * 24))
    send(other, final)                     # same client nonce, but a new server nonce
    assert other.writer.sent[-1].code == AuthCode.STALE_NONCE


def test_third_failure_ends_the_session(env):
    manager, conn, writer, clock, frontend = env
    for _ in range(MAX_LOGIN_FAILURES):
        assert not writer.lost
        login(conn, writer, password="guess")
    assert writer.lost and conn.state is State.CLOSED


def test_throttled_after_repeated_failures(env):
    manager, conn, writer, clock, frontend = env
    for i in range(6):
        guesser = manager.open("tcp", ("192.0.2.9", 40000 + i), Writer())
        login(guesser, guesser.writer, password="guess")
    w = Writer()
    late = manager.open("tcp", ("192.0.2.9", 1), w)
    send(late, m.Login(user="alice", nonce="D" * 20))
    refusal = w.sent[-1]
    assert refusal.code == AuthCode.THROTTLED and refusal.retry >= 1
    clock.advance(refusal.retry)
    login(late, w)
    assert isinstance(w.sent[-1], m.Welcome)
    # the guesses never blocked alice at another address
    w2 = Writer()
    login(manager.open("tcp", ("192.0.2.10", 1), w2), w2)
    assert isinstance(w2.sent[-1], m.Welcome)


def test_token_resume_and_expiry(env):
    manager, conn, writer, clock, frontend = env
    login(conn, writer)
    token = writer.sent[-1].token
    w2 = Writer()
    again = manager.open("udp", ("127.0.0.1", 40002), w2)
    send(again, m.Login(token=token))
    assert isinstance(w2.sent[-1], m.Welcome) and w2.sent[-1].signature is None
    clock.advance(manager.tokens.ttl + 1)
    w3 = Writer()
    late = manager.open("tcp", ("127.0.0.1", 40003), w3)
    send(late, m.Login(token=token))
    assert w3.sent[-1].code == AuthCode.TOKEN_EXPIRED
    send(late, m.Login(token=token[:-2] + "AA"))
    assert w3.sent[-1].code == AuthCode.TOKEN_INVALID


def test_disabled_account(env):
    manager, conn, writer, clock, frontend = env
    manager.store.users["alice"]["enabled"] = 0
    login(conn, writer)
    assert writer.sent[-1].code == AuthCode.ACCOUNT_DISABLED


def test_disabled_tenant(env):
    manager, conn, writer, clock, frontend = env
    manager.store.users["alice"]["tenant_enabled"] = 0
    login(conn, writer)
    assert writer.sent[-1].code == AuthCode.ACCOUNT_DISABLED
    assert writer.sent[-1].text == "tenant disabled"


def test_disabling_an_account_ends_its_open_sessions_and_calls(env):
    manager, conn, writer, clock, frontend = env
    login(conn, writer)
    send(conn, m.Call(call="c1", number="+4930123456", mode="relay"))
    other_writer = Writer()
    manager.store.users["bob"] = dict(manager.store.users["alice"], username="bob")
    other = manager.open("tcp", ("127.0.0.1", 40001), other_writer)
    login(other, other_writer, user="bob")
    manager.recheck_accounts()                       # nothing changed: both stay
    assert conn.state is State.OPEN and other.state is State.OPEN
    manager.store.users["alice"]["enabled"] = 0
    manager.recheck_accounts()
    assert [type(x).__name__ for x in writer.sent[-2:]] == ["Disconnected", "Unauthorized"]
    assert writer.sent[-2].cause == "unauthorized" and writer.sent[-2].call == "c1"
    assert writer.sent[-1].code == AuthCode.ACCOUNT_DISABLED
    assert conn.state is State.CLOSED and writer.lost
    assert frontend.closed == [(conn, "user disabled")]   # the front end releases its calls
    assert other.state is State.OPEN and not other_writer.lost


def test_ping_logout_and_session_closed(env):
    manager, conn, writer, clock, frontend = env
    login(conn, writer)
    send(conn, m.Ping())
    assert writer.sent[-1] == m.Pong()
    send(conn, m.Logout())
    assert writer.lost and conn.state is State.CLOSED
    assert frontend.closed == [(conn, "logout")]
    assert conn not in manager.connections


def test_call_commands_need_login_then_reach_the_front_end(env):
    manager, conn, writer, clock, frontend = env
    send(conn, m.Call(call="c1", number="+4930123", mode="relay"))
    assert writer.sent[-1].code == ErrorCode.NOT_AUTHENTICATED and writer.sent[-1].re == "call"
    login(conn, writer)
    send(conn, m.Call(call="c1", number="+4930123", mode="relay"))
    assert [type(x) for x in writer.sent[-3:]] == [m.Trying, m.Ringing, m.Connected]
    assert frontend.messages[-1][1].command == "call"


def test_media_only_when_open(env):
    manager, conn, writer, clock, frontend = env
    frame = fr.MediaFrame(b"k" * 16, 0, 1, 160, b"\xff" * 160)
    conn.receive(fr.encode_media(frame))
    assert frontend.media == []
    login(conn, writer)
    conn.receive(fr.encode_media(frame))
    assert frontend.media == [(conn, frame)]
    assert writer.media == [fr.encode_media(frame)]        # the fake front end echoes
    conn.close("done")
    conn.send_media(frame)
    assert len(writer.media) == 1                          # nothing once closed


def test_idle_expiry_on_the_clock(env):
    manager, conn, writer, clock, frontend = env
    login(conn, writer)
    clock.advance(manager.idle_timeout - 1)
    send(conn, m.Ping())
    clock.advance(manager.idle_timeout - 1)
    assert conn.state is State.OPEN
    clock.advance(2)
    assert writer.sent[-1].code == ErrorCode.IDLE_TIMEOUT
    assert frontend.closed == [(conn, "idle timeout")] and writer.lost


def test_login_timeout(env):
    manager, conn, writer, clock, frontend = env
    clock.advance(manager.login_timeout)
    assert writer.sent[-1].code == ErrorCode.LOGIN_TIMEOUT and writer.lost
    assert frontend.closed == []


@pytest.mark.parametrize("payload, code", [
    (b"{not json", ErrorCode.MALFORMED),
    (b'{"v":1,"cmd":"fly"}', ErrorCode.UNKNOWN_COMMAND),
    (b'{"v":2,"cmd":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
    (b'{"v":1,"cmd":"welcome"}', ErrorCode.UNKNOWN_COMMAND),
    (b'{"v":1,"cmd":"login","user":5,"nonce":"AAAAAAAAAAAAAAAAAAAA"}', ErrorCode.BAD_FIELD),
    (b"\x07garbage", ErrorCode.BAD_FRAME),
])
def test_bad_input_gets_an_error(env, payload, code):
    manager, conn, writer, clock, frontend = env
    conn.receive(payload)
    assert writer.sent[-1].code == code and conn.state is State.START


def test_oversized_message(env):
    manager, conn, writer, clock, frontend = env
    manager.max_message = 512
    conn.receive(b'{"v":1,"cmd":"ping","pad":"' + b"x" * 600 + b'"}')
    assert writer.sent[-1].code == ErrorCode.TOO_LARGE


def test_too_many_errors_end_the_session(env):
    manager, conn, writer, clock, frontend = env
    for _ in range(MAX_ERRORS):
        conn.receive(b"{")
    assert writer.sent[-1].code == ErrorCode.TOO_MANY_ERRORS and writer.lost


def test_connection_lost_while_front_end_is_busy(env):
    manager, conn, writer, clock, frontend = env
    pending = defer.Deferred()
    frontend.session_opened = lambda c: pending
    login(conn, writer)
    conn.connection_lost("gone")
    pending.callback({})
    assert frontend.closed == [(conn, "connection lost")]
    assert not any(isinstance(x, m.Welcome) for x in writer.sent)


def test_configured_token_keys_sign_with_the_first_and_accept_all(tmp_path):
    from callgw.frontend.connection import make_token_signer
    old = make_token_signer({"token_keys": ["k1:" + "a" * 20], "token_lifetime": 600})
    new = make_token_signer({"token_keys": ["k2:" + "b" * 20, "k1:" + "a" * 20],
                             "token_lifetime": 600})
    token, expires = old.issue("alice", 1000.0)
    assert expires == 1600 and new.verify(token, 1001.0).user == "alice"
    assert new.issue("alice", 1000.0)[0].startswith("v1.k2.")
    random_key = make_token_signer({"token_keys": []})
    with pytest.raises(Exception):
        random_key.verify(token, 1001.0)


def test_call_path_messages_go_through_the_cores_call_table(env):
    manager, conn, writer, clock, frontend = env
    login(conn, writer)
    send(conn, m.Call(call="c1", number="+4930123", mode="relay"))
    connected = writer.sent[-1]
    assert isinstance(connected, m.Connected)
    assert conn.session.calls.call_for_key(connected.key) == "c1"   # the call path's key
    send(conn, m.Hangup(call="c1"))
    assert [x for x in writer.sent if isinstance(x, m.Disconnected)] == [
        m.Disconnected(call="c1", cause="normal")]                   # exactly one, the core's
    conn.send(m.Ringing(call="c1"))                                  # a race: dropped
    assert isinstance(writer.sent[-1], m.Disconnected)
    send(conn, m.Hangup(call="c1"))
    assert writer.sent[-1].code == ErrorCode.UNKNOWN_CALL


def test_call_path_message_out_of_state_is_a_local_error(env):
    from protocols.client.errors import LocalProtocolError
    manager, conn, writer, clock, frontend = env
    login(conn, writer)
    send(conn, m.Call(call="c1", number="+4930123", mode="relay"))
    with pytest.raises(LocalProtocolError):
        conn.send(m.Trying(call="c1"))                               # already connected
    conn.send(m.Status(info="quality", call="c1"))
    assert writer.sent[-1] == m.Status(info="quality", call="c1")


def test_a_command_answered_with_a_redirect_reaches_the_front_end_once(tmp_path):
    """A front end answering ``attach`` with ``redirect`` (the call is held elsewhere) ends the
    session; the release of the attaching call that follows is ``session_closed``'s, not a
    second ``client_message`` with the same ``attach``."""
    class Redirecting(FakeFrontEnd):
        def client_message(self, conn, message):
            self.messages.append((conn, message))
            conn.send(m.Redirect(address="127.0.0.2", port=7061, text="the call is there"))

    clock = task.Clock()
    clock.advance(1_800_000_000)
    frontend = Redirecting()
    manager = SessionManager(Store(), frontend, make_config(tmp_path), clock)
    writer = Writer()
    conn = manager.open("tcp", ("127.0.0.1", 40000), writer)
    login(conn, writer)
    send(conn, m.Attach(call="c1", key=b"K" * 16))
    assert [msg.command for _, msg in frontend.messages] == ["attach"]
    assert writer.sent[-1] == m.Redirect(address="127.0.0.2", port=7061,
                                         text="the call is there")
    assert writer.lost and conn.state is State.CLOSED
    assert frontend.closed == [(conn, "redirected")]
