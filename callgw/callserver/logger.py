"""The call logger: events, message traces, the active-call table, the reaper and CDRs.

Owned by the call path (ARCHITECTURE.md, "Call logger"). Handlers report to one ``CallLogger``
in memory; nothing on the call path waits for the database. Every ``flush_interval`` seconds
(0.2 by default, on the injected clock) the logger hands what gathered -- events, traces,
active-call rows that changed, CDRs and ended calls -- to the store in one batch
(``Database.call_log_batch``, one transaction on the store thread). A call that starts and ends
between two flushes never touches the active-call table. ``stopService`` flushes what is left
and fires when the last batch is written.

Nothing is lost on a database fault. A batch the store cannot write now (its failure is a
``callgw.store.errors.StoreUnavailable``: locked by another process, read-only file, full disk,
I/O error) is *held*: what gathers meanwhile joins it, and the whole is tried again after a
back-off (``retry_min`` doubling to ``retry_max`` seconds) until one write succeeds. Held
records merge by identity -- one active-call row per call (the newest), one CDR per call, ended
calls dropped from the active-call table when the write lands -- so every call still gets
exactly one CDR. The fault is logged once when it starts (with its cause and what is held),
every ``report_interval`` seconds while it lasts and once when the database is writable again;
``metrics`` shows it (``call_log_status``: records held, database writable, failed writes by
fault). Events and traces are capped at ``hold_limit`` while held (the oldest traces go first,
then events; counted as dropped); CDRs and active-call changes are never dropped. A batch the
database *rejects* (a constraint; retrying cannot help) is written again part by part, and each
part still refused is logged in full (``call log record not written``) and counted.

The reaper runs every ``reap_interval`` seconds over live calls: a call whose handler says it
is dead (``handler.liveness()``: a leg's ``liveness()`` returns a reason, the client vanished,
the native leg's keepalive failed, or the media went silent) or that outlived its maximum
duration by a minute is stopped with cause 41 and the
reason in its CDR (``cause_text`` starts with ``reaped:``).

The display: ``active_calls()`` and ``recent_cdrs()`` serve the JSON API (callgw/web/api.py),
``metrics`` (callgw/callserver/metrics.py) gets outcomes, latencies and the active count, and
the store's active-call table serves ``callgw calls``.

Tests: tests/callpath/test_logger.py.
"""
from __future__ import annotations

import json
from collections import deque

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from callgw.interfaces import ICallLogSink
from callgw.store.errors import fault_of

REAPED_CAUSE = 41


@implementer(ICallLogSink)
class CallLogger(Service):
    """Batches call records to the store; keeps live calls and recent CDRs in memory."""

    log = Logger()
    name = "call-logger"

    def __init__(self, store, clock, node: str, flush_interval: float = 0.2,
                 reap_interval: float = 5.0, metrics=None, recent: int = 200,
                 retry_min: float = 0.5, retry_max: float = 5.0,
                 report_interval: float = 30.0, hold_limit: int = 200_000):
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
        self.retry_min, self.retry_max = retry_min, retry_max
        self.report_interval = report_interval
        self.hold_limit = hold_limit
        self.held: _Held | None = None         # records a failed write left, with what joined
        self.fault: str | None = None          # the database fault while records are held
        self.fault_since: float | None = None
        self.failures = 0                      # failed writes in a row
        self.rejected = 0                      # records the database refused (logged in full)
        self.dropped = 0                       # events and traces over hold_limit
        self._retry_at = 0.0
        self._reported_at = 0.0

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
        """Fires once everything gathered so far is written -- or, when the database is
        still unavailable, once what it could not take is logged in full (``call log
        records not written at shutdown``), so an operator can still bill from the log."""
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        d = self.drain()
        d.addErrback(lambda f: self.log.failure("call logger: the last write", f))
        d.addCallback(lambda _: self._unwritten_at_stop())
        return d

    def _unwritten_at_stop(self) -> None:
        held = self.held
        if held is None:
            return
        self.log.critical(
            "call log records not written at shutdown (database unavailable: {fault}): "
            "{cdrs} CDRs, {records} records in all: {held}", fault=self.fault,
            cdrs=len(held.cdrs), records=len(held),
            held=json.dumps(dict(zip(("active", "events", "traces", "cdrs", "ended"),
                                     held.batch())), default=str))

    def drain(self) -> Deferred:
        """Fires when every record gathered until now is in the store."""
        pending = self._flushing if self._flushing is not None else succeed(None)
        d = Deferred()

        def again(_):
            last = self.flush(force=True)
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
            "updated": ctx.requested, "tenant": ctx.tenant, "answered": None,
            "recovery": []}
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

    def call_answered(self, call_id: str, answered: float, recovery: list) -> None:
        """The call was answered at ``answered``; ``recovery`` is what the native legs need to
        release it if this process dies (written with the active-call row at the next flush,
        so the next start can close it: ``CallPathService`` at start-up)."""
        row = self.rows.get(call_id)
        if row is not None:
            row["answered"] = answered
            row["recovery"] = recovery
            self._dirty.add(call_id)

    def call_recovery(self, call_id: str, recovery: list) -> None:
        """The call's native leg sent its request (SIP: the INVITE): ``recovery`` is what
        releases it (a CANCEL) should this process die before the answer; written with the
        active-call row at the next flush."""
        row = self.rows.get(call_id)
        if row is not None:
            row["recovery"] = recovery
            self._dirty.add(call_id)

    def attach_key(self, call_id: str, digest: str) -> None:
        """The call's client holds a new re-attach key (its SHA-256 ``digest``), written with
        the active-call row so that another node can send a returning client here."""
        row = self.rows.get(call_id)
        if row is not None:
            row["attach_key"] = digest
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
                      "attempts": handler.attempt, "media": stats, "legs": handler.leg_stats}})
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
            row.pop("recovery", None)           # dialog state: the next start's, not a display's
            row.pop("attach_key", None)
            handler = self.calls.get(call_id)
            media = handler.media if handler is not None else None
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
    def flush(self, force: bool = False) -> Deferred | None:
        """Write what gathered (with what an earlier failed write left); None when there was
        nothing, a batch is still in flight, or a held batch waits for its retry time
        (``force``: try now anyway)."""
        if self._flushing is not None:
            return None
        fresh = bool(self._events or self._traces or self._cdrs or self._ended or self._dirty)
        if self.held is not None:
            if fresh:
                self._hold(self._take())
            if not force and self.clock.seconds() < self._retry_at:
                self._report()
                return None
            held, self.held = self.held, None
            batch = held.batch()
        elif fresh:
            held = None
            batch = self._take()
        else:
            return None
        d = self.store.run("call_log_batch", *batch)
        self._flushing = d

        def done(result):
            self._flushing = None
            self.batches += 1
            if held is not None:
                self._recovered(held)
            return result

        def failed(failure):
            self._flushing = None
            if fault_of(failure.value) is None:
                return self._rejected(batch, failure)
            self._failed(batch, failure)
        d.addCallbacks(done, failed)
        d.addErrback(lambda f: self.log.failure("call logger: handling a write's outcome", f))
        return d

    def _take(self) -> tuple:
        """What gathered since the last flush, as a ``call_log_batch`` argument tuple."""
        active = [self.rows[c] for c in self._dirty if c in self.rows]
        self._written.update(r["call_id"] for r in active)
        active = [dict(r) for r in active]
        batch = (active, self._events, self._traces, self._cdrs, self._ended)
        self._dirty = set()
        self._events, self._traces, self._cdrs, self._ended = [], [], [], []
        return batch

    def _hold(self, batch: tuple) -> None:
        if self.held is None:
            self.held = _Held()
        self.held.add(*batch)
        over = self.held.trim(self.hold_limit)
        if over:
            self.dropped += over
            self.log.warn("call logger: over {limit} events and traces held while the "
                          "database is unavailable; dropped the {n} oldest (CDRs and "
                          "active-call changes are all kept)", limit=self.hold_limit, n=over)
        self._gauge()

    def _failed(self, batch: tuple, failure) -> None:
        """The database could not take the batch now: hold it and retry after a back-off."""
        now = self.clock.seconds()
        fault = fault_of(failure.value) or "other"
        first = self.fault is None
        self.failures += 1
        self.fault = fault
        if first:
            self.fault_since = now
        self._hold(batch)
        delay = min(self.retry_max, self.retry_min * (2 ** min(self.failures - 1, 16)))
        self._retry_at = now + delay
        if self.metrics is not None:
            self.metrics.call_log_failed(fault)
        if first:
            self._reported_at = now
            self.log.error(
                "call logger: cannot write to the database ({fault}: {cause}); holding "
                "{records} records ({cdrs} CDRs) in memory and retrying until it can",
                fault=fault, cause=_cause(failure.value), records=len(self.held),
                cdrs=len(self.held.cdrs))
        else:
            self._report()

    def _report(self) -> None:
        now = self.clock.seconds()
        if self.fault is None or now - self._reported_at < self.report_interval:
            return
        self._reported_at = now
        self.log.warn("call logger: database still unavailable ({fault}) after {seconds:.0f} s "
                      "and {failures} tries; holding {records} records ({cdrs} CDRs)",
                      fault=self.fault, seconds=now - (self.fault_since or now),
                      failures=self.failures, records=len(self.held or ()),
                      cdrs=len(self.held.cdrs) if self.held is not None else 0)

    def _recovered(self, held: "_Held") -> None:
        if self.fault is not None:
            self.log.info("call logger: database writable again after {seconds:.1f} s "
                          "({fault}); wrote the {records} held records ({cdrs} CDRs)",
                          seconds=self.clock.seconds() - (self.fault_since or 0.0),
                          fault=self.fault, records=len(held), cdrs=len(held.cdrs))
        self.fault = self.fault_since = None
        self.failures = 0
        self._gauge()

    def _rejected(self, batch: tuple, failure) -> Deferred:
        """The database refused the batch (not a passing fault): write it part by part --
        each CDR alone, then events, traces, active-call changes -- so one bad record cannot
        take the others with it; each part refused again is logged in full."""
        self.log.failure("call logger: the database refused a batch of {n} records; writing "
                         "it part by part", failure, n=sum(len(x) for x in batch))
        active, events, traces, cdrs, ended = batch
        parts = [((), (), (), (c,), ()) for c in cdrs]
        parts += [((), events, (), (), ()), ((), (), traces, (), ()), (active, (), (), (), ended)]
        parts = [p for p in parts if any(p)]
        d = self._flushing = Deferred()

        def next_part(_=None):
            if not parts:
                self._flushing = None
                d.callback(None)
                return
            part = parts.pop(0)
            w = self.store.run("call_log_batch", *[list(x) for x in part])
            w.addCallbacks(next_part, lambda f: part_failed(part, f))

        def part_failed(part, f):
            if fault_of(f.value) is not None:            # the database went away meanwhile
                self._failed(tuple(list(x) for x in part), f)
            else:
                n = sum(len(x) for x in part)
                self.rejected += n
                self.log.error("call log record not written ({cause}): {records}",
                               cause=_cause(f.value), records=json.dumps(
                                   [list(x) for x in part], default=str))
            next_part()
        next_part()
        return d

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.call_log_status(len(self.held or ()), self.fault is None)

    # -- reaper -------------------------------------------------------------------------------
    def reap(self) -> None:
        """Stop every live call whose legs say it is dead, or that overstayed."""
        now = self.clock.seconds()
        for call_id, handler in list(self.calls.items()):
            if handler is None:
                continue
            reason = handler.liveness()
            if not reason and now - handler.ctx.requested > handler.ctx.max_duration + 60.0:
                reason = "call outlived its maximum duration"
            if reason:
                self.log.info("reaping call {call_id}: {reason}", call_id=call_id,
                              reason=reason)
                self.event(call_id, "reaped", reason=reason)
                if self.metrics is not None:
                    self.metrics.reaped()
                handler.stop(REAPED_CAUSE, "reaped: " + reason)


class _Held:
    """Records a failed write left, merged with what gathered since: one active-call row and
    one CDR per call, ended calls, events and traces in order."""

    def __init__(self):
        self.active: dict[str, dict] = {}
        self.events: list[dict] = []
        self.traces: list[dict] = []
        self.cdrs: dict[str, dict] = {}
        self.ended: list[str] = []

    def add(self, active, events, traces, cdrs, ended) -> None:
        for row in active:
            self.active[row["call_id"]] = row
        self.events.extend(events)
        self.traces.extend(traces)
        for cdr in cdrs:
            self.cdrs[cdr["call_id"]] = cdr
        for call_id in ended:             # no use writing the row of a call that ended
            self.active.pop(call_id, None)
            self.ended.append(call_id)

    def trim(self, limit: int) -> int:
        """Drop the oldest traces, then events, beyond ``limit``; returns how many."""
        over = len(self.events) + len(self.traces) - limit
        if over <= 0:
            return 0
        cut = min(over, len(self.traces))
        del self.traces[:cut]
        rest = over - cut
        if rest:
            del self.events[:rest]
        return over

    def batch(self) -> tuple:
        return (list(self.active.values()), self.events, self.traces,
                list(self.cdrs.values()), self.ended)

    def __len__(self) -> int:
        return (len(self.active) + len(self.events) + len(self.traces) + len(self.cdrs)
                + len(self.ended))


def _cause(error: BaseException) -> str:
    text = getattr(error, "text", None) or str(error)
    return text or type(error).__name__
