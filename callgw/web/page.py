"""The browser call page: ``/`` and its static files, with caching and security headers.

Owned by the web site; what the page does is docs/client.md ("The web page"). The files live
in ``callgw/web/static/`` (package data): ``index.html``, the CSS, the ES modules under
``js/`` and the vendored libraries under ``vendor/``. ``PageFiles.load()`` reads them all once
(the web service calls it at start; a few hundred kilobytes) and names the set by a hash of its
contents, the *version*. Then:

- ``/`` serves ``index.html`` with every ``%STATIC%`` replaced by ``/static/<version>``, with
  ``Cache-Control: no-cache`` and an ETag (the browser revalidates, a 304 costs nothing);
- ``/static/<version>/<path>`` serves a file with ``Cache-Control: public, max-age=31536000,
  immutable`` (a new release has a new version, hence new URLs); any other version is 404;
- every answer carries a strict Content-Security-Policy (scripts, styles, workers and
  worklets from this origin only, no inline code, connections to this origin only -- and to
  the ``wss://`` origins a front end may redirect the page to, added with
  ``IndexPage.allow_connect(host, port)`` -- images from this origin or ``data:``), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer`` and a ``Permissions-Policy`` that allows the microphone to this origin alone.

Only the files loaded are served (no path is ever joined onto the file system at request
time). Tests: tests/web/test_page.py.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from pathlib import Path

from twisted.web.pages import notFound
from twisted.web.resource import Resource

STATIC_DIR = Path(__file__).resolve().parent / "static"
TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
         ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml",
         ".png": b"image/png", ".ico": b"image/x-icon", ".txt": b"text/plain; charset=utf-8",
         ".json": b"application/json", ".wav": b"audio/wav"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; worker-src 'self'; media-src 'self'; font-src 'self'; "
       "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    b"content-security-policy": CSP.encode("ascii"),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"permissions-policy": b"microphone=(self), camera=(), geolocation=(), payment=()",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"x-frame-options": b"DENY",
}
IMMUTABLE = b"public, max-age=31536000, immutable"


class PageFiles:
    """The page's files, read once; ``version`` names their contents."""

    def __init__(self, directory: Path = STATIC_DIR):
        self.directory = Path(directory)
        self.files: dict[str, tuple[bytes, bytes, bytes]] = {}   # path -> body, type, etag
        self.version = ""
        self.index: tuple[bytes, bytes] = (b"", b"")              # body, etag

    def load(self) -> None:
        """Read every file under the directory (only known types; dot files skipped)."""
        files, digest = {}, hashlib.sha256()
        for path in sorted(self.directory.rglob("*")):
            rel = path.relative_to(self.directory).as_posix()
            if not path.is_file() or any(p.startswith(".") for p in rel.split("/")):
                continue
            kind = TYPES.get(path.suffix.lower())
            if kind is None:
                continue
            body = path.read_bytes()
            digest.update(rel.encode() + b"\0" + body + b"\0")
            files[rel] = (body, kind, _etag(body))
        self.version = digest.hexdigest()[:12]
        index = files.get("index.html", (b"<!doctype html><title>callgw</title>", b"", b""))[0]
        index = index.replace(b"%STATIC%", f"/static/{self.version}".encode("ascii"))
        self.index = (index, _etag(index))
        self.files = files


def _etag(body: bytes) -> bytes:
    return b'"' + hashlib.sha256(body).hexdigest()[:20].encode("ascii") + b'"'


def _serve(request, body: bytes, kind: bytes, etag: bytes, cache: bytes) -> bytes:
    for name, value in HEADERS.items():
        request.setHeader(name, value)
    request.setHeader(b"cache-control", cache)
    request.setHeader(b"etag", etag)
    request.setHeader(b"content-type", kind)
    match = request.getHeader(b"if-none-match")
    if match is not None and etag in [t.strip() for t in match.split(b",")]:
        request.setResponseCode(304)
        return b""
    if request.method == b"HEAD":
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        return b""
    return body


class Root(Resource):
    """The site's root: unknown paths are a plain 404 (``twisted.web.pages.notFound``)."""

    def getChild(self, path, request):
        return notFound()


_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$")


def wss_origin(host: str, port: int) -> str:
    """``wss://host:port`` for a CSP source; ValueError for anything but an IP address or a
    host name and a port 1..65535 (nothing else may reach the header)."""
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"not a port: {port!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.match(host) or len(host) > 253:
            raise ValueError(f"not an IP address or host name: {host!r}") from None
        return f"wss://{host}:{port}"
    return f"wss://[{ip}]:{port}" if ip.version == 6 else f"wss://{ip}:{port}"


class IndexPage(Resource):
    """``/``: the page itself."""

    isLeaf = True

    def __init__(self, files: PageFiles):
        super().__init__()
        self.files = files
        self.connect_sources: list[str] = []

    def allow_connect(self, host: str, port: int) -> None:
        """Let the page open ``wss://host:port`` too: a client listener a front end may
        ``redirect`` the page's session to (docs/protocol.md, "Redirect"). ValueError for a
        bad host or port."""
        origin = wss_origin(host, port)
        if origin not in self.connect_sources:
            self.connect_sources.append(origin)

    def render_GET(self, request):
        if request.postpath not in ([], [b""]):
            return notFound().render(request)
        body, etag = self.files.index
        out = _serve(request, body, TYPES[".html"], etag, b"no-cache")
        if self.connect_sources:
            extra = " ".join(self.connect_sources)
            request.setHeader(b"content-security-policy", CSP.replace(
                "connect-src 'self'", f"connect-src 'self' {extra}").encode("ascii"))
        return out

    render_HEAD = render_GET


class StaticFiles(Resource):
    """``/static/<version>/<path>``: one of the loaded files, cached for good."""

    isLeaf = True

    def __init__(self, files: PageFiles):
        super().__init__()
        self.files = files

    def render_GET(self, request):
        parts = request.postpath
        entry = None
        if len(parts) >= 2 and parts[0].decode("ascii", "replace") == self.files.version:
            try:
                entry = self.files.files.get("/".join(p.decode("utf-8") for p in parts[1:]))
            except UnicodeDecodeError:
                entry = None
        if entry is None:
            for name, value in HEADERS.items():
                request.setHeader(name, value)
            request.setHeader(b"cache-control", b"no-store")
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        body, kind, etag = entry
        return _serve(request, body, kind, etag, IMMUTABLE)

    render_HEAD = render_GET


def static_path() -> str:
    """Where the page's files are (for docs and tests)."""
    return os.fspath(STATIC_DIR)
