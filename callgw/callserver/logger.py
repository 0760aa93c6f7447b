"""The call logger: events, message traces, the active-call table, the reaper and CDRs.

Owned by the call path (ARCHITECTURE.md, "Call logger"). Handlers report to one ``CallLogger``
in memory; nothing on the call path waits for the database. Every ``flush_interval`` seconds
(0.2 by default, on the injected clock) the logger hands what gathered -- events, traces,
active-call rows that changed, CDRs and ended calls -- to the store in one batch
(``Database.call_log_batch``, one transaction on the store thread). A call that starts and ends
between two flushes never touches the active-call table. ``stopService`` flushes what is left
and fires when the last batch is written.

The reaper runs every ``reap_interval`` seconds over live calls: a call whose leg says it is
dead (``leg.liveness()`` returns a reason: the client vanished, the native leg's transport
died) or that outlived its maximum duration by a minute is stopped with cause 41 and the
reason in its CDR (``cause_text`` starts with ``reaped:``).

The display: ``active_calls()`` and ``recent_cdrs()`` serve the JSON API (callgw/web/api.py),
``metrics`` (callgw/callserver/metrics.py) gets outcomes, latencies and the active count, and
the store's active-call table serves ``callgw calls``.

Tests: tests/callpath/test_logger.py.
"""
from __future__ import annotations

from collections import deque

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from callgw.interfaces import ICallLogSink

REAPED_CAUSE = 41


@implementer(ICallLogSink)
class CallLogger(Service):
    """Batches call records to the store; keeps live calls and recent CDRs in memory."""

    log = Logger()
    name = "call-logger"

    def __init__(self, store, clock, node: str, flush_interval: float = 0.2,
                 reap_interval: float = 5.0, metrics=None, recent: int = 200):
        self.store = store
        self.clock = clock
        self.node = node
        self.flush_interval = flush_interval
        self.reap_interval = reap_interval
        self.metrics = metrics
        self.calls: dict[str, object] = {}          # call id -> live handler
        self.rows: dict[str, dict] = {}             # call id -> active-call row
        self.recent: deque = deque(maxlen=recent)   # recent CDRs, newest last
        self._dirty: set[str] = set()
        self._written: set[str] = set()
        self._events: list[dict] = []
        self._traces: list[dict] = []
        self._cdrs: list[dict] = []
        self._ended: list[str] = []
        self._flushing: Deferred | None = None
        self._loops: list[LoopingCall] = []
        self.batches = 0
        self.lost = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        for fn, interval in ((self.flush, self.flush_interval), (self.reap, self.reap_interval)):
            loop = LoopingCall(fn)
            loop.clock = self.clock
            loop.start(interval, now=False).addErrback(
                lambda f: self.log.failure("call logger loop stopped", f))
            self._loops.append(loop)

    def stopService(self) -> Deferred:
        """Fires once everything gathered so far is written."""
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        return self.drain()

    def drain(self) -> Deferred:
        """Fires when every record gathered until now is in the store."""
        pending = self._flushing if self._flushing is not None else succeed(None)
        d = Deferred()

        def again(_):
            last = self.flush()
            (last if last is not None else succeed(None)).chainDeferred(d)
        pending.addBoth(again)
        return d

    # -- what handlers report -----------------------------------------------------------------
    def call_started(self, ctx) -> None:
        self.calls[ctx.call_id] = None
        self.rows[ctx.call_id] = {
            "call_id": ctx.call_id, "username": ctx.username, "target": ctx.target,
            "gateway": None, "call_server": ctx.call_server, "node": self.node,
            "state": "null", "media_mode": ctx.media_mode, "started": ctx.requested,
            "updated": ctx.requested}
        self._dirty.add(ctx.call_id)
        self.event(ctx.call_id, "launched", user=ctx.username, target=ctx.target,
                   server=ctx.call_server, peer=ctx.peer)
        if self.metrics is not None:
            self.metrics.active(len(self.rows))

    def register(self, handler) -> None:
        """Let the reaper watch ``handler`` (called by the call server)."""
        self.calls[handler.ctx.call_id] = handler

    def call_state(self, call_id: str, state: str, gateway: str | None) -> None:
        row = self.rows.get(call_id)
        if row is not None:
            row["state"] = state
            row["gateway"] = gateway
            row["updated"] = self.clock.seconds()
            self._dirty.add(call_id)

    def event(self, call_id: str, kind: str, **data) -> None:
        self._events.append({"call_id": call_id, "kind": kind, "at": self.clock.seconds(),
                             "data": data})

    def trace(self, call_id: str, trace) -> None:
        self._traces.append({"call_id": call_id, "leg": trace.leg,
                             "direction": trace.direction, "summary": trace.summary,
                             "at": self.clock.seconds()})

    def setup_latency(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.setup_latency(seconds)

    def refused(self, call_id: str, username: str, target: str, reason: str, code: int,
                text: str, peer: str = "") -> None:
        """A call the director refused: an event, a metric, no call."""
        self.event(call_id, "refused", user=username, target=target, reason=reason,
                   code=code, text=text, peer=peer)
        if self.metrics is not None:
            self.metrics.outcome("refused")

    def cdr(self, record: dict) -> None:
        self._cdrs.append(record)
        self.recent.append(record)

    def call_ended(self, handler, stats: dict) -> None:
        ctx = handler.ctx
        call_id = ctx.call_id
        self.calls.pop(call_id, None)
        self.rows.pop(call_id, None)
        self._dirty.discard(call_id)
        if call_id in self._written:
            self._written.discard(call_id)
            self._ended.append(call_id)
        answered = handler.answered
        ended = handler.ended
        self.cdr({
            "call_id": call_id, "username": ctx.username, "tenant": ctx.tenant,
            "target": ctx.target,
            "gateway": handler.gateway["name"] if handler.gateway else None,
            "call_server": ctx.call_server, "requested": ctx.requested,
            "ringing": handler.ringing, "answered": answered, "ended": ended,
            "duration": round(ended - answered, 3) if answered is not None else 0.0,
            "cause": handler.cause, "cause_text": handler.cause_text,
            "media_mode": ctx.media_mode,
            "stats": {"outcome": handler.outcome, "released_by": handler.released_by,
                      "attempts": handler.attempt, "media": stats}})
        if self.metrics is not None:
            self.metrics.outcome(handler.outcome)
            self.metrics.active(len(self.rows))

    # -- display ------------------------------------------------------------------------------
    def active_calls(self) -> list[dict]:
        """The live calls' rows; a call with a media session also shows its ``media``
        statistics (per direction packets, octets, loss, jitter, MOS)."""
        rows = []
        for call_id, row in self.rows.items():
            row = dict(row)
            media = getattr(self.calls.get(call_id), "media", None)
            if media is not None:
                try:
                    row["media"] = media.statistics()
                except Exception:
                    self.log.failure("call {call_id}: media statistics", call_id=call_id)
            rows.append(row)
        return rows

    def recent_cdrs(self, limit: int = 50) -> list[dict]:
        return list(self.recent)[-limit:][::-1]

    # -- batches ------------------------------------------------------------------------------
    def flush(self) -> Deferred | None:
        """Write what gathered; None when there was nothing or a batch is still in flight."""
        if self._flushing is not None:
            return None
        if not (self._events or self._traces or self._cdrs or self._ended or self._dirty):
            return None
        active = [self.rows[c] for c in self._dirty if c in self.rows]
        self._written.update(r["call_id"] for r in active)
        active = [dict(r) for r in active]
        batch = (active, self._events, self._traces, self._cdrs, self._ended)
        self._dirty = set()
        self._events, self._traces, self._cdrs, self._ended = [], [], [], []
        d = self.store.run("call_log_batch", *batch)
        self._flushing = d

        def done(result):
            self._flushing = None
            self.batches += 1
            return result

        def failed(failure):
            self._flushing = None
            self.lost += sum(len(x) for x in batch)
            self.log.failure("call logger: a batch of {n} records was not written", failure,
                             n=sum(len(x) for x in batch))
        d.addCallbacks(done, failed)
        return d

    # -- reaper -------------------------------------------------------------------------------
    def reap(self) -> None:
        """Stop every live call whose legs say it is dead, or that overstayed."""
        now = self.clock.seconds()
        for call_id, handler in list(self.calls.items()):
            if handler is None:
                continue
            reason = None
            for leg in (handler.a, handler.b, handler.media):   # media: inactivity
                check = getattr(leg, "liveness", None)
                if check is not None:
                    reason = check()
                    if reason:
                        break
            if not reason and now - handler.ctx.requested > handler.ctx.max_duration + 60.0:
                reason = "call outlived its maximum duration"
            if reason:
                self.log.info("reaping call {call_id}: {reason}", call_id=call_id,
                              reason=reason)
                self.event(call_id, "reaped", reason=reason)
                if self.metrics is not None:
                    self.metrics.reaped()
                handler.stop(REAPED_CAUSE, "reaped: " + reason)
