"""What stops callgw from starting, said in one line that names it.

Owned by operations. A part that cannot start because of the machine or the configuration -- a
listener whose address is taken, a certificate or key file that is missing or unreadable, a log
file that cannot be written -- raises ``StartupError`` with one line naming the setting or the
address and the cause (``[web] cert /etc/callgw/cert.pem: No such file or directory``).
``describe(failure)`` gives that line for a start-up failure (also for a bare
``CannotListenError`` or an ``OSError`` about a file), or None for anything else, which is a bug
and keeps its traceback. ``GatewayService`` logs the line; under ``twistd`` the process then
exits with status 1 (callgw/tap.py).

Tests: tests/test_startup_errors.py.
"""
from __future__ import annotations


class StartupError(Exception):
    """A part cannot start; ``str()`` is one line naming what and why."""


def describe(failure) -> str | None:
    """One line for a start-up failure the operator can fix, else None."""
    from twisted.internet.error import CannotListenError
    value = failure.value
    inner = getattr(value, "subFailure", None)      # a DeferredList's FirstError
    if inner is not None:
        value = inner.value
    if isinstance(value, StartupError):
        return str(value)
    if isinstance(value, CannotListenError):
        return f"cannot listen on {value.interface or '*'}:{value.port}: {_why(value.socketError)}"
    if isinstance(value, OSError) and value.filename:
        return f"{value.filename}: {value.strerror or value}"
    return None


def _why(error) -> str:
    return getattr(error, "strerror", None) or str(error)


def cannot_listen(name: str, where: str, error) -> StartupError:
    """The StartupError of listener ``name`` on ``where`` that could not bind."""
    socket_error = getattr(error, "socketError", error)
    return StartupError(f"cannot listen: {name} on {where}: {_why(socket_error)}")
