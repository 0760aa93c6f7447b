"""The server session machine: login (SCRAM over scrypt, tokens), replay, throttling, calls,
out-of-order commands, timers, and random input. Plain functions, bytes in and out."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client import scram
from protocols.client.calls import CALL_TRANSITIONS, CallState
from protocols.client.errors import (AuthCode, ErrorCode, LocalProtocolError,
                                     RemoteProtocolError)
from protocols.client.framing import MediaFrame, encode_media
from protocols.client.session import TRANSITIONS, State
from protocols.client.throttle import LoginThrottle
from protocols.client.tokens import TokenSigner

from .builders import KEY_A, KEY_B, USERS, Harness, client_session, server_session
from .strategies import client_message


def logged_in(**kw) -> Harness:
    h = Harness(**kw)
    h.login()
    assert h.server.state is State.AUTHENTICATED
    return h


def server_errors(h: Harness) -> list[m.Error]:
    return [x for x in h.sent("<") if isinstance(x, m.Error)]


# ---------------------------------------------------------------- login

def test_password_login_is_mutual_and_never_sends_the_password():
    h = logged_in()
    kinds = [(d, x.command) for (d, _), x in zip(h.wire, h.sent(">") + h.sent("<"))]
    assert [x.command for x in h.sent(">")] == ["login", "login"]
    assert [x.command for x in h.sent("<")] == ["challenge", "welcome"]
    assert all(b"wonderland" not in data for _, data in h.wire) and kinds
    welcome = h.client_of(ev.Welcomed)[0].welcome
    assert welcome.user == "alice" and welcome.signature is not None
    assert (welcome.address, welcome.port) == ("192.0.2.7", 40000)
    assert welcome.branding == {"title": "ACME"} and welcome.name == "Alice"
    assert h.server_of(ev.Authenticated) == [ev.Authenticated("alice", "password")]
    assert h.server_of(ev.LoggedIn)[0].expires == welcome.expires


def test_wrong_password_is_refused_and_may_retry():
    h = Harness(password="guess")
    h.login()
    assert h.client_of(ev.LoginFailed)[0].code == AuthCode.BAD_CREDENTIALS
    assert h.server.state is State.CONNECTED
    h.password = "wonderland"
    h.login()
    assert h.server.state is State.AUTHENTICATED


def test_unknown_user_gets_a_plausible_challenge_and_the_same_refusal():
    h = Harness(password="x")
    h.login("mallory")
    challenge = h.sent("<")[0]
    assert isinstance(challenge, m.Challenge) and len(challenge.salt) == 16
    assert challenge.n == scram.DEFAULT_N
    assert h.client_of(ev.LoginFailed)[0].code == AuthCode.BAD_CREDENTIALS
    h2 = Harness(password="y")
    h2.client.login("mallory", 0)
    h2.pump()
    assert h2.sent("<")[0].salt == challenge.salt           # stable: no enumeration by salt


def test_three_failed_logins_close_the_session():
    h = Harness(password="nope")
    for _ in range(3):
        h.login()
        if h.client.state.value == "closed":
            break
    assert h.server.state is State.CLOSED
    assert h.server_of(ev.Close)[0].code == AuthCode.BAD_CREDENTIALS


def test_replayed_login_is_refused():
    h = logged_in()
    captured = [data for d, data in h.wire if d == ">"]
    # the same bytes on a new session: a new server nonce, so the old proof answers nothing
    s = server_session(seed=99)
    victim = Harness(server=s)
    s.receive_payload(captured[0], 0)
    victim.pump()
    s.receive_payload(captured[1], 0)
    replies = [a.message for a in s.next_actions() if isinstance(a, ev.Send)]
    assert replies == [m.Unauthorized(code=AuthCode.STALE_NONCE, text=replies[0].text)]
    assert s.state is not State.AUTHENTICATED
    # and again on the original session: the challenge was used up
    h.server.receive_payload(captured[1], 0)
    assert isinstance(h.server.next_actions()[0].message, m.Error)
    assert h.server.state is State.AUTHENTICATED


def test_proof_after_the_challenge_expired_is_stale():
    h = Harness()
    h.client.login("alice", 0)
    h.pump()
    # the challenge was answered at once; start over and answer late
    h2 = Harness()
    h2.client.login("alice", 0)
    for a in h2.client.next_actions():
        h2.client_action(a)
    for a in h2.server.next_actions():
        h2.server_action(a)                  # challenge delivered: client wants DeriveKey
    h2.now = 31.0
    h2.pump()
    assert h2.client_of(ev.LoginFailed)[0].code == AuthCode.STALE_NONCE


def test_a_proof_without_challenge_or_for_another_nonce_is_stale():
    s = server_session()
    s.receive_message(m.Login(user="alice", nonce="a" * 40, proof=bytes(32)), 0)
    assert s.next_actions()[0].message.code == AuthCode.STALE_NONCE


def test_the_client_refuses_a_server_that_cannot_sign():
    fake = dict(USERS)
    fake["alice"] = type(USERS["alice"])(*[getattr(USERS["alice"], f) for f in (
        "salt", "n", "r", "p", "stored_key")], server_key=b"x" * 32)
    h = Harness(users=fake)
    h.login()
    assert h.client_of(ev.LoginFailed)[0].code == AuthCode.BAD_CREDENTIALS
    assert h.client.state.value == "closed"


def test_callgw_may_refuse_an_authenticated_user():
    h = Harness(accept=False)
    h.login()
    h.server.refuse(AuthCode.ACCOUNT_DISABLED, "disabled", 0)
    h.pump()
    assert h.client_of(ev.LoginFailed)[0].code == AuthCode.ACCOUNT_DISABLED


# ---------------------------------------------------------------- tokens

def test_token_resume_gives_a_fresh_token():
    h = logged_in()
    token = h.client.welcome.token
    h2 = Harness(now=100.0, server=server_session(100.0), client=client_session(100.0))
    h2.client.login_token(token, 100.0)
    h2.pump()
    welcome = h2.client_of(ev.Welcomed)[0].welcome
    assert welcome.signature is None and welcome.user == "alice"
    assert welcome.expires == 100 + 12 * 3600 and welcome.token != token
    assert h2.server_of(ev.Authenticated) == [ev.Authenticated("alice", "token")]


@pytest.mark.parametrize("when,signer,code", [
    (12 * 3600.0, TokenSigner(KEY_A), AuthCode.TOKEN_EXPIRED),
    (10.0, TokenSigner(KEY_B), AuthCode.TOKEN_INVALID),
    (10.0, TokenSigner(KEY_A).rotated(KEY_B).rotated(("k3", b"C" * 32)),
     AuthCode.TOKEN_INVALID),
])
def test_expired_or_unknown_key_tokens_are_refused(when, signer, code):
    token = logged_in().client.welcome.token
    h = Harness(now=when, server=server_session(when, signer=signer),
                client=client_session(when))
    h.client.login_token(token, when)
    h.pump()
    assert h.client_of(ev.LoginFailed)[0].code == code


def test_rotated_keys_still_accept_previous_tokens():
    token = logged_in().client.welcome.token
    signer = TokenSigner(KEY_A).rotated(KEY_B)
    h = Harness(now=5.0, server=server_session(5.0, signer=signer), client=client_session(5))
    h.client.login_token(token, 5.0)
    h.pump()
    assert h.client.welcome.token.startswith("v1.k2.")


# ---------------------------------------------------------------- throttling

def test_brute_force_is_throttled():
    throttle = LoginThrottle(pair_free=5, base=1.0, max_delay=600)
    checked = refused = 0
    now = 0.0
    while now < 120:
        s = server_session(now, throttle=throttle, seed=int(now * 10))
        h = Harness(password=f"guess{now}", server=s, client=client_session(now), now=now)
        h.login()
        code = h.client_of(ev.LoginFailed)[0].code
        if code == AuthCode.THROTTLED:
            refused += 1
            assert h.client_of(ev.LoginFailed)[0].retry >= 1
            assert not any(isinstance(x, m.Challenge) for x in h.sent("<"))
        else:
            checked += 1
        assert [e.user for e in h.server_of(ev.LoginRefused)] == ["alice"]
        now += 0.5
    assert 5 < checked <= 5 + 7 and refused >= 200    # 5 free, then 1, 2, 4... s apart
    # the right password is throttled too while the block lasts (no oracle)...
    h = Harness(server=server_session(now, throttle=throttle), client=client_session(now),
                now=now)
    h.login()
    assert h.client_of(ev.LoginFailed)[0].code == AuthCode.THROTTLED
    # ...from the guessing address only: the real user elsewhere logs in
    h = Harness(server=server_session(now, throttle=throttle, peer=("203.0.113.5", 5000)),
                client=client_session(now), now=now)
    h.login()
    assert h.server.state is State.AUTHENTICATED


def test_refusals_are_reported_with_the_user_and_whether_they_counted():
    h = Harness(password="guess")
    h.login()
    assert h.server_of(ev.LoginRefused) == [
        ev.LoginRefused("alice", AuthCode.BAD_CREDENTIALS, "wrong user name or password", True)]


def test_unproven_udp_failures_do_not_count():
    """Over UDP a datagram's source may be spoofed: a proof that answers no challenge of ours
    or a bad token tests no password, and must not block the address it claims."""
    throttle = LoginThrottle(pair_free=0, source_free=0, base=60)
    for i in range(10):
        s = server_session(0.0, throttle=throttle, seed=i, proven_source=False)
        s.receive_message(m.Login(user="alice", nonce="A" * 40, proof=bytes(32)), 0.0)
        s.receive_message(m.Login(token="v1.k1.e30.AAAA"), 0.0)
        assert [e.counted for e in s.next_actions() if isinstance(e, ev.LoginRefused)] == \
            [False, False]
    assert throttle.retry_after("alice", "192.0.2.7", 0.0) == 0
    # a wrong password after a challenge answered at the address is counted
    h = Harness(password="guess", server=server_session(0.0, throttle=throttle,
                                                        proven_source=False))
    h.login()
    assert h.server_of(ev.LoginRefused)[0].counted
    assert throttle.retry_after("alice", "192.0.2.7", 0.0) > 0


def test_revoke_ends_calls_and_session():
    h = logged_in()
    c = h.client.call(0, number="+4930123456")
    h.pump()
    h.server.revoke(AuthCode.ACCOUNT_DISABLED, "user disabled", 1.0)
    h.pump()
    assert [x.command for x in h.sent("<")[-2:]] == ["disconnected", "unauthorized"]
    assert h.sent("<")[-2].cause == "unauthorized" and h.sent("<")[-2].call == c
    assert h.server.state is State.CLOSED
    assert ev.HangupRequested(c, "unauthorized") in h.server_events
    assert h.client.state.value == "closed"          # the client ends its side too


# ---------------------------------------------------------------- calls

def test_outgoing_call_flow_with_relay_media():
    h = logged_in()
    c = h.client.call(0, number="+4930123456", codecs=("PCMA",))
    h.pump()
    assert h.server_of(ev.CallRequested) == [ev.CallRequested(
        c, "+4930123456", None, "relay", None, None, ("PCMA",))]
    assert h.server.trying(c) and h.server.ringing(c)
    key = h.server.connected(c, codec="PCMA")
    h.pump()
    assert len(key) == 16 and h.call_messages(c) == ["trying", "ringing", "connected"]
    h.client.send_media(c, payload_type=8, sequence=1, timestamp=0, payload=b"\xd5" * 160)
    h.server.send_media(c, payload_type=8, sequence=9, timestamp=0, payload=b"\x55" * 160)
    h.pump()
    assert h.server_of(ev.MediaReceived)[0].frame.payload == b"\xd5" * 160
    assert h.client_of(ev.MediaReceived)[0].frame.sequence == 9
    forged = encode_media(MediaFrame(bytes(16), 8, 2, 160, b"x"))
    h.server.receive_payload(forged, 0)
    assert h.server.next_actions() == [] and h.server.dropped_media == 1
    h.client.dtmf(c, "12#", 0)
    h.client.hold(c, 0)
    h.client.resume(c, 0)
    h.client.hangup(c, 0)
    h.pump()
    assert [type(e) for e in h.server_events[-4:]] == [
        ev.DtmfRequested, ev.HoldRequested, ev.HoldRequested, ev.HangupRequested]
    assert h.call_messages(c)[-1] == "disconnected" and c not in h.server.calls
    assert h.server.connected(c) is None and not h.server.ringing(c)    # races are quiet


def test_direct_mode_and_far_end_release():
    h = logged_in()
    c = h.client.call(0, contact="Mum", mode="direct", address="198.51.100.5", port=4000)
    h.pump()
    assert h.server.connected(c, address="203.0.113.1", port=5004) == b""
    assert h.server.disconnected(c, "busy", q850=17, text="User busy")
    h.pump()
    last = h.client_of(ev.CallEvent)[-1].message
    assert last == m.Disconnected(call=c, cause="busy", q850=17, text="User busy")


def test_director_refusal_ends_the_call_with_unauthorized():
    h = logged_in()
    c = h.client.call(0, number="+900123")
    h.pump()
    assert h.server.refuse_call(c, AuthCode.DESTINATION_BLOCKED, "premium numbers blocked")
    h.pump()
    assert h.client_of(ev.CallEvent)[-1].message.code == AuthCode.DESTINATION_BLOCKED
    assert c not in h.client.calls and c not in h.server.calls


def test_incoming_call_answered_and_rejected():
    h = logged_in()
    s1 = h.server.incoming(caller="+4940111", name="Bob")
    h.pump()
    assert s1.startswith("s") and h.call_messages(s1) == ["incoming"]
    h.client.answer(s1, 0)
    h.pump()
    assert h.server_of(ev.AnswerRequested)[0].call == s1
    h.server.connected(s1)
    s2 = h.server.incoming(caller="+4940222")
    h.pump()
    h.client.reject(s2, 0)
    h.pump()
    assert h.server_of(ev.RejectRequested) == [ev.RejectRequested(s2, "busy")]
    assert h.call_messages(s2) == ["incoming", "disconnected"]
    assert h.server.calls.state_of(s1) is CallState.ACTIVE


@pytest.mark.parametrize("msg,code", [
    (m.Dtmf(call="c9", digits="1"), ErrorCode.UNKNOWN_CALL),
    (m.Answer(call="c1", mode="relay"), ErrorCode.OUT_OF_ORDER),
    (m.Dtmf(call="c1", digits="1"), ErrorCode.OUT_OF_ORDER),
    (m.Call(call="c1", number="+12345", mode="relay"), ErrorCode.CALL_EXISTS),
    (m.Call(call="s7", number="+12345", mode="relay"), ErrorCode.CALL_EXISTS),
    (m.Resume(call="c1"), ErrorCode.OUT_OF_ORDER),
    (m.Login(token="abc"), ErrorCode.OUT_OF_ORDER),
])
def test_out_of_order_commands_get_an_error_and_the_session_goes_on(msg, code):
    h = logged_in()
    h.client.call(0, number="+4930123")
    h.pump()
    h.server.receive_message(msg, 0)
    h.pump()
    assert server_errors(h)[-1].code == code
    assert h.server.state is State.AUTHENTICATED


def test_call_before_login_closes_the_session():
    s = server_session()
    s.receive_message(m.Call(call="c1", number="+4930123", mode="relay"), 0)
    actions = s.next_actions()
    assert actions[0].message.code == ErrorCode.NOT_AUTHENTICATED
    assert actions[-1] == ev.Close(ErrorCode.NOT_AUTHENTICATED, "call in connected")


def test_call_limit():
    h = logged_in()
    for _ in range(4):
        h.client.call(0, number="+4930123")
    h.pump()
    h.server.receive_message(m.Call(call="c99", number="+4930123", mode="relay"), 0)
    h.pump()
    assert server_errors(h)[-1].code == ErrorCode.TOO_MANY_CALLS


def test_bad_bytes_get_error_codes_and_too_many_close():
    s = server_session()
    s.receive_payload(b'{"v":1,"cmd":"dance"}', 0)
    assert s.next_actions()[0].message.code == ErrorCode.UNKNOWN_COMMAND
    s.receive_payload(b'{"v":1,"cmd":"pong"}', 0)           # a server message from a client
    assert s.next_actions()[0].message.code == ErrorCode.UNKNOWN_COMMAND
    for _ in range(8):
        s.receive_payload(b"\x01junk", 0)
    actions = s.next_actions()
    assert actions[-2].message.code == ErrorCode.TOO_MANY_ERRORS
    assert actions[-1] == ev.Close(ErrorCode.TOO_MANY_ERRORS, "too many protocol errors")
    assert s.state is State.CLOSED
    s.receive_payload(b'{"v":1,"cmd":"ping"}', 0)
    assert s.next_actions() == []


def test_oversized_message_before_login_closes():
    s = server_session()
    s.receive_payload(b'{"v":1,"cmd":"login","user":"' + b"a" * 5000 + b'"}', 0)
    actions = s.next_actions()
    assert actions[0].message.code == ErrorCode.TOO_LARGE and isinstance(actions[-1], ev.Close)


# ---------------------------------------------------------------- session commands, timers

def test_ping_pong_logout_hangs_up_calls():
    h = logged_in()
    c = h.client.call(0, number="+4930123")
    h.client.ping(0)
    h.pump()
    assert h.sent("<")[-1] == m.Pong()
    h.client.logout(0)
    h.pump()
    assert h.server_events[-2:] == [ev.HangupRequested(c, "normal"), ev.Close(0, "logout")]
    # the client heard that its call ended normally before the session closed
    assert m.Disconnected(call=c, cause="normal", text="logged out") in h.sent("<")


def test_idle_session_expires_and_pings_keep_it_alive():
    h = logged_in()
    c = h.client.call(0, number="+4930123")
    h.pump()
    assert h.server.get_timer() == 90.0
    for t in (60.0, 120.0):
        h.server.receive_message(m.Ping(), t)
    h.server.next_actions()
    h.server.handle_timer(200.0)
    assert h.server.state is State.AUTHENTICATED and h.server.get_timer() == 210.0
    h.server.handle_timer(210.0)
    actions = h.server.next_actions()
    assert actions[0].message.code == ErrorCode.IDLE_TIMEOUT
    assert ev.HangupRequested(c, "timeout") in actions and isinstance(actions[-1], ev.Close)
    assert h.server.get_timer() is None


def test_login_must_complete_in_time():
    s = server_session(login_timeout=30.0)
    assert s.get_timer() == 30.0
    s.receive_message(m.Ping(), 20.0)
    s.handle_timer(30.0)
    assert s.next_actions()[-2].message.code == ErrorCode.LOGIN_TIMEOUT


def test_redirect_and_status():
    h = logged_in()
    h.server.status("maintenance", text="back at noon")
    h.server.redirect("203.0.113.20", 7000, 0)
    h.pump()
    assert isinstance(h.client_of(ev.SessionEvent)[0].message, m.Status)
    assert h.client_of(ev.Redirected) == [ev.Redirected("203.0.113.20", 7000, None, 1)]
    assert h.client.state.value == "redirected" and h.server.state is State.CLOSED


def test_misuse_of_the_core_is_a_local_error():
    s = server_session()
    with pytest.raises(LocalProtocolError):
        s.credentials_found("alice", None, 0)
    h = logged_in()
    c = h.client.call(0, number="+4930123")
    h.pump()
    h.server.trying(c)
    with pytest.raises(LocalProtocolError):
        h.server.trying(c)


def test_transition_tables_name_only_known_states():
    assert all(isinstance(s, State) and all(isinstance(n, State) for n in nxt)
               for (s, _), (_, nxt) in TRANSITIONS.items())
    assert all(isinstance(s, CallState) for k in CALL_TRANSITIONS for s in [k[0]])


# ---------------------------------------------------------------- random input

@settings(max_examples=150)
@given(st.lists(st.one_of(client_message, st.binary(max_size=64).map(bytes)), max_size=25),
       st.booleans())
def test_random_client_input_never_raises(items, authenticate):
    h = logged_in() if authenticate else Harness()
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            h.server.receive_payload(item, float(i))
        else:
            h.server.receive_message(item, float(i))
        for action in h.server.next_actions():
            if isinstance(action, ev.Send):
                m.encode(action.message)                    # every reply is valid
            elif isinstance(action, ev.LookupCredentials):
                h.server.credentials_found(action.user, USERS.get(action.user), float(i))
            elif isinstance(action, ev.Authenticated):
                h.server.accept(float(i))
    h.server.handle_timer(1e9)
    assert h.server.state is State.CLOSED


_ops = st.lists(st.tuples(st.sampled_from([
    "call", "hangup", "dtmf", "hold", "resume", "answer", "reject", "trying", "ringing",
    "connected", "disconnected", "refuse", "incoming"]), st.integers(0, 5)), max_size=30)


@settings(max_examples=100)
@given(_ops)
def test_client_and_server_agree_on_the_calls(ops):
    """Random interleavings of client commands and callgw events: after each exchange both
    sides know the same calls, and every ended call got exactly one final message."""
    h = logged_in()
    finals: dict[str, int] = {}
    for op, n in ops:
        ids = sorted(set(h.client.calls) | h.server.calls.ids())
        call = ids[n % len(ids)] if ids else "c1"
        try:
            if op == "call":
                h.client.call(0, number="+4930123")
            elif op == "incoming":
                h.server.incoming(caller="+4940111")
            elif op == "dtmf":
                h.client.dtmf(call, "1", 0)
            elif op in ("hangup", "hold", "resume", "answer", "reject"):
                getattr(h.client, op)(call, 0)
            elif op == "refuse":
                h.server.refuse_call(call, AuthCode.CALL_REFUSED)
            elif op == "disconnected":
                h.server.disconnected(call, "normal")
            else:
                getattr(h.server, op)(call)
        except LocalProtocolError:
            pass                      # a misuse of either core in this random order: refused
        h.pump()
        assert set(h.client.calls) == h.server.calls.ids()
    for e in h.client_of(ev.CallEvent):
        if isinstance(e.message, (m.Disconnected, m.Unauthorized)) or (
                isinstance(e.message, m.Error) and e.message.re == "call"):
            finals[e.call] = finals.get(e.call, 0) + 1
    assert all(v == 1 for v in finals.values())
    assert h.server.state is State.AUTHENTICATED


def test_a_long_client_nonce_cannot_crowd_out_the_server_nonce():
    s = server_session()
    s.receive_message(m.Login(user="alice", nonce="a" * 97), 0)
    [send] = s.next_actions()
    assert send.message.code == ErrorCode.BAD_FIELD and s.state is State.CONNECTED
    h = Harness()
    h.server.receive_message(m.Login(user="alice", nonce="a" * 96), 0)
    h.pump()
    challenge = h.sent("<")[0]
    assert len(challenge.nonce) == 120 and challenge.nonce.startswith("a" * 96)


@pytest.mark.parametrize("host,seen", [("::ffff:192.0.2.7", "192.0.2.7"),
                                       ("2001:DB8::1", "2001:db8::1")])
def test_peer_addresses_are_canonical(host, seen):
    assert server_session(peer=(host, 5)).peer == (seen, 5)
    with pytest.raises(LocalProtocolError):
        server_session(peer=("example.org", 5))


def test_bad_branding_is_a_local_error_before_any_change():
    h = Harness(accept=False)
    h.login()
    with pytest.raises(LocalProtocolError):
        h.server.accept(0, branding={"Bad Key": "x"})
    assert h.server.state is State.VERIFIED
    h.server.accept(0, branding={"title": "ok"})
    assert h.server.state is State.AUTHENTICATED


def test_error_texts_are_made_safe():
    s = server_session()
    s.receive_error(RemoteProtocolError(ErrorCode.BAD_FIELD, "bad \x00\ud800" + "x" * 300,
                                        command="nonsense", call="bad id!"), 0)
    [send] = s.next_actions()
    assert send.message == m.Error(code=ErrorCode.BAD_FIELD, text="bad ??" + "x" * 250)
