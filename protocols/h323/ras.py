"""An H.225.0 RAS client toward one gatekeeper (H.225.0 clause 7.7-7.11 and 8; H.323 clause 7.2).

Owns, sans-I/O: gatekeeper discovery (GRQ -> GCF/GRJ), registration (RRQ -> RCF/RRJ) and the
lightweight keep-alive RRQ sent before the granted timeToLive runs out (H.225.0 7.9.1), admission
per call (ARQ -> ACF/ARJ; the ACF's destCallSignalAddress is where the Setup goes), disengage
(DRQ -> DCF/DRJ), unregistration both ways (URQ/UCF), InfoRequest answered with an
InfoRequestResponse (IRR), RequestInProgress extending a request's timer, and retransmission of
unanswered requests (H.225.0 7.14.1 / table 33: 3 s, 2 retries). Reject reasons keep their
H.225.0 names; ``ARJ_CAUSE`` maps admission rejects to Q.850 causes for the call.

Every method returns a list of effects: ``SendRas`` (one datagram for the gatekeeper),
``StartTimer``/``StopTimer`` and the events ``GatekeeperFound``, ``GatekeeperRejected``,
``Registered``, ``RegistrationRejected``, ``Unregistered``, ``Admitted``, ``AdmissionRejected``,
``Disengaged``, ``RasTimeout``. A datagram that does not decode is dropped with a ``RasIgnored``
event naming why (RAS is UDP: no answer can be matched to it).

Tests: tests/h323/test_ras.py (core), tests/h323/test_ras_wire.py (tshark).
"""
from __future__ import annotations

from dataclasses import dataclass

from protocols.h323 import h225, per
from protocols.h323.causes import ARJ_CAUSE

RETRY = 3.0
RETRIES = 2
KEEPALIVE_MARGIN = 10   # seconds before timeToLive runs out


@dataclass(frozen=True)
class SendRas:
    data: bytes
    summary: str


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay: float


@dataclass(frozen=True)
class StopTimer:
    name: str


@dataclass(frozen=True)
class GatekeeperFound:
    gatekeeper_id: str | None
    ras_address: tuple


@dataclass(frozen=True)
class GatekeeperRejected:
    reason: str


@dataclass(frozen=True)
class Registered:
    endpoint_id: str
    ttl: int | None
    keep_alive: bool


@dataclass(frozen=True)
class RegistrationRejected:
    reason: str


@dataclass(frozen=True)
class Unregistered:
    by_gatekeeper: bool
    reason: str


@dataclass(frozen=True)
class Admitted:
    key: object
    dest_call_signal_address: tuple
    routed: bool


@dataclass(frozen=True)
class AdmissionRejected:
    key: object
    reason: str
    cause: int


@dataclass(frozen=True)
class Disengaged:
    key: object


@dataclass(frozen=True)
class RasTimeout:
    request: str
    key: object


@dataclass(frozen=True)
class RasIgnored:
    reason: str



_CONFIRMS = {"gatekeeperConfirm": "gatekeeperRequest", "gatekeeperReject": "gatekeeperRequest",
             "registrationConfirm": "registrationRequest",
             "registrationReject": "registrationRequest",
             "admissionConfirm": "admissionRequest", "admissionReject": "admissionRequest",
             "disengageConfirm": "disengageRequest", "disengageReject": "disengageRequest",
             "unregistrationConfirm": "unregistrationRequest",
             "unregistrationReject": "unregistrationRequest"}


class RasClient:
    """RAS for one endpoint (us, a gateway) and one gatekeeper."""

    def __init__(self, ras_address, call_signal_address, *, alias="callgw", ttl=60,
                 first_seq=1):
        self.ras_address = ras_address
        self.call_signal_address = call_signal_address
        self.alias = alias
        self.ttl = ttl
        self._seq = first_seq - 1
        self.gatekeeper_id = None
        self.endpoint_id = None
        self.registered = False
        self.granted_ttl = None
        self._pending = {}    # seq -> [kind, key, data, summary, tries]

    # -- requests ------------------------------------------------------------------------------
    def _next_seq(self):
        self._seq = self._seq % 65535 + 1
        return self._seq

    def _request(self, kind, body, key=None):
        seq = body["requestSeqNum"]
        data = per.encode(per.H225, "RasMessage", (kind, body))
        self._pending[seq] = [kind, key, data, kind, 0]
        return [SendRas(data, kind), StartTimer(f"ras.{seq}", RETRY)]

    def _common(self):
        return {"requestSeqNum": self._next_seq(), "protocolIdentifier": per.H225_PROTOCOL_ID}

    def discover(self):
        """GRQ to the gatekeeper (unicast discovery, H.225.0 7.8)."""
        body = self._common()
        body.update({"rasAddress": h225.transport_address(*self.ras_address),
                     "endpointType": h225.endpoint_type(),
                     "endpointAlias": [("h323-ID", self.alias)],
                     "supportsAltGK": None, "supportsAssignedGK": False})
        return self._request("gatekeeperRequest", body)

    def register(self, keep_alive=False):
        """A full RRQ, or the lightweight keep-alive RRQ once registered (H.225.0 7.9.1)."""
        body = self._common()
        body.update({
            "discoveryComplete": self.gatekeeper_id is not None,
            "callSignalAddress": [h225.transport_address(*self.call_signal_address)],
            "rasAddress": [h225.transport_address(*self.ras_address)],
            "terminalType": h225.endpoint_type(), "endpointVendor": h225.VENDOR,
            "timeToLive": self.ttl, "keepAlive": bool(keep_alive and self.endpoint_id),
            "willSupplyUUIEs": False, "maintainConnection": False, "supportsAssignedGK": False,
        })
        if not body["keepAlive"]:
            body["terminalAlias"] = [("h323-ID", self.alias)]
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        if body["keepAlive"]:
            body["endpointIdentifier"] = self.endpoint_id
        return self._request("registrationRequest", body)

    def admit(self, key, *, dest_number, call_id, conference_id, call_reference,
              bandwidth=1280):
        """ARQ for an outgoing call (direct call model; ``bandwidth`` in 100 bit/s units)."""
        if not self.endpoint_id:
            return [AdmissionRejected(key, "callerNotRegistered", ARJ_CAUSE["callerNotRegistered"])]
        body = {"requestSeqNum": self._next_seq(), "callType": ("pointToPoint", None),
                "callModel": ("direct", None), "endpointIdentifier": self.endpoint_id,
                "destinationInfo": [("dialledDigits", dest_number)],
                "srcInfo": [("h323-ID", self.alias)],
                "srcCallSignalAddress": h225.transport_address(*self.call_signal_address),
                "bandWidth": bandwidth, "callReferenceValue": call_reference,
                "conferenceID": conference_id, "activeMC": False, "answerCall": False,
                "canMapAlias": False, "callIdentifier": {"guid": call_id},
                "willSupplyUUIEs": False, "canMapSrcAlias": False}
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        return self._request("admissionRequest", body, key)

    def disengage(self, key, *, call_id, conference_id, call_reference, answered=False,
                  forced=False):
        """DRQ once a call admitted by ARQ has ended."""
        if not self.endpoint_id:
            return [Disengaged(key)]
        body = {"requestSeqNum": self._next_seq(), "endpointIdentifier": self.endpoint_id,
                "conferenceID": conference_id, "callReferenceValue": call_reference,
                "disengageReason": ("forcedDrop" if forced else "normalDrop", None),
                "callIdentifier": {"guid": call_id}, "answeredCall": answered}
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        return self._request("disengageRequest", body, key)

    def unregister(self):
        if not self.endpoint_id:
            return []
        body = {"requestSeqNum": self._next_seq(),
                "callSignalAddress": [h225.transport_address(*self.call_signal_address)],
                "endpointAlias": [("h323-ID", self.alias)], "endpointIdentifier": self.endpoint_id}
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        return [StopTimer("ras.keepalive")] + self._request("unregistrationRequest", body)

    def info_report(self, seq=None, calls=()):
        """An IRR: the answer to an IRQ (``seq``), or unsolicited. ``calls`` is a list of dicts
        with call_reference, conference_id, call_id, h245 and signalling (host, port) pairs."""
        body = {"requestSeqNum": seq or self._next_seq(), "endpointType": h225.endpoint_type(),
                "endpointIdentifier": self.endpoint_id or "unregistered",
                "rasAddress": h225.transport_address(*self.ras_address),
                "callSignalAddress": [h225.transport_address(*self.call_signal_address)],
                "endpointAlias": [("h323-ID", self.alias)],
                "needResponse": False, "unsolicited": seq is None}
        info = []
        for call in calls:
            info.append({
                "callReferenceValue": call["call_reference"], "conferenceID": call["conference_id"],
                "originator": True,
                "h245": {"recvAddress": h225.transport_address(*call["h245"])},
                "callSignalling": {"recvAddress": h225.transport_address(*call["signalling"])},
                "callType": ("pointToPoint", None), "bandWidth": 1280,
                "callModel": ("direct", None), "callIdentifier": {"guid": call["call_id"]},
                "substituteConfIDs": []})
        if info:
            body["perCallInfo"] = info
        data = per.encode(per.H225, "RasMessage", ("infoRequestResponse", body))
        return [SendRas(data, "infoRequestResponse")]

    # -- timers --------------------------------------------------------------------------------
    def timer_expired(self, name):
        if name == "ras.keepalive":
            return self.register(keep_alive=True) if self.registered else []
        seq = int(name.split(".", 1)[1])
        entry = self._pending.get(seq)
        if entry is None:
            return []
        entry[4] += 1
        if entry[4] > RETRIES:
            del self._pending[seq]
            out = [RasTimeout(entry[0], entry[1])]
            if entry[0] == "registrationRequest" and self.registered:
                self.registered = False
                out.append(Unregistered(False, "gatekeeper stopped answering keep-alive RRQs"))
            return out
        return [SendRas(entry[2], entry[3] + " (retransmission)"), StartTimer(name, RETRY)]

    # -- answers from the gatekeeper -------------------------------------------------------------
    def receive(self, data):
        try:
            kind, body = per.decode(per.H225, "RasMessage", data)
        except per.CodecError as e:
            return [RasIgnored(f"RAS message does not decode: {e.reason}")]
        seq = body.get("requestSeqNum") if isinstance(body, dict) else None
        if kind == "infoRequest":
            return self.info_report(seq)
        if kind == "unregistrationRequest":
            return self._gatekeeper_unregisters(body)
        if kind == "requestInProgress":
            if seq in self._pending:
                return [StartTimer(f"ras.{seq}", body["delay"] / 1000.0 + RETRY)]
            return []
        expected = _CONFIRMS.get(kind)
        entry = self._pending.get(seq)
        if expected is None or entry is None or entry[0] != expected:
            return [RasIgnored(f"{kind} (seq {seq}) answers no request of ours")]
        del self._pending[seq]
        out = [StopTimer(f"ras.{seq}")]
        return out + getattr(self, f"_on_{kind}")(body, entry[1])

    def _gatekeeper_unregisters(self, body):
        self.registered = False
        self.endpoint_id = None
        reason = body.get("reason", ("undefinedReason", None))[0]
        ucf = per.encode(per.H225, "RasMessage", ("unregistrationConfirm",
                                                   {"requestSeqNum": body["requestSeqNum"]}))
        return [SendRas(ucf, "unregistrationConfirm"), StopTimer("ras.keepalive"),
                Unregistered(True, reason)]

    def _on_gatekeeperConfirm(self, body, _key):
        self.gatekeeper_id = body.get("gatekeeperIdentifier")
        try:
            address = h225.host_port(body["rasAddress"])
        except h225.H225Error:
            address = None
        return [GatekeeperFound(self.gatekeeper_id, address)]

    def _on_gatekeeperReject(self, body, _key):
        return [GatekeeperRejected(body["rejectReason"][0])]

    def _on_registrationConfirm(self, body, _key):
        keep_alive = self.registered
        self.registered = True
        self.endpoint_id = body["endpointIdentifier"]
        self.gatekeeper_id = body.get("gatekeeperIdentifier", self.gatekeeper_id)
        self.granted_ttl = body.get("timeToLive")
        out = [Registered(self.endpoint_id, self.granted_ttl, keep_alive)]
        if self.granted_ttl:
            delay = max(1, self.granted_ttl - KEEPALIVE_MARGIN) if self.granted_ttl > 2 * \
                KEEPALIVE_MARGIN else max(1, self.granted_ttl / 2)
            out.append(StartTimer("ras.keepalive", delay))
        return out

    def _on_registrationReject(self, body, _key):
        reason = body["rejectReason"][0]
        if reason == "fullRegistrationRequired":   # our keep-alive was not enough
            self.registered = False
            return self.register(keep_alive=False)
        self.registered = False
        return [RegistrationRejected(reason)]

    def _on_admissionConfirm(self, body, key):
        try:
            address = h225.host_port(body["destCallSignalAddress"])
        except h225.H225Error as e:
            return [AdmissionRejected(key, e.reason, 79)]
        return [Admitted(key, address, body["callModel"][0] == "gatekeeperRouted")]

    def _on_admissionReject(self, body, key):
        reason = body["rejectReason"][0]
        return [AdmissionRejected(key, reason, ARJ_CAUSE.get(reason, 31))]

    def _on_disengageConfirm(self, _body, key):
        return [Disengaged(key)]

    def _on_disengageReject(self, _body, key):
        return [Disengaged(key)]

    def _on_unregistrationConfirm(self, _body, _key):
        self.registered = False
        self.endpoint_id = None
        return [Unregistered(False, "unregistered by us")]

    def _on_unregistrationReject(self, body, _key):
        return [Unregistered(False, f"gatekeeper refused URQ: {body['rejectReason'][0]}")]
