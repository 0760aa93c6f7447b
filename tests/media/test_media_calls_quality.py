"""Call quality and media inactivity in whole calls (callgw-dial -> callgw -> sipp).

- the JSON API of active calls shows the relay's per-direction packets, bytes, loss, jitter
  and MOS while the call is up, and the CDR keeps the final figures;
- a gateway that sends no media: the call is reaped after the inactivity timeout, the client
  is told, and the CDR says why.
"""
from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread

from test_media_calls import (dial, prepare_db, settled_cdr, sipp_gateway, start,
                              url, within, write_tone)
from tests.web.admins import add_admin, basic
from tests.web.h2get import h2_get

pytestmark = pytest.mark.peers("sipp")
DIRECTIONS = ("client_to_gateway", "gateway_to_client")


@defer.inlineCallbacks
def api_calls(gw):
    host, port = gw.client.address("https")
    _, status, _, body = yield deferToThread(h2_get, host, port, "/api/calls",
                                             gw.client.cert.cert_path,
                                             headers=[("authorization", basic())])
    assert status == 200
    return json.loads(body)


@defer.inlineCallbacks
def active_with_media(gw, packets=50, limit=10.0):
    """The API's active calls once one has relayed ``packets`` each way."""
    waited = 0.0
    while True:
        calls = yield api_calls(gw)
        for row in calls["active"]:
            media = row.get("media") or {}
            if all(media.get(d, {}).get("packets", 0) >= packets for d in DIRECTIONS):
                return row
        if waited >= limit:
            raise AssertionError(f"no call with media in {calls}")
        yield task.deferLater(reactor, 0.2, lambda: None)
        waited += 0.2


@pytest_twisted.inlineCallbacks
def test_quality_in_the_api_while_up_and_in_the_cdr(tmp_path):
    source = tmp_path / "tone.wav"
    played = write_tone(source, seconds=4.0)
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    add_admin(tmp_path / "callgw.sqlite3")
    gw = yield start(tmp_path, web=True)
    try:
        call = dial("--server", url(gw, "udp"), "--user", "alice", "--duration", "5",
                    "--play", str(source), "+4930123456")
        row = yield within(active_with_media(gw), 20)
        media = row["media"]
        assert row["media_mode"] == "relay" and media["mode"] == "relayed"
        for direction in DIRECTIONS:
            figures = media[direction]
            assert figures["octets"] >= 160 * figures["packets"]
            assert figures["lost"] == 0 and figures["jitter_ms"] < 20
            assert 4.0 < figures["mos"] <= 4.5
        code, out = yield call
        assert code == 0, out
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        final = cdr["stats"]["media"]
        print("CDR media:", {d: {k: final[d][k] for k in ("packets", "octets", "lost",
                                                          "jitter_ms", "mos")}
                             for d in DIRECTIONS})
        for direction in DIRECTIONS:
            assert final[direction]["packets"] >= 0.99 * played
            assert final[direction]["lost"] == 0 and final[direction]["mos"] > 4.0
        assert final["gateway_to_client"]["forwarded"] >= 0.99 * played
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_silent_gateway_is_reaped_after_the_inactivity_timeout(tmp_path):
    source = tmp_path / "tone.wav"
    write_tone(source, seconds=20.0)
    sipp = sipp_gateway(tmp_path, echo=False)               # answers, never sends RTP
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, media={"inactivity_timeout": 1.0})
    try:
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--duration", "20", "--play", str(source), "+4930123456")
        assert "connected" in out and "disconnected: " in out, out
        assert code == 1, out                                 # not a normal end
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        print("CDR:", cdr["cause"], cdr["cause_text"], cdr["duration"])
        assert cdr["cause_text"].startswith("reaped: media inactive")
        assert "gateway" in cdr["cause_text"]
        assert cdr["answered"] and cdr["duration"] < 15
        assert cdr["stats"]["media"]["inactive"].startswith("media inactive")
        assert cdr["stats"]["media"]["client_to_gateway"]["packets"] > 0
        assert cdr["stats"]["media"]["gateway_to_client"]["packets"] == 0
    finally:
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_a_held_call_is_not_reaped_for_silence(tmp_path):
    """On hold nobody sends media: the call outlives the inactivity timeout and the reaper's
    rounds, is resumed and ends normally (the gateway took both re-INVITEs)."""
    from callgw.client.links import connect
    from test_media_calls import PASSWORD, sleep
    sipp = sipp_gateway(tmp_path, "uas_hold.xml")
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path, media={"inactivity_timeout": 1.0})
    session = None
    try:
        session = yield connect(url(gw, "udp"), reactor)
        yield session.login("alice", PASSWORD)
        call = session.call("+4930123456")
        yield within(call.connected)
        call.hold()
        yield sleep(gw.callpath.logger.reap_interval + 2.0)   # a reaper round after the timeout
        assert not call.disconnected.called, call.events
        call.resume()
        yield sleep(0.3)
        call.hangup()
        end = yield within(call.disconnected)
        assert end.cause == "normal", end
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 16 and not cdr["cause_text"].startswith("reaped")
    finally:
        if session is not None:
            session.close()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_stopping_callgw_mid_call_closes_the_relay(tmp_path):
    """Shutdown during a relayed call: the call is released, its CDR keeps the media figures,
    every relay port is given back and can be bound again."""
    import socket

    from callgw.client.links import connect
    from test_media_calls import PASSWORD
    sipp = sipp_gateway(tmp_path)
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    session = yield connect(url(gw, "udp"), reactor)
    try:
        yield session.login("alice", PASSWORD)
        call = session.call("+4930123456")
        yield within(call.connected)
        relay = gw.callpath.media.relay
        (only,) = relay.sessions.values()
        port = only.endpoints["gateway"].port
        assert relay.ports.in_use == 1
        yield gw.stopService()
        assert not relay.sessions and relay.ports.in_use == 0
        end = yield within(call.disconnected, 5)         # the UDP client was told
        assert end.command == "disconnected" and end.q850 == 41, end
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))                  # the port is really closed
        cdr = gw.callpath.logger.recent_cdrs()[0]
        assert cdr["cause_text"] == "callgw shutting down"
        assert cdr["stats"]["media"]["mode"] == "relayed"
    finally:
        session.close()
        if gw.running:
            yield gw.stopService()
        sipp.stop()
