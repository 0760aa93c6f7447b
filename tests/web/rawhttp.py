"""Blocking raw TLS clients for the limits and attack tests (run them with ``deferToThread``
when the server shares the test's reactor): exact bytes out, whatever comes back in.

These are fixtures that behave like attackers (oversized headers, trickled requests, idle
TLS sockets, a source address of our choosing on the loopback network)."""
from __future__ import annotations

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events


def tls_context(alpn=("http/1.1",)) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE          # callgw's self-signed test certificate
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tcp(host: str, port: int, source: str = "127.0.0.1", timeout: float = 10.0):
    """A plain TCP socket from ``source`` (any 127.x.y.z works on Linux loopback)."""
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def tls(host: str, port: int, source: str = "127.0.0.1", alpn=("http/1.1",),
        timeout: float = 10.0):
    return tls_context(alpn).wrap_socket(tcp(host, port, source, timeout))


def read_all(sock, limit: float = 10.0) -> bytes:
    """Everything until the peer closes (or ``limit`` seconds pass)."""
    out = b""
    deadline = time.monotonic() + limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            sock.settimeout(left)
            chunk = sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out


def closed_by_peer(sock, limit: float = 10.0) -> bool:
    """True once the peer closes or resets ``sock`` within ``limit`` seconds (data is read
    and dropped)."""
    sock.settimeout(limit)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def trickle(sock, data: bytes, pause: float) -> bytes:
    """Send ``data`` one byte every ``pause`` seconds until the peer answers or closes;
    returns what it said."""
    out = b""
    sock.settimeout(pause)
    for i in range(len(data)):
        try:
            sock.send(data[i:i + 1])
        except OSError:
            break
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue                          # nothing yet: that was the pause
        except OSError:
            break
        if not chunk:
            return out
        out += chunk
    return out + read_all(sock, 2)


def exchange(host: str, port: int, data: bytes, source: str = "127.0.0.1",
             body_chunks=(), limit: float = 10.0) -> bytes:
    """Send ``data`` (then each of ``body_chunks``, stopping if the server closes) over
    HTTP/1.1 on TLS; returns all the server said before closing."""
    sock = tls(host, port, source)
    try:
        try:
            sock.sendall(data)
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass                             # the server closed while we were sending
        return read_all(sock, limit)
    finally:
        sock.close()


def status_of(response: bytes) -> int:
    """The status code of an HTTP/1.1 response (0 when there is none)."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else 0


def h2_request(host: str, port: int, path: str, method: str = "GET", headers=(),
               body: bytes | None = None, limit: float = 10.0):
    """One HTTP/2 request; returns ``(status, headers, body, reset)`` where ``reset`` is True
    when the server reset the stream. ``body`` is sent without a content-length."""
    sock = tls(host, port, alpn=("h2",))
    try:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", method), (":path", path),
                                (":authority", f"{host}:{port}"), (":scheme", "https"),
                                *headers], end_stream=body is None)
        sock.sendall(conn.data_to_send())
        if body is not None:
            sent = 0
            while sent < len(body):
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                conn.send_data(sid, body[sent:sent + window])
                sent += window
                sock.sendall(conn.data_to_send())
            if sent >= len(body):
                conn.end_stream(sid)
                sock.sendall(conn.data_to_send())
        status, got, data = 0, {}, b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65535)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    got = {k.decode(): v.decode() for k, v in event.headers}
                    status = int(got[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length,
                                                   event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    return status, got, data, False
                elif isinstance(event, h2.events.StreamReset):
                    return status, got, data, True
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
        return status, got, data, False
    finally:
        sock.close()


def https(host: str, port: int, method: str, path: str, headers=None, body: bytes | None = None,
          source: str = "127.0.0.1", timeout: float = 10.0):
    """One HTTP/1.1 request over TLS; returns ``(status, headers, body)`` where ``headers``
    maps lower-case names to lists of values."""
    import http.client
    conn = http.client.HTTPSConnection(host, port, context=tls_context(None), timeout=timeout,
                                       source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        got: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            got.setdefault(name.lower(), []).append(value)
        return response.status, got, response.read()
    finally:
        conn.close()
