"""A simulated UDP network for the client protocol: a lossy, duplicating, reordering link, an
injected clock, and a client and a server each made of a ReliableEndpoint and a session."""
from __future__ import annotations

import heapq
import random

from protocols.client import events as ev
from protocols.client import scram
from protocols.client.errors import ErrorCode
from protocols.client.messages import CLIENT, SERVER
from protocols.client.reliable import ReliableEndpoint

from .builders import USERS, client_session, server_session


class LossyLink:
    """Drops ``loss`` of datagrams, duplicates ``dup`` of them, delays each by a random time
    (so later datagrams overtake earlier ones)."""

    def __init__(self, rng: random.Random, loss=0.3, dup=0.1, delay=(0.005, 0.25)):
        self.rng, self.loss, self.dup, self.delay = rng, loss, dup, delay
        self.queue: list = []
        self.seq = 0
        self.sent = self.dropped = 0

    def send(self, now: float, dest: str, data: bytes) -> None:
        self.sent += 1
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        for _ in range(2 if self.rng.random() < self.dup else 1):
            self.seq += 1
            heapq.heappush(self.queue, (now + self.rng.uniform(*self.delay), self.seq, dest,
                                        data))


class Net:
    """Client and server over a LossyLink; ``run(until)`` advances the clock event by event."""

    def __init__(self, seed: int, password="wonderland", **link) -> None:
        self.now = 0.0
        self.link = LossyLink(random.Random(seed), **link)
        self.password = password
        self.ends = {CLIENT: ReliableEndpoint(sender=CLIENT, validated=True),
                     SERVER: ReliableEndpoint(sender=SERVER)}
        self.sessions = {CLIENT: client_session(0.0, seed=seed + 1),
                         SERVER: server_session(0.0, seed=seed + 2)}
        self.events = {CLIENT: [], SERVER: []}
        self.on_server_event = None       # callback(net, event) for call tests

    @property
    def client(self):
        return self.sessions[CLIENT]

    @property
    def server(self):
        return self.sessions[SERVER]

    def flush(self) -> None:
        busy = True
        while busy:
            busy = False
            for side in (CLIENT, SERVER):
                for action in self.sessions[side].next_actions():
                    busy = True
                    self._act(side, action)
        for side, dest in ((CLIENT, SERVER), (SERVER, CLIENT)):
            for data in self.ends[side].datagrams_to_send(self.now):
                self.link.send(self.now, dest, data)

    def _act(self, side: str, action) -> None:
        end, session = self.ends[side], self.sessions[side]
        if isinstance(action, ev.Send):
            end.send(action.message, self.now)
        elif isinstance(action, ev.SendMedia):
            end.send_media(action.payload)
        elif isinstance(action, ev.DeriveKey):
            session.key_derived(scram.salted_password(self.password, action.salt, action.n,
                                                      action.r, action.p), self.now)
        elif isinstance(action, ev.LookupCredentials):
            session.credentials_found(action.user, USERS.get(action.user), self.now)
        elif isinstance(action, ev.Authenticated):
            session.accept(self.now)
        elif isinstance(action, ev.SealDatagrams):
            end.seal_datagrams(action.send_key, action.receive_key, action.required)
        else:
            if isinstance(action, ev.LoggedIn):
                end.address_validated()
            self.events[side].append(action)
            if side == SERVER and self.on_server_event is not None:
                self.on_server_event(self, action)

    def _next_time(self) -> float | None:
        times = [self.link.queue[0][0]] if self.link.queue else []
        for side in (CLIENT, SERVER):
            times += [t for t in (self.ends[side].get_timer(), self.sessions[side].get_timer())
                      if t is not None]
        return min(times) if times else None

    def run(self, until, limit: float = 300.0) -> bool:
        self.flush()
        while not until(self):
            t = self._next_time()
            if t is None or t > limit:
                return False
            self.now = max(self.now, t)
            while self.link.queue and self.link.queue[0][0] <= self.now:
                _, _, dest, data = heapq.heappop(self.link.queue)
                for item in self.ends[dest].receive_datagram(data, self.now):
                    self.sessions[dest].receive(item, self.now)
            for side in (CLIENT, SERVER):
                end, session = self.ends[side], self.sessions[side]
                if end.get_timer() is not None and end.get_timer() <= self.now:
                    end.handle_timer(self.now)
                    if end.failure is not None:
                        session.close(self.now, ErrorCode.UNREACHABLE, end.failure.text)
                if session.get_timer() is not None and session.get_timer() <= self.now:
                    session.handle_timer(self.now)
            self.flush()
        return True
