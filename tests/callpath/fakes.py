"""Fakes for the call-path unit tests: a synchronous store, legs, a client connection."""
from __future__ import annotations

from twisted.internet.defer import fail, succeed
from zope.interface import implementer

from callgw.callserver import events as ev
from callgw.interfaces import ICallLeg, ILegProvider, IMediaSession, LegUnavailable
from callgw.store.db import Database


class SyncStore:
    """``IStore.run`` and ``write`` over an in-memory Database, firing at once."""

    def __init__(self, db: Database | None = None):
        self.db = db or Database(":memory:")
        self.db.migrate()
        self.calls: list[str] = []
        self.watchers = []

    def run(self, name, *args, **kwargs):
        self.calls.append(name)
        try:
            return succeed(getattr(self.db, name)(*args, **kwargs))
        except Exception as e:      # noqa: BLE001 - turned into a failed Deferred
            return fail(e)

    def write(self, fn, *args, **kwargs):
        self.calls.append(getattr(fn, "__name__", repr(fn)))
        try:
            return succeed(fn(self.db, *args, **kwargs))
        except Exception as e:      # noqa: BLE001 - turned into a failed Deferred
            return fail(e)

    def watch(self, callback):
        self.watchers.append(callback)


@implementer(ICallLeg)
class FakeLeg:
    """A leg that records what it is sent; ``emit`` plays its peer."""

    def __init__(self, name="sip", gateway=None, call_id=None, script=None):
        self.name = name
        self.gateway = gateway
        self.call_id = call_id
        self.sink = None
        self.sent: list = []
        self.closed = False
        self.script = script or {}
        self.dead = None
        self.recover = None         # what recovery() returns once answered
        self.stats = None

    def attach(self, sink):
        self.sink = sink

    def send(self, event):
        self.sent.append(event)
        for reply in self.script.get(type(event).__name__, ()):
            self.emit(reply)

    def close(self):
        self.closed = True

    def emit(self, event):
        self.sink(self, event)

    def liveness(self):
        return self.dead

    def recovery(self):
        return self.recover

    def statistics(self):
        return self.stats

    def kinds(self):
        return [type(e).__name__ for e in self.sent]


@implementer(ILegProvider)
class SlaveFactory:
    """A leg provider (for ``protocol``) making FakeLegs per gateway; ``scripts[gateway
    name]`` scripts each one; a gateway named in ``unavailable`` gets ``LegUnavailable``.
    Called directly it is the handler's ``slave_factory``."""

    shutdown_grace = 0.0

    def __init__(self, scripts=None, protocol="sip", unavailable=()):
        self.name = protocol
        self.legs: list[FakeLeg] = []
        self.scripts = scripts or {}
        self.unavailable = set(unavailable)
        self.released_orphans: list = []

    def make_leg(self, gateway, call_id):
        if gateway["name"] in self.unavailable:
            raise LegUnavailable("no leg for this gateway now")
        leg = FakeLeg(self.name, gateway, call_id, self.scripts.get(gateway["name"]))
        self.legs.append(leg)
        return leg

    __call__ = make_leg

    def start(self):
        return succeed(None)

    def stop(self):
        return succeed(None)

    def ping(self, gateway):
        return succeed(0.001)

    def capacity(self, gateway):
        return None

    def release_orphan(self, gateway, recovery):
        self.released_orphans.append((gateway, recovery))
        return succeed(None)


class FakeConn:
    """A ClientConnection as the listeners provide it."""

    def __init__(self, username="alice", user=None, tenant=None, peer=("127.0.0.1", 40000),
                 framing="udp"):
        self.username = username
        self.user = user or {"username": username, "tenant": "default", "number": "+15550001",
                             "country": None, "enabled": 1}
        self.tenant = tenant if tenant is not None else {"name": "default"}
        self.peer = peer
        self.framing = framing
        self.sent: list = []
        self.closed = False

    def send(self, message):
        self.sent.append(message)

    def send_media(self, frame):
        pass

    def close(self, reason=None):
        self.closed = True

    def commands(self):
        return [msg.command for msg in self.sent]


def gateway(name, prefixes=("+",), protocol="sip", capacity=10, priority=10, weight=100,
            status="unknown"):
    return {"name": name, "protocol": protocol, "host": "127.0.0.1", "port": 5060,
            "options": {"transport": "udp"}, "prefixes": list(prefixes), "capacity": capacity,
            "priority": priority, "weight": weight, "status": status, "enabled": True}


RING = (ev.Proceeding(), ev.Alerting())


@implementer(IMediaSession)
class AddressOnlyMediaSession:
    """An IMediaSession that allocates RTP addresses from a port range and moves no audio."""

    def __init__(self, pool: "PortPool"):
        self.pool = pool
        self.ports: list[int] = []

    def allocate(self, side):
        port = self.pool.take()
        self.ports.append(port)
        return succeed((self.pool.address, port))

    def connect(self, side, media):
        pass

    def statistics(self):
        return {}

    def close(self):
        for port in self.ports:
            self.pool.give(port)
        self.ports = []
        return succeed({})

    def liveness(self):
        return None

    def bind(self, leg, handler):
        """No audio to route: the client leg keeps no media session."""


class PortPool:
    """Even RTP ports from ``low``..``high`` handed out round-robin (no sockets)."""

    def __init__(self, address: str, low: int, high: int):
        self.address = address
        self.free = list(range(low + (low % 2), high, 2))
        self._next = 0
        self.used: set[int] = set()

    def take(self) -> int:
        for _ in range(len(self.free)):
            port = self.free[self._next]
            self._next = (self._next + 1) % len(self.free)
            if port not in self.used:
                self.used.add(port)
                return port
        raise RuntimeError("no free RTP ports")

    def give(self, port: int) -> None:
        self.used.discard(port)
