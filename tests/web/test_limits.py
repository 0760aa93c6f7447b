"""The HTTPS site's limits over real sockets (callgw/web/limits.py, callgw/connlimits.py): what a
client that breaks them sees, and that the site keeps serving everybody else."""
from __future__ import annotations

import tempfile

import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.frontend.gateway import FakeFrontEnd, start_gateway, stop_gateway
from tests.web import rawhttp

LIMITS = {"http_request_timeout": 1.0, "tls_handshake_timeout": 1.0, "http_max_uri": 512,
          "http_max_headers": 2048, "http_max_header_count": 20, "http_max_body": 4096,
          "connections_per_source": 8}


def _start(tmp_path, **limits):
    return start_gateway(tmp_path, FakeFrontEnd(), limits={**LIMITS, **limits})


def _get(path: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: callgw\r\nConnection: close\r\n" + extra + b"\r\n"


@pytest_twisted.inlineCallbacks
def test_oversized_requests_are_refused_before_they_are_read(tmp_path, monkeypatch):
    spooled = []
    real_tempfile = tempfile.TemporaryFile
    monkeypatch.setattr(tempfile, "TemporaryFile",
                        lambda *a, **k: spooled.append(1) or real_tempfile(*a, **k))
    gw = yield _start(tmp_path)
    try:
        host, port = gw.client.address("https")

        def run(data, chunks=()):
            return deferToThread(rawhttp.exchange, host, port, data, body_chunks=chunks)

        big_header = yield run(_get(b"/", b"X-Big: " + b"a" * 60000 + b"\r\n"))
        assert rawhttp.status_of(big_header) == 431
        many = yield run(_get(b"/", b"X-A: b\r\n" * 50))
        assert rawhttp.status_of(many) == 431
        long_uri = yield run(_get(b"/" + b"a" * 1000))
        assert rawhttp.status_of(long_uri) == 414
        post = (b"POST /client/v1/messages HTTP/1.1\r\nHost: callgw\r\n"
                b"Callgw-Session: bogus\r\nContent-Type: application/json\r\n")
        announced = yield run(post + b"Content-Length: 200000000\r\n\r\n",
                              [b"x" * 65536] * 16)
        assert rawhttp.status_of(announced) == 413
        chunked = yield run(post + b"Transfer-Encoding: chunked\r\n\r\n",
                            [b"10000\r\n" + b"x" * 65536 + b"\r\n"] * 4)
        assert rawhttp.status_of(chunked) == 413
        assert spooled == []                    # nothing went to a temporary file
        fine = yield run(_get(b"/"))
        assert rawhttp.status_of(fine) == 200 and b"callgw" in fine
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_trickled_request_and_idle_tls_are_dropped(tmp_path):
    gw = yield _start(tmp_path)
    try:
        host, port = gw.client.address("https")
        # one byte every 0.2 s: never completes its headers within the 1 s deadline
        sock = yield deferToThread(rawhttp.tls, host, port)
        answer = yield deferToThread(rawhttp.trickle, sock, _get(b"/") * 3, 0.2)
        assert rawhttp.status_of(answer) == 408
        # the WebSocket handshake is an HTTP request: same deadline
        ws = (b"GET /client/v1/ws HTTP/1.1\r\nHost: callgw\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
        sock = yield deferToThread(rawhttp.tls, host, port)
        answer = yield deferToThread(rawhttp.trickle, sock, ws * 4, 0.2)
        assert rawhttp.status_of(answer) == 408
        # a TCP connection that never starts its TLS handshake is dropped
        idle = yield deferToThread(rawhttp.tcp, host, port)
        closed = yield deferToThread(rawhttp.closed_by_peer, idle, 10)
        idle.close()
        assert closed
        fine = yield deferToThread(rawhttp.exchange, host, port, _get(b"/"))
        assert rawhttp.status_of(fine) == 200
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_connections_per_source_are_capped(tmp_path):
    gw = yield _start(tmp_path, tls_handshake_timeout=30.0, http_request_timeout=30.0)
    socks = []
    try:
        host, port = gw.client.address("https")
        for _ in range(12):
            socks.append((yield deferToThread(rawhttp.tcp, host, port, "127.0.0.2")))
        closed = yield deferToThread(
            lambda: sum(rawhttp.closed_by_peer(s, 0.5) for s in socks))
        assert closed == 4                       # 12 tried, 8 allowed from 127.0.0.2
        # another source is not affected, and the client TLS listener has its own count
        fine = yield deferToThread(rawhttp.exchange, host, port, _get(b"/"))
        assert rawhttp.status_of(fine) == 200
        # closing frees the slots
        for s in socks:
            s.close()
        socks = []
        yield deferToThread(__import__("time").sleep, 0.3)
        again = yield deferToThread(rawhttp.exchange, host, port, _get(b"/"), "127.0.0.2")
        assert rawhttp.status_of(again) == 200
    finally:
        for s in socks:
            s.close()
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_no_500_for_overlong_numbers(tmp_path):
    gw = yield _start(tmp_path, http_max_uri=4096, http_max_headers=16384)
    try:
        host, port = gw.client.address("https")
        # a session to re-attach to, then Last-Event-ID far beyond int()'s digit limit
        opened = yield deferToThread(rawhttp.exchange, host, port, _get(b"/client/v1/events"),
                                     limit=1.0)
        sid = opened.split(b"event: session\ndata: ", 1)[1].split(b"\n", 1)[0]
        resumed = yield deferToThread(
            rawhttp.exchange, host, port,
            _get(b"/client/v1/events", b"Callgw-Session: " + sid + b"\r\nLast-Event-ID: "
                 + b"9" * 5000 + b"\r\n"), limit=1.0)
        assert rawhttp.status_of(resumed) == 200, resumed[:200]
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_http2_limits(tmp_path):
    gw = yield _start(tmp_path)
    try:
        host, port = gw.client.address("https")
        status, _, body, reset = yield deferToThread(
            rawhttp.h2_request, host, port, "/client/v1/messages", "POST",
            [("callgw-session", "bogus"), ("content-type", "application/json")],
            b"x" * 60000)
        assert status == 413                      # refused (and reset), not read to the end
        status, _, body, _ = yield deferToThread(rawhttp.h2_request, host, port,
                                                 "/" + "a" * 1000)
        assert status == 414
        status, _, body, _ = yield deferToThread(rawhttp.h2_request, host, port,
                                                 "/client/v1/ws")
        assert status == 400 and b"HTTP/1.1" in body     # not autobahn's 500
        status, _, body, _ = yield deferToThread(rawhttp.h2_request, host, port, "/")
        assert status == 200                              # the connection-level switch is fine
        # an HTTP/2 connection that never sends a request is dropped
        sock = yield deferToThread(rawhttp.tls, host, port, "127.0.0.1", ("h2",))
        closed = yield deferToThread(rawhttp.closed_by_peer, sock, 10)
        sock.close()
        assert closed
    finally:
        yield stop_gateway(gw)


def _keep_alive_past(host, port, seconds: float, version) -> tuple[int, int]:
    """Two requests on one connection, ``seconds`` apart; the TLS version pinned."""
    import ssl
    import time
    ctx = rawhttp.tls_context()
    ctx.minimum_version = ctx.maximum_version = version
    sock = ctx.wrap_socket(rawhttp.tcp(host, port))
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: callgw\r\n\r\n")
        first = rawhttp.status_of(sock.recv(65536))
        time.sleep(seconds)
        sock.sendall(_get(b"/"))
        return first, rawhttp.status_of(rawhttp.read_all(sock, 5))
    except (OSError, ssl.SSLError):
        return first, 0
    finally:
        sock.close()


@pytest_twisted.inlineCallbacks
def test_a_finished_handshake_outlives_the_handshake_deadline(tmp_path):
    import ssl
    gw = yield _start(tmp_path, tls_handshake_timeout=1.0, http_request_timeout=5.0)
    try:
        host, port = gw.client.address("https")
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            statuses = yield deferToThread(_keep_alive_past, host, port, 2.0, version)
            assert statuses == (200, 200), version
    finally:
        yield stop_gateway(gw)
