"""Process-wide tuning that only the owner of the process applies (twistd, the benchmarks).

Owned by operations. An embedding application keeps its own collector settings: GatewayService
never calls this; ``callgw.tap`` does once callgw is ready.

Measured with bench/cps.py at 400 calls/s: freezing start-up objects and raising the collector's
thresholds took p99 set-up latency from about 100 ms to under 10 ms, CPU per call unchanged;
the relay benchmark freezes its long-lived sessions for the same reason. Under load the
middle generation decides the pauses: a call's objects hold reference cycles (client leg and
media session, handler and media session, relay session and its endpoints), are alive at a
young collection and die in the middle generation, so each of its collections frees a few
thousand calls' worth. At (20000, 20, 100) those collections took 430-630 ms each
(``CALLGW_BENCH_GCLOG``, bench/cps.py --overload 2 at 700 calls/s: the refusals' p99); at
(5000, 2, 4000) -- the middle generation 40 times smaller, the oldest as rare as before --
they take 25-75 ms, and the collector's total time fell by a fifth. Released calls no longer
leave cycles (each close lets go of its back-references), so they are freed by reference counts;
the collector's time is now the traversal of live young objects, and with no garbage to free
(20000, 20, 100) gave pauses up to 119 ms and (10000, 4, 4000) about the same total: these
thresholds stay (docs/performance.md, "Reference cycles of a released call").

Tests: tests/test_runtime.py.
"""
from __future__ import annotations

import gc

#: Generation-0 threshold raised so the collector runs less often on the per-call path; a
#: small middle generation (short pauses) and an oldest one collected as rarely as before.
GC_THRESHOLD = (5000, 2, 4000)


def tune_collector(threshold: tuple[int, int, int] | None = GC_THRESHOLD) -> None:
    """Freeze what start-up made out of collections; set ``threshold`` (None: leave it)."""
    gc.collect()
    gc.freeze()
    if threshold is not None:
        gc.set_threshold(*threshold)
