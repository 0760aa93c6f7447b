"""Figures that are true under load: 40 concurrent relayed calls (one client process with 40
sessions over UDP, tests/media/loadclient.py) through callgw to sipp echoing RTP, the wire
captured on loopback by dumpcap, and every call's CDR compared with the capture hop by hop:

- gateway -> callgw: each RTP packet sipp sent to the call's relay port is either counted as
  received or counted as lost (a datagram the kernel dropped before callgw read it);
- callgw -> client: the media frames on the wire to the client's port are exactly the CDR's
  ``forwarded``; every packet callgw received and did not forward is ``discarded``;
- client -> callgw -> gateway: the frames the client sent are received or lost, and the RTP
  toward sipp is the CDR's ``forwarded``;
- the CDR's loss and MOS are those of what the client heard (lost and discarded together).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.utils import getProcessOutputAndValue

from protocols.client import framing as fr
from protocols.client.sealing import HEADER_SIZE, TAG_SIZE, is_sealed
from test_media_calls import settled_cdr, sipp_gateway, start, url, write_tone
from test_media_calls_wire import Capture
from tests.callpath.callgw_env import prepare_db

pytestmark = pytest.mark.peers("sipp", "dumpcap", "tshark")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALLS = 40
SECONDS = 6.0
PASSWORD = "correct horse"


@defer.inlineCallbacks
def udp_payloads(path):
    """``(time, src port, dst port, payload bytes)`` of every UDP datagram in the capture
    (client-protocol datagrams with their seal taken off: it authenticates, it hides nothing)."""
    out, err, code = yield getProcessOutputAndValue(
        shutil.which("tshark"), ["-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
                                 "-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.payload"],
        reactor=reactor)
    assert code == 0, err
    rows = []
    for line in out.decode().splitlines():
        cols = line.split("\t")
        if len(cols) == 4 and cols[3]:
            data = bytes.fromhex(cols[3].replace(":", ""))
            if is_sealed(data):         # the session's datagram seal: header + payload + tag
                data = data[HEADER_SIZE:-TAG_SIZE]
            rows.append((float(cols[0]), int(cols[1]), int(cols[2]), data))
    return rows


def is_rtp(data):
    return len(data) >= 12 and data[0] >> 6 == 2


@defer.inlineCallbacks
def load(gw, users, tone, tmp_path):
    out = tmp_path / "load.json"
    o, e, code = yield getProcessOutputAndValue(
        sys.executable, [os.path.join(ROOT, "tests", "media", "loadclient.py"),
                         "--server", url(gw, "udp"), "--users", ",".join(users),
                         "--password", PASSWORD, "--duration", str(SECONDS), "--tone", str(tone),
                         "--out", str(out), "--limit", "90"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT}, path=ROOT,
        reactor=reactor).addTimeout(120, reactor)
    assert code == 0 and out.exists(), (o + e).decode(errors="replace")[-3000:]
    return json.loads(out.read_text())


def stall(seconds):
    """Block the reactor thread (callgw's, in this process) for ``seconds``: an overloaded
    gateway, injected."""
    time.sleep(seconds)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("stalls", [False, True], ids=["steady", "stalling"])
def test_forty_relayed_calls_records_match_the_wire(tmp_path, stalls):
    """``stalling``: callgw's reactor is blocked 250 ms of every second while the calls run,
    as an overloaded gateway would be: media piles up and arrives in bursts, the playout
    toward the gateway drops frames that came too late; the figures still match the wire."""
    tone = tmp_path / "tone.wav"
    write_tone(tone, seconds=SECONDS + 4)
    users = [f"user{i:02d}" for i in range(CALLS)]
    sipp = sipp_gateway(tmp_path, extra=["-m", str(CALLS), "-l", str(CALLS)])
    prepare_db(tmp_path, users=users, gateways=[("gw1", sipp.port, ["+49"],
                                                 {"capacity": CALLS + 10})])
    gw = yield start(tmp_path, media={"rtp_ports": "27000-27199"})
    client_port = gw.client.address("udp")[1]
    capture = Capture(tmp_path / "load.pcapng",
                      f"udp and (portrange 27000-27199 or port {sipp.media_port} "
                      f"or port {client_port})", seconds=90)
    stalling = task.LoopingCall(stall, 0.5)
    try:
        yield capture.start()
        if stalls:
            stalling.start(1.5, now=False)
        heard = yield load(gw, users, tone, tmp_path)
        if stalling.running:
            stalling.stop()
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()   # every BYE answered
        relay = gw.callpath.media.relay
        for _ in range(100):                    # every media session closed: nothing in flight
            if not relay.sessions:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert not relay.sessions
        yield task.deferLater(reactor, 1.0, lambda: None)   # dumpcap reads what it holds
        yield capture.stop()
        counts = re.search(r"received/dropped on interface '.*?': (\d+)/(\d+)",
                           capture.err.decode(errors="replace"))
        assert counts and int(counts.group(2)) == 0, capture.err     # the capture is complete
        rows = yield udp_payloads(capture.path)
        cdrs = {}
        for user in users:
            found = yield settled_cdr(gw, user)
            assert len(found) == 1, (user, found)
            cdrs[user] = found[0]
        report = []
        for index, user in enumerate(users):
            entry, cdr = heard[user], cdrs[user]
            assert entry["error"] is None and entry["end"] == "normal", (user, entry)
            media = cdr["stats"]["media"]
            relay_port = media["ports"]["gateway"]
            launched = (yield gw.store.run("call_events", cdr["call_id"]))[0]
            peer_port = int(launched["data"]["peer"].rsplit(":", 1)[1])
            g2c, c2g = media["gateway_to_client"], media["client_to_gateway"]
            # the call's end on the wire: the client's hangup (what arrives later may be read
            # as the session closes, counted as after_end, or never, once the ports are closed)
            hangups = [at for at, s, t, d in rows if s == peer_port and t == client_port
                       and d[:1] == b"{" and b'"hangup"' in d]
            assert hangups, (user, entry, [d[:80] for at, s, t, d in rows
                                           if s == peer_port and d[:1] == b"{"])
            ended = min(hangups)
            all_from_gw = [(at, d) for at, s, t, d in rows if t == relay_port
                           and s == sipp.media_port and is_rtp(d)]
            from_gw = [d for at, d in all_from_gw if at <= ended]
            to_gw = [d for at, s, t, d in rows if s == relay_port and t == sipp.media_port
                     and is_rtp(d) and d[1] & 0x7F == 0]
            to_client = [d for at, s, t, d in rows if s == client_port and t == peer_port
                         and d[:1] == bytes([fr.MEDIA_V1])]
            from_client = [d for at, s, t, d in rows if s == peer_port and t == client_port
                           and d[:1] == bytes([fr.MEDIA_V1]) and at <= ended]
            # gateway -> callgw: what arrived was received, or counted lost
            assert len(from_gw) <= g2c["packets"] + g2c["lost"], (user, len(from_gw), g2c)
            assert g2c["packets"] <= len(all_from_gw), (user, g2c, len(all_from_gw))
            # callgw -> client: forwarded is what went on the wire; the rest is discarded
            assert g2c["forwarded"] == len(to_client), (user, len(to_client), g2c)
            assert g2c["packets"] == g2c["forwarded"] + g2c["discarded"] + g2c["events"], \
                (user, g2c)                  # after_end: a part of discarded
            # client -> callgw -> gateway
            assert len(from_client) <= c2g["packets"] + c2g["lost"], (user, c2g)
            assert c2g["forwarded"] == len(to_gw), (user, len(to_gw), c2g)
            # loss and MOS are what the client heard
            expected = g2c["packets"] + g2c["lost"]
            impaired = (g2c["lost"] + g2c["discarded"] - g2c["after_end"]) / expected \
                if expected else 0.0
            assert abs(g2c["loss"] - impaired) < 1e-4, (user, g2c)
            assert entry["frames"] <= len(to_client)
            report.append((user, len(from_gw), g2c["packets"], g2c["lost"], g2c["discarded"],
                           len(to_client), entry["frames"], (g2c["mos"], g2c["jitter_ms"]), len(from_client),
                           c2g["packets"], c2g["lost"], c2g["discarded"], len(to_gw)))
        print("user  gw->cg  recv  lost  disc  cg->cl  heard  mos  | cl->cg  recv  lost  disc  cg->gw")
        for r in report:
            print("  ".join(str(x) for x in r))
        total_heard = sum(r[6] for r in report)
        total_from_gw = sum(r[1] for r in report)
        at_end = sum(cdrs[u]["stats"]["media"]["gateway_to_client"]["after_end"] for u in users)
        print(f"{CALLS} calls: the gateway sent {total_from_gw} frames before the clients hung "
              f"up, the clients heard {total_heard}; {at_end} were still queued at callgw when "
              f"the calls ended (after_end)")
    finally:
        if stalling.running:
            stalling.stop()
        yield capture.stop()
        yield gw.stopService()
        sipp.stop()


def within(d, seconds):
    return d.addTimeout(seconds, reactor)
