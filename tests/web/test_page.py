"""The call page's files on the HTTPS listener: ``/`` and ``/static/<version>/...`` over HTTP/2
(ALPN) and HTTP/1.1, their caching headers (no-cache + ETag for the page, immutable for the
versioned files, 304 on a matching If-None-Match), the strict Content-Security-Policy and the
other security headers on every answer, and 404s for anything not shipped."""
from __future__ import annotations

import http.client
import re
import ssl

import pytest_twisted
from twisted.internet.threads import deferToThread

from callgw.web.page import CSP, PageFiles
from tests.frontend.gateway import FakeFrontEnd, cert_path, start_gateway, stop_gateway
from tests.web.h2get import h2_get


def http1(host, port, cafile, method, path, headers=None):
    """One HTTP/1.1 request over TLS (blocking; run it in a thread)."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_the_files_are_named_by_a_version_of_their_contents(tmp_path):
    (tmp_path / "js").mkdir()
    (tmp_path / "index.html").write_text('<script src="%STATIC%/js/a.js"></script>')
    (tmp_path / "js" / "a.js").write_text("export const a = 1;\n")
    (tmp_path / "js" / ".hidden.js").write_text("secret")
    (tmp_path / "notes.unknown").write_text("not served")
    files = PageFiles(tmp_path)
    files.load()
    first = files.version
    assert set(files.files) == {"index.html", "js/a.js"}
    assert files.index[0] == f'<script src="/static/{first}/js/a.js"></script>'.encode()
    (tmp_path / "js" / "a.js").write_text("export const a = 2;\n")
    files.load()
    assert files.version != first


@pytest_twisted.inlineCallbacks
def test_page_and_files_with_caching_and_security_headers(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        host, port = gw.client.address("https")
        ca = cert_path(gw)
        alpn, status, headers, body = yield deferToThread(h2_get, host, port, "/", ca)
        assert (alpn, status) == ("h2", 200)
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-cache" and headers["etag"]
        assert headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "microphone=(self)" in headers["permissions-policy"]
        version = gw.web.page_files.version
        assert f'src="/static/{version}/js/app.js"'.encode() in body and b"%STATIC%" not in body
        assert b'role="status"' in body

        static = f"/static/{version}/js/app.js"
        alpn, status, headers, body = yield deferToThread(h2_get, host, port, static, ca)
        assert (alpn, status) == ("h2", 200)
        assert headers["content-type"] == "text/javascript; charset=utf-8"
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["content-security-policy"] == CSP and b"import" in body

        # HTTP/1.1 fallback, revalidation, HEAD
        status, headers, body = yield deferToThread(http1, host, port, ca, "GET", "/")
        etag = headers["etag"]
        assert status == 200 and body.startswith(b"<!doctype html>")
        status, headers, body = yield deferToThread(http1, host, port, ca, "GET", "/",
                                                    {"If-None-Match": etag})
        assert (status, body) == (304, b"") and headers["etag"] == etag
        status, headers, body = yield deferToThread(http1, host, port, ca, "HEAD", static)
        assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
        for path in ("/vendor/noble-hashes/scrypt.js", "/app.css", "/icon.svg"):
            status, headers, _ = yield deferToThread(http1, host, port, ca, "GET",
                                                     f"/static/{version}{path}")
            assert status == 200, path
        assert (yield deferToThread(http1, host, port, ca, "GET",
                                    f"/static/{version}/vendor/noble-hashes/LICENSE"))[0] == 404

        # only what was loaded, only under the current version
        for path in (f"/static/0123456789ab/js/app.js", f"/static/{version}/js/nope.js",
                     f"/static/{version}/../site.py", f"/static/{version}/%2e%2e/page.py",
                     "/static/", "/nothing-here"):
            status, headers, _ = yield deferToThread(http1, host, port, ca, "GET", path)
            assert status == 404, path
            if path.startswith("/static/"):
                assert headers["content-security-policy"] == CSP
    finally:
        yield stop_gateway(gw)


def test_every_module_the_page_imports_is_shipped():
    """The ES modules' relative imports all name files that exist (no bundler checks it)."""
    files = PageFiles()
    files.load()
    for name, (body, kind, _) in files.files.items():
        if not name.endswith(".js"):
            continue
        base = name.rsplit("/", 1)[0] if "/" in name else ""
        text = body.decode("utf-8")
        for target in re.findall(r'(?:from|import)\s*\(?\s*"(\.{1,2}/[^"]+)"', text) + \
                re.findall(r'new URL\("(\.{1,2}/[^"]+)"', text):
            parts = (base.split("/") if base else []) + target.split("/")
            out = []
            for p in parts:
                if p == "..":
                    out.pop()
                elif p != ".":
                    out.append(p)
            assert "/".join(out) in files.files, f"{name} imports {target}"


@pytest_twisted.inlineCallbacks
def test_the_page_may_connect_to_the_servers_a_front_end_redirects_to(tmp_path):
    """``allow_connect``: the page's CSP names a call server's wss:// origin beside its own;
    nothing but an address or host name and a port gets into the header."""
    import pytest
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        gw.client.web.allow_connect("127.0.0.1", 8444)
        gw.client.web.allow_connect("::1", 8445)
        gw.client.web.allow_connect("127.0.0.1", 8444)             # once
        for host, port in (("a b", 1), ("x;script-src *", 2), ("127.0.0.1", 0),
                           ("h\r\nx-evil: 1", 3)):
            with pytest.raises(ValueError):
                gw.client.web.allow_connect(host, port)
        host, port = gw.client.address("https")
        status, headers, _ = yield deferToThread(http1, host, port, cert_path(gw), "GET", "/")
        assert status == 200
        assert headers["content-security-policy"] == CSP.replace(
            "connect-src 'self'", "connect-src 'self' wss://127.0.0.1:8444 wss://[::1]:8445")
        status, headers, _ = yield deferToThread(http1, host, port, cert_path(gw), "GET",
                                                 "/no-such-page")
        assert status == 404
    finally:
        yield stop_gateway(gw)
