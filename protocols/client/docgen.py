"""Generate the parts of docs/protocol.md that must not drift from the code.

Owned by the client protocol. Each ``section_*`` function returns Markdown made from the code
itself: field kinds, message tables, error codes, the session and call transition tables (as
Mermaid state diagrams) and an example of every message on every framing. docs/protocol.md
holds each between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``;
``python -m protocols.client.docgen docs/protocol.md`` rewrites them in place, and
tests/client_proto/test_docs.py fails when the file is stale.
"""
from __future__ import annotations

import inspect
import re
import sys

from protocols.client import errors, fields
from protocols.client import messages as m
from protocols.client.calls import CALL_TRANSITIONS
from protocols.client.framing import MediaFrame, encode_media, sse_event, tcp_frame
from protocols.client.session import TRANSITIONS

KEY = bytes(range(0x10, 0x20))
HTTP_SESSION = "Zr4v0E2kq9XhT1mB7yLs3A"

# A worked login (test vector): password "wonderland", scrypt N=16384 r=8 p=1.
PASSWORD = "wonderland"
SALT = bytes.fromhex("5b6db665a09d358ec4a2c1141236fa81")
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
NONCE = CLIENT_NONCE + "3rfcNHYJY1ZVvWVs7j"
TOKEN_KEY = ("k1", b"example key, never use this one!")
ISSUED = 1764064000
TOKEN_NONCE = "c2VhbGluZy1leGFtcGxlLTE"


def _vector() -> dict:
    """The example login's values, computed (scrypt runs once, ~50 ms)."""
    from protocols.client import scram
    from protocols.client.tokens import TokenSigner
    salted = scram.salted_password(PASSWORD, SALT, 16384, 8, 1)
    auth = scram.auth_message("alice", CLIENT_NONCE, NONCE, SALT, 16384, 8, 1)
    token, expires = TokenSigner(TOKEN_KEY).issue("alice", ISSUED)
    return {"auth": auth, "proof": scram.client_proof(salted, auth), "token": token,
            "expires": expires, "salted": salted,
            "signature": scram.server_signature(scram.server_key(salted), auth)}


def examples() -> list[m.Message]:
    """One example of every message (both login shapes, both connected shapes...)."""
    v = _vector()
    return [
        m.Login(user="alice", nonce=CLIENT_NONCE),
        m.Login(user="alice", nonce=NONCE, proof=v["proof"]),
        m.Login(token=v["token"], nonce=TOKEN_NONCE),
        m.Call(call="c1", number="+4930123456", mode="relay", codecs=("PCMA", "PCMU")),
        m.Call(call="c2", contact="Mum", mode="direct", address="198.51.100.7", port=40000),
        m.Answer(call="s1", mode="relay"),
        m.Reject(call="s2", cause="busy"),
        m.Hangup(call="c1"),
        m.Dtmf(call="c1", digits="123#", duration=120),
        m.Hold(call="c1"),
        m.Resume(call="c1"),
        m.Attach(call="c1", key=bytes(range(16))),
        m.Ping(),
        m.Logout(),
        m.BookList(req=1),
        m.BookList(req=2, after="Qm9i"),
        m.BookPut(req=3, name="Mum", number="+4930123456"),
        m.BookPut(req=4, name="Mum (mobile)", number="+491701234567", was="Mum"),
        m.BookDelete(req=5, name="Bob"),
        m.History(req=6),
        m.Refresh(req=7),
        m.Challenge(nonce=NONCE, salt=SALT, n=16384, r=8, p=1),
        m.Welcome(user="alice", token=v["token"], expires=v["expires"],
                  address="203.0.113.45", port=50123, ping=30, signature=v["signature"],
                  name="Alice Liddell", number="+4930555001",
                  branding={"title": "ACME Telecom", "color": "#0a5"}),
        m.Unauthorized(code=errors.AuthCode.BAD_CREDENTIALS, text="bad user name or password"),
        m.Unauthorized(code=errors.AuthCode.THROTTLED, text="too many failed logins", retry=16),
        m.Unauthorized(code=errors.AuthCode.DESTINATION_BLOCKED,
                       text="premium numbers blocked", call="c1"),
        m.Redirect(address="192.0.2.10", port=7000, text="use call server 2"),
        m.Trying(call="c1"),
        m.Ringing(call="c1"),
        m.Connected(call="c1", key=KEY, codec="PCMA"),
        m.Connected(call="c2", address="203.0.113.80", port=30000, codec="PCMU"),
        m.Incoming(call="s1", caller="+4940111222", name="Bob", number="+4930555001"),
        m.Disconnected(call="c1", cause="busy", q850=17, text="User busy"),
        m.Status(info="remote-held", call="c1"),
        m.Error(code=errors.ErrorCode.UNKNOWN_CALL, text="dtmf not allowed for call c7",
                call="c7", re="dtmf"),
        m.Pong(),
        m.Book(req=1, entries=({"name": "Alice", "number": "+4930555001"},
                               {"name": "Bob", "number": "+4940111222"}), next="Qm9i"),
        m.Done(req=3),
        m.Error(code=errors.ErrorCode.ENTRY_EXISTS, text="an entry named Mum exists",
                re="book-put", req=3),
        m.Records(req=6, records=(
            {"number": "+4930123456", "start": ISSUED + 60, "answered": ISSUED + 64,
             "duration": 62, "cause": "normal", "q850": 16},
            {"number": "+4940111222", "start": ISSUED, "duration": 0, "cause": "busy",
             "q850": 17, "text": "User busy"}), next="MTc2NDA2NDAwMC4wLXMx"),
        m.Token(req=7, token=v["token"], expires=v["expires"]),
    ]


def section_vector() -> str:
    v = _vector()
    return "\n".join([
        "```text",
        f"password        {PASSWORD}",
        f"salt (hex)      {SALT.hex()}",
        "scrypt          N=16384 r=8 p=1 dkLen=32",
        f"salted (hex)    {v['salted'].hex()}",
        f"client nonce    {CLIENT_NONCE}",
        f"nonce           {NONCE}",
        f"auth message    {v['auth'].decode('ascii')}",
        f"proof           {m.b64e(v['proof'])}",
        f"signature       {m.b64e(v['signature'])}",
        f"token key       kid {TOKEN_KEY[0]!r}, secret {TOKEN_KEY[1].decode('ascii')!r}",
        f"token           {v['token']}  (issued {ISSUED}, expires {v['expires']})",
        "```"])


MEDIA_EXAMPLE = MediaFrame(KEY, 8, 1234, 160000, bytes([0xD5] * 8))


def _kind_names() -> dict[int, str]:
    return {id(v): k for k, v in vars(fields).items() if isinstance(v, fields.Kind)}


def section_fields() -> str:
    rows = ["| Type | Wire form |", "|---|---|"]
    for name, value in vars(fields).items():
        if isinstance(value, fields.Kind):
            rows.append(f"| `{name}` | {value.doc} |")
    return "\n".join(rows)


def section_messages() -> str:
    names = _kind_names()
    out = []
    for title, group in (("Client to server", m.CLIENT_MESSAGES),
                         ("Server to client", m.SERVER_MESSAGES)):
        out.append(f"#### {title}\n")
        for cls in group:
            doc = " ".join((cls.__doc__ or "").split()).replace("``", "`")
            out.append(f"**`{cls.command}`**: {doc}\n")
            kinds = m.field_kinds(cls)
            if not kinds:
                out.append("No fields.\n")
                continue
            out.append("| Field | Type | Required | Note |\n|---|---|---|---|")
            for name, kind, required, note in kinds:
                out.append(f"| `{name}` | `{names[id(kind)]}` | {'yes' if required else 'no'} "
                           f"| {note} |")
            out.append("")
    return "\n".join(out).rstrip()


def _codes(enum: type) -> str:
    comments = {}
    for line in inspect.getsource(enum).splitlines():
        found = re.match(r"\s+([A-Z_]+) = (\d+)\s*(?:#\s*(.*))?$", line)
        if found:
            comments[found.group(1)] = found.group(3) or ""
    rows = ["| Code | Name | Meaning |", "|---|---|---|"]
    rows += [f"| {c.value} | `{c.name}` | {comments.get(c.name, '')} |" for c in enum]
    return "\n".join(rows)


def section_error_codes() -> str:
    return "`error` codes (`ErrorCode`):\n\n" + _codes(errors.ErrorCode) + \
        "\n\n`unauthorized` codes (`AuthCode`):\n\n" + _codes(errors.AuthCode)


def section_session_states() -> str:
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> connected"]
    seen = set()
    for (state, inp), (_, nexts) in TRANSITIONS.items():
        for nxt in nexts:
            edge = (state.value, nxt.value, inp)
            if edge not in seen and not (state is nxt and inp == "ping"):
                seen.add(edge)
                lines.append(f"    {state.value} --> {nxt.value}: {inp}")
    lines += ["    closed --> [*]", "```", "",
              "Every live state also answers `ping` with `pong` (not drawn)."]
    return "\n".join(lines)


def section_call_states() -> str:
    def name(state) -> str:
        return state.name.lower()
    lines = ["```mermaid", "stateDiagram-v2"]
    for (state, inp), nxt in CALL_TRANSITIONS.items():
        a = "[*]" if state.name == "RELEASED" else name(state)
        b = "[*]" if nxt.name == "RELEASED" else name(nxt)
        lines.append(f"    {a} --> {b}: {inp}")
    lines.append("```")
    return "\n".join(lines)


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def section_examples() -> str:
    out = []
    for i, msg in enumerate(examples(), 1):
        body = m.encode(msg)
        text = body.decode("utf-8")
        frame = tcp_frame(body)
        out.append(f"**{msg.command}** ({'client' if msg.sender == m.CLIENT else 'server'}"
                   f" to {'server' if msg.sender == m.CLIENT else 'client'})\n")
        out.append("```text")
        udp = m.encode(msg, mid=i, acks=(i // 3,) if i % 3 == 0 else ()).decode("utf-8")
        out.append(f"UDP datagram   {udp}")
        out.append(f"TCP frame      {_hex(frame[:2])} | {text}")
        out.append(f"WebSocket text {text}")
        if msg.sender == m.CLIENT:
            out.append("HTTP POST      POST /client/v1/messages  (Content-Type: application/json"
                       f", Callgw-Session: {HTTP_SESSION})  body: {text}")
        else:
            out.append("SSE event      " + sse_event(body, i).decode("utf-8").strip()
                       .replace("\n", "\\n") + "\\n\\n")
        out.append("```\n")
    media = encode_media(MEDIA_EXAMPLE)
    out.append("**media frame** (either direction; key 101112...1f, PCMA, 8 bytes of payload)\n")
    out.append("```text")
    out.append(f"UDP datagram     {_hex(media)}")
    out.append(f"TCP frame        {_hex(tcp_frame(media)[:2])} | {_hex(media)}")
    out.append(f"WebSocket binary {_hex(media)}")
    out.append("HTTP POST        POST /client/v1/messages  (Content-Type: "
               "application/octet-stream)  body: the 32 bytes above")
    out.append("SSE event        " + sse_event(media).decode("ascii").strip()
               .replace("\n", "\\n") + "\\n\\n")
    out.append("```\n")
    out.append("**bare acknowledgement** (UDP only)\n\n```text")
    out.append(f"UDP datagram   {m.encode_ack((4, 5)).decode('ascii')}\n```")
    return "\n".join(out)


def section_sealing_vector() -> str:
    """The worked login's datagram keys, and its first sealed datagrams."""
    from protocols.client import scram, sealing
    v = _vector()
    keys = sealing.password_keys(scram.client_key(v["salted"]), v["auth"])
    token = sealing.token_keys(v["token"], TOKEN_NONCE)
    ping = m.encode(m.Ping(), mid=3)
    return "\n".join([
        "```text",
        f"client key (hex)        {scram.client_key(v['salted']).hex()}",
        f"client datagram key     {keys.client.hex()}",
        f"server datagram key     {keys.server.hex()}",
        f"client -> server, counter 1, {ping.decode('ascii')}:",
        f"    {_hex(sealing.seal(keys.client, 1, ping))}",
        f"server -> client, counter 1, {m.encode_ack((3,)).decode('ascii')}:",
        f"    {_hex(sealing.seal(keys.server, 1, m.encode_ack((3,))))}",
        f"token login           {{\"token\": the token above, \"nonce\": \"{TOKEN_NONCE}\"}}",
        f"client datagram key     {token.client.hex()}",
        f"server datagram key     {token.server.hex()}",
        "```"])


SECTIONS = {
    "vector": section_vector,
    "sealing-vector": section_sealing_vector,
    "fields": section_fields,
    "messages": section_messages,
    "error-codes": section_error_codes,
    "session-states": section_session_states,
    "call-states": section_call_states,
    "examples": section_examples,
}


def render(document: str) -> str:
    """``document`` with every generated section brought up to date."""
    for name, make in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        document = pattern.sub(lambda mt: mt.group(1) + make() + "\n" + mt.group(2), document)
    return document


def main(argv: list[str]) -> int:
    """Rewrite the generated sections of the file named in ``argv``."""
    path = argv[1]
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    new = render(text)
    if new != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
