"""Benchmark: the H.323 aligned-PER codec (protocols/h323/per.py): how long compiling the ITU-T
modules takes, whether a pickled compiled form would load faster, and encode/decode rates of
typical PDUs (Setup with four fastStart OLCs, Connect, RRQ, ARQ, H.245 TerminalCapabilitySet,
OpenLogicalChannel, UserInputIndication). Prints a table; no assertions: figures go to
docs/protocols/h323.md. Run: ``.venv/bin/python bench/h323_per.py [seconds-per-case]``.
"""
from __future__ import annotations

import os
import pickle
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from protocols.h323 import h225, h245, per, ras  # noqa: E402


def rate(fn, seconds):
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(50):
            fn()
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    start = time.perf_counter()
    spec = per.specification()
    compile_s = time.perf_counter() - start
    try:
        blob = pickle.dumps(spec)
        start = time.perf_counter()
        pickle.loads(blob)
        pickle_s = f"{time.perf_counter() - start:.3f} s ({len(blob) // 1024} KiB)"
    except Exception as e:  # the compiled objects may not pickle: say so
        pickle_s = f"not picklable ({type(e).__name__})"

    cid = bytes(range(16))
    fast, _ = h245.fast_start_offer(("PCMU", "PCMA"), ("127.0.0.1", 30000), ("127.0.0.1", 30001))
    setup = h225.uu_pdu("setup", h225.setup_body(
        cid, cid, source_aliases=[("h323-ID", "callgw")], dest_number="4930123456",
        source_address=("127.0.0.1", 1720), fast_start=fast), tunnelling=True)
    connect = h225.uu_pdu("connect", h225.response_body(
        "connect", cid, conference_id=cid, h245_address=("127.0.0.1", 1721)))
    client = ras.RasClient(("127.0.0.1", 1719), ("127.0.0.1", 1720))
    rrq = per.decode(per.H225, "RasMessage", client.register()[0].data)
    client.endpoint_id = "ep-1"
    arq = per.decode(per.H225, "RasMessage", client.admit(
        "k", dest_number="123", call_id=cid, conference_id=cid, call_reference=1)[0].data)
    cases = [
        ("H.225.0 Setup + 4 fastStart OLCs", per.H225, "H323-UserInformation", setup),
        ("H.225.0 Connect", per.H225, "H323-UserInformation", connect),
        ("RAS RRQ", per.H225, "RasMessage", rrq),
        ("RAS ARQ", per.H225, "RasMessage", arq),
        ("H.245 TerminalCapabilitySet", per.H245, "MultimediaSystemControlMessage",
         h245.terminal_capability_set(1)),
        ("H.245 OpenLogicalChannel", per.H245, "OpenLogicalChannel",
         h245.olc_transmit(1, "PCMU", ("127.0.0.1", 30001))),
        ("H.245 UserInputIndication", per.H245, "MultimediaSystemControlMessage",
         h245.uii_signal("5")),
    ]
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"compile (asn1tools, 3 modules, with the corrections): {compile_s:.3f} s")
    print(f"pickle.loads of the compiled form: {pickle_s}")
    print(f"{'PDU':38} {'octets':>6} {'encode/s':>10} {'decode/s':>10}")
    for name, module, type_name, value in cases:
        data = per.encode(module, type_name, value)
        enc = rate(lambda: per.encode(module, type_name, value), seconds)
        dec = rate(lambda: per.decode(module, type_name, data), seconds)
        print(f"{name:38} {len(data):6d} {enc:10.0f} {dec:10.0f}")


if __name__ == "__main__":
    main()
