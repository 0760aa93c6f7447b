"""Aligned PER (ITU-T X.691) for H.225.0 and H.245: the one place that compiles and calls the ASN.1.

Owns:
- compiling the ITU-T modules shipped in ``protocols/h323/asn1/`` (the H.225.0 12/2009 set: H.225.0
  v7 ``H323-MESSAGES``, ``H235-SECURITY-MESSAGES`` and the H.245 v15 ``MULTIMEDIA-SYSTEM-CONTROL``
  it imports) with asn1tools' ``per`` codec, once per process (``specification()`` is cached);
- the two text rewrites asn1tools needs: ``TYPE-IDENTIFIER.&Type(X)`` becomes ``OCTET STRING``
  (X.691 encodes an open type exactly like an unconstrained OCTET STRING, so the wire is the same),
  and ``SIGNED{EncodedFastStartToken}`` names ``EncodedPwdCertToken`` (both are that OCTET STRING
  after the first rewrite; the H.235 ``SIGNED{}`` is resolved in its own module, which lacks the
  H.225.0 name);
- the correction of asn1tools 0.169's extension-addition defect (X.691 10.1.3 and 19.7/23.8): an
  addition whose encoding is empty (a NULL, e.g. RRQ ``supportsAltGK``, ``fastConnectRefused`` or
  the ``empty`` message body) is sent as one 0x00 octet inside its open type, and on decoding each
  addition's open type is skipped to its end whatever the addition used of it;
- validation before encoding (Python types, X.680 constraints, and mandatory extension additions,
  which asn1tools would otherwise drop silently);
- decoding that never raises anything but ``CodecError``.

The H.225.0 protocolIdentifier we advertise is version 4 (``H225_PROTOCOL_ID``), the version most
deployed gateways speak; H.245 messages carry version 7 (``H245_PROTOCOL_ID``), the H.245 of that
generation. Values use asn1tools' Python mapping (SEQUENCE -> dict, CHOICE -> (name, value),
BIT STRING -> (bytes, nbits), OBJECT IDENTIFIER -> dotted str).

Tests: tests/h323/test_per.py.
"""
from __future__ import annotations

import contextvars
import functools
import pathlib
import re

import asn1tools
from asn1tools.codecs import per as _per

ASN1_DIR = pathlib.Path(__file__).with_name("asn1")
MODULE_FILES = ("H323-MESSAGES.asn", "H235-SECURITY-MESSAGES.asn", "MULTIMEDIA-SYSTEM-CONTROL.asn")

H225 = "H323-MESSAGES"
H245 = "MULTIMEDIA-SYSTEM-CONTROL"

#: H.225.0 version 4 (11/2000): itu-t(0) recommendation(0) h(8) 2250 version(0) 4.
H225_PROTOCOL_ID = "0.0.8.2250.0.4"
#: H.245 version 7 (11/2000), the H.245 that H.225.0 version 4 endpoints speak.
H245_PROTOCOL_ID = "0.0.8.245.0.7"


class CodecError(Exception):
    """A value did not encode, or bytes did not decode, as ``type_name``; ``reason`` says why."""

    def __init__(self, type_name, reason):
        super().__init__(f"{type_name}: {reason}")
        self.type_name = type_name
        self.reason = reason


# ---- compiling ------------------------------------------------------------------------------

_OPEN_TYPE = re.compile(r"TYPE-IDENTIFIER\.&Type\s*\([^)]*\)")


def rewrite(text):
    """The module text as asn1tools can compile it (the wire encoding is unchanged)."""
    text = _OPEN_TYPE.sub("OCTET STRING", text)
    return text.replace("SIGNED{EncodedFastStartToken}", "SIGNED{EncodedPwdCertToken}")


@functools.lru_cache(maxsize=None)
def specification():
    """The compiled H.225.0 + H.235 + H.245 specification (about 1 s, once per process)."""
    texts = [rewrite((ASN1_DIR / name).read_text(encoding="utf-8")) for name in MODULE_FILES]
    spec = asn1tools.compile_string("\n".join(texts), "per")
    _correct_additions(spec)
    return spec


def compiled_type(module, name):
    """One compiled type of ``module`` (types with the same name in two modules stay apart)."""
    return specification().modules[module][name]


_REQUIRE_ADDITIONS = contextvars.ContextVar("require_additions", default=True)


def encode(module, name, value, *, require_additions=True):
    """``value`` validated and encoded as ``module.name``; ``CodecError`` when it is not valid.

    ``require_additions=False`` lets mandatory extension additions be absent, as an encoder of an
    older version of the module sends them (X.691 leaves them out of its bitmap): test fixtures use
    it to speak like H.225.0 v2/v3 endpoints. Our own messages always use the default."""
    type_ = compiled_type(module, name)
    token = _REQUIRE_ADDITIONS.set(require_additions)
    try:
        type_.check_types(value)
        type_.check_constraints(value)
        return bytes(type_.encode(value))
    except (asn1tools.Error, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise CodecError(name, str(e) or type(e).__name__) from None
    finally:
        _REQUIRE_ADDITIONS.reset(token)


def decode(module, name, data):
    """``data`` decoded as ``module.name``; ``CodecError`` for anything that does not decode."""
    try:
        return compiled_type(module, name).decode(bytes(data))
    except RecursionError:
        raise CodecError(name, "nesting too deep") from None
    except Exception as e:  # asn1tools raises many kinds on hostile input; the peer gets one answer
        raise CodecError(name, f"{type(e).__name__}: {e}") from None


# ---- the extension-addition correction (X.691 10.1.3, 19.7, 23.8) ---------------------------

class _MembersAdditions:
    """SEQUENCE/SET extension additions per X.691: each present addition is an open type holding
    its outermost encoding (one 0x00 octet when that is empty), skipped to its end on decoding; a
    mandatory addition missing from the value is an error, not a silent truncation."""

    def encode_additions(self, data, encoder):
        presence = []
        encoders = []
        for addition in self.additions:
            sub = encoder.__class__()
            if isinstance(addition, _per.AdditionGroup):
                addition.encode_addition_group(data, sub)
                present = sub.number_of_bytes() > 0
            else:
                present = addition.name in data
                if present:
                    self.encode_member(addition, data, sub, encode_default=True)
                elif not (addition.optional or addition.default is not None) \
                        and _REQUIRE_ADDITIONS.get():
                    raise _per.EncodeError(
                        f"mandatory extension addition '{addition.name}' missing in {self.name}")
            presence.append(present)
            if present:
                sub.align_always()
                if sub.number_of_bytes() == 0:
                    sub.append_non_negative_binary_integer(0, 8)
                encoders.append(sub)
        if not encoders:
            return False
        bits = 0
        for present in presence:
            bits = (bits << 1) | present
        encoder.append_normally_small_length(len(presence))
        encoder.append_non_negative_binary_integer(bits, len(presence))
        encoder.align()
        for sub in encoders:
            encoder.append_length_determinant(sub.number_of_bytes())
            encoder += sub
        return True

    def decode_additions(self, decoder):
        length = decoder.read_normally_small_length()
        presence = decoder.read_non_negative_binary_integer(length)
        decoder.align()
        decoded = {}
        for i in range(length):
            if not presence & (1 << (length - i - 1)):
                continue
            open_bits = 8 * decoder.read_length_determinant()
            if open_bits > decoder.number_of_bits:
                raise _per.OutOfDataError(decoder.number_of_read_bits())
            end = decoder.number_of_bits - open_bits
            if i < len(self.additions):
                addition = self.additions[i]
                try:
                    if isinstance(addition, _per.AdditionGroup):
                        decoded.update(addition.decode(decoder))
                    else:
                        decoded[addition.name] = addition.decode(decoder)
                except _per.ErrorWithLocation as e:
                    e.add_location(addition)
                    raise
                if decoder.number_of_bits < end:
                    raise _per.DecodeError(f"extension addition {i} overruns its open type")
            decoder.number_of_bits = end
        return decoded


class _ChoiceAdditions:
    """CHOICE extension alternatives per X.691 23.8: the open type holds one 0x00 octet when the
    alternative's encoding is empty (the ``empty`` H.225.0 message body)."""

    def encode_additions(self, data, encoder):
        try:
            index = self.additions_name_to_index[data[0]]
        except KeyError:
            raise _per.EncodeError(f"Expected choice {self.format_names()}, but got '{data[0]}'.")
        sub = encoder.__class__()
        addition = self.additions_index_to_member[index]
        try:
            addition.encode(data[1], sub)
        except _per.ErrorWithLocation as e:
            e.add_location(addition)
            raise
        sub.align_always()
        if sub.number_of_bytes() == 0:
            sub.append_non_negative_binary_integer(0, 8)
        encoder.append_normally_small_non_negative_whole_number(index)
        encoder.align()
        encoder.append_length_determinant(sub.number_of_bytes())
        encoder += sub


_FIXED_CLASSES = {}


def _fixed_class(cls):
    mixin = _ChoiceAdditions if issubclass(cls, _per.Choice) else _MembersAdditions
    if cls not in _FIXED_CLASSES:
        _FIXED_CLASSES[cls] = type("Corrected" + cls.__name__, (mixin, cls), {})
    return _FIXED_CLASSES[cls]


def _children(node):
    if isinstance(node, _per.MembersType):
        yield from node.root_members
        yield from node.additions or ()
    elif isinstance(node, _per.Choice):
        yield from node.root_index_to_member.values()
        yield from (node.additions_index_to_member or {}).values()
    elif isinstance(node, _per.ArrayType):
        yield node.element_type
    elif isinstance(node, _per.Recursive):
        if node._inner is not None:
            yield node._inner


def _correct_additions(spec):
    """Swap the class of every extensible SEQUENCE/SET/CHOICE in ``spec`` for the corrected one
    (only this specification's objects change; other users of asn1tools are untouched)."""
    seen = set()
    stack = [t._type for module in spec.modules.values() for t in module.values()]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, (_per.MembersType, _per.Choice)) and not isinstance(
                node, (_MembersAdditions, _ChoiceAdditions)):
            node.__class__ = _fixed_class(type(node))
        stack.extend(_children(node))
