"""What a native protocol's registry entry holds: its options and how to build its provider.

Owned by the call path. ``LegProtocol`` is read by the admin CLI (to validate a gateway's
options) and by the composition root (to build the protocol's ``ILegProvider``); see
``callgw.callserver.legs.registry``.

Tests: tests/callpath/test_leg_registry.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Option:
    """One per-protocol gateway option (stored in the gateway row's ``options`` column)."""
    key: str
    flag: str
    help: str
    default: Any = None
    check: Callable[[Any], Any] = str
    action: str | None = None       # argparse action ("store_true", "append"), None: a value


@dataclass(frozen=True)
class LegProtocol:
    """A native protocol as the CLI and the composition root see it."""
    name: str
    default_port: int
    options: tuple[Option, ...]
    build: Callable[..., Any]                      # (config, reactor) -> ILegProvider
    check_gateway: Callable[[dict], None] = field(default=lambda row: None)
    probe_modes: tuple[str, ...] = ("off",)        # the first is the default; "off": none

    def check_probe(self, mode: str | None) -> str:
        """The gateway's probing mode (``--probe``): one of ``probe_modes``."""
        mode = (mode or self.probe_modes[0]).lower()
        if mode not in self.probe_modes:
            raise ValueError(f"--probe: {mode!r}: {self.name} gateways take "
                             f"{' or '.join(self.probe_modes)}")
        return mode

    def check_options(self, given: dict) -> dict:
        """The gateway's options, defaults filled in and each checked; ``ValueError`` names
        the first bad one (by its CLI flag) or one this protocol does not have."""
        known = {o.key: o for o in self.options}
        for key in given:
            if key not in known:
                raise ValueError(f"{self.name} gateways have no option {key!r}")
        out = {}
        for option in self.options:
            value = given.get(option.key, option.default)
            if value is None:
                continue
            try:
                out[option.key] = option.check(value)
            except ValueError as e:
                raise ValueError(f"{option.flag}: {e}") from None
        return out
