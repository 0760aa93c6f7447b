"""Test helpers for the client protocol: a user directory, configured sessions, and a harness
that shuttles bytes between a ClientSession and a ServerSession so tests read like the call
flows in docs/protocol.md.
"""
from __future__ import annotations

import random as _random
from dataclasses import dataclass

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client import scram
from protocols.client.client_session import ClientSession
from protocols.client.session import ServerConfig, ServerSession
from protocols.client.throttle import LoginThrottle
from protocols.client.tokens import TokenSigner

FAST = dict(n=16, r=1, p=1)          # cheap scrypt parameters: tests, not production
KEY_A = ("k1", b"A" * 32)
KEY_B = ("k2", b"B" * 32)


@dataclass(frozen=True)
class Cred:
    salt: bytes
    n: int
    r: int
    p: int
    stored_key: bytes
    server_key: bytes


def credential(password: str, salt: bytes = b"saltsalt") -> Cred:
    stored, server = scram.keys_for(password, salt, **FAST)
    return Cred(salt, FAST["n"], FAST["r"], FAST["p"], stored, server)


USERS = {"alice": credential("wonderland"), "bob": credential("builder", b"pepperpepper")}


def seeded(seed: int = 1):
    rng = _random.Random(seed)
    return lambda n: rng.randbytes(n)


def server_session(now: float = 0.0, *, signer: TokenSigner | None = None,
                   throttle: LoginThrottle | None = None, peer=("192.0.2.7", 40000),
                   seed: int = 2, proven_source: bool = True, **config) -> ServerSession:
    return ServerSession(peer=peer, signer=signer if signer is not None else TokenSigner(KEY_A),
                         throttle=throttle if throttle is not None else LoginThrottle(),
                         config=ServerConfig(fake_salt_key=b"F" * 16, **config),
                         now=now, random=seeded(seed), proven_source=proven_source)


def client_session(now: float = 0.0, seed: int = 3) -> ClientSession:
    return ClientSession(now=now, random=seeded(seed))


class Harness:
    """A client and a server session joined by a perfect link; ``wire`` records every payload
    as ``(">" or "<", bytes)`` (client to server, server to client)."""

    def __init__(self, password: str = "wonderland", *, users=None, server=None, client=None,
                 accept: dict | None = None, now: float = 0.0) -> None:
        self.now = now
        self.password = password
        self.users = USERS if users is None else users
        self.server = server or server_session(now)
        self.client = client or client_session(now)
        self.accept = {"name": "Alice", "branding": {"title": "ACME"}} if accept is None \
            else accept
        self.server_events: list = []
        self.client_events: list = []
        self.wire: list[tuple[str, bytes]] = []

    def pump(self) -> None:
        busy = True
        while busy:
            busy = False
            for action in self.client.next_actions():
                busy = True
                self.client_action(action)
            for action in self.server.next_actions():
                busy = True
                self.server_action(action)

    def client_action(self, action) -> None:
        if isinstance(action, ev.Send):
            data = m.encode(action.message)
            self.wire.append((">", data))
            self.server.receive_payload(data, self.now)
        elif isinstance(action, ev.SendMedia):
            self.wire.append((">", action.payload))
            self.server.receive_payload(action.payload, self.now)
        elif isinstance(action, ev.DeriveKey):
            salted = scram.salted_password(self.password, action.salt, action.n, action.r,
                                           action.p)
            self.client.key_derived(salted, self.now)
        else:
            self.client_events.append(action)

    def server_action(self, action) -> None:
        if isinstance(action, ev.Send):
            data = m.encode(action.message)
            self.wire.append(("<", data))
            self.client.receive_payload(data, self.now)
        elif isinstance(action, ev.SendMedia):
            self.wire.append(("<", action.payload))
            self.client.receive_payload(action.payload, self.now)
        elif isinstance(action, ev.LookupCredentials):
            self.server.credentials_found(action.user, self.users.get(action.user), self.now)
        elif isinstance(action, ev.Authenticated) and self.accept is not False:
            self.server_events.append(action)
            self.server.accept(self.now, **self.accept)
        else:
            self.server_events.append(action)

    def login(self, user: str = "alice") -> None:
        self.client.login(user, self.now)
        self.pump()

    def client_of(self, kind) -> list:
        return [e for e in self.client_events if isinstance(e, kind)]

    def server_of(self, kind) -> list:
        return [e for e in self.server_events if isinstance(e, kind)]

    def sent(self, direction: str) -> list[m.Message]:
        return [m.decode(d) for t, d in self.wire if t == direction and d[:1] == b"{"]

    def call_messages(self, call: str) -> list[str]:
        return [e.message.command for e in self.client_of(ev.CallEvent) if e.call == call]
