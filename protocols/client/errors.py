"""Errors of the client protocol and their wire codes.

Owned by the client protocol (docs/protocol.md, "Error codes"). Errors say whose fault it was:

- ``RemoteProtocolError``: the peer broke the protocol. It carries the wire ``code`` to answer
  with in an ``error`` message and ``fatal`` when the framing or session cannot recover (the
  adapter then sends the error, if it can, and closes).
- ``LocalProtocolError``: we misused the core (built an invalid message, called a method in a
  state that does not allow it). A bug on our side; never sent to a peer as such.

Every function of ``protocols.client`` that takes peer input raises nothing but
``RemoteProtocolError`` (a ``ProtocolError``). Tests: tests/client_proto/test_messages.py.
"""
from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes of the ``error`` message. 1xx framing, 2xx message, 3xx session/state, 5xx server,
    6xx a request (``req``) the server refused: not the client's protocol error."""

    FRAME_TOO_LARGE = 100      # a frame or datagram over the size limit (fatal on TCP)
    BAD_FRAME = 101            # framing cannot be parsed (fatal: the connection closes)
    MALFORMED = 200            # not UTF-8 JSON, not an object, duplicate keys, NaN...
    UNSUPPORTED_VERSION = 201  # "v" missing or not a version we speak
    UNKNOWN_COMMAND = 202      # "cmd" missing or not a known command for this direction
    MISSING_FIELD = 203        # a required field is absent
    BAD_FIELD = 204            # a field has the wrong type or an out-of-range value
    UNKNOWN_FIELD = 205        # a field this command does not have
    TOO_LARGE = 206            # a control message over MAX_MESSAGE bytes
    BAD_NUMBER = 207           # an E.164 number that is not one ("+" and 2-15 digits)
    BAD_SHAPE = 208            # fields present in a combination the command does not allow
    OUT_OF_ORDER = 300         # a command the session state does not allow now
    NOT_AUTHENTICATED = 301    # a call command before login completed
    UNKNOWN_CALL = 302         # a call id this session does not know
    CALL_EXISTS = 303          # a new call with an id already in use, or a wrong id prefix
    TOO_MANY_CALLS = 304       # over the per-session call limit
    IDLE_TIMEOUT = 305         # no message (not even a ping) for too long: the session ends
    LOGIN_TIMEOUT = 306        # login not completed in time: the session ends
    TOO_MANY_ERRORS = 307      # too many protocol errors: the session ends
    UNREACHABLE = 308          # UDP: a message was never acknowledged: the session ends
    TOO_MANY_REQUESTS = 309    # over the per-session limit of requests waiting for an answer
    INTERNAL = 500             # the server failed; not the client's fault
    NO_ENTRY = 600             # book-put (with "was") or book-delete: no entry of that name
    ENTRY_EXISTS = 601         # book-put: another entry already has that name
    BOOK_FULL = 602            # book-put: the address book holds its maximum of entries
    BAD_CURSOR = 603           # book-list or history: "after" is not a cursor of this server


class AuthCode(IntEnum):
    """Reason codes of the ``unauthorized`` message (4xx, disjoint from ``ErrorCode``)."""

    BAD_CREDENTIALS = 401      # unknown user or wrong password (deliberately not told apart)
    TOKEN_EXPIRED = 402
    TOKEN_INVALID = 403        # bad signature, unknown key id, malformed token
    STALE_NONCE = 404          # the challenge expired, or the proof is for another challenge
    ACCOUNT_DISABLED = 405     # the user or the tenant is disabled (also after welcome: the end)
    CALL_REFUSED = 410         # the director's rules refused this call (carries "call")
    DESTINATION_BLOCKED = 411
    CALL_LIMIT = 412           # concurrent-call or rate limit
    THROTTLED = 429            # too many failed logins: wait "retry" seconds


class ProtocolError(Exception):
    """Base of the client protocol's errors: ``code`` (int), ``text`` (str)."""

    def __init__(self, code: int, text: str, *, fatal: bool = False,
                 command: str | None = None, call: str | None = None) -> None:
        super().__init__(f"{int(code)} {text}")
        self.code = int(code)
        self.text = text
        self.fatal = fatal
        self.command = command      # the offending command, when known (``error.re``)
        self.call = call            # the call id concerned, when known


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; answer with ``error`` ``code``; close when ``fatal``."""


class LocalProtocolError(ProtocolError):
    """We misused the core (a bug on our side)."""

    def __init__(self, text: str) -> None:
        super().__init__(ErrorCode.INTERNAL, text)
