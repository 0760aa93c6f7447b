"""The leg-provider registry: what the CLI validates and what the composition root builds.

The SIP provider against a real sipp lives in tests/callpath/test_sipp_calls.py; here: its
options, a gateway of a protocol with no provider never selected, and a leg that cannot be made
failing over instead of ending the call with a protocol error.
"""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from callgw.callserver import events as ev
from callgw.callserver.handler import CallContext, CallHandler, Timers
from callgw.callserver.legs.registry import PROTOCOLS, protocol
from callgw.callserver.legs.sip_provider import SipLegProvider, build, sip_gateway
from callgw.callserver.logger import CallLogger
from callgw.interfaces import ILegProvider, LegUnavailable
from callgw.proxy.gateways import GatewayDirectory
from tests.callpath.fakes import FakeLeg, SlaveFactory, SyncStore, gateway
from tests.helpers import make_config


def test_registry_lists_sip_and_refuses_the_rest_in_one_line():
    assert "sip" in PROTOCOLS and protocol("sip").default_port == 5060
    with pytest.raises(ValueError, match=r"^protocol 'pots' is not available in this callgw"):
        protocol("pots")


def test_sip_options_defaults_checks_and_unknown_keys():
    sip = protocol("sip")
    assert sip.check_options({}) == {"transport": "udp", "keepalive": "off"}
    assert sip.check_options({"transport": "TLS", "proxy": "p.example:5061"}) == {
        "transport": "tls", "proxy": "p.example:5061", "keepalive": "off"}
    with pytest.raises(ValueError, match="--proxy: 'p.example': expected HOST:PORT"):
        sip.check_options({"proxy": "p.example"})
    with pytest.raises(ValueError, match="sip gateways have no option 'endpoint'"):
        sip.check_options({"endpoint": "aaln/1@gw"})


def test_sip_gateway_record_reads_the_options_column():
    row = dict(gateway("gw1"), options={"transport": "tcp", "proxy": "127.0.0.1:5080",
                                        "auth_user": "u", "auth_password": "p",
                                        "keepalive": "options"},
               strip_digits=1, prepend="00", keep_plus=False, caller_id="withhold")
    record = sip_gateway(row, 65.0)
    assert record["transport"] == "tcp" and record["outbound_proxy"] == "127.0.0.1:5080"
    assert (record["username"], record["password"]) == ("u", "p")
    assert record["keepalive"] == "options" and record["presentation"] == "restricted"
    assert record["strip_digits"] == 1 and record["keep_plus"] is False


def test_sip_provider_is_an_ileg_provider_and_off_means_unavailable(tmp_path):
    provider = build(make_config(tmp_path, sip={"udp": "off"}), Clock())
    assert isinstance(provider, SipLegProvider)
    verifyObject(ILegProvider, provider)
    provider.start()
    with pytest.raises(LegUnavailable, match="SIP is off"):
        provider.make_leg(gateway("gw1"), "c1")


def test_selection_skips_gateways_whose_protocol_has_no_provider():
    directory = GatewayDirectory(protocols=frozenset({"sip"}))
    directory.load([gateway("m1", protocol="mgcp", priority=1), gateway("s1", priority=2)])
    assert [g["name"] for g in directory.select("+15551234")] == ["s1"]


def _handler(slaves, names):
    clock = Clock()
    logger = CallLogger(SyncStore(), clock, "n1")
    a = FakeLeg("client")
    gws = [gateway(n) for n in names]
    ctx = CallContext("call-1", "alice", "default", "+15551234", requested=clock.seconds())
    handler = CallHandler(ctx, a, slaves, gws, clock, logger, Timers(2, 10, 3))
    handler.start(ev.Setup("call-1", "+15551234"))
    return handler, a, logger


def test_a_leg_that_cannot_be_made_fails_over_to_the_next_gateway():
    slaves = SlaveFactory({"gw2": {"Setup": [ev.Proceeding(), ev.Connect()]}},
                          unavailable={"gw1"})
    handler, a, logger = _handler(slaves, ["gw1", "gw2"])
    assert [leg.gateway["name"] for leg in slaves.legs] == ["gw2"]
    assert handler.state.value == "active" and a.kinds() == ["Proceeding", "Connect"]
    failover = [e for e in logger._events if e["kind"] == "failover"]
    assert failover[0]["data"]["cause"] == 47 and "no leg" in failover[0]["data"]["text"]


def test_no_leg_for_any_gateway_is_cause_47_not_a_protocol_error():
    slaves = SlaveFactory(unavailable={"gw1"})
    handler, a, logger = _handler(slaves, ["gw1"])
    assert handler.state.value == "released" and handler.cause == 47
    assert a.sent[-1] == ev.Release(47, "gateway gw1: no leg for this gateway now")


def test_mgcp_entry_options_dialect_and_the_one_line_refusals():
    from callgw.callserver.legs.mgcp_provider import dialect_name
    mgcp = protocol("mgcp")
    assert mgcp.default_port == 2427
    assert mgcp.check_options({"endpoints": ["aaln/1@GW", "aaln/$@gw"]}) == {
        "endpoints": ["aaln/1@GW", "aaln/$@gw"]}
    with pytest.raises(ValueError, match=r"--endpoint: 'aaln' is not local@domain"):
        mgcp.check_options({"endpoints": ["aaln"]})
    with pytest.raises(ValueError, match="--dialect: 'h248'"):
        mgcp.check_options({"endpoints": ["aaln/1@gw"], "dialect": "h248"})
    assert dialect_name({"endpoints": ["rtpbridge/*@mgw"]}) == "osmo-mgw"
    assert dialect_name({"endpoints": ["aaln/1@gw", "rtpbridge/1@gw"]}) == "rfc"
    assert dialect_name({"endpoints": ["rtpbridge/1@mgw"], "dialect": "rfc"}) == "rfc"
    row = {"name": "g", "host": "127.0.0.1", "port": 2427}
    mgcp.check_gateway(dict(row, options={"endpoints": ["aaln/$@gw", "rtpbridge/1@gw"]}))
    for endpoints, message in ((["ds/ds1-1/1@gw"], "CAS signalling"),
                               (["ann/1@gw"], "drives aaln/ lines and rtpbridge/ bridges"),
                               (["rtpbridge/$@mgw"], "osmo-mgw refuses '\\$'"),
                               ([], "at least one --endpoint")):
        with pytest.raises(ValueError, match=message):
            mgcp.check_gateway(dict(row, options={"endpoints": endpoints}))


def test_mgcp_provider_capacity_is_its_specific_endpoints_and_off_means_unavailable(tmp_path):
    from callgw.callserver.legs.mgcp_provider import MgcpLegProvider
    provider = protocol("mgcp").build(make_config(tmp_path, mgcp={"udp": "off"}), Clock())
    assert isinstance(provider, MgcpLegProvider)
    verifyObject(ILegProvider, provider)
    row = dict(gateway("m1", protocol="mgcp"),
               options={"endpoints": ["aaln/1@gw", "aaln/2@gw"]})
    assert provider.capacity(row) == 2
    assert provider.capacity(dict(row, options={"endpoints": ["aaln/$@gw"]})) is None
    provider.start()
    with pytest.raises(LegUnavailable, match="MGCP is off"):
        provider.make_leg(row, "c1")


def test_mgcp_codes_and_reasons_map_into_the_shared_cause_table():
    from callgw import causes
    assert causes.mgcp_to_q850(401) == 17                 # phone off hook: busy
    assert causes.mgcp_to_q850(410) == 34 and causes.mgcp_to_q850(500) == 3   # fail over
    assert causes.mgcp_to_q850(499) == 41 and causes.mgcp_to_q850(599) == 127
    assert causes.mgcp_reason_to_q850(902) == 38 and causes.mgcp_reason_to_q850(None) == 41
    assert causes.to_protocol("mgcp", 17) == 401
