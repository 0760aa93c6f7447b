"""The client session machine follows ``redirect`` (docs/protocol.md, "Redirect"): in answer
to a login and once logged in, with the key it already derived (no second scrypt), carrying the
calls it was taking back; a bad address and a fourth redirect in a row end it cleanly."""
from __future__ import annotations

import pytest

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client.client_session import MAX_REDIRECTS, ClientSession, ClientState
from protocols.client.errors import AuthCode, ErrorCode, LocalProtocolError
from protocols.client.session import State

from .builders import Harness, seeded, server_session


class Counting(Harness):
    """A harness that counts the client's scrypt requests and can move the client to a new
    server session (the "new link" a ``Redirected`` asks for)."""

    derived = 0

    def client_action(self, action) -> None:
        if isinstance(action, ev.DeriveKey):
            self.derived += 1
        super().client_action(action)

    def follow(self, accept: bool = True, seed: int = 5) -> ev.Redirected:
        """Act on the client's ``Redirected``: a fresh server session, ``reconnected``."""
        [redirected] = [e for e in self.client_events if isinstance(e, ev.Redirected)][-1:]
        self.client_events.clear()
        self.server = server_session(self.now, seed=seed)
        self.accept = {"name": "Alice"} if accept else False
        self.client.reconnected(self.now)
        self.pump()
        return redirected


def front_end() -> Counting:
    """A client logging in at a "front end" that verifies the proof and redirects."""
    h = Counting(client=ClientSession(now=0.0, random=seeded(3), server="127.0.0.1:7000"),
                 accept=False)
    h.login()
    assert h.server.state is State.VERIFIED          # the proof checked out
    h.server.redirect("127.0.0.2", 7002, 0, text="call server 2")
    h.pump()
    return h


def test_a_redirect_in_answer_to_login_is_followed_with_the_same_derived_key():
    h = front_end()
    assert h.client.state is ClientState.REDIRECTED and h.client.welcome is None
    redirected = h.follow()
    assert redirected == ev.Redirected("127.0.0.2", 7002, "call server 2", 1)
    assert h.derived == 1                              # one scrypt for both servers
    [welcomed] = h.client_of(ev.Welcomed)
    assert welcomed.welcome.signature is not None      # the second server proved the key too
    assert h.client.state is ClientState.AUTHENTICATED and not h.client.following
    # UDP: the second login armed its own datagram keys, then sealing was required
    seals = h.client_of(ev.SealDatagrams)
    assert [s.required for s in seals] == [False, True]
    logins = [x for x in h.sent(">") if isinstance(x, m.Login)]
    assert len(logins) == 4 and logins[2].proof is None and logins[3].proof is not None
    assert all(x.password is None for x in logins if hasattr(x, "password"))


def test_a_token_login_is_redirected_and_sent_again_with_the_token():
    h = Counting()
    h.login()
    token = h.client.token
    c = Counting(client=ClientSession(now=0.0, random=seeded(4)), accept=False)
    c.client.login_token(token, 0)
    c.pump()
    c.server.redirect("192.0.2.9", 7100, 0)
    c.pump()
    c.follow()
    logins = [x for x in c.sent(">") if isinstance(x, m.Login)]
    assert [x.token for x in logins] == [token, token]
    assert c.client.state is ClientState.AUTHENTICATED and c.derived == 0


def test_a_redirect_once_logged_in_carries_active_and_attaching_calls():
    h = Counting()
    h.login()
    active = h.client.call(0, number="+4930111")
    ringing = h.client.call(0, number="+4930222")
    h.pump()
    key = h.server.connected(active)
    h.server.ringing(ringing)
    h.pump()
    attaching = h.client.attach(0, b"K" * 16)
    book = h.client.book_list(0)
    h.pump()
    h.client_events.clear()
    h.server.redirect("127.0.0.3", 7003, 0, text="draining")
    h.pump()
    ended = [(e.call, e.message.cause) for e in h.client_of(ev.CallEvent)]
    assert ended == [(ringing, "network-error")]       # still being set up: ends here
    assert h.client_of(ev.RequestsLost) == [ev.RequestsLost((book,))]
    with pytest.raises(LocalProtocolError):            # not logged in at the new server yet
        h.client.call(0, number="+4930333")
    assert h.client.send_media(active, payload_type=0, sequence=1, timestamp=0,
                               payload=b"x") is False
    h.follow()
    attaches = [x for x in h.sent(">") if isinstance(x, m.Attach)]
    assert attaches[-2:] == [m.Attach(call=active, key=key),
                             m.Attach(call=attaching, key=b"K" * 16)]
    assert h.derived == 1 and h.client.state is ClientState.AUTHENTICATED


def test_a_bad_address_ends_the_session_with_a_clear_reason():
    h = Counting()
    h.login()
    h.client_events.clear()
    h.client.receive_message(m.Redirect(address="0.0.0.0", port=7000), 0)
    refused, close = h.client.next_actions()
    assert refused == ev.RedirectRefused("redirect to 0.0.0.0:7000: not an address of one host")
    assert close == ev.Close(ErrorCode.BAD_FIELD, refused.text)
    assert h.client.state is ClientState.CLOSED


@pytest.mark.parametrize("payload", [
    b'{"v":1,"cmd":"redirect","address":"999.0.0.1","port":7000}',
    b'{"v":1,"cmd":"redirect","address":"127.0.0.1","port":0}',
    b'{"v":1,"cmd":"redirect","address":"127.000.0.1","port":7000}',
    b'{"v":1,"cmd":"redirect","port":7000}',
])
def test_an_undecodable_redirect_is_a_protocol_error(payload):
    h = Counting()
    h.login()
    h.client_events.clear()
    h.client.receive_payload(payload, 0)
    [event] = h.client.next_actions()
    assert isinstance(event, ev.SessionEvent) and isinstance(event.message, m.Error)
    assert event.message.code in (ErrorCode.BAD_FIELD, ErrorCode.MISSING_FIELD)
    assert h.client.state is ClientState.AUTHENTICATED   # not followed


def test_a_redirect_before_the_proof_is_out_of_order():
    c = ClientSession(now=0.0, random=seeded(3))
    c.login("alice", 0)
    c.next_actions()
    c.receive_message(m.Redirect(address="127.0.0.1", port=7000), 0)
    [event] = c.next_actions()
    assert event.message.code == ErrorCode.OUT_OF_ORDER
    assert c.state is ClientState.AWAIT_CHALLENGE


def test_more_than_three_redirects_in_a_row_end_the_session():
    h = front_end()
    targets = [("127.0.0.1", 7000), ("127.0.0.2", 7002), ("127.0.0.2", 7002)]  # a loop too
    for i, (address, port) in enumerate(targets):
        h.follow(accept=False, seed=10 + i)
        assert h.client.state is ClientState.AWAIT_WELCOME
        h.server.redirect(address, port, 0)
        h.pump()
        if i < len(targets) - 1:
            assert h.client.state is ClientState.REDIRECTED
    assert len(h.client.hops) == MAX_REDIRECTS + 2
    [refused] = h.client_of(ev.RedirectRefused)
    assert refused.text == ("too many redirects: 127.0.0.1:7000 -> 127.0.0.2:7002 -> "
                            "127.0.0.1:7000 -> 127.0.0.2:7002 -> 127.0.0.2:7002")
    assert h.client_of(ev.Close)[-1].text == refused.text
    assert h.client.state is ClientState.CLOSED and h.derived == 1


def test_a_chain_ends_when_a_server_does_more_than_log_in():
    h = Counting()
    h.login()
    for i in range(MAX_REDIRECTS + 2):             # one drain after another, each served
        h.server.redirect("127.0.0.5", 7005, 0)
        h.pump()
        h.follow(seed=20 + i)
        assert h.client.state is ClientState.AUTHENTICATED
        h.client.ping(0)
        h.pump()                                   # the pong: this server did something
    assert h.client_of(ev.RedirectRefused) == [] and h.derived == 1


def test_a_refused_login_at_the_new_server_ends_the_carried_calls():
    h = Counting()
    h.login()
    c = h.client.call(0, number="+4930111")
    h.pump()
    h.server.connected(c)
    h.pump()
    h.server.redirect("127.0.0.6", 7006, 0)
    h.pump()
    h.client_events.clear()
    h.server = server_session(0, seed=30)
    h.users = {}                                   # the new server does not know alice
    h.client.reconnected(0)
    h.pump()
    [failed] = h.client_of(ev.LoginFailed)
    assert failed.code == AuthCode.BAD_CREDENTIALS
    assert [(e.call, e.message.cause) for e in h.client_of(ev.CallEvent)] == [
        (c, "network-error")]
    assert not h.client.following and h.client.calls == {}
