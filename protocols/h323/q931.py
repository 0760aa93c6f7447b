"""Q.931 messages and information elements as H.225.0 uses them (H.225.0 clause 7.2, Q.931 4.x).

Owns: the message layout (protocol discriminator 0x08, a two-octet call reference with its flag,
message type, IEs: Q.931 4.1-4.5), the message types H.225.0 uses, and the IEs we read or write:
bearer capability (4.5.5), call state (4.5.7), called party number (4.5.8), calling party number
(4.5.10), cause (4.5.12 / Q.850), display (4.5.16), keypad, progress indicator (4.5.23), signal,
sending complete, and user-user (4.5.30, with the two-octet length H.225.0 7.2.2.1 requires,
protocol discriminator 0x05 and the PER ``H323-UserInformation`` inside). IEs we do not know are
kept as raw octets and sent back unchanged.

``parse`` raises ``Q931Error`` for anything malformed (never another exception); ``Message.encode``
is its inverse.

Tests: tests/h323/test_q931.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

PROTOCOL_DISCRIMINATOR = 0x08
USER_USER_X208 = 0x05  # user-user protocol discriminator: X.208/X.209 coded (H.225.0 7.2.2.1)


class Q931Error(Exception):
    """Malformed Q.931 octets from the peer; ``cause`` is the Q.850 cause to answer with."""

    def __init__(self, reason, cause=100):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


class MessageType(enum.IntEnum):
    """Q.931 table 4-2, the messages H.225.0 7.3 allows."""
    ALERTING = 0x01
    CALL_PROCEEDING = 0x02
    PROGRESS = 0x03
    SETUP = 0x05
    CONNECT = 0x07
    SETUP_ACKNOWLEDGE = 0x0D
    CONNECT_ACKNOWLEDGE = 0x0F
    RELEASE_COMPLETE = 0x5A
    FACILITY = 0x62
    NOTIFY = 0x6E
    STATUS_ENQUIRY = 0x75
    INFORMATION = 0x7B
    STATUS = 0x7D


class IE(enum.IntEnum):
    """Q.931 table 4-3 codeset 0 identifiers used here."""
    BEARER_CAPABILITY = 0x04
    CAUSE = 0x08
    CALL_STATE = 0x14
    FACILITY = 0x1C
    PROGRESS_INDICATOR = 0x1E
    NOTIFICATION_INDICATOR = 0x27
    DISPLAY = 0x28
    KEYPAD = 0x2C
    SIGNAL = 0x34
    CONNECTED_NUMBER = 0x4C
    CALLING_PARTY_NUMBER = 0x6C
    CALLED_PARTY_NUMBER = 0x70
    USER_USER = 0x7E
    SENDING_COMPLETE = 0xA1  # single octet


class Location(enum.IntEnum):
    """Q.931 4.5.12 location field."""
    USER = 0
    PRIVATE_LOCAL = 1
    PUBLIC_LOCAL = 2
    TRANSIT = 3
    PUBLIC_REMOTE = 4
    PRIVATE_REMOTE = 5
    INTERNATIONAL = 7
    BEYOND_INTERWORKING = 10


class Progress(enum.IntEnum):
    """Q.931 4.5.23 progress descriptions."""
    NOT_END_TO_END_ISDN = 1
    DESTINATION_NOT_ISDN = 2
    ORIGIN_NOT_ISDN = 3
    RETURNED_TO_ISDN = 4
    INBAND_AVAILABLE = 8


# ---- the message ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """One Q.931 message. ``from_destination`` is the call reference flag (Q.931 4.3: set by
    the side that did not allocate the reference). ``ies`` is a tuple of ``(identifier, octets)``
    in order; single-octet IEs have ``b""``."""
    type: int
    call_reference: int
    from_destination: bool = False
    ies: tuple = field(default_factory=tuple)

    def encode(self) -> bytes:
        if not 0 <= self.call_reference < 0x8000:
            raise ValueError(f"call reference {self.call_reference} is not 15 bits")
        crv = self.call_reference | (0x8000 if self.from_destination else 0)
        out = bytearray((PROTOCOL_DISCRIMINATOR, 2, crv >> 8, crv & 0xFF, self.type))
        for ident, octets in self.ies:
            if ident & 0x80:
                out.append(ident)
            elif ident == IE.USER_USER:
                if len(octets) > 0xFFFF:
                    raise ValueError("user-user IE over 65535 octets")
                out += bytes((ident, len(octets) >> 8, len(octets) & 0xFF)) + octets
            else:
                if len(octets) > 0xFF:
                    raise ValueError(f"IE 0x{ident:02x} over 255 octets")
                out += bytes((ident, len(octets))) + octets
        return bytes(out)

    def get(self, ident):
        """The octets of the first IE ``ident``, or None."""
        for i, octets in self.ies:
            if i == ident:
                return octets
        return None

    @property
    def name(self):
        try:
            return MessageType(self.type).name
        except ValueError:
            return f"0x{self.type:02x}"


def parse(data: bytes) -> Message:
    """One Q.931 message from ``data`` (a whole TPKT payload)."""
    if len(data) < 3:
        raise Q931Error("Q.931 message shorter than its header", cause=96)
    if data[0] != PROTOCOL_DISCRIMINATOR:
        raise Q931Error(f"protocol discriminator 0x{data[0]:02x} is not Q.931")
    crv_len = data[1] & 0x0F
    if data[1] & 0xF0 or crv_len > 2 or len(data) < 3 + crv_len:
        raise Q931Error(f"call reference length {data[1]} is not valid", cause=81)
    crv = int.from_bytes(data[2:2 + crv_len], "big")
    flag_bit = 1 << (8 * crv_len - 1) if crv_len else 0
    from_destination = bool(crv & flag_bit)
    crv &= ~flag_bit
    mtype = data[2 + crv_len]
    if mtype & 0x80:
        raise Q931Error(f"message type 0x{mtype:02x} is not valid", cause=97)
    ies = []
    i = 3 + crv_len
    while i < len(data):
        ident = data[i]
        if ident & 0x80:  # single-octet IE (shift, sending complete, ...)
            ies.append((ident, b""))
            i += 1
            continue
        if ident == IE.USER_USER:
            if i + 3 > len(data):
                raise Q931Error("user-user IE truncated", cause=100)
            length = (data[i + 1] << 8) | data[i + 2]
            start = i + 3
        else:
            if i + 2 > len(data):
                raise Q931Error(f"IE 0x{ident:02x} truncated", cause=100)
            length = data[i + 1]
            start = i + 2
        if start + length > len(data):
            raise Q931Error(f"IE 0x{ident:02x} runs past the message", cause=100)
        ies.append((ident, bytes(data[start:start + length])))
        i = start + length
    return Message(mtype, crv, from_destination, tuple(ies))


# ---- IE contents --------------------------------------------------------------------------------

def bearer_capability(alaw: bool = False) -> bytes:
    """Speech, circuit mode 64 kbit/s, layer 1 G.711 mu-law (or A-law): what H.323 gateways send."""
    return bytes((0x80, 0x90, 0xA3 if alaw else 0xA2))


def parse_bearer_capability(octets: bytes) -> dict:
    """The transfer capability, mode/rate and, when present, the layer-1 protocol."""
    if len(octets) < 2:
        raise Q931Error("bearer capability shorter than 2 octets", cause=100)
    out = {"coding": (octets[0] >> 5) & 3, "capability": octets[0] & 0x1F,
           "mode": (octets[1] >> 5) & 3, "rate": octets[1] & 0x1F, "layer1": None}
    i = 2
    if octets[1] == 0x18 and len(octets) > 2:  # multirate: rate multiplier octet 4.1
        i += 1
    for b in octets[i:]:
        if (b >> 5) & 3 == 1:
            out["layer1"] = b & 0x1F
            break
    return out


def party_number(digits: str, type_of_number: int = 0, plan: int = 1,
                 presentation: int | None = None, screening: int = 0) -> bytes:
    """Called/calling party number contents: type and plan (octet 3), optional presentation and
    screening (octet 3a, calling party only), IA5 digits."""
    if not all(c in "0123456789*#" for c in digits):
        raise ValueError(f"party number {digits!r} has characters outside 0-9 * #")
    if presentation is None:
        head = bytes((0x80 | (type_of_number & 7) << 4 | (plan & 0xF),))
    else:
        head = bytes(((type_of_number & 7) << 4 | (plan & 0xF),
                      0x80 | (presentation & 3) << 5 | (screening & 3)))
    return head + digits.encode("ascii")


def parse_party_number(octets: bytes) -> dict:
    if not octets:
        raise Q931Error("party number IE is empty", cause=100)
    out = {"type": (octets[0] >> 4) & 7, "plan": octets[0] & 0xF,
           "presentation": None, "screening": None}
    i = 1
    if not octets[0] & 0x80:
        if len(octets) < 2:
            raise Q931Error("party number octet 3a missing", cause=100)
        out["presentation"] = (octets[1] >> 5) & 3
        out["screening"] = octets[1] & 3
        i = 2
    try:
        out["digits"] = octets[i:].decode("ascii")
    except UnicodeDecodeError:
        raise Q931Error("party number digits are not IA5", cause=100) from None
    return out


def cause(value: int, location: int = Location.USER) -> bytes:
    """Cause IE contents (Q.850 2.2): ITU-T coding, ``location``, cause ``value``."""
    if not 0 <= value <= 127:
        raise ValueError(f"cause {value} is not 7 bits")
    return bytes((0x80 | (location & 0xF), 0x80 | value))


def parse_cause(octets: bytes) -> dict:
    if len(octets) < 2:
        raise Q931Error("cause IE shorter than 2 octets", cause=100)
    i = 1 if octets[0] & 0x80 else 2  # octet 3a (recommendation) when octet 3 has no ext bit
    if len(octets) <= i:
        raise Q931Error("cause IE has no cause value", cause=100)
    return {"location": octets[0] & 0xF, "value": octets[i] & 0x7F,
            "diagnostics": bytes(octets[i + 1:])}


def progress(description: int, location: int = Location.USER) -> bytes:
    return bytes((0x80 | (location & 0xF), 0x80 | (description & 0x7F)))


def parse_progress(octets: bytes) -> dict:
    if len(octets) < 2:
        raise Q931Error("progress indicator shorter than 2 octets", cause=100)
    return {"location": octets[0] & 0xF, "description": octets[1] & 0x7F}


def display(text: str) -> bytes:
    """Display IE contents: IA5, at most 82 octets (Q.931 4.5.16's maximum for the network side)."""
    data = text.encode("ascii", "replace")[:82]
    return data


def parse_display(octets: bytes) -> str:
    return octets.decode("ascii", "replace")


def call_state(state: int) -> bytes:
    return bytes((state & 0x3F,))


def user_user(uu_pdu: bytes) -> bytes:
    """User-user IE contents: X.208/X.209 protocol discriminator, then the PER ``H323-UserInformation``."""
    return bytes((USER_USER_X208,)) + uu_pdu


def parse_user_user(octets: bytes) -> bytes:
    """The PER ``H323-UserInformation`` octets inside a user-user IE."""
    if not octets or octets[0] != USER_USER_X208:
        raise Q931Error("user-user IE does not carry X.208 coded user information", cause=100)
    return bytes(octets[1:])
