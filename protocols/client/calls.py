"""The calls of one client session, each with its state, named after Q.931's network side.

Owned by the client protocol; the spec is docs/protocol.md ("Calls"). ``CallTable`` checks
every client call command and every callgw call event against ``CALL_TRANSITIONS`` and returns
the messages to send and the requests for callgw (``events.py``). Client-chosen call ids start
with ``c``, server-chosen ones with ``s``, so ids chosen at the same moment never collide.
Every call ends with exactly one ``disconnected`` or call-``unauthorized`` to the client.

Tests: tests/client_proto/test_session.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from protocols.client import events as ev
from protocols.client import messages as m
from protocols.client.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocols.client.framing import MediaFrame, encode_media


class CallState(Enum):
    """Q.931 (ITU-T Q.931 section 2.2) network-side call states used by the client leg."""
    CALL_INITIATED = "N1 call initiated"
    OUTGOING_CALL_PROCEEDING = "N3 outgoing call proceeding"
    CALL_DELIVERED = "N4 call delivered"
    CALL_PRESENT = "N6 call present"
    CONNECT_REQUEST = "N8 connect request"
    ACTIVE = "N10 active"
    RESUME_REQUEST = "N17 resume request"
    RELEASED = "N0 null"


S = CallState
_OUTGOING = (S.CALL_INITIATED, S.OUTGOING_CALL_PROCEEDING, S.CALL_DELIVERED)
_ALL = _OUTGOING + (S.CALL_PRESENT, S.CONNECT_REQUEST, S.ACTIVE, S.RESUME_REQUEST)

# (state, input) -> next state. Inputs are client commands and callgw events (server messages).
CALL_TRANSITIONS: dict[tuple[CallState, str], CallState] = {
    (S.RELEASED, "call"): S.CALL_INITIATED,
    (S.RELEASED, "incoming"): S.CALL_PRESENT,
    # re-attach (Q.931's resume, 5.6): a call that lost its session comes back to a new one
    (S.RELEASED, "attach"): S.RESUME_REQUEST,
    (S.RESUME_REQUEST, "connected"): S.ACTIVE,
    (S.CALL_INITIATED, "trying"): S.OUTGOING_CALL_PROCEEDING,
    (S.CALL_INITIATED, "ringing"): S.CALL_DELIVERED,
    (S.OUTGOING_CALL_PROCEEDING, "ringing"): S.CALL_DELIVERED,
    (S.CALL_DELIVERED, "ringing"): S.CALL_DELIVERED,
    **{(s, "connected"): S.ACTIVE for s in _OUTGOING + (S.CONNECT_REQUEST,)},
    (S.CALL_INITIATED, "unauthorized"): S.RELEASED,
    (S.OUTGOING_CALL_PROCEEDING, "unauthorized"): S.RELEASED,
    (S.CALL_PRESENT, "answer"): S.CONNECT_REQUEST,
    (S.CALL_PRESENT, "reject"): S.RELEASED,
    (S.ACTIVE, "dtmf"): S.ACTIVE,
    (S.ACTIVE, "hold"): S.ACTIVE,
    (S.ACTIVE, "resume"): S.ACTIVE,
    # a second answer on a live call changes its media mode (direct -> relay when the client's
    # direct media never arrived); callgw confirms with a second connected
    (S.ACTIVE, "answer"): S.ACTIVE,
    (S.ACTIVE, "connected"): S.ACTIVE,
    **{(s, "hangup"): S.RELEASED for s in _ALL},
    **{(s, "disconnected"): S.RELEASED for s in _ALL},
}


@dataclass
class _Call:
    id: str
    state: CallState
    mode: str
    held: bool = False
    key: bytes | None = None


class CallTable:
    """The calls of one session (``random`` makes media keys and is injected for tests)."""

    def __init__(self, random: Callable[[int], bytes]) -> None:
        self._calls: dict[str, _Call] = {}
        self._keys: dict[bytes, str] = {}
        self._random = random
        self._next_incoming = 1

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call: str) -> bool:
        return call in self._calls

    def ids(self) -> set[str]:
        """The ids of the session's live calls."""
        return set(self._calls)

    def state_of(self, call: str) -> CallState:
        c = self._calls.get(call)
        return c.state if c is not None else S.RELEASED

    def is_held(self, call: str) -> bool:
        c = self._calls.get(call)
        return bool(c and c.held)

    def call_for_key(self, key: bytes) -> str | None:
        """The call a media key belongs to (None: drop the frame)."""
        return self._keys.get(key)

    def key_of(self, call: str) -> bytes | None:
        c = self._calls.get(call)
        return c.key if c is not None else None

    # ------------------------------------------------------------ transitions
    def _step(self, call: str, name: str) -> _Call:
        c = self._calls.get(call)
        state = c.state if c is not None else S.RELEASED
        nxt = CALL_TRANSITIONS.get((state, name))
        if nxt is None:
            code = ErrorCode.UNKNOWN_CALL if c is None else ErrorCode.OUT_OF_ORDER
            raise RemoteProtocolError(code, f"{name} not allowed for call {call} "
                                      f"({state.value})", command=name, call=call)
        if c is None:
            c = _Call(call, nxt, "relay")
            self._calls[call] = c
        c.state = nxt
        if nxt is S.RELEASED:
            self._remove(c)
        return c

    def _remove(self, c: _Call) -> None:
        self._calls.pop(c.id, None)
        if c.key is not None:
            self._keys.pop(c.key, None)

    def release_all(self) -> list[str]:
        """Forget every call (the session ended); returns their ids."""
        ids = list(self._calls)
        for c in list(self._calls.values()):
            self._remove(c)
        return ids

    # ------------------------------------------------------------ client commands
    def client_command(self, msg: m.Message, max_calls: int) -> list[Any]:
        """Check one client call command; returns messages to send and events for callgw.
        Raises RemoteProtocolError (UNKNOWN_CALL, OUT_OF_ORDER, CALL_EXISTS...)."""
        call = msg.call  # type: ignore[attr-defined]
        if isinstance(msg, m.Call):
            if not call.startswith("c") or call in self._calls:
                raise RemoteProtocolError(ErrorCode.CALL_EXISTS, "a new call id must start "
                                          "with 'c' and be unused", command="call", call=call)
            if len(self._calls) >= max_calls:
                raise RemoteProtocolError(ErrorCode.TOO_MANY_CALLS, f"at most {max_calls} "
                                          "calls", command="call", call=call)
            c = self._step(call, "call")
            c.mode = msg.mode
            return [ev.CallRequested(call, msg.number, msg.contact, msg.mode, msg.address,
                                     msg.port, msg.codecs)]
        if isinstance(msg, m.Attach):
            if not call.startswith("c") or call in self._calls:
                raise RemoteProtocolError(ErrorCode.CALL_EXISTS, "attach names a call id this "
                                          "session does not use yet", command="attach",
                                          call=call)
            if len(self._calls) >= max_calls:
                raise RemoteProtocolError(ErrorCode.TOO_MANY_CALLS, f"at most {max_calls} "
                                          "calls", command="attach", call=call)
            self._step(call, "attach")
            return [ev.AttachRequested(call, bytes(msg.key))]
        if isinstance(msg, (m.Hold, m.Resume)):
            c = self._calls.get(call)
            if c is not None and c.state is S.ACTIVE and c.held == isinstance(msg, m.Hold):
                raise RemoteProtocolError(ErrorCode.OUT_OF_ORDER, "already " + (
                    "held" if c.held else "resumed"), command=msg.command, call=call)
        c = self._step(call, msg.command)
        if isinstance(msg, m.Answer):
            c.mode = msg.mode
            return [ev.AnswerRequested(call, msg.mode, msg.address, msg.port, msg.codecs)]
        if isinstance(msg, m.Reject):
            cause = msg.cause or "busy"
            return [ev.RejectRequested(call, cause), m.Disconnected(call=call, cause=cause)]
        if isinstance(msg, m.Hangup):
            return [ev.HangupRequested(call, "normal"),
                    m.Disconnected(call=call, cause="normal")]
        if isinstance(msg, m.Dtmf):
            return [ev.DtmfRequested(call, msg.digits, msg.duration or 100)]
        c.held = isinstance(msg, m.Hold)
        return [ev.HoldRequested(call, c.held)]

    # ------------------------------------------------------------ callgw events
    def _server_step(self, call: str, name: str) -> _Call | None:
        """None when the call is gone (a race with the client); LocalProtocolError when the
        call exists but ``name`` does not fit its state (a bug in callgw)."""
        if call not in self._calls:
            return None
        try:
            return self._step(call, name)
        except RemoteProtocolError as e:
            raise LocalProtocolError(e.text) from None

    def trying(self, call: str) -> m.Message | None:
        return m.Trying(call=call) if self._server_step(call, "trying") else None

    def ringing(self, call: str) -> m.Message | None:
        return m.Ringing(call=call) if self._server_step(call, "ringing") else None

    def connected(self, call: str, address: str | None, port: int | None,
                  codec: str | None, key: bytes | None = None) -> m.Connected | None:
        """Relay mode (no ``address``): ``key`` is the call's media key, a fresh one when
        None; direct mode carries no key."""
        if address is None:
            key = key if key is not None else self._random(16)
        else:
            key = None
        msg = m.Connected(call=call, key=key, address=address, port=port, codec=codec)
        m.to_dict(msg)                  # LocalProtocolError before any state change
        c = self._server_step(call, "connected")
        if c is None:
            return None
        if c.key is not None and c.key != key:
            self._keys.pop(c.key, None)         # a mode change retires the old key
            c.key = None
        if key is not None:
            c.key = key
            self._keys[key] = call
        return msg

    def disconnected(self, call: str, cause: str, q850: int | None,
                     text: str | None) -> m.Message | None:
        msg = m.Disconnected(call=call, cause=cause, q850=q850, text=text)
        m.to_dict(msg)
        return msg if self._server_step(call, "disconnected") else None

    def refuse(self, call: str, code: int, text: str | None) -> m.Message | None:
        msg = m.Unauthorized(code=code, text=text, call=call)
        m.to_dict(msg)
        return msg if self._server_step(call, "unauthorized") else None

    def incoming(self, caller: str | None, name: str | None, number: str | None,
                 codecs: tuple[str, ...] | None, call: str | None = None) -> m.Incoming:
        """Offer a call; ``call`` is the id callgw chose (it must start with ``s``), or None
        for the next free ``s<n>``."""
        if call is None:
            call = f"s{self._next_incoming}"
            self._next_incoming += 1
        elif not call.startswith("s") or call in self._calls:
            raise LocalProtocolError(f"incoming call id {call!r} must start with 's' and "
                                     "be unused")
        msg = m.Incoming(call=call, caller=caller, name=name, number=number, codecs=codecs)
        m.to_dict(msg)
        self._step(call, "incoming")
        return msg

    def media_frame(self, call: str, payload_type: int, sequence: int, timestamp: int,
                    payload: bytes) -> bytes | None:
        key = self.key_of(call)
        if key is None:
            return None
        return encode_media(MediaFrame(key, payload_type, sequence, timestamp, payload))
