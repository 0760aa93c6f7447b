"""``twistd callgw``: command-line options and ``makeService``.

Owned by operations. The plugin in twisted_plugins/callgw_plugin.py names this module lazily, so
an import error here shows up as an error instead of a vanished plugin.

Tests: tests/test_plugin.py.
"""
from __future__ import annotations

from twisted.python import usage

from callgw.config import ConfigError, load
from callgw.runtime import tune_collector


ROLES = ("all", "frontend", "callserver")


class Options(usage.Options):
    synopsis = "[--config FILE] [--role all|frontend|callserver]"
    longdesc = ("Run the callgw telephony gateway. Without --config, every setting has its "
                "default. --role overrides [cluster] role: all (one process, the default), "
                "frontend (authenticates clients and sends them to a call server) or "
                "callserver (places calls; front ends send clients to it).")
    optParameters = [["config", "c", None, "TOML configuration file (see `callgw config show`)"],
                     ["role", "r", None, "all, frontend or callserver (default: [cluster] role)"]]

    def postOptions(self):
        if self["role"] is not None and self["role"] not in ROLES:
            raise usage.UsageError(f"--role {self['role']}: expected one of {', '.join(ROLES)}")
        try:
            config = load(self["config"])
            if self["role"] is not None:
                config = config.with_overrides({"cluster": {"role": self["role"]}})
            self["loaded"] = config
        except ConfigError as e:
            raise usage.UsageError(f"configuration: {e}") from None


def makeService(options):
    """Build the GatewayService for twistd from parsed ``Options``."""
    from callgw.service import GatewayService
    config = options["loaded"] if "loaded" in options else load(options.get("config"))
    service = GatewayService(config)
    # A process of its own: once up, move start-up objects out of the collector's way so
    # full collections do not stall the per-packet and per-call paths (docs/performance.md).
    service.ready.addCallbacks(_freeze_startup_objects, _already_logged)
    return service


def _already_logged(failure):
    """GatewayService logged the start-up failure with its cause: a gateway that cannot bind
    its listeners or open its database must not linger half-started, so twistd stops -- and
    the process exits with status 1, so a supervisor or a script sees it failed."""
    from twisted.internet import reactor
    _exit_status_at_exit(1)
    if reactor.running:
        reactor.stop()
    else:                       # failed while twistd starts services, before the loop runs
        reactor.callWhenRunning(reactor.stop)


def _exit_status_at_exit(code: int) -> None:
    """twistd exits 0 once its reactor stopped, whatever stopped it: end the process with
    ``code`` once twistd is done (its cleanup, the pidfile, ran before ``atexit``)."""
    import atexit
    import os
    import sys

    def end():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    atexit.register(end)


def _freeze_startup_objects(service):
    tune_collector()
    return service
