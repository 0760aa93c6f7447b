"""The static registry of native protocols: one entry per leg provider.

Owned by the call path (docs/architecture.md, "Adding a protocol"). Both the composition root
(``callgw/compose.py``, which builds one ``ILegProvider`` per entry) and the admin CLI (a
separate process, which validates ``callgw gateway add --protocol P`` and P's options) read
``PROTOCOLS``; nothing else names a protocol. A protocol that has no entry here is refused at
``gateway add`` with one line, and gateway selection never returns a gateway of a protocol
without a provider.

An entry (``LegProtocol``, ``callgw.callserver.legs.entry``) holds what both readers need
without starting anything:

- ``name`` and ``default_port`` (the gateway's port when ``--address`` has none);
- ``options``: the protocol's gateway options, each an ``Option`` (its CLI flag, default, help
  and a check that returns the normalized value or raises ``ValueError`` with one line);
- ``check_gateway(row)``: checks across options and the address (e.g. a TLS gateway needs a
  host name or a CA file), raising ``ValueError``;
- ``build(config, reactor)``: the provider for a running gateway;
- ``probe_modes``: the gateway's health probing modes (``--probe``; SIP ``options`` or
  ``off``), the first the default.

Tests: tests/callpath/test_leg_registry.py.
"""
from __future__ import annotations

from callgw.callserver.legs import h323_provider, mgcp_provider, sip_provider
from callgw.callserver.legs.entry import LegProtocol

#: name -> entry. Adding a protocol: one module with its ``PROTOCOL`` and one line here.
PROTOCOLS: dict[str, LegProtocol] = {entry.name: entry for entry in (
    sip_provider.PROTOCOL, mgcp_provider.PROTOCOL, h323_provider.PROTOCOL)}


def protocol(name: str) -> LegProtocol:
    """The entry for ``name``; ``ValueError`` with one line when callgw has no such leg."""
    entry = PROTOCOLS.get(name)
    if entry is None:
        raise ValueError(f"protocol {name!r} is not available in this callgw (available: "
                         f"{', '.join(sorted(PROTOCOLS))})")
    return entry
