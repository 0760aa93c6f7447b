"""callgw's Python client library: ``connect(url)`` then ``login``, ``call``, ``logout``.

Owned by the client library. URLs: ``udp://HOST:PORT``, ``tcp://HOST:PORT``,
``tls://HOST:PORT``, ``wss://HOST:PORT`` and ``https://HOST:PORT`` (see ``links.py``); the
session and call objects are in ``session.py``; ``dial.py`` is the ``callgw-dial`` command.
"""
from callgw.client.links import ConnectError, connect
from callgw.client.session import (ClientCall, ClientSession, LoginRefused, RedirectFailed,
                                   SessionLost)

__all__ = ["connect", "ConnectError", "ClientSession", "ClientCall", "LoginRefused",
           "SessionLost", "RedirectFailed"]
