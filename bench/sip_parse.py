"""Benchmark: parse + serialize rate of a typical SIP INVITE and 200 OK (messages per second).

Owns nothing but the measurement of protocols.sip.message's hot path (RFC 3261 section 7
parsing as the call path uses it: parse, read the transaction keys, serialize). Prints a table
with the machine it ran on. Run: ``.venv/bin/python bench/sip_parse.py [seconds-per-case]``.
The messages come from tests/sip/builders.py. No assertions: figures go to docs/.
"""
from __future__ import annotations

import os
import platform
import sys
import time
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from protocols.sip.message import parse_message  # noqa: E402
from tests.sip import builders  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rate(func, seconds: float) -> float:
    """Calls per CPU-second of ``func``: best of 5 runs of about ``seconds`` / 5 each.

    Process CPU time, not wall time, so that other work on a shared machine (which takes the
    core away from us) does not count against the parser.
    """
    timer = timeit.Timer(func, timer=time.process_time)
    n, _ = timer.autorange()
    per_run = max(1, int(n * (seconds / 5) / max(timer.timeit(n), 1e-9)))
    best = min(timer.repeat(repeat=5, number=per_run)) / per_run
    return 1.0 / best


def touch(msg):
    """What the transaction layer reads from every message."""
    return msg.branch, msg.cseq, msg.call_id, msg.from_tag, msg.to_tag


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    seconds = float(argv[0]) if argv else 2.0
    cases = [("INVITE", builders.invite()), ("200 OK", builders.ok_200())]
    rows = []
    for name, data in cases:
        msg = parse_message(data)
        parse = rate(lambda: touch(parse_message(data)), seconds)
        serialize = rate(msg.to_bytes, seconds)
        both = rate(lambda: parse_message(data).to_bytes(), seconds)
        rows.append((name, len(data), parse, serialize, both))
    out = sys.stdout
    out.write(f"machine: {platform.platform()}; Python {platform.python_version()} "
              f"({platform.python_implementation()}); CPU: {cpu_model()}; "
              f"{os.cpu_count()} logical CPUs; load average {os.getloadavg()[0]:.2f}\n"
              "rates are per CPU-second of one core, best of 5\n\n")
    out.write("| message | bytes | parse/s | serialize/s | parse+serialize/s |\n")
    out.write("|---|---:|---:|---:|---:|\n")
    for name, size, parse, serialize, both in rows:
        out.write(f"| {name} | {size} | {parse:,.0f} | {serialize:,.0f} | {both:,.0f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
