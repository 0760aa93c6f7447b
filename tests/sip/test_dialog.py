"""The INVITE session tables and the dialog (RFC 3261 12, 14, 15): shape, docs, messages."""
from __future__ import annotations

from pathlib import Path

import pytest

from protocols.sip import session as s
from protocols.sip.dialog import ALL_STATES, Dialog, DialogSession
from protocols.sip.message import parse_message
from protocols.sip.transaction import LocalProtocolError
from protocols.sip.uac_session import UacSession
from protocols.sip.uas_session import UasSession

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols" / "sip-sessions.md"


def test_the_page_draws_the_tables_of_the_code():
    text = DOC.read_text()
    for title, diagram in s.diagrams().items():
        assert f"```mermaid\n{diagram}\n```" in text, \
            f"regenerate {title!r}: python -m protocols.sip.session"


def test_tables_name_only_known_states_and_each_pair_once():
    for cls in (UacSession, UasSession):
        assert set(cls.DIALOG_ROWS) <= set(DialogSession.DIALOG_ROWS)
        keys = [(st, inp) for st, inp, _, _ in cls.TABLE_ROWS + DialogSession.DIALOG_ROWS]
        assert len(keys) == len(set(keys)) == len(cls.TABLE)
        assert {st for st, _ in keys} <= set(ALL_STATES)
    with pytest.raises(LocalProtocolError):
        s.build_table(type("Twice", (UacSession,), {}),
                      [(s.State.IDLE, s.Input.START, "_send_invite", None)] * 2)


def test_every_hangup_has_a_row():
    # the layer above may release a call in any state: never an exception
    for cls in (UacSession, UasSession):
        reachable = {st for st, _, _, _ in cls.TABLE_ROWS} | {
            nxt for _, _, _, nxt in cls.TABLE_ROWS}
        reachable.discard(s.State.TERMINATED)
        for state in reachable | {s.State.TERMINATED}:
            assert (state, s.Input.HANGUP) in cls.TABLE, (cls.__name__, state)


def test_dialog_requests_follow_12_2_1_1():
    profile = s.Profile("192.0.2.1", 5070, "192.0.2.5", 5060)
    dialog = Dialog(profile, "cid@x", "lt", "<sip:a@192.0.2.1>;tag=lt", "<sip:b@192.0.2.5>",
                    "sip:b@192.0.2.5:5062", lambda: "tok",
                    route_set=["<sip:p1.example;lr>"], local_cseq=4, remote_tag="rt")
    bye = parse_message(dialog.request("BYE").to_bytes())
    assert bye.uri == "sip:b@192.0.2.5:5062" and bye.cseq == (5, "BYE")
    assert bye.to_tag == "rt" and bye.from_tag == "lt"
    assert bye.headers.get_all("Route") == ["<sip:p1.example;lr>"]
    assert bye.top_via.transport == "UDP" and bye.branch == "z9hG4bKtok"
    assert dialog.hop() == s.Hop("udp", "p1.example", 5060)
    dialog.route_set = []
    assert dialog.hop() == s.Hop("udp", "192.0.2.5", 5062)


def test_sips_and_tls_targets():
    tls = s.TlsPolicy(verify=True, ca_file="/ca.pem")
    assert s.hop_for("sips:gw@gw.example", "udp", tls) == s.Hop("tls", "gw.example", 5061, tls)
    assert s.hop_for("sip:gw@gw.example;transport=tls", "udp", tls).transport == "tls"
    assert s.hop_for("sip:gw@gw.example;transport=TCP", "udp", tls) == \
        s.Hop("tcp", "gw.example", 5060)
