"""H.245 messages for audio calls (H.245 clauses 6 and 8; H.323 clause 8.1.7 for fastStart).

Owns: encoding and decoding ``MultimediaSystemControlMessage`` (``H245Error`` for anything that does
not decode), and builders for the messages an audio gateway call uses: TerminalCapabilitySet with
G.711 and userInputCapability (dtmf, basicString) and its Ack/Reject, MasterSlaveDetermination and
its Ack/Reject (the msd procedure itself is ``protocols.h323.msd``), OpenLogicalChannel for G.711
audio with H.225.0 parameters and its Ack/Reject, CloseLogicalChannel/Ack, EndSessionCommand, and
UserInputIndication (alphanumeric and signal). ``fast_start_offer``/``fast_start_answer`` build
the encoded OpenLogicalChannel proposals of H.323 8.1.7; ``channel_media`` reads the codec and
media addresses out of a decoded OpenLogicalChannel or Ack.

Tests: tests/h323/test_h245.py.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from protocols.h323 import per

#: Codec name -> (AudioCapability choice, RTP payload type).
CODECS = {"PCMU": ("g711Ulaw64k", 0), "PCMA": ("g711Alaw64k", 8)}
CAPABILITY_CODEC = {cap: name for name, (cap, _pt) in CODECS.items()}
FRAMES = 20            # G.711 frames (ms) per packet we announce
AUDIO_SESSION = 1      # H.225.0 session ID of the primary audio session


class H245Error(Exception):
    """An H.245 PDU that does not decode, or that lacks what an audio call needs."""


def encode(message, *, require_additions=True) -> bytes:
    """``message`` (a (kind, (name, value)) tuple) as PER; ``per.CodecError`` if invalid.
    ``require_additions=False`` only to echo a peer's PDU that an older version encoded."""
    return per.encode(per.H245, "MultimediaSystemControlMessage", message,
                      require_additions=require_additions)


def decode(data: bytes):
    try:
        return per.decode(per.H245, "MultimediaSystemControlMessage", data)
    except per.CodecError as e:
        raise H245Error(f"H.245 PDU does not decode: {e.reason}") from None


def encode_olc(value) -> bytes:
    return per.encode(per.H245, "OpenLogicalChannel", value)


def decode_olc(data: bytes):
    try:
        return per.decode(per.H245, "OpenLogicalChannel", data)
    except per.CodecError as e:
        raise H245Error(f"fastStart element does not decode: {e.reason}") from None


def unicast(host, port):
    """H.245 ``TransportAddress.unicastAddress`` for ``host:port``."""
    ip = ipaddress.ip_address(host)
    if ip.version == 4:
        return ("unicastAddress", ("iPAddress", {"network": ip.packed, "tsapIdentifier": port}))
    return ("unicastAddress", ("iP6Address", {"network": ip.packed, "tsapIdentifier": port}))


def address(transport):
    """``(host, port)`` of an H.245 TransportAddress, or None for kinds we cannot use."""
    if transport is None or transport[0] != "unicastAddress":
        return None
    kind, value = transport[1]
    if kind in ("iPAddress", "iP6Address"):
        return str(ipaddress.ip_address(value["network"])), value["tsapIdentifier"]
    return None


# ---- capability exchange (H.245 8.3) ------------------------------------------------------------

def terminal_capability_set(sequence_number, codecs=("PCMU", "PCMA")):
    """Our capabilities: receive G.711 in the order given, receive userInput as dtmf and as
    basicString; one descriptor in which every audio codec is an alternative."""
    table = []
    for n, codec in enumerate(codecs, start=1):
        table.append({"capabilityTableEntryNumber": n,
                      "capability": ("receiveAudioCapability", (CODECS[codec][0], FRAMES))})
    audio = [e["capabilityTableEntryNumber"] for e in table]
    uii = []
    for kind in ("dtmf", "basicString"):
        n = len(table) + 1
        table.append({"capabilityTableEntryNumber": n,
                      "capability": ("receiveAndTransmitUserInputCapability", (kind, None))})
        uii.append(n)
    descriptor = {"capabilityDescriptorNumber": 0,
                  "simultaneousCapabilities": [audio, uii]}
    return ("request", ("terminalCapabilitySet", {
        "sequenceNumber": sequence_number, "protocolIdentifier": per.H245_PROTOCOL_ID,
        "multiplexCapability": ("h2250Capability", _h2250_capability()),
        "capabilityTable": table, "capabilityDescriptors": [descriptor]}))


def _h2250_capability():
    return {
        "maximumAudioDelayJitter": 60,
        "receiveMultipointCapability": _no_multipoint(),
        "transmitMultipointCapability": _no_multipoint(),
        "receiveAndTransmitMultipointCapability": _no_multipoint(),
        "mcCapability": {"centralizedConferenceMC": False, "decentralizedConferenceMC": False},
        "rtcpVideoControlCapability": False,
        "mediaPacketizationCapability": {"h261aVideoPacketization": False},
        "logicalChannelSwitchingCapability": False, "t120DynamicPortCapability": False,
    }


def _no_multipoint():
    return {"multicastCapability": False, "multiUniCastConference": False,
            "mediaDistributionCapability": [{"centralizedControl": False,
                                             "distributedControl": False,
                                             "centralizedAudio": False,
                                             "distributedAudio": False,
                                             "centralizedVideo": False,
                                             "distributedVideo": False}]}


def capability_codecs(tcs):
    """Codec names (ours) the peer's TerminalCapabilitySet can receive, in its order, and whether
    it accepts UserInputIndication signals (dtmf) and alphanumeric strings."""
    codecs, dtmf, alnum = [], False, False
    for entry in tcs.get("capabilityTable", ()):
        cap = entry.get("capability")
        if cap is None:
            continue
        kind, value = cap
        if kind in ("receiveAudioCapability", "receiveAndTransmitAudioCapability"):
            codec = CAPABILITY_CODEC.get(value[0])
            if codec and codec not in codecs:
                codecs.append(codec)
        elif kind in ("receiveUserInputCapability", "receiveAndTransmitUserInputCapability"):
            dtmf |= value[0] == "dtmf"
            alnum |= value[0] in ("basicString", "iA5String", "generalString")
    return codecs, dtmf, alnum


def tcs_ack(sequence_number):
    return ("response", ("terminalCapabilitySetAck", {"sequenceNumber": sequence_number}))


def tcs_reject(sequence_number):
    return ("response", ("terminalCapabilitySetReject",
                         {"sequenceNumber": sequence_number, "cause": ("unspecified", None)}))


# ---- master-slave determination messages (H.245 8.2) ------------------------------------------

def msd_request(terminal_type, number):
    return ("request", ("masterSlaveDetermination",
                        {"terminalType": terminal_type, "statusDeterminationNumber": number}))


def msd_ack(decision):
    """``decision`` is what the *receiver* of the ack is: "master" or "slave"."""
    return ("response", ("masterSlaveDeterminationAck", {"decision": (decision, None)}))


def msd_reject():
    return ("response", ("masterSlaveDeterminationReject",
                         {"cause": ("identicalNumbers", None)}))


def msd_release():
    return ("indication", ("masterSlaveDeterminationRelease", {}))


# ---- logical channels (H.245 8.4; H.323 8.1.7) ------------------------------------------------

def _h2250(rtp=None, rtcp=None, codec=None):
    params = {"sessionID": AUDIO_SESSION, "silenceSuppression": False}
    if rtp:
        params["mediaChannel"] = unicast(*rtp)
        params["mediaGuaranteedDelivery"] = False
    if rtcp:
        params["mediaControlChannel"] = unicast(*rtcp)
        params["mediaControlGuaranteedDelivery"] = False
    return ("h2250LogicalChannelParameters", params)


def _audio(codec):
    return ("audioData", (CODECS[codec][0], FRAMES))


def olc_transmit(number, codec, rtcp, rtp=None):
    """OpenLogicalChannel for audio we send (forward): our RTCP; the far end's RTP in ``rtp``
    when the far end is the one answering a fastStart proposal."""
    return {"forwardLogicalChannelNumber": number,
            "forwardLogicalChannelParameters": {"dataType": _audio(codec),
                                                "multiplexParameters": _h2250(rtp, rtcp)}}


def olc_receive(number, codec, rtp, rtcp):
    """fastStart proposal for audio we receive (a reverse channel, H.323 8.1.7.1): where to send."""
    return {"forwardLogicalChannelNumber": number,
            "forwardLogicalChannelParameters": {"dataType": ("nullData", None),
                                                "multiplexParameters": ("none", None)},
            "reverseLogicalChannelParameters": {"dataType": _audio(codec),
                                                "multiplexParameters": _h2250(rtp, rtcp)}}


def open_logical_channel(value):
    return ("request", ("openLogicalChannel", value))


def olc_ack(number, rtp, rtcp):
    """OpenLogicalChannelAck accepting channel ``number``: send the media to ``rtp``."""
    return ("response", ("openLogicalChannelAck", {
        "forwardLogicalChannelNumber": number,
        "forwardMultiplexAckParameters": ("h2250LogicalChannelAckParameters", {
            "sessionID": AUDIO_SESSION, "mediaChannel": unicast(*rtp),
            "mediaControlChannel": unicast(*rtcp), "flowControlToZero": False})}))


def olc_reject(number, cause="unspecified"):
    return ("response", ("openLogicalChannelReject",
                         {"forwardLogicalChannelNumber": number, "cause": (cause, None)}))


def close_logical_channel(number):
    return ("request", ("closeLogicalChannel", {"forwardLogicalChannelNumber": number,
                                                "source": ("user", None),
                                                "reason": ("unknown", None)}))


def clc_ack(number):
    return ("response", ("closeLogicalChannelAck", {"forwardLogicalChannelNumber": number}))


def end_session():
    return ("command", ("endSessionCommand", ("disconnect", None)))


def uii_alphanumeric(text):
    return ("indication", ("userInput", ("alphanumeric", text)))


def uii_signal(digit, duration=100):
    return ("indication", ("userInput", ("signal", {"signalType": digit, "duration": duration})))


def uii_digits(indication):
    """The DTMF digits in a decoded UserInputIndication (signal or alphanumeric), as a str."""
    kind, value = indication
    if kind == "signal":
        return value["signalType"]
    if kind == "alphanumeric":
        return "".join(c for c in value if c in "0123456789*#ABCD")
    if kind == "extendedAlphanumeric":
        return "".join(c for c in value["alphanumeric"] if c in "0123456789*#ABCD")
    return ""


# ---- reading channels ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelMedia:
    """What an OpenLogicalChannel (or its fastStart echo) says about one audio direction:
    ``number``; ``direction`` "forward" (the sender of the OLC transmits) or "reverse";
    the codec; where the RTP and RTCP of that direction go (None when absent)."""
    number: int
    direction: str
    codec: str | None
    rtp: tuple | None
    rtcp: tuple | None


def channel_media(olc) -> ChannelMedia:
    """Read a decoded OpenLogicalChannel; ``H245Error`` when it is no H.225.0 audio channel."""
    number = olc["forwardLogicalChannelNumber"]
    reverse = olc.get("reverseLogicalChannelParameters")
    if reverse is not None:
        params, direction = reverse, "reverse"
    else:
        params, direction = olc["forwardLogicalChannelParameters"], "forward"
    data_kind, data = params["dataType"]
    if data_kind != "audioData":
        raise H245Error(f"logical channel {number} carries {data_kind}, not audio")
    codec = CAPABILITY_CODEC.get(data[0])
    mux = params.get("multiplexParameters")
    if not mux or mux[0] != "h2250LogicalChannelParameters":
        raise H245Error(f"logical channel {number} has no H.225.0 parameters")
    h2250 = mux[1]
    return ChannelMedia(number, direction, codec, address(h2250.get("mediaChannel")),
                        address(h2250.get("mediaControlChannel")))


def ack_media(ack):
    """``(rtp, rtcp)`` from a decoded OpenLogicalChannelAck's forwardMultiplexAckParameters."""
    params = ack.get("forwardMultiplexAckParameters")
    if not params or params[0] != "h2250LogicalChannelAckParameters":
        return None, None
    return address(params[1].get("mediaChannel")), address(params[1].get("mediaControlChannel"))


def fast_start_offer(codecs, rtp, rtcp, first_number=1):
    """Encoded OLC proposals (H.323 8.1.7.1) for G.711 in ``codecs`` order: for each codec one
    transmit proposal and one receive proposal (receive at ``rtp``). Returns (list of bytes,
    {number: (direction, codec)})."""
    out, numbers = [], {}
    n = first_number
    for codec in codecs:
        out.append(encode_olc(olc_transmit(n, codec, rtcp)))
        numbers[n] = ("forward", codec)
        n += 1
    for codec in codecs:
        out.append(encode_olc(olc_receive(n, codec, rtp, rtcp)))
        numbers[n] = ("reverse", codec)
        n += 1
    return out, numbers


def fast_start_answer(proposals, codecs, rtp, rtcp):
    """The callee's side of H.323 8.1.7.1: from decoded proposals pick the first codec in
    ``codecs`` offered in both directions; return (encoded OLCs to send back, codec) or
    ([], None) when nothing fits (fastStart refused). The forward proposal comes back with our
    ``rtp`` (where the caller sends) and ``rtcp``, the reverse one with our ``rtcp``."""
    for codec in codecs:
        fwd = rev = None
        for olc in proposals:
            try:
                media = channel_media(olc)
            except H245Error:
                continue
            if media.codec != codec:
                continue
            if media.direction == "forward" and fwd is None:
                fwd = olc_transmit(media.number, codec, rtcp, rtp=rtp)
            elif media.direction == "reverse" and rev is None:
                rev = olc_receive(media.number, codec, media.rtp, rtcp)
        if fwd and rev:
            return [encode_olc(fwd), encode_olc(rev)], codec
    return [], None
