"""The HTTPS site: HTTP/2 by ALPN (checked with the h2 library), HTTP/1.1 fallback, the landing
page, resources added by other parts, SSE over HTTP/2, and the HTTP framing's refusals."""
from __future__ import annotations

import io
import json

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from callgw.client import connect
from callgw.client.links import _Body, _Policy, tls_creator
from protocols.client import framing as fr
from protocols.client import messages as m
from protocols.client.errors import ErrorCode
from tests.frontend.gateway import FakeFrontEnd, cert_path, start_gateway, stop_gateway
from tests.web.h2get import h2_get


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        return b'{"hello": "api"}'


@pytest_twisted.inlineCallbacks
def test_http2_landing_page_and_added_resource(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        gw.web.add_resource("hello", Hello())
        host, port = gw.client.address("https")
        alpn, status, headers, body = yield deferToThread(h2_get, host, port, "/",
                                                          cert_path(gw))
        assert (alpn, status) == ("h2", 200)
        assert headers["content-type"].startswith("text/html") and b"callgw" in body
        alpn, status, _, body = yield deferToThread(h2_get, host, port, "/hello",
                                                    cert_path(gw))
        assert (alpn, status, json.loads(body)) == ("h2", 200, {"hello": "api"})
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_sse_stream_over_http2(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        host, port = gw.client.address("https")
        alpn, status, headers, body = yield deferToThread(
            h2_get, host, port, "/client/v1/events", cert_path(gw), b"\n\n")
        assert (alpn, status, headers["content-type"]) == ("h2", 200, "text/event-stream")
        events = fr.SseParser().receive_data(body)
        assert events[0].event == "session" and len(events[0].data) == 24
    finally:
        yield stop_gateway(gw)


@inlineCallbacks
def _request(gw, method, path, body=None, ctype=b"application/json", session=None,
             last=None, until=None):
    """One request over HTTP/1.1; fires with (code, headers, body). ``until``: stop reading
    an endless stream once the body contains it."""
    host, port = gw.client.address("https")
    agent = Agent(reactor, contextFactory=_Policy(tls_creator(host, cert_path(gw))))
    producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
    headers = Headers({b"content-type": [ctype]})
    if session is not None:
        headers.addRawHeader(b"callgw-session", session.encode())
    if last is not None:
        headers.addRawHeader(b"last-event-id", str(last).encode())
    response = yield agent.request(method, f"https://{host}:{port}{path}".encode(),
                                   headers, producer)
    reader = _Body()
    if until is not None:
        got = reader.dataReceived

        def watch(data):
            got(data)
            if until in reader.data:
                reader.transport.stopProducing()
        reader.dataReceived = watch
    response.deliverBody(reader)
    data = yield reader.done
    return response.code, response.headers, data


@pytest_twisted.inlineCallbacks
def test_http11_fallback_and_http_framing_refusals(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        code, headers, body = yield _request(gw, b"GET", "/")
        assert code == 200 and b"callgw" in body
        code, _, body = yield _request(gw, b"POST", "/client/v1/messages", m.encode(m.Ping()),
                                       session="nosuchsession")
        assert code == 404 and m.decode(body).code == ErrorCode.OUT_OF_ORDER
        code, _, body = yield _request(gw, b"POST", "/client/v1/messages", m.encode(m.Ping()))
        assert code == 404
        host, port = gw.client.address("https")
        session = yield connect(f"https://{host}:{port}", reactor, cacert=cert_path(gw))
        sid = session.link.sid
        assert sid in gw.web.http_sessions.by_id
        code, _, body = yield _request(gw, b"POST", "/client/v1/messages", m.encode(m.Ping()),
                                       b"application/octet-stream", session=sid)
        assert code == 415 and m.decode(body).code == ErrorCode.BAD_FRAME
        code, _, body = yield _request(gw, b"POST", "/client/v1/messages",
                                       b"{" + b" " * (fr.MAX_PAYLOAD + 10) + b"}", session=sid)
        assert code == 413 and m.decode(body).code == ErrorCode.FRAME_TOO_LARGE
        pong = yield session.ping()                      # the session is unharmed
        assert pong == m.Pong()
        session.close()                                  # the stream ends, the session stays
        yield session.closed
        code, _, body = yield _request(gw, b"GET", "/client/v1/events", session=sid, last=0,
                                       until=b'"pong"')
        events = fr.SseParser().receive_data(body)
        assert code == 200 and events[0].event == "session" and events[0].data == sid
        replayed = [m.decode(fr.sse_payload(e)) for e in events[1:]]
        assert m.Pong() in replayed and all(e.id for e in events[1:])
        code, _, _ = yield _request(gw, b"POST", "/client/v1/messages",
                                    m.encode(m.Logout()), session=sid)
        assert code == 202 and sid not in gw.web.http_sessions.by_id
    finally:
        yield stop_gateway(gw)


def test_keepalive_comment_only_on_attached_streams():
    from callgw.web.httpframing import HttpSession, HttpSessions

    class Request:
        def __init__(self):
            self.out = []

        def write(self, data):
            self.out.append(data)

    sessions = HttpSessions(manager=None)
    attached, detached = HttpSession(sessions, "a"), HttpSession(sessions, "b")
    attached.request = Request()
    sessions.by_id.update(a=attached, b=detached)
    sessions.keepalive()
    assert attached.request.out == [b": keep-alive\n\n"]
    assert fr.SseParser().receive_data(b"".join(attached.request.out)) == []
