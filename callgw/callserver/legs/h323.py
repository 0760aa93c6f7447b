"""The H.323 call slave: one call toward an H.323 gateway, as an ``ICallLeg``.

Translates between the neutral events of ``callgw.callserver.events`` and one
``protocols.h323.call.OutgoingCall`` run by ``protocols.h323.adapter.CallRunner``:

- ``send(Setup)``: with a gatekeeper, registration (if needed) and ARQ first, then the Setup goes
  to the ACF's destCallSignalAddress; without, to the gateway row's address. The gateway's number
  rewriting applies (the "+" never goes: dialledDigits has no "+"; an untouched E.164 number is
  sent as type "international"); the caller's number with presentation restricted when withheld.
  ``Setup.media`` (the relay's address, or the client's in direct mode) is offered by fastStart
  (the gateway's ``fast_start`` option) and used in the H.245 channels otherwise. T303 is
  ``[calls] setup_timeout``, T301 the no-answer timeout.
- The gateway's answers come back as ``Proceeding``, ``Alerting`` (with the gateway's media when
  it signals in-band information and fastStart already named it), ``Connect(media)`` (held back,
  when fastStart was refused, until the H.245 OpenLogicalChannelAck names where our audio goes),
  and ``Release(cause)``, the Q.850 cause from its Cause IE or mapped from its reason
  (``callgw.causes``, protocol "h323").
- ``send(Dtmf)`` sends a UserInputIndication (held until TCS and msd are done);
  UserInputIndications from the gateway come back as ``Dtmf``. ``send(Release)`` sends
  EndSessionCommand and ReleaseComplete with the cause; with a gatekeeper, a DRQ follows.
- ``Hold`` and ``MediaOffer`` are not supported by this leg (logged): H.323 would need H.245
  channel re-opening, which is not implemented.
- Every H.225.0/H.245 message sent or received is reported to the sink as a ``Trace``.

Tests: tests/h323/test_h323_leg.py, tests/h323/test_h323_calls.py.
"""
from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from callgw import causes, numbers
from callgw.callserver.events import (Alerting, Connect, Dtmf, Hold, MediaDescription,
                                      MediaOffer, Proceeding, Release, Setup, Trace)
from callgw.interfaces import ICallLeg
from protocols.h323 import call as callcore
from protocols.h323.adapter import CallRunner

log = Logger(namespace="callgw.h323.leg")

MEDIA_WAIT = 10.0   # after Connect, seconds to wait for H.245 to name the gateway's media


@implementer(ICallLeg)
class H323Leg:
    """The H.323 call slave for one call toward one gateway row (see the module docstring)."""

    name = "h323"

    def __init__(self, provider, gateway, clock, link=None):
        self.provider = provider
        self.gateway = gateway
        self.clock = clock
        self.link = link
        self.sink = None
        self.runner = None
        self.core = None
        self.call_id = None
        self.options = None
        self.state = "idle"          # idle, admitting, calling, alerting, awaiting-media,
        #                              connected, released
        self.transmit = None          # protocols.h323.call.MediaTransmit
        self._inband = False
        self._media_wait = None
        self._admitted = False
        self._vanished = None

    # ---- ICallLeg ----
    def attach(self, sink):
        self.sink = sink

    def send(self, event):
        """Act on a neutral event from the other leg; failures come back as ``Release``."""
        try:
            kind = type(event)
            if kind is Setup:
                self._setup(event)
            elif kind is Release:
                self._release(event)
            elif kind is Dtmf:
                if self.runner is not None and self.state not in ("released",):
                    self.runner.send_dtmf(event.digit)
            elif kind in (Hold, MediaOffer):
                log.info("H.323 leg of {call_id}: {event} is not supported", call_id=self.call_id,
                         event=kind.__name__)
            else:
                log.debug("H.323 leg ignores {event!r}", event=event)
        except Exception:  # noqa: BLE001 - ICallLeg.send never raises for a protocol reason
            log.failure("H.323 leg failed on {event!r} for {call_id}", event=event,
                        call_id=self.call_id)
            self._fail(causes.TEMPORARY_FAILURE, "local failure")

    def close(self):
        """Drop timers; a call never released is cut without signalling (its TCP closed)."""
        self._stop_media_wait()
        if self.runner is not None and not self.runner.finished and self.state != "released":
            self.runner.abort()
        self.state = "released"

    def liveness(self):
        return self._vanished

    def statistics(self):
        """What the CDR keeps of the H.323 side: whether fastStart was accepted, how H.245 ran
        (tunnelled, on the separate connection, or not at all), the gateway's H.225.0 version,
        the codec and whether a gatekeeper admitted the call; None when no Setup went out."""
        core = self.core
        if core is None or self.runner is None:
            return None
        h245 = "tunnelled" if core.tunnelling else (
            "separate" if core.h245_channel != "none" or self.runner.h245 is not None else "none")
        return {"fast_start": bool(core.fast_start), "h245": h245,
                "h225_version": core.remote_version,
                "codec": self.transmit.codec if self.transmit else None,
                "gatekeeper": self.link is not None}

    def recovery(self):
        """What a ReleaseComplete from the next start needs should this process die with the
        call up (``H323LegProvider.release_orphan``); None before answer."""
        if self.state != "connected" or self.runner is None:
            return None
        host, port = self.runner.gateway
        return {"protocol": "h323", "gateway": self.gateway.get("name"), "host": host,
                "port": port, "call_reference": self.core.crv,
                "call_id": self.core.call_id.hex(), "conference_id": self.core.conference_id.hex()}

    # ---- placing the call ----
    def _setup(self, setup):
        if self.state != "idle":
            raise ValueError("Setup on a leg that is not idle")
        self.call_id = setup.call_id
        if setup.media is None:
            self.state = "released"
            self._emit(Release(79, "the H.323 leg needs a media address to offer"))
            return
        gw = self.gateway
        options = gw.get("options") or {}
        plus = setup.target.startswith("+")
        strip, prepend = int(gw.get("strip_digits") or 0), gw.get("prepend") or ""
        number = numbers.rewrite(setup.target, strip, prepend, keep_plus=False)
        if not number or any(c not in "0123456789*#" for c in number):
            self.state = "released"
            self._emit(Release(28, f"{number!r} cannot be dialled as H.225.0 dialledDigits"))
            return
        media = setup.media
        codecs = tuple(c for c in media.codecs if c in ("PCMU", "PCMA")) or ("PCMU", "PCMA")
        privacy = setup.privacy or gw.get("caller_id") == "withhold"
        caller = setup.caller[1:] if setup.caller and setup.caller.startswith("+") \
            else setup.caller
        timers = {"T303": self.provider.setup_timeout, "T301": self.provider.no_answer_timeout}
        self.options = callcore.CallOptions(
            dest_number=number, rtp=(media.address, media.port),
            rtcp=(media.address, media.port + 1), calling_number=caller or None,
            codecs=codecs, fast_start=options.get("fast_start", "on") == "on",
            tunnelling=options.get("tunnelling", "on") == "on",
            source_address=(self.provider.local_host, 1720), alias=self.provider.alias,
            timers=timers, called_type=1 if plus and not strip and not prepend else 0,
            calling_presentation=1 if privacy else 0)
        self.core = callcore.OutgoingCall(self.provider.next_call_reference(), self.options)
        if self.link is None:
            self._connect((gw["host"], int(gw["port"])))
            return
        self.state = "admitting"
        d = self.link.register() if not self.link.registered else None
        if d is None:
            self._admit()
        else:
            d.addCallbacks(lambda _rtt: self._admit(), self._ras_failed)
            d.addErrback(self._log_failure, "registration")

    def _admit(self):
        if self.state != "admitting":
            return
        d = self.link.admit(self.call_id, dest_number=self.options.dest_number,
                            call_id=self.core.call_id, conference_id=self.core.conference_id,
                            call_reference=self.core.crv)
        d.addCallbacks(self._admitted_by_gatekeeper, self._ras_failed)
        d.addErrback(self._log_failure, "admission")

    def _admitted_by_gatekeeper(self, admitted):
        self._admitted = True
        if self.state != "admitting":     # released meanwhile: give the admission back
            self._disengage()
            return
        self.core.options.dest_address = admitted.dest_call_signal_address
        self._emit(Trace("h323", "in", f"ACF: call to {admitted.dest_call_signal_address[0]}:"
                                       f"{admitted.dest_call_signal_address[1]}",
                         {"call_id": self.call_id}))
        self._connect(admitted.dest_call_signal_address)

    def _ras_failed(self, failure):
        from callgw.callserver.legs.h323_provider import RasFailure
        failure.trap(RasFailure)
        if self.state != "admitting":
            return
        self.state = "released"
        error = failure.value
        self._emit(Release(error.cause, f"gatekeeper: {error.reason}"))

    def _connect(self, address):
        self.state = "calling"
        self.runner = CallRunner(self.core, address, reactor=self.clock, clock=self.clock,
                                 listener=self, connect_timeout=self.provider.setup_timeout)
        d = self.runner.start()
        d.addErrback(self._log_failure, "connect")

    # ---- releasing ----
    def _release(self, release):
        if self.state in ("idle", "released"):
            self.state = "released"
            return
        was, self.state = self.state, "released"
        self._stop_media_wait()
        if was == "admitting":
            return                          # the ARQ's answer disengages (see _admitted...)
        self.runner.release(release.cause)
        self._disengage()

    def _disengage(self):
        if self.link is None or not self._admitted:
            return
        self._admitted = False
        d = self.link.disengage(self.call_id, call_id=self.core.call_id,
                                conference_id=self.core.conference_id,
                                call_reference=self.core.crv)
        d.addErrback(self._log_failure, "disengage")

    def _fail(self, cause, text):
        if self.state == "released":
            return
        was, self.state = self.state, "released"
        self._stop_media_wait()
        if self.runner is not None and was != "admitting":
            self.runner.release(cause)
        self._disengage()
        self._emit(Release(cause, text))

    # ---- from the runner (its listener) ----
    def trace(self, direction, summary):
        self._emit(Trace("h323", direction, summary, {"call_id": self.call_id}))

    def callEvent(self, event):
        kind = type(event)
        if kind is callcore.Proceeding:
            if self.state == "calling":
                self._emit(Proceeding())
        elif kind is callcore.Alerting or kind is callcore.Progress:
            self._inband = self._inband or event.inband
            if self.state == "calling" and (kind is callcore.Alerting or event.inband):
                self.state = "alerting"
                self._emit(Alerting(self._media() if self._inband else None))
        elif kind is callcore.MediaTransmit:
            self.transmit = event
            if self.state == "awaiting-media":
                self._connected()
        elif kind is callcore.Connected:
            if self.state in ("calling", "alerting"):
                if self.transmit is None:
                    self.state = "awaiting-media"
                    self._media_wait = self.clock.callLater(MEDIA_WAIT, self._no_media)
                else:
                    self._connected()
        elif kind is callcore.DtmfReceived:
            for digit in event.digits:
                self._emit(Dtmf(digit))
        elif kind is callcore.Released:
            self._stop_media_wait()
            if event.protocol_error:
                self._vanished = event.reason
            if self.state != "released":
                self.state = "released"
                self._disengage()
                self._emit(Release(event.cause, event.reason))
            else:
                self._disengage()

    def _connected(self):
        self._stop_media_wait()
        self.state = "connected"
        self._emit(Connect(self._media()))

    def _no_media(self):
        self._media_wait = None
        if self.state == "awaiting-media":
            self._fail(47, "the gateway opened no audio channel after Connect")

    def _media(self):
        t = self.transmit
        if t is None:
            return None
        return MediaDescription(t.rtp[0], t.rtp[1], (t.codec,), None, 20, "sendrecv")

    def _stop_media_wait(self):
        if self._media_wait is not None and self._media_wait.active():
            self._media_wait.cancel()
        self._media_wait = None

    def _emit(self, event):
        if self.sink is not None:
            self.sink(self, event)

    def _log_failure(self, failure, what):
        log.failure("H.323 leg {what} for {call_id}", failure, what=what, call_id=self.call_id)
        self._fail(causes.TEMPORARY_FAILURE, f"local failure in {what}")
