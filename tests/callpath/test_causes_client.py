"""The client protocol's block of the cause table."""
from callgw import causes
from protocols.client.messages import CAUSES


def test_every_client_cause_is_a_protocol_cause():
    assert set(causes.Q850_TO_CLIENT.values()) <= set(CAUSES)
    assert set(causes.CLIENT_TO_Q850) <= set(CAUSES)


def test_mapping_both_ways():
    assert causes.client_cause(17) == "busy"
    assert causes.client_cause(19) == "no-answer"
    assert causes.client_cause(102) == "timeout"
    assert causes.client_cause(25) == "normal" and causes.client_cause(99) == "server-error"
    assert causes.to_protocol("client", 34) == "congestion"
    assert causes.from_protocol("client", "busy") == 17
    assert causes.sip_to_q850(486) == 17 and causes.client_cause(causes.sip_to_q850(503)) == \
        "network-error"
