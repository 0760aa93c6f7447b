"""protocols/h323/call.py: the outgoing call core fed scripted gateway messages (bytes in,
effects out): fastStart accepted or refused, tunnelling, Q.931 timers T303/T310/T301, clearing
both ways, and protocol errors that clear the call instead of raising."""
import pytest
from hypothesis import given, settings, strategies as st

from protocols.h323 import call as c
from protocols.h323 import h225, h245, q931
from protocols.h323.callstate import CallState
from protocols.h323.q931 import IE

RTP, RTCP = ("127.0.0.1", 30000), ("127.0.0.1", 30001)
GW_RTP, GW_RTCP = ("127.0.0.1", 40000), ("127.0.0.1", 40001)


def new_call(**kw):
    values = dict(dest_number="4930123", rtp=RTP, rtcp=RTCP)
    values.update(kw)
    call = c.OutgoingCall(5, c.CallOptions(**values), rng=lambda _n: 1000)
    out = call.setup()
    return call, out


def gw(call, name, body=None, ies=(), tunnelling=True, control=(), crv=None, flag=True):
    if body is None and name in ("callProceeding", "alerting", "progress", "connect"):
        body = h225.response_body(name, call.call_id, conference_id=call.conference_id)
    return h225.encode_message(name, body, call.crv if crv is None else crv, flag, ies=ies,
                               tunnelling=tunnelling, h245_control=control)


def sent(effects):
    return [h225.decode_message(e.data) for e in effects if isinstance(e, c.Send)]


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def fast_answer(call, codecs=("PCMU",)):
    offer, _ = h245.fast_start_offer(call.options.codecs, RTP, RTCP)
    answer, _codec = h245.fast_start_answer([h245.decode_olc(x) for x in offer], codecs,
                                            GW_RTP, GW_RTCP)
    return answer


def test_setup_offers_fast_start_tunnelling_and_starts_t303():
    call, out = new_call(calling_number="1001", display="Alice")
    (setup,) = sent(out)
    assert setup.body_name == "setup" and setup.tunnelling
    assert len(setup.body["fastStart"]) == 4
    assert q931.parse_party_number(setup.q931.get(IE.CALLED_PARTY_NUMBER))["digits"] == "4930123"
    assert q931.parse_display(setup.q931.get(IE.DISPLAY)) == "Alice"
    assert c.StartTimer("T303", 4.0) in out and call.state is CallState.CALL_INITIATED


def test_fast_start_accepted_tunnelled_call():
    call, _ = new_call()
    out = call.receive(gw(call, "callProceeding"))
    assert c.Proceeding() in out and c.StopTimer("T303") in out
    # tunnelling confirmed: TCS and msd go out in a Facility with an empty body
    (fac,) = sent(out)
    assert fac.body_name == "empty" and len(fac.h245_control) == 2
    body = h225.response_body("alerting", call.call_id, fast_start=fast_answer(call))
    out = call.receive(gw(call, "alerting", body, ies=[
        (IE.PROGRESS_INDICATOR, q931.progress(8))]))
    assert c.Alerting(inband=True) in out
    assert c.MediaTransmit("PCMU", GW_RTP, GW_RTCP, True) in out
    assert of(out, c.MediaReceive)[0].codec == "PCMU"
    out = call.receive(gw(call, "connect"))
    assert c.Connected() in out and call.state is CallState.ACTIVE
    assert not any(s.h245_control for s in sent(out))      # no OLC: fastStart did it
    # DTMF held until TCS and msd are done
    assert call.send_dtmf("4") == []
    control = [h245.encode(h245.terminal_capability_set(1)), h245.encode(h245.tcs_ack(1)),
               h245.encode(h245.msd_ack("slave"))]
    out = call.receive(gw(call, "empty", None, control=control))
    pdus = [h245.decode(p)[1][0] for s in sent(out) for p in s.h245_control]
    assert pdus == ["terminalCapabilitySetAck", "masterSlaveDeterminationAck", "userInput"]


def test_fast_start_refused_separate_h245_opens_channels():
    call, _ = new_call(tunnelling=False)
    body = h225.response_body("connect", call.call_id, conference_id=call.conference_id,
                              h245_address=("127.0.0.1", 7000), fast_connect_refused=True)
    out = call.receive(gw(call, "connect", body, tunnelling=False))
    assert c.ConnectH245("127.0.0.1", 7000) in out and c.Connected() in out
    out = call.h245_connected()
    assert [e.summary for e in of(out, c.SendH245)] == ["terminalCapabilitySet",
                                                         "masterSlaveDetermination"]
    call.h245_received(h245.encode(h245.terminal_capability_set(1)))
    call.h245_received(h245.encode(h245.tcs_ack(1)))
    out = call.h245_received(h245.encode(h245.msd_ack("slave")))
    assert [e.summary for e in of(out, c.SendH245)] == ["masterSlaveDeterminationAck",
                                                         "openLogicalChannel"]
    out = call.h245_received(h245.encode(h245.olc_ack(101, GW_RTP, GW_RTCP)))
    assert c.MediaTransmit("PCMU", GW_RTP, GW_RTCP, False) in out
    out = call.h245_received(h245.encode(h245.open_logical_channel(
        h245.olc_transmit(7, "PCMA", GW_RTCP))))
    assert c.MediaReceive("PCMA", GW_RTCP, False) in out


def test_timers_t303_t310_t301():
    call, _ = new_call()
    out = call.timer_expired("T303")
    assert of(out, c.Released)[0].cause == 102 and call.state is CallState.NULL
    assert sent(out)[-1].q931.type == q931.MessageType.RELEASE_COMPLETE

    call, _ = new_call()
    out = call.receive(gw(call, "callProceeding"))
    assert c.StartTimer("T310", 30.0) in out
    assert call.timer_expired("T303") == []                 # stopped, stale
    assert of(call.timer_expired("T310"), c.Released)[0].cause == 102

    call, _ = new_call(timers={"T301": 60.0})
    out = call.receive(gw(call, "alerting"))
    assert c.StartTimer("T301", 60.0) in out
    out = call.timer_expired("T301")
    (rc,) = [s for s in sent(out) if s.q931.type == q931.MessageType.RELEASE_COMPLETE]
    assert q931.parse_cause(rc.q931.get(IE.CAUSE))["value"] == 19


def test_gateway_release_maps_cause_and_reason():
    call, _ = new_call()
    body = h225.release_complete_body(call.call_id, "inConf")
    out = call.receive(gw(call, "releaseComplete", body))
    (rel,) = of(out, c.Released)
    assert rel.cause == 17 and rel.by_peer and c.CloseConnection() in out
    call, _ = new_call()
    out = call.receive(gw(call, "releaseComplete", h225.release_complete_body(call.call_id),
                          ies=[(IE.CAUSE, q931.cause(34))]))
    assert of(out, c.Released)[0].cause == 34


def test_we_release_with_end_session_and_cause():
    call, _ = new_call()
    call.receive(gw(call, "connect"))
    out = call.release(17)
    msgs = sent(out)
    assert msgs[-1].body_name == "releaseComplete"
    assert msgs[-1].body["reason"] == ("inConf", None)
    pdus = [h245.decode(p)[1][0] for s in msgs for p in s.h245_control]
    assert "endSessionCommand" in pdus
    assert call.release(16) == []


def test_status_enquiry_is_answered_with_the_call_state():
    call, _ = new_call()
    call.receive(gw(call, "connect"))
    enquiry = q931.Message(q931.MessageType.STATUS_ENQUIRY, call.crv, True).encode()
    (status,) = sent(call.receive(enquiry))
    assert status.q931.type == q931.MessageType.STATUS
    assert status.q931.get(IE.CALL_STATE) == bytes((10,))
    assert q931.parse_cause(status.q931.get(IE.CAUSE))["value"] == 30


@pytest.mark.parametrize("payload,cause", [
    (b"\x08\x02\x80\x05\x01\x7e\x00\x02\x05\xff", 100),     # user-user that does not decode
    (b"\x09\x02\x80\x05\x01", 100),                          # not Q.931
])
def test_undecodable_messages_clear_the_call_as_protocol_errors(payload, cause):
    call, _ = new_call()
    out = call.receive(payload)
    (rel,) = of(out, c.Released)
    assert rel.protocol_error and rel.cause == cause and call.state is CallState.NULL


def test_message_incompatible_with_the_call_state_clears_with_101():
    call, _ = new_call()
    call.receive(gw(call, "connect"))
    out = call.receive(gw(call, "alerting"))
    assert of(out, c.Released)[0].cause == 101


def test_wrong_call_reference_is_answered_not_followed():
    call, _ = new_call()
    out = call.receive(gw(call, "alerting", crv=77))
    assert call.state is CallState.CALL_INITIATED
    (rc,) = [e for e in out if isinstance(e, c.Send)]
    assert q931.parse(rc.data).call_reference == 77


def test_fast_start_answer_in_a_codec_we_did_not_offer_is_refused():
    call, _ = new_call(codecs=("PCMU",))
    olc = h245.olc_transmit(1, "PCMA", GW_RTCP, rtp=GW_RTP)
    body = h225.response_body("alerting", call.call_id, fast_start=[h245.encode_olc(olc)])
    assert of(call.receive(gw(call, "alerting", body)), c.Released)[0].cause == 65


def test_connection_lost_and_tpkt_keepalive():
    call, _ = new_call()
    assert call.receive(b"") == []
    out = call.connection_lost()
    assert of(out, c.Released)[0].cause == 41 and not of(out, c.Send)


@settings(max_examples=60)
@given(st.lists(st.sampled_from(["callProceeding", "alerting", "progress", "connect",
                                 "releaseComplete", "facility", "empty", "information",
                                 "status"]), max_size=6))
def test_any_order_of_gateway_messages_never_raises(names):
    call, _ = new_call()
    for name in names:
        if name == "facility":
            body = h225.facility_body(call.call_id, "undefinedReason")
        elif name == "empty":
            body = None
        elif name == "releaseComplete":
            body = h225.release_complete_body(call.call_id)
        elif name in ("information", "status"):
            body = h225.information_body(call.call_id)
        else:
            body = None
        call.receive(gw(call, name, body))


def test_gateway_end_session_waits_for_its_release_complete_and_its_cause():
    call, _ = new_call()
    call.receive(gw(call, "connect"))
    control = [h245.encode(h245.end_session())]
    out = call.receive(gw(call, "empty", None, control=control))
    assert c.StartTimer("release-wait", c.RELEASE_WAIT) in out and not of(out, c.Released)
    pdus = [h245.decode(p)[1][0] for s in sent(out) for p in s.h245_control]
    assert pdus == ["endSessionCommand"]                    # answered
    out = call.receive(gw(call, "releaseComplete", h225.release_complete_body(call.call_id),
                          ies=[(IE.CAUSE, q931.cause(17))]))
    assert of(out, c.Released)[0].cause == 17
    # a gateway that never sends its ReleaseComplete: we clear with 16 after the wait
    call, _ = new_call()
    call.receive(gw(call, "connect"))
    call.receive(gw(call, "empty", None, control=control))
    out = call.timer_expired("release-wait")
    assert of(out, c.Released)[0].cause == 16 and sent(out)[-1].body_name == "releaseComplete"
