"""The call table: a second answer on an active call changes its media mode and its key."""
import itertools

import pytest

from protocols.client import messages as m
from protocols.client.calls import CallState, CallTable
from protocols.client.errors import ProtocolError


def table():
    counter = itertools.count(1)
    return CallTable(lambda n: bytes([next(counter)]) * n)


def test_direct_call_moves_to_relay_with_a_second_answer_and_connected():
    t = table()
    t.client_command(m.Call(call="c1", number="+15551234", mode="direct", address="192.0.2.1",
                            port=4000), max_calls=4)
    t.connected("c1", "192.0.2.9", 5000, "PCMU")
    assert t.state_of("c1") is CallState.ACTIVE and t.key_of("c1") is None
    [event] = t.client_command(m.Answer(call="c1", mode="relay"), max_calls=4)
    assert event.mode == "relay"
    msg = t.connected("c1", None, None, "PCMU")
    assert msg.key is not None and t.call_for_key(msg.key) == "c1"
    again = t.connected("c1", None, None, "PCMU")          # a later re-key retires the old one
    assert t.call_for_key(msg.key) is None and t.call_for_key(again.key) == "c1"


def test_answer_is_still_refused_before_the_call_is_active():
    t = table()
    t.client_command(m.Call(call="c1", number="+15551234", mode="relay"), max_calls=4)
    with pytest.raises(ProtocolError):
        t.client_command(m.Answer(call="c1", mode="relay"), max_calls=4)
