"""The call handler: one per call, a transition table over neutral call events.

Owned by the call path (ARCHITECTURE.md, "Call handler"; STYLE.md sections 2 and 3). A handler
joins two ``ICallLeg`` providers: leg ``a`` sent the ``Setup`` (the *call master*'s side: the
client leg for outbound calls) and leg ``b`` places it (the *call slave*: SIP now, H.323 and
MGCP later, or a client leg for inbound calls). Nothing in the table knows which protocol or
which direction: inputs are ``"a.<Event>"``/``"b.<Event>"`` plus timers and operator actions.

States are Q.931's call states for the originating side (Q.931 section 2.1.1):
``NULL`` (U0) -> ``CALL_INITIATED`` (U1, Setup sent to b) -> ``PROCEEDING`` (U3, b answered
provisionally) -> ``DELIVERED`` (U4, b alerts) -> ``ACTIVE`` (U10) -> ``RELEASED`` (U0 again,
terminal). ``TRANSITIONS[(state, input)] = (action, next_state)``; an undefined pair is a
protocol error that releases both legs with cause 111 (never a silent ignore). Late events in
``RELEASED`` are dropped on purpose (legs may still be finishing).

Timers on the injected clock: *setup* (no provisional answer from b within ``setup_timeout``),
*no answer* (ringing longer than ``no_answer_timeout``) and *max duration* (from answer).
Failover: when b fails before answer with a cause in ``FAILOVER_CAUSES`` (SIP 5xx, a setup
timeout, a refused connection) and gateways and attempts remain, a new b leg is made for the
next gateway; so is a gateway whose provider cannot make a leg (``LegUnavailable``, cause 47).
A leg that was sent ``Release`` is left to finish its own signalling (a 2xx crossing a CANCEL
is ACKed and BYEd by the SIP leg): the handler never closes a leg it has just released. Once the
CDR is handed to the logger the handler lets go of its legs (b when released, a when finished):
a leg may keep the handler as its sink (late messages are traced and ignored in ``RELEASED``),
but no reference cycle is left, so a finished call is freed by reference counts, not by the
cyclic collector (docs/performance.md, "Reference cycles of a released call").
Media: a ``Setup`` without media (relay mode) gets side ``b``'s address from the
``IMediaSession`` (sides are named by role: ``a`` sent the ``Setup``, ``b`` places it); with
media (direct mode) the offer passes through untouched, unless the call server gave the call an
``IAnchoredMedia`` (``[media] backend = "rtpengine"``): then b is offered the anchor's address
for a's media, and b's media (early or answer) reaches a as the anchor's address for it
(``media.anchored``). In an anchored call a's ``Hold`` is offered to the anchor again (a's media
with direction sendonly, or sendrecv to resume) before b gets it (``media.reoffered``: the
``Hold`` when the anchor's address is unchanged, else a ``MediaOffer`` with the new one), and
b's ``MediaAnswer`` goes through the anchor as its answer; a re-anchoring that fails is logged
and the call goes on with the media it has.

Tests: tests/callpath/test_handler.py (fake legs, task.Clock).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from twisted.internet.defer import gatherResults, maybeDeferred, succeed
from twisted.logger import Logger

from callgw.callserver import events as ev
from callgw.interfaces import IAnchoredMedia, LegUnavailable

NORMAL, USER_BUSY, NO_ANSWER, DEST_OUT_OF_ORDER = 16, 17, 19, 27
CONGESTION, TEMPORARY_FAILURE, TIMER_EXPIRY, PROTOCOL_ERROR = 34, 41, 102, 111
RESOURCE_UNAVAILABLE = 47
#: Q.850 causes of a failure before answer that let the handler try the next gateway:
#: 3 no route, 27 destination out of order (refused connection), 34/38/41/42/47 (SIP 5xx),
#: 102 recovery on timer expiry (setup timeout, SIP 408/504).
FAILOVER_CAUSES = frozenset({3, 27, 34, 38, 41, 42, 47, 102})


class State(enum.Enum):
    NULL = "null"
    CALL_INITIATED = "call-initiated"
    PROCEEDING = "proceeding"
    DELIVERED = "delivered"
    ACTIVE = "active"
    RELEASED = "released"


S = State
_EARLY = (S.CALL_INITIATED, S.PROCEEDING, S.DELIVERED)
_LIVE = _EARLY + (S.ACTIVE,)

TRANSITIONS: dict[tuple[State, str], tuple[str, State | None]] = {}
"""(state, input) -> (action method name, next state; None: the action decides)."""


def _t(states, inputs, action, next_state):
    for s in states if isinstance(states, tuple) else (states,):
        for i in inputs if isinstance(inputs, tuple) else (inputs,):
            TRANSITIONS[(s, i)] = (action, next_state)


_t(S.NULL, "start", "place", S.CALL_INITIATED)
_t(S.CALL_INITIATED, "media.ready", "media_ready", None)
_t(_LIVE, "media.anchored", "to_a", None)
_t(S.CALL_INITIATED, "b.Proceeding", "proceeding", S.PROCEEDING)
_t((S.PROCEEDING, S.DELIVERED), "b.Proceeding", "ignore", None)
_t((S.CALL_INITIATED, S.PROCEEDING), "b.Alerting", "alerting", S.DELIVERED)
_t(S.DELIVERED, "b.Alerting", "early_media", S.DELIVERED)
_t(_EARLY, "b.Connect", "connect", S.ACTIVE)
_t(S.ACTIVE, ("b.Connect", "b.Alerting", "b.Proceeding"), "ignore", None)
_t(_EARLY, "b.Release", "early_failure", None)
_t(S.ACTIVE, "b.Release", "release_from_b", S.RELEASED)
_t(_LIVE, "a.Release", "release_from_a", S.RELEASED)
_t(S.CALL_INITIATED, "timer.setup", "setup_timeout", None)
_t((S.PROCEEDING, S.DELIVERED), "timer.no_answer", "no_answer", S.RELEASED)
_t(S.ACTIVE, "timer.max_duration", "max_duration", S.RELEASED)
_t(_LIVE, "stop", "stop", S.RELEASED)
_t(S.NULL, "stop", "stop", S.RELEASED)
_t(S.ACTIVE, ("a.Dtmf", "a.MediaOffer", "a.MediaAnswer", "a.DtmfResult"), "to_b", None)
_t(S.ACTIVE, ("b.Dtmf", "b.MediaOffer", "b.DtmfResult"), "to_a", None)
_t(S.ACTIVE, "a.Hold", "hold", None)
_t(S.ACTIVE, "media.reoffered", "reoffer", None)
_t(S.ACTIVE, "b.Hold", "held_by_b", None)
_t(S.ACTIVE, "b.MediaAnswer", "answer_from_b", None)
_t(_EARLY, ("a.Dtmf", "a.Hold", "b.Dtmf", "b.Hold"), "ignore", None)
_t(S.RELEASED, ("a.DtmfResult", "b.DtmfResult"), "ignore", None)
_t(S.RELEASED, ("media.ready", "media.anchored", "media.reoffered", "a.Release", "b.Release", "stop",
                "timer.setup", "timer.no_answer", "timer.max_duration", "b.Proceeding", "b.Alerting", "b.Connect",
                "a.Dtmf", "b.Dtmf", "a.Hold", "b.Hold", "a.MediaOffer", "b.MediaOffer",
                "a.MediaAnswer", "b.MediaAnswer"), "ignore", None)


@dataclass
class CallContext:
    """What the handler knows about its call beyond the legs (for logs and the CDR)."""
    call_id: str
    username: str
    tenant: str
    target: str
    caller: str | None = None
    privacy: bool = False
    media_mode: str = "relay"
    call_server: str = ""
    requested: float = 0.0
    max_duration: float = 14400.0
    peer: str = ""


@dataclass(frozen=True)
class Timers:
    """Handler timers in seconds (``[calls]`` in the configuration)."""
    setup: float = 8.0
    no_answer: float = 60.0
    max_attempts: int = 3


class CallHandler:
    """One call: legs ``a`` and ``b``, the table above, timers, failover, the CDR."""

    log = Logger()
    __slots__ = ("ctx", "a", "b", "clock", "timers", "slave_factory", "gateways", "logger",
                 "media", "on_finished", "state", "attempt", "gateway", "setup", "ringing",
                 "answered", "ended", "cause", "cause_text", "released_by", "_timer_setup",
                 "_timer_no_answer", "_timer_max", "_busy", "_queue", "offer", "directory",
                 "leg_stats")

    def __init__(self, ctx: CallContext, a_leg, slave_factory, gateways: list, clock,
                 logger, timers: Timers = Timers(), media=None, on_finished=None,
                 directory=None):
        self.ctx = ctx
        self.a = a_leg
        self.b = None
        self.clock = clock
        self.timers = timers
        self.slave_factory = slave_factory
        self.gateways = list(gateways)[:timers.max_attempts]
        self.logger = logger
        self.media = media
        self.on_finished = on_finished
        self.directory = directory
        self.state = State.NULL
        self.attempt = 0
        self.gateway: dict | None = None
        self.setup: ev.Setup | None = None
        self.offer: ev.MediaDescription | None = None
        self.ringing = self.answered = self.ended = None
        self.cause, self.cause_text, self.released_by = NORMAL, "", ""
        self._timer_setup = self._timer_no_answer = self._timer_max = None
        self._busy = False
        self._queue: list = []
        self.leg_stats: dict = {}       # leg name -> its statistics() for the CDR

    # -- entry points -------------------------------------------------------------------------
    def start(self, setup: ev.Setup) -> None:
        """Take leg a's ``Setup`` and place the call toward the first gateway."""
        self.setup = setup
        self.a.attach(self._from_a)
        self.logger.call_started(self.ctx)
        self.handle("start", setup)

    def stop(self, cause: int = TEMPORARY_FAILURE, text: str = "shutdown") -> None:
        """Release both legs now (shutdown, reaper, operator)."""
        self.handle("stop", ev.Release(cause, text))

    def _from_a(self, leg, event) -> None:
        if type(event) is ev.Trace:
            self.logger.trace(self.ctx.call_id, event)
            return
        if type(event) is ev.AttachKey:
            self.logger.attach_key(self.ctx.call_id, event.digest)
            return
        self.handle("a." + type(event).__name__, event)

    def _from_b(self, leg, event) -> None:
        if leg is not self.b:
            if type(event) is ev.Trace:
                self.logger.trace(self.ctx.call_id, event)
            return          # a leg we already failed over from
        if type(event) is ev.Trace:
            self.logger.trace(self.ctx.call_id, event)
            return
        self.handle("b." + type(event).__name__, event)

    def handle(self, name: str, event) -> None:
        """Run one input through the table; inputs arriving during an action are queued."""
        if self._busy:
            self._queue.append((name, event))
            return
        self._busy = True
        try:
            self._step(name, event)
            while self._queue:
                self._step(*self._queue.pop(0))
        finally:
            self._busy = False

    def _step(self, name: str, event) -> None:
        entry = TRANSITIONS.get((self.state, name))
        if entry is None:
            self.log.warn("call {call_id}: {input} in state {state} is a protocol error",
                          call_id=self.ctx.call_id, input=name, state=self.state.value)
            self.logger.event(self.ctx.call_id, "protocol-error", input=name,
                              state=self.state.value)
            if self.state is not State.RELEASED:
                self._release_both(PROTOCOL_ERROR, f"unexpected {name} in {self.state.value}",
                                   "callgw")
                self.state = State.RELEASED
            return
        action, next_state = entry
        try:
            getattr(self, "_do_" + action)(event)
        except Exception:
            self.log.failure("call {call_id} peer {peer}: action {action} failed",
                             call_id=self.ctx.call_id, peer=self.ctx.peer, action=action)
            if self.state is not State.RELEASED:
                self._release_both(PROTOCOL_ERROR, f"internal error in {action}", "callgw")
                self.state = State.RELEASED
            return
        if next_state is not None and self.state is not State.RELEASED:
            self.state = next_state
            self.logger.call_state(self.ctx.call_id, next_state.value,
                                   self.gateway["name"] if self.gateway else None)

    # -- actions ------------------------------------------------------------------------------
    def _do_ignore(self, event) -> None:
        pass

    def _do_place(self, setup) -> None:
        self.a.send(ev.Proceeding())
        if not self.gateways:
            self._fail_a(CONGESTION, "no gateway available for this destination")
            return
        if setup.media is not None and self.media is not None:     # anchored direct mode
            d = maybeDeferred(self.media.anchor, "a", setup.media)
            d.addCallback(lambda media: self.handle("media.ready", media))
            d.addErrback(self._anchor_unavailable)
        elif setup.media is None and self.media is not None:
            d = maybeDeferred(self.media.allocate, "b")
            d.addCallback(lambda address: self.handle("media.ready", address))
            d.addErrback(self._allocation_failed)
        else:
            self.offer = setup.media
            self._attempt()

    def _do_media_ready(self, address) -> None:
        if isinstance(address, ev.MediaDescription):
            self.offer = address
        else:
            host, port = address
            self.offer = ev.MediaDescription(host, port)
        if self.b is None:
            self._attempt()

    def _allocation_failed(self, failure, text="no media ports") -> None:
        self.log.failure("call {call_id} peer {peer}: media allocation failed ({text})",
                         failure, call_id=self.ctx.call_id, peer=self.ctx.peer, text=text)
        self.handle("stop", ev.Release(CONGESTION, text))

    def _anchor_unavailable(self, failure) -> None:
        """The media backend did not take a's offer: the gateway is not called."""
        self.log.warn("call {call_id} peer {peer}: media backend unavailable: {error}",
                      call_id=self.ctx.call_id, peer=self.ctx.peer,
                      error=failure.getErrorMessage() or failure.type.__name__)
        self.handle("stop", ev.Release(CONGESTION, "media backend unavailable"))

    def _anchored(self) -> bool:
        return self.setup.media is not None and IAnchoredMedia.providedBy(self.media)

    def _do_hold(self, event) -> None:
        """a holds or resumes: an anchored call's new offer goes through the anchor first."""
        if not self._anchored():
            self.b.send(event)
            return
        self.media.hold(event.on, "client")
        media = replace(self.setup.media, direction="sendonly" if event.on else "sendrecv")
        d = maybeDeferred(self.media.anchor, "a", media)
        d.addCallback(lambda anchored: self.handle("media.reoffered", (event, anchored)))
        d.addErrback(self._reanchor_failed, "hold" if event.on else "resume", event)

    def _do_reoffer(self, offer) -> None:
        event, media = offer
        if self.offer is not None and (media.address, media.port) == (self.offer.address,
                                                                      self.offer.port):
            self.b.send(event)          # the leg's own hold re-INVITE, to the same address
            return
        self.offer = media
        self.b.send(ev.MediaOffer(media))

    def _reanchor_failed(self, failure, what: str, event=None) -> None:
        self.log.warn("call {call_id} peer {peer}: media backend {what} failed, the call goes "
                      "on with its media as it was: {error}", call_id=self.ctx.call_id,
                      peer=self.ctx.peer, what=what,
                      error=failure.getErrorMessage() or failure.type.__name__)
        if event is not None and self.state is State.ACTIVE and self.b is not None:
            self.b.send(event)

    def _do_held_by_b(self, event) -> None:
        if self._anchored():
            self.media.hold(event.on, "gateway")
        self.a.send(event)

    def _do_answer_from_b(self, event) -> None:
        """b answered a re-offer (hold, resume, a move to the relay): through the anchor when
        the call's media is anchored."""
        if not self._anchored() or event.media is None:
            self.a.send(event)
            return
        d = maybeDeferred(self.media.anchor, "b", event.media)
        d.addCallback(lambda media: self.handle("media.anchored", replace(event, media=media)))
        d.addErrback(self._reanchor_failed, "answer")

    def _to_a_media(self, event) -> None:
        """Send leg b's ``event`` to a; through the anchor when the call's media is anchored
        (its ``media`` becomes the anchor's address, sent on ``media.anchored``)."""
        if event.media is None or self.media is None or self.setup.media is None:
            self.a.send(event)
            return
        d = maybeDeferred(self.media.anchor, "b", event.media)
        d.addCallback(lambda media: self.handle("media.anchored", replace(event, media=media)))
        d.addErrback(self._allocation_failed, "media anchor failed")

    def _attempt(self) -> None:
        """Place the call toward ``gateways[attempt]`` through a new b leg; a gateway whose
        provider cannot make a leg now is skipped like one that failed (cause 47)."""
        while True:
            gw = self.gateway = self.gateways[self.attempt]
            self.attempt += 1
            self.logger.event(self.ctx.call_id, "attempt", gateway=gw["name"], n=self.attempt,
                              **({"candidates": [g["name"] for g in self.gateways]}
                                 if self.attempt == 1 else {}))
            self.logger.call_state(self.ctx.call_id, "call-initiated", gw["name"])
            try:
                self.b = self.slave_factory(gw, self.ctx.call_id)
                break
            except LegUnavailable as e:
                text = f"gateway {gw['name']}: {e}"
                self.log.warn("call {call_id} peer {peer}: {text}", call_id=self.ctx.call_id,
                              peer=self.ctx.peer, text=text)
                if self.attempt >= len(self.gateways):
                    self._fail_a(RESOURCE_UNAVAILABLE, text, "callgw")
                    return
                self.logger.event(self.ctx.call_id, "failover", failed=gw["name"],
                                  cause=RESOURCE_UNAVAILABLE, text=text,
                                  next=self.gateways[self.attempt]["name"])
        if self.directory is not None:
            self.directory.acquire(gw["name"])
        self.b.attach(self._from_b)
        self._timer_setup = self.clock.callLater(self.timers.setup, self.handle,
                                                 "timer.setup", None)
        setup = replace(self.setup, call_id=self.ctx.call_id, media=self.offer)
        presentation = gw.get("caller_id") or "pass"
        if presentation.startswith("fixed:"):
            setup = replace(setup, caller=presentation[6:], privacy=False)
        elif presentation == "withhold":
            setup = replace(setup, privacy=True)
        self.b.send(setup)
        early = self.b.recovery()       # what releases the attempt should this process die
        if early is not None:
            self.logger.call_recovery(self.ctx.call_id, [early])

    def _gateway_answered(self) -> None:
        if self.directory is not None and self.gateway is not None:
            self.directory.answered(self.gateway["name"], self.clock.seconds())

    def _do_proceeding(self, event) -> None:
        self._gateway_answered()
        self._cancel_setup_timer()
        self.logger.event(self.ctx.call_id, "proceeding", gateway=self.gateway["name"])

    def _do_alerting(self, event) -> None:
        self._gateway_answered()
        self._cancel_setup_timer()
        self.ringing = self.clock.seconds()
        self.logger.event(self.ctx.call_id, "ringing", gateway=self.gateway["name"])
        self.logger.setup_latency(self.ringing - self.ctx.requested)
        self._to_a_media(event)

    def _do_early_media(self, event) -> None:
        if event.media is not None:
            self._to_a_media(event)

    def _do_connect(self, event) -> None:
        self._gateway_answered()
        self._cancel_setup_timer()
        self._cancel(("_timer_no_answer",))
        self.answered = self.clock.seconds()
        if self.ringing is None:
            self.logger.setup_latency(self.answered - self.ctx.requested)
        if self.media is not None and event.media is not None and self.setup.media is None:
            self.media.connect("b", event.media)
            event = ev.Connect(None)
        self.logger.event(self.ctx.call_id, "established", gateway=self.gateway["name"])
        self.logger.call_answered(self.ctx.call_id, self.answered,
                                  [r for r in (self.a.recovery(), self.b.recovery()) if r])
        self._timer_max = self.clock.callLater(self.ctx.max_duration, self.handle,
                                               "timer.max_duration", None)
        self._to_a_media(event)

    def _do_early_failure(self, event) -> None:
        self._cancel_setup_timer()
        self._cancel(("_timer_no_answer",))
        self._drop_b()
        if self._failover(event.cause, event.text):
            return
        self._fail_a(event.cause, event.text or "released by the far end", "b")

    def _do_setup_timeout(self, _) -> None:
        self._timer_setup = None
        text = f"no answer from gateway {self.gateway['name']} in {self.timers.setup:g} s"
        b = self.b
        self._drop_b()
        b.send(ev.Release(TIMER_EXPIRY, "setup timeout"))  # the leg finishes its own signalling
        if self._failover(TIMER_EXPIRY, text):
            return
        self._fail_a(TIMER_EXPIRY, text, "callgw")

    def _failover(self, cause: int, text: str) -> bool:
        """Try the next gateway when the cause allows it; True when a new attempt started."""
        if cause not in FAILOVER_CAUSES or self.attempt >= len(self.gateways):
            return False
        self.logger.event(self.ctx.call_id, "failover", failed=self.gateway["name"],
                          cause=cause, text=text, next=self.gateways[self.attempt]["name"])
        self.state = State.CALL_INITIATED
        self._attempt()
        return True

    def _do_no_answer(self, _) -> None:
        self._timer_no_answer = None
        self._release_both(NO_ANSWER, f"no answer in {self.timers.no_answer:g} s", "callgw")

    def _do_max_duration(self, _) -> None:
        self._timer_max = None
        self._release_both(NORMAL, f"maximum call duration ({self.ctx.max_duration:g} s)",
                           "callgw")

    def _do_release_from_a(self, event) -> None:
        self._release_one(self.b, event, "a")

    def _do_release_from_b(self, event) -> None:
        self._release_one(self.a, event, "b")

    def _do_stop(self, event) -> None:
        self._release_both(event.cause, event.text, "callgw")

    def _do_to_b(self, event) -> None:
        self.b.send(event)

    def _do_to_a(self, event) -> None:
        self.a.send(event)

    # -- helpers ------------------------------------------------------------------------------
    def _cancel_setup_timer(self) -> None:
        if self._timer_setup is not None:
            self._timer_setup.cancel()
            self._timer_setup = None
            if self._timer_no_answer is None:
                self._timer_no_answer = self.clock.callLater(
                    self.timers.no_answer, self.handle, "timer.no_answer", None)

    def _cancel(self, names=("_timer_setup", "_timer_no_answer", "_timer_max")) -> None:
        for name in names:
            timer = getattr(self, name)
            if timer is not None:
                if timer.active():
                    timer.cancel()
                setattr(self, name, None)

    def _drop_b(self) -> None:
        if self.directory is not None and self.gateway is not None and self.b is not None:
            self.directory.release(self.gateway["name"])
        self.b = None

    def _fail_a(self, cause: int, text: str, by: str = "callgw") -> None:
        """Before answer: tell a, finish."""
        self.a.send(ev.Release(cause, text))
        self._finish(cause, text, by)

    def _release_one(self, other, event, by: str) -> None:
        if other is not None:
            other.send(ev.Release(event.cause, event.text))
        self._finish(event.cause, event.text, by)

    def _release_both(self, cause: int, text: str, by: str) -> None:
        release = ev.Release(cause, text)
        if self.b is not None:
            self.b.send(release)
        self.a.send(release)
        self._finish(cause, text, by)

    def _finish(self, cause: int, text: str, by: str) -> None:
        legs = [leg for leg in (self.a, self.b) if leg is not None]
        self.state = State.RELEASED
        self._cancel()
        self._drop_b()
        self.ended = self.clock.seconds()
        self.cause, self.cause_text, self.released_by = cause, text, by
        self.logger.event(self.ctx.call_id, "disconnected", cause=cause, text=text, by=by)
        media = (maybeDeferred(self.media.close).addErrback(self._media_close_failed)
                 if self.media is not None else succeed({}))
        asked = [maybeDeferred(leg.statistics).addErrback(self._leg_stats_failed, leg)
                 .addCallback(self._leg_stats, leg) for leg in legs]
        d = gatherResults([media] + asked)
        d.addCallback(lambda results: self._finished(results[0]))
        d.addErrback(lambda f: self.log.failure("call {call_id}: finishing", f,
                                                call_id=self.ctx.call_id))

    def _leg_stats(self, stats, leg) -> None:
        if stats:
            self.leg_stats[leg.name] = stats

    def _leg_stats_failed(self, failure, leg) -> None:
        self.log.failure("call {call_id} peer {peer}: statistics of the {leg} leg", failure,
                         call_id=self.ctx.call_id, peer=self.ctx.peer, leg=leg.name)

    def _media_close_failed(self, failure) -> dict:
        self.log.failure("call {call_id} peer {peer}: closing media", failure,
                         call_id=self.ctx.call_id, peer=self.ctx.peer)
        return {}

    def _finished(self, stats) -> None:
        self.logger.call_ended(self, stats or {})
        self.a = None       # its sink is our method: no cycle once the call is done (below)
        if self.on_finished is not None:
            self.on_finished(self)

    def liveness(self) -> str | None:
        """None while the call is alive; else why not: the first of leg a, leg b and the
        media session (silence) that reports its peer gone (the logger's reaper asks)."""
        for part in (self.a, self.b, self.media):
            if part is not None:
                reason = part.liveness()
                if reason:
                    return reason
        return None

    @property
    def outcome(self) -> str:
        """answered, busy, no-answer, cancelled or failed (for metrics and the API)."""
        if self.answered is not None:
            return "answered"
        if self.cause == USER_BUSY:
            return "busy"
        if self.cause in (18, NO_ANSWER):
            return "no-answer"
        if self.released_by == "a":
            return "cancelled"
        return "failed"


def mermaid() -> str:
    """The transition table as a Mermaid state diagram (docs/architecture.md is made from it:
    ``python -m callgw.callserver.handler``). Ignored inputs are left out."""
    lines = ["stateDiagram-v2", "    [*] --> null"]
    edges: dict[tuple[str, str], list[str]] = {}
    for (state, name), (action, next_state) in TRANSITIONS.items():
        if action == "ignore":
            continue
        targets = [next_state.value] if next_state is not None else {
            "early_failure": ["call-initiated", "released"],
            "setup_timeout": ["call-initiated", "released"],
            "media_ready": ["call-initiated"], "early_media": ["delivered"]}.get(
                action, [state.value])
        for target in targets:
            edges.setdefault((state.value, target), []).append(name)
    for (src, dst), names in sorted(edges.items()):
        lines.append(f"    {src} --> {dst}: {', '.join(sorted(set(names)))}")
    lines.append("    released --> [*]")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    sys.stdout.write(mermaid() + "\n")
