"""MGCP endpoint names, their wildcards, and how a given gateway reads them.

Owns RFC 3435 2.1.1-2.1.2: an endpoint name is ``local@domain``, the local name a
``/``-separated hierarchy (``aaln/1``, ``ds/ds1-1/17``, ``rtpbridge/1``), compared without regard
to case; a term may be a wildcard: ``$`` "any of" (the gateway picks one, and names it in the
response's SpecificEndPointID ``Z:``) and ``*`` "all of" (AUEP, DLCX, RSIP over every endpoint
the term covers; a final ``*`` covers the rest of the hierarchy, as in ``*@gw``).

Gateways differ: a ``Dialect`` says which term means "any" in a CRCX, which means "all", which
ones the gateway refuses, and whether it reads piggy-backed datagrams. ``RFC3435`` is the RFC;
``OSMO_MGW`` is osmo-mgw 1.10, which answers 500 to ``$``, takes ``*`` in a CRCX as "any free
endpoint" (its Z: names the one it took), ignores lower-case verbs, and answers 539 to
piggy-backed messages and to a ResponseAck ``K:`` in CRCX, MDCX or DLCX
(docs/protocols/mgcp.md, "Deviations"). ``Dialect.specific`` gives the
name to use after a response: the ``Z:`` name when the gateway picked, else the name asked for.

Tests: tests/mgcp/test_endpoint.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EndpointName", "EndpointNameError", "Dialect", "RFC3435", "OSMO_MGW", "DIALECTS",
           "ANY", "ALL"]

ANY = "$"
ALL = "*"
_TERM = re.compile(r"[!-~]+\Z")                 # visible ASCII
_DOMAIN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(:\d{1,5})?\Z")


class EndpointNameError(ValueError):
    """An endpoint name that is not ``local@domain``, or one a gateway would refuse."""


@dataclass(frozen=True, slots=True)
class EndpointName:
    """``local`` terms and ``domain`` of one endpoint name (RFC 3435 2.1.2)."""
    local: tuple[str, ...]
    domain: str

    @classmethod
    def parse(cls, text: str) -> "EndpointName":
        if not isinstance(text, str):
            raise EndpointNameError(f"not an endpoint name: {text!r}")
        local, at, domain = text.partition("@")
        if not at or not local or not domain:
            raise EndpointNameError(f"{text!r} is not local@domain")
        if not _DOMAIN.match(domain):
            raise EndpointNameError(f"{text!r}: bad domain {domain!r}")
        terms = tuple(local.split("/"))
        for term in terms:
            if not term or not _TERM.match(term) or "@" in term:
                raise EndpointNameError(f"{text!r}: bad local name term {term!r}")
            if term not in (ANY, ALL) and (ANY in term or ALL in term):
                raise EndpointNameError(f"{text!r}: a wildcard must be a whole term")
        return cls(terms, domain)

    def __str__(self) -> str:
        return "/".join(self.local) + "@" + self.domain

    @property
    def key(self) -> str:
        """The name folded for comparison and dictionary keys."""
        return str(self).casefold()

    @property
    def wildcard(self) -> bool:
        return any(t in (ANY, ALL) for t in self.local)

    def has(self, term: str) -> bool:
        return term in self.local

    def covers(self, other: "EndpointName") -> bool:
        """Whether ``other`` is one of the endpoints this (possibly wildcarded) name names."""
        if self.domain.casefold() != other.domain.casefold():
            return False
        mine, theirs = self.local, other.local
        if mine and mine[-1] in (ANY, ALL) and len(theirs) >= len(mine):
            theirs = theirs[:len(mine)]
        if len(mine) != len(theirs):
            return False
        return all(a in (ANY, ALL) or a.casefold() == b.casefold() for a, b in zip(mine, theirs))


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one kind of gateway reads endpoint names and datagrams.

    ``any_of``: the term that makes the gateway pick a free endpoint in a CRCX; ``all_of``:
    the term for "every endpoint" (None: not understood); ``refused``: terms the gateway
    answers with an error; ``piggyback``: whether it reads several messages in one datagram;
    ``response_ack``: whether its commands may carry ResponseAck ``K:`` lists.
    """
    name: str
    any_of: str = ANY
    all_of: str | None = ALL
    refused: frozenset = frozenset()
    piggyback: bool = True
    response_ack: bool = True

    def check(self, name: EndpointName | str) -> EndpointName:
        """``name`` parsed, or EndpointNameError saying why this gateway would refuse it."""
        if isinstance(name, str):
            name = EndpointName.parse(name)
        for term in self.refused:
            if name.has(term):
                hint = (f"; it takes {self.any_of!r} as any free endpoint"
                        if self.any_of != term else "")
                raise EndpointNameError(f"{self.name} refuses {term!r} in {name}{hint}")
        return name

    def picks(self, name: EndpointName) -> bool:
        """Whether a CRCX to ``name`` lets the gateway choose (its response carries Z:)."""
        return name.has(self.any_of)

    def specific(self, requested: EndpointName, response) -> EndpointName:
        """The endpoint a CRCX response says the connection lives on: its ``Z:`` name when
        there is one (it must fall under ``requested``), else ``requested`` itself, which
        must then name one endpoint."""
        z = response.param("Z")
        if z:
            named = EndpointName.parse(z)
            if named.wildcard or not requested.covers(named):
                raise EndpointNameError(f"gateway named {named} for {requested}")
            return named
        if self.picks(requested) or requested.wildcard:
            raise EndpointNameError(f"gateway chose an endpoint for {requested} but sent no Z:")
        return requested


RFC3435 = Dialect("rfc3435")
OSMO_MGW = Dialect("osmo-mgw", any_of=ALL, all_of=None, refused=frozenset({ANY}),
                   piggyback=False, response_ack=False)
DIALECTS = {d.name: d for d in (RFC3435, OSMO_MGW)}
