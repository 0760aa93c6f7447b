"""Ports for the peers the tests start (sipp, baresip, twistd, our own listeners), picked robustly.

This machine is shared: a port the OS said was free a moment ago may be taken by the time a
peer binds it (CI runs failed on sipp's "Unable to bind remote control socket ... Address
already in use"). Listeners a test opens itself bind port 0 and cannot clash; a peer process
needs a number. So a test never trusts one pick: it starts its peer through ``retry_ports``,
which calls a start function that picks fresh ports each time and tries again when the peer
says its port was taken.

- ``free_port(kind, both, even, count)``: a port free on 127.0.0.1 now, in 25000-26999 (the
  range that stays clear of other work here), UDP or TCP or both, optionally an even port with
  ``count`` consecutive ones after it free too (RTP/RTCP pairs);
- ``port_taken(text)``: whether a peer's output says it could not bind (sipp, baresip, twistd,
  Python's own ``OSError``);
- ``PortTaken``: what a start function raises to ask for another try;
- ``retry_ports(start, attempts)``: ``start()`` until it does not raise ``PortTaken``
  (``retry_ports_deferred`` for a start that returns a Deferred);
- ``bound_by(pid, port, kind)``: whether process ``pid`` itself holds ``port`` (so a peer is
  not taken for started because someone else holds the port it was told to use).

Tests: tests/test_ports.py.
"""
from __future__ import annotations

import errno
import os
import random
import re
import socket

LOW, HIGH = 25000, 27000
_BIND_FAILURE = re.compile(
    r"unable to bind|could not bind|cannot bind|can't bind|couldn't listen|"
    r"address already in use|errno\s*=?\s*98\b|eaddrinuse|bind failed|"
    r"cannotlistenerror", re.IGNORECASE)


class PortTaken(RuntimeError):
    """A peer could not bind a port chosen for it: pick others and start it again."""


def free_port(kind: int = socket.SOCK_DGRAM, both: bool = False, even: bool = False,
              count: int | None = None, host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, in 25000-26999; ``both``: free for UDP and TCP;
    ``even``: an even port; ``count``: that many consecutive ports from it are free (4 for
    ``even``: RTP and RTCP of audio and video, as sipp's ``-mp`` uses them; else 1)."""
    if count is None:
        count = 4 if even else 1
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if both else (kind,)
    for _ in range(500):
        port = random.randrange(LOW, HIGH - count)
        if even:
            port &= ~1
        try:
            for k in kinds:
                for p in range(port, port + count):
                    with socket.socket(socket.AF_INET, k) as s:
                        s.bind((host, p))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port in {LOW}-{HIGH - 1}")


def port_taken(text: str | bytes) -> bool:
    """Whether a peer's output says that a port it was given is in use."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return bool(_BIND_FAILURE.search(text or ""))


def is_port_taken_error(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``OSError``, a Twisted ``CannotListenError``) means "in use"."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return True
        if type(exc).__name__ == "CannotListenError":
            return True
        exc = exc.__cause__ or getattr(exc, "socketError", None)
    return False


def retry_ports(start, attempts: int = 5):
    """``start()`` (which picks fresh ports each call) until it does not raise
    ``PortTaken``; its result. After ``attempts`` clashes the last ``PortTaken`` is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except PortTaken:
            if attempt == attempts:
                raise


def retry_ports_deferred(start, attempts: int = 5):
    """Like ``retry_ports`` for a ``start()`` returning a Deferred: fires with its result,
    trying again (fresh ports) when it fails with ``PortTaken``."""
    from twisted.internet import defer

    @defer.inlineCallbacks
    def run():
        for attempt in range(1, attempts + 1):
            try:
                result = yield start()
            except PortTaken:
                if attempt == attempts:
                    raise
                continue
            return result
    return run()


def _inodes(pid: int) -> set[str]:
    found = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def bound_by(pid: int, port: int, kind: int = socket.SOCK_DGRAM) -> bool:
    """Whether process ``pid`` holds a socket bound to ``port`` (IPv4, Linux ``/proc``)."""
    table = "/proc/net/udp" if kind == socket.SOCK_DGRAM else "/proc/net/tcp"
    want = f":{port:04X}"
    try:
        with open(table) as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return False
    inodes = {cols[9] for cols in (r.split() for r in rows)
              if len(cols) > 9 and cols[1].endswith(want)}
    return bool(inodes & _inodes(pid)) if inodes else False
