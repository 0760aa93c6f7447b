"""Endpoint names and gateway dialects (protocols/mgcp/endpoint.py): RFC 3435 2.1.2 wildcards,
osmo-mgw's reading of them, and the specific name from Z: used after a wildcard CRCX."""
from __future__ import annotations

import pytest

from protocols.mgcp.endpoint import OSMO_MGW, RFC3435, EndpointName, EndpointNameError
from protocols.mgcp.message import Response


def n(text):
    return EndpointName.parse(text)


def test_names_parse_and_compare_without_case():
    name = n("ds/DS1-1/17@Gw.Example.net")
    assert name.local == ("ds", "DS1-1", "17") and name.domain == "Gw.Example.net"
    assert str(name) == "ds/DS1-1/17@Gw.Example.net"
    assert name.key == n("DS/ds1-1/17@gw.example.NET").key
    assert n("aaln/1@[192.0.2.1]:2427").domain == "[192.0.2.1]:2427"
    for bad in ("aaln/1", "@gw", "aaln/1@", "aaln//1@gw", "aaln/1$@gw", "a b@gw", "a@g w"):
        with pytest.raises(EndpointNameError):
            n(bad)


def test_wildcards_cover_the_names_they_stand_for():
    assert n("aaln/$@gw").covers(n("aaln/3@GW"))
    assert n("aaln/*@gw").covers(n("aaln/3@gw"))
    assert n("*@gw").covers(n("ds/ds1-1/17@gw"))          # a final * covers the rest
    assert n("ds/ds1-1/*@gw").covers(n("ds/ds1-1/2@gw"))
    assert not n("ds/ds1-2/*@gw").covers(n("ds/ds1-1/2@gw"))
    assert not n("aaln/*@gw").covers(n("aaln/3@other"))
    assert not n("aaln/1@gw").covers(n("aaln/2@gw"))
    assert n("aaln/1@gw").covers(n("AALN/1@gw"))
    assert n("*@gw").wildcard and not n("aaln/1@gw").wildcard


def test_rfc_dialect_picks_with_dollar():
    assert RFC3435.picks(n("aaln/$@gw")) and not RFC3435.picks(n("aaln/*@gw"))
    rsp = Response(200, 1, "OK", (("Z", "aaln/2@gw"), ("I", "A")))
    assert str(RFC3435.specific(n("aaln/$@gw"), rsp)) == "aaln/2@gw"
    assert str(RFC3435.specific(n("aaln/1@gw"), Response(200, 1))) == "aaln/1@gw"
    with pytest.raises(EndpointNameError):          # picked, but did not say which
        RFC3435.specific(n("aaln/$@gw"), Response(200, 1))
    with pytest.raises(EndpointNameError):          # named one outside what we asked for
        RFC3435.specific(n("aaln/$@gw"), Response(200, 1, params=(("Z", "ds/1@gw"),)))


def test_osmo_mgw_refuses_dollar_and_picks_with_star():
    with pytest.raises(EndpointNameError, match=r"osmo-mgw refuses '\$'.*takes '\*'"):
        OSMO_MGW.check("rtpbridge/$@mgw")
    assert OSMO_MGW.check("rtpbridge/*@mgw").wildcard
    assert OSMO_MGW.picks(n("rtpbridge/*@mgw")) and not OSMO_MGW.piggyback
    rsp = Response(200, 1, "OK", (("Z", "rtpbridge/1@mgw"),))
    assert str(OSMO_MGW.specific(n("rtpbridge/*@mgw"), rsp)) == "rtpbridge/1@mgw"
