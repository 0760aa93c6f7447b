"""A blocking HTTP/2 client (the ``h2`` library over an ``ssl`` socket with ALPN) for tests;
run it with ``deferToThread`` so the reactor under test keeps serving."""
from __future__ import annotations

import socket
import ssl

import h2.connection
import h2.events


def h2_get(host: str, port: int, path: str, cafile: str, until: bytes | None = None,
           headers=()):
    """GET ``path`` (with ``headers``, e.g. ``[("authorization", ...)]``); returns ``(alpn,
    status, headers, body)``. Stops at stream end, or as soon as the body contains ``until``
    (for an endless SSE stream)."""
    extra = list(headers)
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as sock:
            alpn = sock.selected_alpn_protocol()
            if alpn != "h2":
                return alpn, None, {}, b""
            conn = h2.connection.H2Connection()
            conn.initiate_connection()
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":path", path),
                                    (":authority", f"{host}:{port}"), (":scheme", "https"),
                                    *extra],
                              end_stream=True)
            sock.sendall(conn.data_to_send())
            headers, body = {}, b""
            while True:
                data = sock.recv(65535)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        headers = {k.decode(): v.decode() for k, v in event.headers}
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        return alpn, int(headers[":status"]), headers, body
                if until is not None and until in body:
                    return alpn, int(headers[":status"]), headers, body
                sock.sendall(conn.data_to_send())
            return alpn, int(headers.get(":status", 0)), headers, body
