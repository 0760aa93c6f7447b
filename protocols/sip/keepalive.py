"""Liveness of a confirmed dialog: in-dialog OPTIONS or RFC 4028 session timers (sans-I/O).

The layer above chooses the mode per call in ``Profile.keepalive`` (a
``protocols.sip.session.KeepaliveConfig``):

- ``off`` (the default): nothing is sent. sipp and many gateways end a call on an in-dialog
  request they do not expect, so liveness is then the media path's business.
- ``options``: an in-dialog OPTIONS every ``interval`` seconds. Any final answer means the far
  end is there (a 405 or 501 too); a 481 or 408, no answer at all (Timer F) or a transport
  error means it is gone (RFC 3261 12.2.1.2).
- ``session-timer`` (RFC 4028): our INVITE carries ``Supported: timer`` and ``Session-Expires``
  (and UPDATE in Allow); timers run only when the 2xx carries ``Session-Expires``. As the
  refresher (4028 10) we refresh at half the interval, with UPDATE when the far end allows it,
  else a re-INVITE with the unchanged SDP; otherwise we watch for the far end's refreshes
  (re-INVITE or UPDATE; our 2xx to them carries Session-Expires and Require: timer). A session
  not refreshed ends ``min(32, interval/3)`` seconds before it expires. A 422 to our INVITE is
  retried once with the Min-SE it names (4028 7.4, in ``protocols.sip.uac_session``). For an
  inbound call the UAS side answers an INVITE's Session-Expires the same way (4028 9).

When the far end is gone the session reports ``Vanished(reason, q850)`` (before ``Ended`` and
the BYE that ends the dialog): q850 41 when keepalives got no answer, 102 when the session
expired. ``Keepalive`` is the table ``KEEPALIVE_ROWS`` (states Off, Idle, Probing, Watching,
Ended) owned by ``protocols.sip.dialog.DialogSession``; its timers are ``keepalive`` (the next
probe or refresh) and ``session-expiry``.

Tests: tests/sip/test_keepalive.py (tables, task.Clock through the adapter) and
tests/sip/test_sipp_keepalive.py (sipp answering OPTIONS and UPDATE, sipp gone silent).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from protocols.sip.session import Input as SessionInput
from protocols.sip.session import (Respond, SendRequest, State, TableMachine, Vanished,
                                   build_table)
from protocols.sip.transaction import StartTimer, StopTimer

@dataclass(frozen=True, slots=True)
class RefreshByReinvite:
    """(to the session) Refresh now with a re-INVITE carrying the unchanged SDP."""


class KaInput(enum.Enum):
    START_OPTIONS = "start options"
    START_REFRESHER = "start: we refresh"
    START_WATCH = "start: they refresh"
    TIMER_PROBE = "keepalive timer"
    TIMER_EXPIRE = "session-expiry timer"
    ANSWERED = "answered"
    HANDED_OVER = "answered: they refresh"
    DROPPED = "2xx without Session-Expires"
    REFUSED = "refused"
    FATAL = "481/408/no answer"
    REFRESHED_US = "refreshed: we refresh"
    REFRESHED_THEM = "refreshed: they refresh"
    DEFER = "refresh deferred"
    STOP = "stop"


_SE_RE = re.compile(r"\s*(\d+)\s*((?:;[^;]*)*)")


def session_expires(message):
    """(seconds, refresher 'uac'|'uas'|None) from ``message``'s Session-Expires (or its
    compact form ``x``), or None."""
    value = message.headers.get("Session-Expires") or message.headers.get("x")
    if not value:
        return None
    match = _SE_RE.match(value)
    if match is None:
        return None
    refresher = None
    for param in match.group(2).split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher" and val.strip().lower() in ("uac", "uas"):
            refresher = val.strip().lower()
    return int(match.group(1)), refresher


def supports_timer(message):
    values = message.headers.get_all("Supported") + message.headers.get_all("k")
    return any("timer" in (o.strip().lower() for o in v.split(",")) for v in values)


def min_se(message):
    value = message.headers.get("Min-SE")
    try:
        return int(value.split(";")[0]) if value else None
    except ValueError:
        return None


def invite_headers(config, session_expires_value=None):
    """What our INVITE (and each refresh) says in session-timer mode (RFC 4028 7.1)."""
    if config.mode != "session-timer":
        return []
    value = session_expires_value or config.session_expires
    return [("Supported", "timer"), ("Session-Expires", str(value))]


def negotiated_by_2xx(config, response):
    """For our INVITE or refresh: (interval, we refresh) from its 2xx, or None (no timer)."""
    if config.mode != "session-timer":
        return None
    se = session_expires(response)
    if se is None:
        return None
    seconds, refresher = se
    return seconds, refresher != "uas"          # the 2xx names its refresher; none: us


def answer_for(config, request):
    """For an INVITE or refresh we answer 2xx: (headers for the 2xx, (interval, we refresh))
    when it asks for a session timer and we run them (RFC 4028 9), else ([], None)."""
    if config.mode != "session-timer":
        return [], None
    se = session_expires(request)
    if se is None:
        return [], None
    seconds, refresher = se
    seconds = max(seconds, config.min_se)
    supported = supports_timer(request)
    refresher = refresher or ("uac" if supported else "uas")
    headers = [("Session-Expires", f"{seconds};refresher={refresher}")]
    if supported:
        headers.append(("Require", "timer"))
    return headers, (seconds, refresher == "uas")


class Keepalive(TableMachine):
    """The liveness machine of one dialog (see the module docstring)."""

    def __init__(self, config, dialog):
        self.config = config
        self.dialog = dialog
        self.state = State.OFF
        self.interval = None           # session interval (s) when a session timer runs
        self.use_update = False        # the far end allows UPDATE
        self.request = None            # our OPTIONS / UPDATE out
        self.refreshing = False        # our refresh re-INVITE is out

    @property
    def session_timer(self):
        return self.interval is not None

    # ---- the session's calls ----
    def start(self, negotiated, peer_allows_update=False):
        """The dialog is confirmed: ``negotiated`` is (interval, we refresh) or None."""
        self.use_update = peer_allows_update
        mode = self.config.mode
        if mode == "options":
            return self._step(KaInput.START_OPTIONS)
        if mode == "session-timer" and negotiated is not None:
            return self._step(KaInput.START_REFRESHER if negotiated[1] else KaInput.START_WATCH,
                              negotiated)
        return []

    def timer_fired(self, name):
        if name == "keepalive":
            return self._step(KaInput.TIMER_PROBE)
        return self._step(KaInput.TIMER_EXPIRE)

    def answered(self, status, response=None):
        """The final ``status`` (and ``response``) of our OPTIONS or refresh."""
        self.request = None
        self.refreshing = False
        if status in (481, 408):
            return self._step(KaInput.FATAL, f"{status} to our keepalive")
        if not self.session_timer:
            return self._step(KaInput.ANSWERED)
        if not 200 <= status < 300:
            return self._step(KaInput.REFUSED)
        negotiated = negotiated_by_2xx(self.config, response)
        if negotiated is None:                      # RFC 4028: no Session-Expires, no timer
            return self._step(KaInput.DROPPED)
        return self._step(KaInput.ANSWERED if negotiated[1] else KaInput.HANDED_OVER,
                          negotiated)

    def failed(self, status):
        """No answer to our OPTIONS or refresh (408: Timer F or B; 503: transport)."""
        self.request = None
        self.refreshing = False
        return self._step(KaInput.FATAL, f"no answer to our keepalive ({status})")

    def defer(self):
        """Our refresh could not go now (a re-INVITE is in progress): try again soon."""
        self.refreshing = False
        return self._step(KaInput.DEFER)

    def refreshed(self, negotiated):
        """A refresh (theirs, or a re-INVITE of the layer above) set (interval, we refresh)."""
        if negotiated is None:
            return []
        return self._step(KaInput.REFRESHED_US if negotiated[1] else KaInput.REFRESHED_THEM,
                          negotiated)

    def stop(self):
        return self._step(KaInput.STOP)

    def _step(self, inp, message=None):
        return self._walk(self.TABLE, "state", inp, message)

    # ---- actions ----
    def _arm(self, negotiated):
        self.interval = float(negotiated[0])
        out = [StartTimer("session-expiry", self.interval - min(32.0, self.interval / 3))]
        if negotiated[1]:
            out.append(StartTimer("keepalive", self.interval / 2))
        else:
            out.append(StopTimer("keepalive"))
        return out

    def _arm_probe(self, _):
        return [StartTimer("keepalive", self.config.interval)]

    def _probe(self, _):
        if not self.session_timer:
            self.request = self.dialog.request("OPTIONS", extra=[("Accept", "application/sdp")])
            return [SendRequest(self.request, self.dialog.hop())]
        if self.use_update:
            self.request = self.dialog.request("UPDATE", extra=self.refresh_headers())
            return [SendRequest(self.request, self.dialog.hop())]
        self.refreshing = True
        return [RefreshByReinvite()]

    def refresh_headers(self):
        """Session-Expires and Supported for a refresh we send (we stay the refresher)."""
        return [("Session-Expires", f"{int(self.interval)};refresher=uac"),
                ("Supported", "timer")]

    def _alive(self, negotiated):
        if not self.session_timer:
            return [StartTimer("keepalive", self.config.interval)]
        return self._arm(negotiated)

    def _drop(self, _):
        self.interval = None
        return [StopTimer("keepalive"), StopTimer("session-expiry")]

    def _later(self, _):
        return [StartTimer("keepalive", min(10.0, self.interval / 4))]

    def _vanished(self, reason):
        return [StopTimer("keepalive"), StopTimer("session-expiry"), Vanished(reason, 41)]

    def _expired(self, _):
        return [StopTimer("keepalive"),
                Vanished(f"session not refreshed in {self.interval:g} s", 102)]

    def _stop(self, _):
        self.request = None
        self.refreshing = False
        return [StopTimer("keepalive"), StopTimer("session-expiry")]


S, I = State, KaInput
KEEPALIVE_ROWS = [
    (S.OFF, I.START_OPTIONS, "_arm_probe", S.IDLE),
    (S.OFF, I.START_REFRESHER, "_arm", S.IDLE),
    (S.OFF, I.START_WATCH, "_arm", S.WATCHING),
    (S.IDLE, I.TIMER_PROBE, "_probe", S.PROBING),
    (S.PROBING, I.ANSWERED, "_alive", S.IDLE),
    (S.PROBING, I.HANDED_OVER, "_arm", S.WATCHING),
    (S.PROBING, I.DROPPED, "_drop", S.OFF),
    (S.PROBING, I.REFUSED, "_absorb", S.IDLE),
    (S.PROBING, I.DEFER, "_later", S.IDLE),
    (S.PROBING, I.FATAL, "_vanished", S.ENDED),
    ((S.IDLE, S.PROBING, S.WATCHING), I.TIMER_EXPIRE, "_expired", S.ENDED),
    ((S.IDLE, S.WATCHING), I.REFRESHED_US, "_arm", S.IDLE),
    ((S.IDLE, S.WATCHING), I.REFRESHED_THEM, "_arm", S.WATCHING),
    ((S.IDLE, S.PROBING, S.WATCHING, S.ENDED), I.STOP, "_stop", S.OFF),
]

build_table(Keepalive, KEEPALIVE_ROWS)


def allows_update(message):
    return any("UPDATE" in (m.strip().upper() for m in v.split(","))
               for v in message.headers.get_all("Allow"))


class KeepaliveHooks:
    """What ``protocols.sip.dialog.DialogSession`` does with its ``Keepalive`` (a mixin, so
    the dialog module stays about the dialog): start it when the dialog is confirmed, route
    its timers and answers, turn ``Vanished`` into the end of the dialog, refresh by
    re-INVITE through the re-INVITE table, answer the far end's refreshes."""

    KEEPALIVE_TIMERS = ("keepalive", "session-expiry")

    def _start_keepalive(self, negotiated, peer):
        return self._keepalive(self.keepalive.start(negotiated, allows_update(peer)))

    def _keepalive(self, effects):
        out = []
        for effect in effects:
            kind = type(effect)
            if kind is Vanished:
                out.append(effect)
                out += self._dialog_failed(0, effect.reason, effect.q850)
            elif kind is RefreshByReinvite:
                if self.state is State.CONFIRMED and self.offer_state is State.STABLE \
                        and self.local_sdp:
                    out += self._offer_step(SessionInput.MODIFY, self.local_sdp)
                else:
                    out += self.keepalive.defer()
            else:
                out.append(effect)
        return out

    def _keepalive_response(self, response):
        """A final response to our OPTIONS/UPDATE probe, or None when it is not one."""
        probe = self.keepalive.request
        if probe is None or response.cseq != probe.cseq:
            return None
        return self._keepalive(self.keepalive.answered(response.status, response))

    def _keepalive_failure(self, request, status):
        if request is not self.keepalive.request:
            return None
        return self._keepalive(self.keepalive.failed(status))

    def _reinvite_headers(self):
        """Session-Expires on every re-INVITE we send while a session timer runs (4028 7.4)."""
        return self.keepalive.refresh_headers() if self.keepalive.session_timer else []

    def _reinvite_answered(self, response):
        """Our re-INVITE's 2xx: a refresh's goes to the keepalive (True); any other one
        renegotiates a running session timer (False: report it to the layer above)."""
        if self.keepalive.refreshing:
            return True, self._keepalive(self.keepalive.answered(response.status, response))
        if self.keepalive.session_timer:
            return False, self._keepalive(self.keepalive.refreshed(
                negotiated_by_2xx(self.profile.keepalive, response)))
        return False, []

    def _reinvite_refused(self, status, fatal):
        """Our re-INVITE failed: for a refresh, the keepalive decides (True)."""
        if not self.keepalive.refreshing:
            return False, []
        if fatal:
            return True, self._keepalive(self.keepalive.failed(status))
        return True, self._keepalive(self.keepalive.answered(status))

    def _refresh_answer(self, request):
        """Headers for our 2xx to the far end's re-INVITE or UPDATE, and the effects of the
        refresh it is (RFC 4028 9)."""
        headers, negotiated = answer_for(self.profile.keepalive, request)
        return headers, self._keepalive(self.keepalive.refreshed(negotiated))

    def _answer_update(self, request):
        """UPDATE (RFC 3311) as a session refresh; with an offer in it: 488 (we change media
        by re-INVITE only)."""
        if request.body:
            return [Respond(request, self.dialog.response(request, 488))]
        headers, effects = self._refresh_answer(request)
        return [Respond(request, self.dialog.response(request, 200, extra=headers))] + effects
