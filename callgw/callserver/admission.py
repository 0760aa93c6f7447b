"""Admission control of one call server: refuse new calls quickly when it is overloaded.

Owned by the performance issue (issue 17, "graceful overload"). Offered more calls than it can
set up, a call server that takes them all falls behind on every one of them: the reactor lags,
SIP retransmissions and client timeouts add work, and most calls fail as ``network-error``
after timeouts. ``Admission`` keeps the calls it takes within what it can finish and refuses
the rest at once, before anything reaches a gateway (the front end answers ``disconnected``
with cause ``congestion``, Q.850 34). It decides from measured load, not a fixed number:

- *reactor lag*: a probe on the injected clock every ``interval`` seconds measures how late it
  runs; its moving average (EWMA, 1/4) is the lag. Above ``max_lag`` every new call is refused
  (the process is drowning: finishing the calls it has comes first), but only while at least
  ``min_limit`` set-ups are in flight: lag with fewer is not our calls' doing (a machine
  shared with other work, a test run) and refusing would not cure it. The thresholds are low
  (20 and 60 ms) because a refused call waits for its answer in the same reactor queue as
  everything else: the lag is the refusal's latency (bench/cps.py --overload: at 100/300 ms
  refusals took 144/788 ms p50/p99, at 20/60 ms 50/625 ms, set-up p99 898 -> 203 ms). A probe more than
  ``jump`` seconds late is a clock jump or a suspended process (or a test's clock advanced
  in one go), not load, which shows as growing lag long before: it is not counted;
- *set-ups in flight*: calls launched and not yet answered or released (``began``/``settle``;
  a call whose handler became active or released leaves the count when the count is next
  looked at). At most ``limit`` at once;
- ``limit`` adapts at each probe (additive increase, multiplicative decrease, as TCP's
  congestion window): lag over ``target_lag`` cuts it by a tenth (down to ``min_limit``);
  otherwise, when at least half of it is in use, it grows by a sixteenth (at least 1) up to
  ``max_limit``;
- *CPU*: lag counts (cuts the limit, refuses everything) only while the process is busy: its
  CPU time (all threads, ``time.process_time``) over wall time (``time.monotonic``), measured
  over at least ``busy_window`` seconds, is at least ``busy_threshold``. A process that lags
  while mostly idle is starved by other work on the machine (a loaded test runner, a
  neighbour), or blocked, and refusing calls would not cure that. Until a first window is
  measured the process counts as busy.

The probe starts with the first ``admits`` and stops with ``stop``. Figures (``status``):
``lag_ms``, ``busy``, ``limit``, ``in_flight``, ``admitted``, ``refused``.

Tests: tests/callpath/test_admission.py (a Clock, a fake load and a fake CPU clock).
"""
from __future__ import annotations

from time import monotonic, process_time

DONE_STATES = frozenset({"active", "released"})


class Admission:
    """The admission rule of one call server (see the module docstring)."""

    def __init__(self, clock, *, interval: float = 0.05, target_lag: float = 0.02,
                 max_lag: float = 0.06, min_limit: int = 8, initial_limit: int = 64,
                 max_limit: int = 1000, jump: float = 1.0, busy_threshold: float = 0.5,
                 busy_window: float = 0.2, cpu=None, wall=None):
        """``cpu`` and ``wall`` (callables returning seconds) default to the process's CPU
        time and the monotonic clock."""
        self.clock = clock
        self.interval = interval
        self.target_lag = target_lag
        self.max_lag = max_lag
        self.jump = jump
        self.min_limit = min_limit
        self.max_limit = max(min_limit, max_limit)
        self.limit = float(min(max(initial_limit, min_limit), self.max_limit))
        self.lag = 0.0
        self.pending: dict[str, object] = {}     # call id -> its handler (None until made)
        self.admitted = 0
        self.refused = 0
        self.reason: str | None = None           # why the last call was refused
        self._probe = None
        self._due = None
        self.busy_threshold = busy_threshold
        self.busy_window = busy_window
        self._cpu = cpu
        self._wall = wall
        self.busy = 1.0                          # CPU share of the last window (busy at first)
        self._window = None                      # (cpu, wall) where the window began

    # -- the rule -------------------------------------------------------------------------------
    def admits(self) -> bool:
        """Whether a new call may start now (counted as refused when not)."""
        why = self.refusal()
        return True if why is None else self._refuse(why)

    def refusal(self) -> str | None:
        """Why a new call would be refused now, or None; counts nothing (a cluster front end
        asks this every heartbeat)."""
        if self._probe is None:
            self._arm()
        if len(self.pending) < self.min_limit:
            return None
        if self.lag > self.max_lag and self.busy >= self.busy_threshold:
            self._prune()
            if len(self.pending) >= self.min_limit:
                return f"reactor lag {self.lag * 1000:.0f} ms"
        if len(self.pending) >= int(self.limit):
            self._prune()
            if len(self.pending) >= int(self.limit):
                return f"{len(self.pending)} call set-ups in progress"
        return None

    def began(self, call_id: str) -> None:
        """An admitted call was launched: it is in flight until ``settle``."""
        self.admitted += 1
        self.pending[call_id] = None

    def settle(self, call_id: str, handler=None) -> None:
        """The launch of ``call_id`` resolved: with its ``handler`` the call stays in flight
        until it is answered or released; without one (refused, failed) it leaves now."""
        if handler is None or handler.state.value in DONE_STATES:
            self.pending.pop(call_id, None)
        elif call_id in self.pending:
            self.pending[call_id] = handler

    @property
    def in_flight(self) -> int:
        self._prune()
        return len(self.pending)

    def _prune(self) -> None:
        done = [cid for cid, h in self.pending.items()
                if h is not None and h.state.value in DONE_STATES]
        for cid in done:
            del self.pending[cid]

    def _refuse(self, reason: str) -> bool:
        self.refused += 1
        self.reason = reason
        return False

    # -- the probe ------------------------------------------------------------------------------
    def _arm(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._probe = self.clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        now = self.clock.seconds()
        late = max(0.0, now - self._due)
        if late > self.jump:            # a jump of the clock, not load: not a sample
            self._arm()
            return
        self.lag += (late - self.lag) * 0.25
        self._measure_busy()
        if self.lag > self.target_lag and self.busy >= self.busy_threshold:
            self.limit = max(float(self.min_limit), self.limit * 0.9)
        elif len(self.pending) * 2 >= self.limit:
            self.limit = min(float(self.max_limit), self.limit + max(1.0, self.limit / 16))
        self._arm()

    def _measure_busy(self) -> None:
        cpu = (self._cpu or process_time)()
        wall = (self._wall or monotonic)()
        if self._window is None:
            self._window = (cpu, wall)
            return
        spent = wall - self._window[1]
        if spent >= self.busy_window:
            self.busy = (cpu - self._window[0]) / spent
            self._window = (cpu, wall)

    def stop(self) -> None:
        """Stop the probe (the call server stops); ``admits`` would start it again."""
        if self._probe is not None and self._probe.active():
            self._probe.cancel()
        self._probe = None

    def status(self) -> dict:
        return {"lag_ms": round(self.lag * 1000, 1), "busy": round(self.busy, 2),
                "limit": int(self.limit),
                "in_flight": self.in_flight, "admitted": self.admitted, "refused": self.refused}
