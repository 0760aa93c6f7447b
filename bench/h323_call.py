"""Benchmark: CPU per H.323 call in our originating core (protocols/h323/call.py), sans sockets:
Setup with fastStart (encoded), the gateway's CallProceeding, Alerting with the fastStart
answer, Connect, a Facility carrying its tunnelled TerminalCapabilitySet and the Acks (decoded,
our TCS/msd answers encoded), one UserInputIndication, and our ReleaseComplete. The gateway's
messages are encoded once beforehand, so the figure is our side's work per call. Prints calls/s
and ms per call; no assertions. Run: ``.venv/bin/python bench/h323_call.py [calls]``.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from protocols.h323 import call as c  # noqa: E402
from protocols.h323 import h225, h245, per  # noqa: E402

CRV = 5
RTP, RTCP = ("127.0.0.1", 30000), ("127.0.0.1", 30001)


def gateway_messages():
    cid = bytes(16)
    offer, _ = h245.fast_start_offer(("PCMU", "PCMA"), RTP, RTCP)
    answer, _ = h245.fast_start_answer([h245.decode_olc(x) for x in offer], ("PCMU",),
                                       ("127.0.0.1", 40000), ("127.0.0.1", 40001))

    def msg(name, body=None, control=()):
        if body is None and name != "empty":
            body = h225.response_body(name, cid, conference_id=cid)
        return h225.encode_message(name, body, CRV, True, tunnelling=True, h245_control=control)
    control = [h245.encode(h245.terminal_capability_set(1)), h245.encode(h245.tcs_ack(1)),
               h245.encode(h245.msd_ack("slave"))]
    return [msg("callProceeding"),
            msg("alerting", h225.response_body("alerting", cid, fast_start=answer)),
            msg("connect"), msg("empty", None, control)]


def one_call(messages):
    call = c.OutgoingCall(CRV, c.CallOptions(dest_number="4930123456", rtp=RTP, rtcp=RTCP,
                                             calling_number="4930100000"))
    call.setup()
    for m in messages:
        call.receive(m)
    call.send_dtmf("5")
    out = call.release(16)
    assert isinstance(out[-1], c.Released)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    per.specification()
    messages = gateway_messages()
    one_call(messages)
    start = time.process_time()
    for _ in range(n):
        one_call(messages)
    cpu = time.process_time() - start
    print(f"{n} calls: {n / cpu:.0f} calls/s of CPU, {1000 * cpu / n:.2f} ms per call "
          f"(fastStart, tunnelled TCS/msd, one UII, release)")


if __name__ == "__main__":
    main()
