"""H.225.0 call-signalling messages (H.225.0 clause 7.3-7.4 and 8): Q.931 envelopes with the PER
``H323-UserInformation`` in their user-user IE.

Owns: building the UU-PDU bodies we send (Setup, CallProceeding, Alerting, Progress, Connect,
ReleaseComplete, Facility, Information, Status, and the ``empty`` body that only carries tunnelled
H.245), the Q.931 IEs each message carries (H.225.0 table 7-2 .. 7-10), and ``decode_message``,
which turns one TPKT payload into a ``Signal`` (Q.931 message + decoded UU-PDU) or raises
``H225Error`` naming what was wrong. Helpers convert between ``(host, port)`` and
``TransportAddress``, and map ``ReleaseCompleteReason`` to Q.850 causes (H.225.0 table 5).

Tests: tests/h323/test_h225.py.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from protocols.h323 import per, q931
from protocols.h323.causes import REASON_TO_CAUSE  # noqa: F401 (re-exported)
from protocols.h323.q931 import IE, MessageType

#: Our vendor identity: t35 country 0xB5 (USA) with a private manufacturer code; productId names us.
VENDOR = {"vendor": {"t35CountryCode": 181, "t35Extension": 0, "manufacturerCode": 0x6367},
          "productId": b"callgw", "versionId": b"0.1"}


class H225Error(Exception):
    """A call-signalling message from the peer that is not valid; ``cause`` is the Q.850 cause."""

    def __init__(self, reason, cause=100):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


@dataclass(frozen=True)
class Signal:
    """One received call-signalling message: the Q.931 envelope, the body's CHOICE name
    (``setup``, ``alerting``, ... or None without a user-user IE), the body and the UU-PDU."""
    q931: q931.Message
    body_name: str | None
    body: object
    pdu: dict | None

    @property
    def h245_control(self):
        """Tunnelled H.245 PDUs (encoded MultimediaSystemControlMessages), possibly empty."""
        return list((self.pdu or {}).get("h245Control", ()))

    @property
    def tunnelling(self):
        return bool((self.pdu or {}).get("h245Tunnelling", False))


def new_guid() -> bytes:
    """A 16-octet GloballyUniqueID (H.225.0 clause 7.6)."""
    return os.urandom(16)


def transport_address(host: str, port: int):
    """``TransportAddress.ipAddress`` (or ``ip6Address``) for ``host:port``."""
    ip = ipaddress.ip_address(host)
    if ip.version == 4:
        return ("ipAddress", {"ip": ip.packed, "port": port})
    return ("ip6Address", {"ip": ip.packed, "port": port})


def host_port(address):
    """``(host, port)`` of a decoded ``TransportAddress``; ``H225Error`` for kinds we cannot reach."""
    kind, value = address
    if kind in ("ipAddress", "ip6Address"):
        return str(ipaddress.ip_address(value["ip"])), value["port"]
    raise H225Error(f"transport address kind {kind} is not supported", cause=79)


def endpoint_type(gateway=True):
    """EndpointType for us: a gateway (voice) or a terminal, with our vendor identity."""
    value = {"vendor": VENDOR, "mc": False, "undefinedNode": False}
    if gateway:
        value["gateway"] = {"protocol": [("voice", {"supportedPrefixes": []})]}
    else:
        value["terminal"] = {}
    return value


def _common(call_id, protocol_id):
    return {"protocolIdentifier": protocol_id, "callIdentifier": {"guid": call_id}}


def setup_body(call_id, conference_id, *, source_aliases=(), dest_number=None,
               h245_address=None, source_address=None, fast_start=(), gateway=True,
               protocol_id=per.H225_PROTOCOL_ID, dest_call_signal_address=None):
    body = _common(call_id, protocol_id)
    body.update({
        "sourceInfo": endpoint_type(gateway), "activeMC": False, "conferenceID": conference_id,
        "conferenceGoal": ("create", None), "callType": ("pointToPoint", None),
        "mediaWaitForConnect": False, "canOverlapSend": False,
        "multipleCalls": False, "maintainConnection": False,
    })
    if source_aliases:
        body["sourceAddress"] = list(source_aliases)
    if dest_number:
        body["destinationAddress"] = [("dialledDigits", dest_number)]
    if h245_address:
        body["h245Address"] = transport_address(*h245_address)
    if source_address:
        body["sourceCallSignalAddress"] = transport_address(*source_address)
    if dest_call_signal_address:
        body["destCallSignalAddress"] = transport_address(*dest_call_signal_address)
    if fast_start:
        body["fastStart"] = list(fast_start)
    return body


def response_body(name, call_id, *, h245_address=None, fast_start=(), conference_id=None,
                  fast_connect_refused=False, gateway=True, protocol_id=per.H225_PROTOCOL_ID):
    """callProceeding, alerting, progress or connect body (their fields are alike)."""
    body = _common(call_id, protocol_id)
    body["destinationInfo"] = endpoint_type(gateway)
    body["multipleCalls"] = False
    body["maintainConnection"] = False
    if name == "connect":
        body["conferenceID"] = conference_id or bytes(16)
    if h245_address:
        body["h245Address"] = transport_address(*h245_address)
    if fast_start:
        body["fastStart"] = list(fast_start)
    if fast_connect_refused:
        body["fastConnectRefused"] = None
    return body


def release_complete_body(call_id, reason=None, protocol_id=per.H225_PROTOCOL_ID):
    body = _common(call_id, protocol_id)
    if reason:
        body["reason"] = (reason, None)
    return body


def facility_body(call_id, reason, *, h245_address=None, conference_id=None,
                  protocol_id=per.H225_PROTOCOL_ID):
    body = _common(call_id, protocol_id)
    body.update({"reason": (reason, None), "multipleCalls": False, "maintainConnection": False})
    if h245_address:
        body["h245Address"] = transport_address(*h245_address)
    if conference_id:
        body["conferenceID"] = conference_id
    return body


def status_enquiry(call_reference, call_id=None):
    """A Status Enquiry (Q.931 5.8.10, H.225.0 7.4.1) on ``call_reference``: the health probe of
    a gateway without a gatekeeper. Any Status or ReleaseComplete answer shows it alive."""
    return encode_message("statusInquiry", _common(call_id or new_guid(), per.H225_PROTOCOL_ID),
                          call_reference, False)


def information_body(call_id, protocol_id=per.H225_PROTOCOL_ID):
    return _common(call_id, protocol_id)


def status_body(call_id, protocol_id=per.H225_PROTOCOL_ID):
    return _common(call_id, protocol_id)


def uu_pdu(body_name, body, *, tunnelling=False, h245_control=()):
    """``H323-UserInformation`` with ``body`` as ``h323-message-body``."""
    pdu = {"h323-message-body": (body_name, body), "h245Tunnelling": tunnelling}
    if h245_control:
        pdu["h245Control"] = list(h245_control)
    return {"h323-uu-pdu": pdu}


_BODY_TYPE = {
    "setup": MessageType.SETUP, "callProceeding": MessageType.CALL_PROCEEDING,
    "alerting": MessageType.ALERTING, "progress": MessageType.PROGRESS,
    "connect": MessageType.CONNECT, "releaseComplete": MessageType.RELEASE_COMPLETE,
    "facility": MessageType.FACILITY, "information": MessageType.INFORMATION,
    "status": MessageType.STATUS, "empty": MessageType.FACILITY,
    "statusInquiry": MessageType.STATUS_ENQUIRY,
}


def encode_message(body_name, body, call_reference, from_destination, *, ies=(),
                   tunnelling=False, h245_control=(), message_type=None,
                   require_additions=True) -> bytes:
    """One Q.931 message (TPKT payload) carrying ``body``; ``ies`` come before the user-user IE in
    Q.931 order. ``per.CodecError`` if the body does not validate (``require_additions``: see
    ``per.encode``)."""
    pdu = uu_pdu(body_name, body, tunnelling=tunnelling, h245_control=h245_control)
    info = per.encode(per.H225, "H323-UserInformation", pdu, require_additions=require_additions)
    mtype = message_type if message_type is not None else _BODY_TYPE[body_name]
    all_ies = sorted(ies, key=lambda ie: ie[0] if ie[0] < 0x80 else -1)
    all_ies.append((IE.USER_USER, q931.user_user(info)))
    return q931.Message(mtype, call_reference, from_destination, tuple(all_ies)).encode()


def decode_message(data: bytes) -> Signal:
    """One received Q.931/H.225.0 message; ``H225Error`` (with a Q.850 cause) when it is not valid."""
    try:
        message = q931.parse(data)
    except q931.Q931Error as e:
        raise H225Error(f"Q.931: {e.reason}", e.cause) from None
    uu = message.get(IE.USER_USER)
    if uu is None:
        return Signal(message, None, None, None)
    try:
        info = per.decode(per.H225, "H323-UserInformation", q931.parse_user_user(uu))
    except q931.Q931Error as e:
        raise H225Error(e.reason, e.cause) from None
    except per.CodecError as e:
        raise H225Error(f"H.225.0 user-user does not decode: {e.reason}", cause=100) from None
    pdu = info["h323-uu-pdu"]
    name, body = pdu["h323-message-body"]
    return Signal(message, name, body, pdu)
