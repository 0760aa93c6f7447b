"""docs/protocol.md: generated sections up to date, every message and framing exemplified, and
the worked login vector correct."""
from __future__ import annotations

import pathlib
import re

from protocols.client import docgen, scram
from protocols.client import messages as m
from protocols.client.framing import decode_media

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_generated_sections_are_up_to_date():
    text = DOC.read_text(encoding="utf-8")
    assert docgen.render(text) == text, "run: python -m protocols.client.docgen docs/protocol.md"
    for name in docgen.SECTIONS:
        assert f"<!-- generated:{name} -->" in text


def test_every_message_has_an_example_on_every_framing():
    examples = docgen.examples()
    assert {type(x) for x in examples} == set(m.BY_COMMAND.values())
    text = DOC.read_text(encoding="utf-8")
    for msg in examples:
        wire = m.encode(msg).decode("utf-8")
        assert f"WebSocket text {wire}" in text and f"| {wire}" in text
        assert (f"body: {wire}" if msg.sender == m.CLIENT else f"data: {wire}") in text
    udp = re.findall(r"^UDP datagram   (\{.*\})$", text, re.M)
    assert len(udp) == len(examples) + 1
    for line in udp:
        m.decode_envelope(line.encode())
    media = re.search(r"^WebSocket binary ([0-9a-f ]+)$", text, re.M).group(1)
    assert decode_media(bytes.fromhex(media)) == docgen.MEDIA_EXAMPLE


def test_the_worked_login_verifies():
    v = docgen._vector()
    stored, server = scram.keys_for(docgen.PASSWORD, docgen.SALT, 16384, 8, 1)
    assert scram.verify_proof(stored, v["auth"], v["proof"])
    assert scram.server_signature(server, v["auth"]) == v["signature"]
