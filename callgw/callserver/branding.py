"""The branding unit: a tenant's branding as the client protocol carries it.

Owned by the call path (ARCHITECTURE.md, "Call director"). ``branding_for(tenant)`` turns the
store's tenant branding (display name, logo address, colours, greeting text; see
``callgw.store.db.DEFAULT_BRANDING``) into the ``branding`` object of ``welcome``: at most 16
entries, keys ``[a-z][a-z0-9_]{0,31}``, string values of at most 256 characters without control
characters (protocols/client/messages.py, BRANDING). Anything else is dropped, never sent.
Results are cached per tenant until ``invalidate``.

Tests: tests/callpath/test_director.py.
"""
from __future__ import annotations

import re

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_ORDER = ("display_name", "logo", "primary_color", "accent_color", "greeting")


def clean_branding(raw: dict | None) -> dict[str, str]:
    """The protocol-safe subset of ``raw``: the known keys first, then others, at most 16."""
    out: dict[str, str] = {}
    if not isinstance(raw, dict):
        return out
    keys = [k for k in _ORDER if k in raw] + sorted(k for k in raw if k not in _ORDER)
    for key in keys:
        value = raw[key]
        if not isinstance(key, str) or not _KEY.match(key) or value is None:
            continue
        text = str(value)[:256]
        if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
            continue
        out[key] = text
        if len(out) == 16:
            break
    return out


class BrandingUnit:
    """Per-tenant branding for ``welcome`` and call status."""

    def __init__(self):
        self._cache: dict[str, dict[str, str]] = {}

    def invalidate(self) -> None:
        self._cache.clear()

    def cached(self, name: str) -> dict[str, str] | None:
        """The branding already known for tenant ``name``, or None."""
        found = self._cache.get(name)
        return dict(found) if found is not None else None

    def branding_for(self, tenant) -> dict[str, str]:
        """``tenant`` is the store's tenant row (a dict with ``branding``) or None."""
        if not isinstance(tenant, dict):
            return {}
        name = tenant.get("name", "")
        cached = self._cache.get(name)
        if cached is None:
            cached = self._cache[name] = clean_branding(tenant.get("branding"))
        return dict(cached)
