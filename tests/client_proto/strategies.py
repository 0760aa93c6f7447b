"""Hypothesis strategies for the client protocol: every field kind and every message.

Used by the round-trip and state tests in tests/client_proto/.
"""
from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from protocols.client import framing
from protocols.client import messages as m

_printable = st.characters(min_codepoint=0x20, blacklist_categories=("Cs",))
_b64chars = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

KIND_STRATEGIES = {
    m.USER: st.text("ABCxyz019._@+-", min_size=1, max_size=64),
    m.NONCE: st.text(_b64chars, min_size=16, max_size=128),
    m.PROOF: st.binary(min_size=32, max_size=32),
    m.SALT: st.binary(min_size=8, max_size=64),
    m.KEY: st.binary(min_size=16, max_size=16),
    m.TOKEN: st.text("Aaz09._-", min_size=1, max_size=512),
    m.E164: st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z"),
    m.CONTACT: st.text(_printable, min_size=1, max_size=64),
    m.ADDRESS: st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(lambda a: str(ipaddress.ip_address(a)))),
    m.PORT: st.integers(1, 65535),
    m.CALL_ID: st.text("cs019AZaz._-", min_size=1, max_size=64),
    m.CAUSE: st.sampled_from(m.CAUSES),
    m.Q850: st.integers(1, 127),
    m.BRANDING: st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9_]{0,31}\Z"),
                                st.text(_printable, max_size=40), max_size=4),
    m.CODECS: st.lists(st.sampled_from(["PCMU", "PCMA", "telephone-event", "opus"]),
                       min_size=1, max_size=8).map(tuple),
    m.MODE: st.sampled_from(["relay", "direct"]),
    m.DIGITS: st.text("0123456789*#ABCD", min_size=1, max_size=32),
    m.DURATION: st.integers(40, 5000),
    m.TEXT: st.text(_printable, max_size=256),
    m.NAME: st.text(_printable, min_size=1, max_size=64),
    m.CODE: st.integers(100, 999),
    m.TIME: st.integers(0, 2 ** 40),
    m.SECONDS: st.integers(0, 86400),
    m.INFO: st.from_regex(r"\A[a-z][a-z0-9-]{0,31}\Z"),
    m.COMMAND: st.from_regex(r"\A[a-z][a-z-]{0,15}\Z"),
    m.N: st.integers(1, 20).map(lambda e: 2 ** e),
    m.R: st.integers(1, 32),
    m.P: st.integers(1, 16),
    m.PING: st.integers(1, 3600),
    m.CODEC: st.sampled_from(["PCMU", "PCMA", "opus"]),
    m.REQ: st.integers(1, 2 ** 31),
    m.CURSOR: st.text(_b64chars, min_size=1, max_size=128),
    m.ENTRIES: st.lists(st.fixed_dictionaries({
        "name": st.text(_printable, min_size=1, max_size=64),
        "number": st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z")}), max_size=8).map(tuple),
    m.RECORDS: st.lists(st.fixed_dictionaries({
        "number": st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z"), "start": st.integers(0, 2 ** 40),
        "duration": st.integers(0, 86400), "cause": st.sampled_from(m.CAUSES)}, optional={
        "answered": st.integers(0, 2 ** 40), "q850": st.integers(1, 127),
        "text": st.text(_printable, max_size=40)}), max_size=4).map(tuple),
}


def _kind_strategy(kind: m.Kind):
    return KIND_STRATEGIES[kind]


def _shaped(msg: m.Message) -> bool:
    try:
        msg.check_shape()
    except m.FieldError:
        return False
    return True


def message_of(cls: type[m.Message]):
    """Valid instances of ``cls`` (shape rules respected)."""
    parts = {}
    for name, kind, required, _ in m.field_kinds(cls):
        strat = _kind_strategy(kind)
        parts[name] = strat if required else st.none() | strat
    return st.builds(cls, **parts).filter(_shaped).filter(
        lambda msg: len(m.encode(msg)) <= m.MAX_MESSAGE if _fits(msg) else False)


def _fits(msg: m.Message) -> bool:
    try:
        return len(m._dumps(m.to_dict(msg))) <= m.MAX_MESSAGE
    except m.LocalProtocolError:
        return False


ALL_MESSAGES = m.CLIENT_MESSAGES + m.SERVER_MESSAGES
any_message = st.one_of([message_of(cls) for cls in ALL_MESSAGES])
client_message = st.one_of([message_of(cls) for cls in m.CLIENT_MESSAGES])

media_frame = st.builds(framing.MediaFrame, key=st.binary(min_size=16, max_size=16),
                        payload_type=st.integers(0, 127), sequence=st.integers(0, 0xFFFF),
                        timestamp=st.integers(0, 0xFFFFFFFF),
                        payload=st.binary(max_size=framing.MAX_MEDIA_PAYLOAD))
