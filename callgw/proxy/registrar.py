"""The proxy server's registration database: where each user's devices can be reached.

Owned by the call path (ARCHITECTURE.md, "Proxy server"). A client session registers its
device at login (``register(username, contact, expires, transport)``, contact
``"udp:HOST:PORT"``); the front end refreshes every open session's registration while the
session lives (the listeners keep it alive only while the client pings) and removes it when the
session closes. Lookups are answered from memory; every change is written through to the store
(``registrations`` table) so other nodes and inbound calls (a later issue) can find devices.
``Registrar`` is a service: a sweep every ``sweep_interval`` seconds drops expired entries from
memory and the store.

Tests: tests/callpath/test_gateways.py.
"""
from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from callgw.interfaces import IRegistrar


@implementer(IRegistrar)
class Registrar(Service):
    """In-memory registrations, written through to the store."""

    log = Logger()
    name = "registrar"

    def __init__(self, store, clock, node: str, sweep_interval: float = 30.0):
        self.store = store
        self.clock = clock
        self.node = node
        self.sweep_interval = sweep_interval
        self.contacts: dict[str, dict[str, tuple[str, float]]] = {}
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.sweep)
        self._loop.clock = self.clock
        self._loop.start(self.sweep_interval, now=False).addErrback(
            lambda f: self.log.failure("registration sweep stopped", f))

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def register(self, username: str, contact: str, expires: float,
                 transport: str = "udp") -> None:
        """Record ``username`` at ``contact`` for ``expires`` seconds from now."""
        until = self.clock.seconds() + expires
        self.contacts.setdefault(username, {})[contact] = (transport, until)
        if self.store is not None:
            self.store.run("register", username, contact, transport, self.node,
                           until).addErrback(self._failed, "saving", username)

    def unregister(self, username: str, contact: str) -> None:
        entries = self.contacts.get(username)
        if entries is not None:
            entries.pop(contact, None)
            if not entries:
                del self.contacts[username]
        if self.store is not None:
            self.store.run("unregister", username, contact).addErrback(
                self._failed, "removing", username)

    def lookup(self, username: str) -> list[dict]:
        """The user's live contacts: ``[{"contact", "transport", "expires"}]``."""
        now = self.clock.seconds()
        return [{"contact": c, "transport": t, "expires": e}
                for c, (t, e) in self.contacts.get(username, {}).items() if e > now]

    def sweep(self) -> None:
        """Drop expired registrations from memory and from the store."""
        now = self.clock.seconds()
        for username in list(self.contacts):
            entries = self.contacts[username]
            for contact in [c for c, (_, e) in entries.items() if e <= now]:
                del entries[contact]
            if not entries:
                del self.contacts[username]
        if self.store is not None:
            self.store.run("expire_registrations", now).addErrback(
                self._failed, "expiring", "*")

    def _failed(self, failure, what: str, username: str) -> None:
        from callgw.store.errors import StoreUnavailable
        if failure.check(StoreUnavailable):     # kept in memory; the next write catches up
            self.log.warn("registrar: {what} registration of {user}: {cause}", what=what,
                          user=username, cause=str(failure.value))
            return
        self.log.failure("registrar: {what} registration of {user}", failure, what=what,
                         user=username)
