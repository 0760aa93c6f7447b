"""The WebSocket framing on the HTTPS port: text frames control, binary frames media, limits."""
from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread

from callgw.client import connect
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.frontend.gateway import (PASSWORD, FakeFrontEnd, cert_path, start_gateway,
                                   stop_gateway, url)
from tests.web.h2get import h2_get


@pytest_twisted.inlineCallbacks
def test_frame_kinds_media_and_size_limit(tmp_path):
    frontend = FakeFrontEnd()
    got_media = defer.Deferred()
    frontend.client_media = lambda conn, frame: got_media.callback((conn, frame))
    gw = yield start_gateway(tmp_path, frontend)
    try:
        session = yield connect(url(gw, "wss"), reactor, cacert=cert_path(gw))
        error = defer.Deferred()
        session.on_message = error.callback
        session.link.send_payload(m.encode(m.Ping()), binary=True)   # control in a binary frame
        assert (yield error.addTimeout(10, reactor)).code == ErrorCode.BAD_FRAME
        yield session.login("alice", PASSWORD)
        frame = fr.MediaFrame(b"k" * 16, 8, 7, 1280, b"\xd5" * 160)
        session.link.send_media(fr.encode_media(frame))
        conn, received = yield got_media.addTimeout(10, reactor)
        assert received == frame and conn.framing == "wss"
        server_conn = conn
        conn.send_media(frame)                                     # and back, binary
        echoed = defer.Deferred()
        session.on_media = echoed.callback
        assert fr.decode_media((yield echoed.addTimeout(10, reactor))) == frame
        closed = defer.Deferred()
        frontend.session_closed = lambda conn, reason: closed.callback((conn, reason))
        session.link.proto.maxMessagePayloadSize = 0          # lift the client's own limit
        session.link.send_payload(b"{" + b" " * fr.MAX_PAYLOAD + b"}")   # over 4096 bytes
        reason = yield session.closed
        assert "1009" in reason
        conn, why = yield closed.addTimeout(10, reactor)
        assert conn is server_conn and "1009" in why
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_websocket_resource_over_http2_is_refused_cleanly(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        host, port = gw.client.address("https")
        alpn, status, _, _ = yield deferToThread(h2_get, host, port, "/client/v1/ws",
                                                  cert_path(gw))
        assert alpn == "h2" and status >= 400
        session = yield connect(url(gw, "wss"), reactor, cacert=cert_path(gw))
        assert (yield session.ping()) == m.Pong()
        session.close()
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_how_the_socket_ended_says_whether_the_session_was_lost(tmp_path):
    """docs/protocol.md section 9: a dropped TCP connection (no close frame) or a close code
    other than 1000 (1001 from a browser leaving a page, 4000 from the page) is a lost session ("connection lost": its calls may re-attach); a normal
    close (1000) from the client ends the session."""
    frontend = FakeFrontEnd()
    gw = yield start_gateway(tmp_path, frontend)
    try:
        reasons = []
        for how in ("drop", "given-up", "normal"):
            closed = defer.Deferred()
            frontend.session_closed = lambda conn, reason, d=closed: d.callback(reason)
            session = yield connect(url(gw, "wss"), reactor, cacert=cert_path(gw))
            yield session.login("alice", PASSWORD)
            proto = session.link.proto
            if how == "drop":
                proto.transport.abortConnection()
            elif how == "given-up":
                proto.sendClose(4000)               # what the page sends when it leaves
            else:
                proto.sendClose(1000)
            reasons.append((yield closed.addTimeout(10, reactor)))
            yield session.closed
        assert reasons == ["connection lost", "connection lost", "websocket closed (1000)"]
    finally:
        yield stop_gateway(gw)
