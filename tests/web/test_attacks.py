"""Attacks on a real callgw process's listeners (issue 10, item 5: bounded resources), judged
as a provider would: callgw stays up and keeps serving, nothing is spooled to disk, no 500,
no file descriptors held by idle or slow strangers, the log stays short and quiet.

The attacker comes from 127.0.0.2 (any 127.x address reaches a loopback listener on Linux),
the honest client from 127.0.0.1."""
from __future__ import annotations

import base64
import concurrent.futures
import os
import re
import time

import pytest

from tests.web import rawhttp
from tests.web.process import Callgw, write_config

LIMITS = """
[limits]
tls_handshake_timeout = 2.0
http_request_timeout = 2.0
connections_per_source = 64
"""
ATTACKER = "127.0.0.2"


@pytest.fixture
def callgw(tmp_path):
    write_config(tmp_path, LIMITS, sip=True)
    gw = Callgw(tmp_path).start()
    try:
        yield gw
    finally:
        status = gw.stop()
        assert gw.tracebacks() == [] and "Unhandled" not in gw.log(), gw.log()[-3000:]
        assert status in (0, -15), gw.log()[-2000:]


def _get(path: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: callgw\r\nConnection: close\r\n" + extra + b"\r\n"


def _serving(gw) -> bool:
    answer = rawhttp.exchange("127.0.0.1", gw.ports["web-https"], _get(b"/"))
    return rawhttp.status_of(answer) == 200 and b"callgw" in answer


def test_oversized_and_malformed_requests(callgw):
    port = callgw.ports["web-https"]

    def attack(data, chunks=(), limit=10.0):
        answer = rawhttp.exchange("127.0.0.1", port, data, ATTACKER, chunks, limit)
        return rawhttp.status_of(answer)

    # 60 kB of header used to hang the connection
    assert attack(_get(b"/", b"X-Big: " + b"a" * 60000 + b"\r\n")) == 431
    # a 200 MB POST with a bogus session used to be written to disk before its 404
    post = (b"POST /client/v1/messages HTTP/1.1\r\nHost: callgw\r\nCallgw-Session: bogus\r\n"
            b"Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n")
    assert attack(post, [b"x" * 65536] * 64) == 413
    chunked = (b"POST /client/v1/messages HTTP/1.1\r\nHost: callgw\r\nCallgw-Session: bogus\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
    assert attack(chunked, [b"10000\r\n" + b"x" * 65536 + b"\r\n"] * 64) == 413
    assert os.listdir(callgw.tmpdir) == []      # nothing spooled
    assert attack(_get(b"/" + b"a" * 20000)) == 414
    # an over-long integer in Last-Event-ID used to be a 500
    opened = rawhttp.exchange("127.0.0.1", port, _get(b"/client/v1/events"), ATTACKER, limit=1)
    sid = opened.split(b"event: session\ndata: ", 1)[1].split(b"\n", 1)[0]
    assert attack(_get(b"/client/v1/events", b"Callgw-Session: " + sid +
                       b"\r\nLast-Event-ID: " + b"9" * 5000 + b"\r\n"), limit=1.0) == 200
    assert "500" not in re.findall(r'" (\d{3}) ', callgw.log())
    assert callgw.alive() and _serving(callgw)


def test_slow_and_idle_connections_are_dropped(callgw):
    port = callgw.ports["web-https"]
    baseline = callgw.open_fds()
    # trickled request headers: 408 within the request deadline
    sock = rawhttp.tls("127.0.0.1", port, ATTACKER)
    answer = rawhttp.trickle(sock, _get(b"/") * 4, 0.25)
    sock.close()
    assert rawhttp.status_of(answer) == 408
    # a trickled WebSocket handshake
    sock = rawhttp.tls("127.0.0.1", port, ATTACKER)
    ws = (b"GET /client/v1/ws HTTP/1.1\r\nHost: callgw\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
    assert rawhttp.status_of(rawhttp.trickle(sock, ws * 4, 0.25)) == 408
    sock.close()
    # 300 TCP connections that never start TLS, on the HTTPS and the client TLS listeners:
    # those over the per-source cap are closed at once, the rest when the handshake deadline
    # passes; an honest client is served all the while
    idle = []
    for listener in ("web-https", "client-tls"):
        for _ in range(150):
            idle.append(rawhttp.tcp("127.0.0.1", callgw.ports[listener], ATTACKER))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        quick = list(pool.map(lambda s: rawhttp.closed_by_peer(s, 1.0), idle))
    assert sum(quick) >= 300 - 2 * 64           # at most 64 per listener may stay a while
    assert _serving(callgw)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        later = list(pool.map(lambda s: rawhttp.closed_by_peer(s, 10.0), idle))
    for s in idle:
        s.close()
    assert all(q or late for q, late in zip(quick, later))
    time.sleep(0.5)
    assert callgw.open_fds() <= baseline + 2      # no descriptor kept for them
    assert _serving(callgw)
    # plain TCP listeners (the client protocol's, SIP's) cap connections per source too
    for listener in ("client-tcp", "sip tcp"):
        held = [rawhttp.tcp("127.0.0.1", callgw.ports[listener], ATTACKER) for _ in range(100)]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            refused = sum(pool.map(lambda s: rawhttp.closed_by_peer(s, 1.0), held))
        for s in held:
            s.close()
        assert refused >= 100 - 64, listener
    assert _serving(callgw)
    # the log says so in a few lines, not one per connection
    refusals = [line for line in callgw.log().splitlines() if "SourceLog" in line]
    assert 1 <= len(refusals) <= 16, refusals
    assert any("sip-tcp: over 64 connections: refused from 127.0.0.2" in r for r in refusals)


def test_websocket_connection_logs_no_library_debug(callgw):
    port = callgw.ports["web-https"]
    before = len(callgw.log())
    sock = rawhttp.tls("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /client/v1/ws HTTP/1.1\r\nHost: callgw\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                 b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    answer = sock.recv(4096)
    sock.close()
    assert rawhttp.status_of(answer) == 101
    assert b"Server: callgw\r\n" in answer        # no library version
    time.sleep(1.0)
    added = callgw.log()[before:]
    assert "#debug" not in added and "autobahn" not in added, added
    assert len(added) < 1500, added


def test_no_request_gets_a_500(callgw):
    """Every method on every path (and some malformed ones), with no, broken or partial
    credentials and odd bodies: answers, never a 500, no traceback in the log."""
    methods = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW")
    paths = ("/", "/admin", "/admin/", "/admin/session", "/admin/signin.js", "/admin/nothing",
             "/api", "/api/", "/api/calls?limit=-1", "/api/calls?limit=1e9", "/api/gateways",
             "/metrics", "/client/v1/events", "/client/v1/messages", "/client/v1/ws",
             "/client", "/static/none.js", "/%00", "/..%2f..%2fetc%2fpasswd", "//x", "/?a=%ff")
    variants = (
        ({}, None),
        ({"Authorization": "Basic Og==", "Content-Type": "application/json"}, b'{"user": 1}'),
        ({"Authorization": "Bearer", "Cookie": "__Host-callgw-admin=\xff"}, b"not json"),
        ({"Content-Type": "application/json", "Callgw-Session": "x" * 300}, b"[" * 1000),
    )
    jobs = [(m, p, h, b) for m in methods for p in paths for h, b in variants]

    def ask(job):
        method, path, headers, body = job
        try:
            return rawhttp.https("127.0.0.1", callgw.ports["web-https"], method, path,
                                 headers, body if method not in ("GET", "HEAD") else None,
                                 source=ATTACKER, timeout=30)[0]
        except OSError:                      # a refusal that closes the connection is fine
            return None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(ask, jobs))
    assert 500 not in statuses and statuses.count(None) < len(jobs) // 10, statuses
    assert "500" not in re.findall(r'" (\d{3}) ', callgw.log())
    assert callgw.alive() and _serving(callgw)
