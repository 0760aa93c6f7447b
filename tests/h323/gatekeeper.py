"""A scripted H.323 gatekeeper: a test FIXTURE, not a real peer.

It answers RAS on a UDP socket from a fixed script, with messages shaped like GNU Gatekeeper's:
GRQ -> GCF (or GRJ), RRQ -> RCF with an endpointIdentifier and timeToLive (or RRJ with
``rrj_reason``), keep-alive RRQ -> RCF, ARQ -> ACF naming ``route_to`` as destCallSignalAddress
(or ARJ with ``arj_reason``), DRQ -> DCF, URQ -> UCF. ``send_irq`` and ``send_urq`` make it ask.
It records what it received. tshark judges its bytes as it judges ours.
"""
from __future__ import annotations

from twisted.internet import defer, protocol

from protocols.h323 import h225, per

GK_ID = "ScriptedGK"


class ScriptedGatekeeper(protocol.DatagramProtocol):
    def __init__(self, *, route_to=("127.0.0.1", 1720), ttl=60, rrj_reason=None, arj_reason=None,
                 grj_reason=None, silent=False):
        self.route_to = route_to
        self.ttl = ttl
        self.rrj_reason = rrj_reason
        self.arj_reason = arj_reason
        self.grj_reason = grj_reason
        self.silent = silent
        self.received = []          # (kind, body)
        self.peer = None
        self.waiters = {}
        self.port = None

    def start(self, reactor):
        self.port = reactor.listenUDP(0, self, interface="127.0.0.1")
        return self.port.getHost().port

    def stop(self):
        return defer.maybeDeferred(self.port.stopListening)

    def wait_for(self, kind):
        for k, body in self.received:
            if k == kind:
                return defer.succeed(body)
        d = defer.Deferred()
        self.waiters.setdefault(kind, []).append(d)
        return d

    def send(self, kind, body):
        self.transport.write(per.encode(per.H225, "RasMessage", (kind, body)), self.peer)

    def datagramReceived(self, data, addr):
        kind, body = per.decode(per.H225, "RasMessage", data)
        self.peer = addr
        self.received.append((kind, body))
        for d in self.waiters.pop(kind, []):
            d.callback(body)
        if self.silent:
            return
        handler = getattr(self, f"on_{kind}", None)
        if handler:
            handler(body)

    def _ids(self, body):
        return {"requestSeqNum": body["requestSeqNum"], "protocolIdentifier": per.H225_PROTOCOL_ID}

    def on_gatekeeperRequest(self, body):
        if self.grj_reason:
            out = self._ids(body)
            out.update({"gatekeeperIdentifier": GK_ID, "rejectReason": (self.grj_reason, None)})
            self.send("gatekeeperReject", out)
            return
        out = self._ids(body)
        out.update({"gatekeeperIdentifier": GK_ID,
                    "rasAddress": h225.transport_address("127.0.0.1", self.port.getHost().port)})
        self.send("gatekeeperConfirm", out)

    def on_registrationRequest(self, body):
        out = self._ids(body)
        if self.rrj_reason:
            out.update({"rejectReason": (self.rrj_reason, None), "gatekeeperIdentifier": GK_ID})
            self.send("registrationReject", out)
            return
        out.update({"callSignalAddress": body["callSignalAddress"],
                    "gatekeeperIdentifier": GK_ID, "endpointIdentifier": "ep-0001",
                    "timeToLive": self.ttl, "willRespondToIRR": False,
                    "maintainConnection": False})
        if not body.get("keepAlive"):
            out["terminalAlias"] = body.get("terminalAlias", [])
        self.send("registrationConfirm", out)

    def on_admissionRequest(self, body):
        seq = {"requestSeqNum": body["requestSeqNum"]}
        if self.arj_reason:
            self.send("admissionReject", dict(seq, rejectReason=(self.arj_reason, None)))
            return
        uuies = {name: False for name in ("setup", "callProceeding", "connect", "alerting",
                                          "information", "releaseComplete", "facility",
                                          "progress", "empty", "status", "statusInquiry",
                                          "setupAcknowledge", "notify")}
        self.send("admissionConfirm", dict(
            seq, bandWidth=body["bandWidth"], callModel=("direct", None),
            destCallSignalAddress=h225.transport_address(*self.route_to),
            willRespondToIRR=False, uuiesRequested=uuies))

    def on_disengageRequest(self, body):
        self.send("disengageConfirm", {"requestSeqNum": body["requestSeqNum"]})

    def on_unregistrationRequest(self, body):
        self.send("unregistrationConfirm", {"requestSeqNum": body["requestSeqNum"]})

    def send_irq(self, seq=500, call_reference=1, call_id=bytes(16)):
        self.send("infoRequest", {"requestSeqNum": seq, "callReferenceValue": call_reference,
                                  "callIdentifier": {"guid": call_id}})

    def send_urq(self, seq=501):
        self.send("unregistrationRequest", {
            "requestSeqNum": seq, "callSignalAddress": [], "endpointIdentifier": "ep-0001",
            "gatekeeperIdentifier": GK_ID, "reason": ("maintenance", None)})
