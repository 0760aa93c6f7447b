"""protocols/h323/ras.py: the RAS client core fed scripted gatekeeper answers: discovery,
registration and keep-alive timing, admission (ACF address, ARJ reasons mapped to causes),
disengage, unregistration both ways, IRQ/IRR, RequestInProgress, retransmission and timeout."""
import pytest

from protocols.h323 import h225, per, ras

RAS, CSA = ("127.0.0.1", 1719), ("127.0.0.1", 1720)
CID = bytes(range(16))


def client():
    return ras.RasClient(RAS, CSA, alias="gw-test", ttl=60)


def sent(effects):
    return [per.decode(per.H225, "RasMessage", e.data) for e in effects
            if isinstance(e, ras.SendRas)]


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def answer(kind, body):
    return per.encode(per.H225, "RasMessage", (kind, body))


def registered_client():
    c = client()
    (rrq,) = sent(c.register())
    seq = rrq[1]["requestSeqNum"]
    c.receive(answer("registrationConfirm", {
        "requestSeqNum": seq, "protocolIdentifier": per.H225_PROTOCOL_ID,
        "callSignalAddress": [], "endpointIdentifier": "ep-1", "gatekeeperIdentifier": "GK",
        "timeToLive": 60, "willRespondToIRR": False, "maintainConnection": False}))
    return c


def test_discovery():
    c = client()
    (grq,) = sent(c.discover())
    assert grq[0] == "gatekeeperRequest" and grq[1]["protocolIdentifier"] == "0.0.8.2250.0.4"
    out = c.receive(answer("gatekeeperConfirm", {
        "requestSeqNum": grq[1]["requestSeqNum"], "protocolIdentifier": per.H225_PROTOCOL_ID,
        "gatekeeperIdentifier": "GK", "rasAddress": h225.transport_address("127.0.0.1", 1719)}))
    assert ras.GatekeeperFound("GK", ("127.0.0.1", 1719)) in out and c.gatekeeper_id == "GK"


def test_registration_then_keep_alive_before_ttl_runs_out():
    c = registered_client()
    assert c.registered and c.endpoint_id == "ep-1"
    out = c.timer_expired("ras.keepalive")
    (rrq,) = sent(out)
    assert rrq[1]["keepAlive"] is True and rrq[1]["endpointIdentifier"] == "ep-1"
    assert "terminalAlias" not in rrq[1]
    out = c.receive(answer("registrationConfirm", {
        "requestSeqNum": rrq[1]["requestSeqNum"], "protocolIdentifier": per.H225_PROTOCOL_ID,
        "callSignalAddress": [], "endpointIdentifier": "ep-1", "timeToLive": 60,
        "willRespondToIRR": False, "maintainConnection": False}))
    assert ras.Registered("ep-1", 60, True) in out
    assert ras.StartTimer("ras.keepalive", 50) in out


@pytest.mark.parametrize("reason", ["discoveryRequired", "invalidCallSignalAddress",
                                    "securityDenial", "resourceUnavailable"])
def test_rrj_reasons_are_kept(reason):
    c = client()
    (rrq,) = sent(c.register())
    out = c.receive(answer("registrationReject", {
        "requestSeqNum": rrq[1]["requestSeqNum"], "protocolIdentifier": per.H225_PROTOCOL_ID,
        "rejectReason": (reason, None)}))
    assert out[-1] == ras.RegistrationRejected(reason) and not c.registered


def test_full_registration_required_answers_with_a_full_rrq():
    c = registered_client()
    (rrq,) = sent(c.timer_expired("ras.keepalive"))
    out = c.receive(answer("registrationReject", {
        "requestSeqNum": rrq[1]["requestSeqNum"], "protocolIdentifier": per.H225_PROTOCOL_ID,
        "rejectReason": ("fullRegistrationRequired", None)}))
    (full,) = sent(out)
    assert full[1]["keepAlive"] is False and full[1]["terminalAlias"]


def test_admission_confirm_gives_the_setup_address():
    c = registered_client()
    (arq,) = sent(c.admit("k", dest_number="123", call_id=CID, conference_id=CID,
                          call_reference=7))
    assert arq[1]["endpointIdentifier"] == "ep-1" and arq[1]["destinationInfo"] == [
        ("dialledDigits", "123")]
    uuies = dict.fromkeys(("setup", "callProceeding", "connect", "alerting", "information",
                           "releaseComplete", "facility", "progress", "empty", "status",
                           "statusInquiry", "setupAcknowledge", "notify"), False)
    out = c.receive(answer("admissionConfirm", {
        "requestSeqNum": arq[1]["requestSeqNum"], "bandWidth": 1280, "callModel": ("direct", None),
        "destCallSignalAddress": h225.transport_address("127.0.0.2", 1820),
        "willRespondToIRR": False, "uuiesRequested": uuies}))
    assert ras.Admitted("k", ("127.0.0.2", 1820), False) in out


@pytest.mark.parametrize("reason,cause", [("calledPartyNotRegistered", 20), ("requestDenied", 34),
                                          ("resourceUnavailable", 47),
                                          ("incompleteAddress", 28)])
def test_arj_reasons_map_to_causes(reason, cause):
    c = registered_client()
    (arq,) = sent(c.admit("k", dest_number="1", call_id=CID, conference_id=CID, call_reference=1))
    out = c.receive(answer("admissionReject", {"requestSeqNum": arq[1]["requestSeqNum"],
                                               "rejectReason": (reason, None)}))
    assert ras.AdmissionRejected("k", reason, cause) in out


def test_unregistered_client_cannot_ask_admission():
    out = client().admit("k", dest_number="1", call_id=CID, conference_id=CID, call_reference=1)
    assert out == [ras.AdmissionRejected("k", "callerNotRegistered", 21)]


def test_disengage_and_unregister():
    c = registered_client()
    (drq,) = sent(c.disengage("k", call_id=CID, conference_id=CID, call_reference=1,
                              answered=True))
    assert drq[1]["disengageReason"] == ("normalDrop", None)
    out = c.receive(answer("disengageConfirm", {"requestSeqNum": drq[1]["requestSeqNum"]}))
    assert ras.Disengaged("k") in out
    out = c.unregister()
    (urq,) = sent(out)
    out = c.receive(answer("unregistrationConfirm", {"requestSeqNum": urq[1]["requestSeqNum"]}))
    assert of(out, ras.Unregistered) and c.endpoint_id is None


def test_gatekeeper_unregisters_us_and_asks_info():
    c = registered_client()
    out = c.receive(answer("infoRequest", {"requestSeqNum": 9, "callReferenceValue": 0,
                                           "callIdentifier": {"guid": bytes(16)}}))
    (irr,) = sent(out)
    assert irr[0] == "infoRequestResponse" and irr[1]["requestSeqNum"] == 9
    assert irr[1]["unsolicited"] is False
    out = c.receive(answer("unregistrationRequest", {
        "requestSeqNum": 10, "callSignalAddress": [], "reason": ("maintenance", None)}))
    (ucf,) = sent(out)
    assert ucf == ("unregistrationConfirm", {"requestSeqNum": 10})
    assert ras.Unregistered(True, "maintenance") in out and not c.registered


def test_retransmission_then_timeout_and_request_in_progress():
    c = client()
    (grq,) = sent(c.discover())
    name = f"ras.{grq[1]['requestSeqNum']}"
    out = c.receive(answer("requestInProgress", {"requestSeqNum": grq[1]["requestSeqNum"],
                                                 "delay": 2000}))
    assert out == [ras.StartTimer(name, 5.0)]
    for _ in range(ras.RETRIES):
        assert [e.summary for e in c.timer_expired(name) if isinstance(e, ras.SendRas)] == [
            "gatekeeperRequest (retransmission)"]
    assert c.timer_expired(name) == [ras.RasTimeout("gatekeeperRequest", None)]
    assert c.timer_expired(name) == []


def test_keep_alive_that_is_never_answered_unregisters():
    c = registered_client()
    (rrq,) = sent(c.timer_expired("ras.keepalive"))
    name = f"ras.{rrq[1]['requestSeqNum']}"
    for _ in range(ras.RETRIES):
        c.timer_expired(name)
    out = c.timer_expired(name)
    assert of(out, ras.Unregistered) and not c.registered


def test_garbage_and_unmatched_answers_are_ignored_with_a_reason():
    c = client()
    assert isinstance(c.receive(b"\xff\xff\xff")[0], ras.RasIgnored)
    out = c.receive(answer("disengageConfirm", {"requestSeqNum": 4242}))
    assert isinstance(out[0], ras.RasIgnored)


def test_unsolicited_irr_lists_calls():
    c = registered_client()
    (irr,) = sent(c.info_report(calls=[{"call_reference": 3, "conference_id": CID,
                                        "call_id": CID, "h245": ("127.0.0.1", 9000),
                                        "signalling": ("127.0.0.1", 1720)}]))
    assert irr[1]["unsolicited"] is True and irr[1]["perCallInfo"][0]["callReferenceValue"] == 3
