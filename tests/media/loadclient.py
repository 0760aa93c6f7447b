"""A fixture client for load tests: N concurrent relayed calls through callgw, one per user, in
one process (so the clients do not need N interpreters on two cores).

    python tests/media/loadclient.py --server udp://127.0.0.1:PORT --users u0,u1,... \
        --password PW --target-prefix +4930100 --duration 6 --tone tone.wav --out result.json

Each user logs in (its own session), places one call, plays the tone WAV from ``connected``
and counts what comes back: media frames per call (the gateway's RTP sequence numbers ride in
them), the highest and lowest sequence, so the caller can compare with the capture and the
CDRs. The result JSON has one entry per user: ``frames``, ``first_seq``, ``last_seq``,
``unique``, ``sent`` (frames played), ``end`` (cause) and ``error`` if any. The process ends
by itself (``--limit`` seconds at most). Used by tests/media/test_media_load.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet import defer, reactor, task  # noqa: E402

from callgw.client import connect  # noqa: E402
from callgw.client.media import MediaPlayer, read_wav  # noqa: E402
from protocols.client import framing as fr  # noqa: E402
from protocols.client import messages as m  # noqa: E402


@defer.inlineCallbacks
def one(args, user, index, pcm, result):
    entry = result[user] = {"frames": 0, "unique": 0, "first_seq": None, "last_seq": None,
                            "sent": 0, "end": None, "error": None, "events": []}
    seqs = set()
    try:
        session = yield connect(args.server, reactor, timeout=20, cacert=args.cacert)
        yield session.login(user, args.password).addTimeout(30, reactor)
        call = session.call(f"{args.target_prefix}{index:03d}")

        def media(data):
            frame = fr.decode_media(data)
            if frame.key != call.key:
                return
            entry["frames"] += 1
            seqs.add(frame.sequence)
            if entry["first_seq"] is None:
                entry["first_seq"] = frame.sequence
            entry["last_seq"] = frame.sequence
        session.on_media = media
        call.on_event = lambda msg: entry["events"].append(msg.command)
        yield defer.DeferredList([call.connected, call.disconnected], fireOnOneCallback=True)
        player = None
        if call.connected.called and not call.disconnected.called:
            player = MediaPlayer(session, call, pcm, reactor)
            player.start()
            reactor.callLater(args.duration, call.hangup)
        end = yield call.disconnected
        if player is not None:
            player.stop()
            entry["sent"] = player.sent
        entry["end"] = getattr(end, "cause", None) or getattr(end, "code", None)
        entry["text"] = getattr(end, "text", None)
        entry["unique"] = len(seqs)
        yield session.logout().addTimeout(5, reactor).addErrback(lambda f: session.close())
    except Exception as e:   # noqa: BLE001 - reported in the result, per user
        entry["error"] = repr(e)


@defer.inlineCallbacks
def main(args):
    pcm = read_wav(args.tone)
    result = {}
    users = args.users.split(",")
    try:
        yield defer.DeferredList([one(args, u, i, pcm, result) for i, u in enumerate(users)])
    finally:
        with open(args.out, "w") as f:
            json.dump(result, f)
        reactor.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--users", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--target-prefix", default="+4930100")
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--tone", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=float, default=120.0)
    p.add_argument("--cacert")
    a = p.parse_args()
    reactor.callWhenRunning(main, a)
    reactor.callLater(a.limit, reactor.stop)
    reactor.run()
