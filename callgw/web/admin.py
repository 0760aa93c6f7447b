"""The admin surfaces' door: the guard in front of ``/api`` and ``/metrics``, the sign-in page at
``/admin/`` and the session endpoint ``/admin/session``.

Owned by the web site. The decisions are ``callgw.web.adminauth.AdminAuth``'s; this module turns
them into HTTP:

- ``AdminGuard(resource, auth, bearer=False)`` wraps a resource tree. A request passes with an
  admin session cookie (``__Host-callgw-admin``; a request that changes something, i.e. not
  GET/HEAD/OPTIONS, also needs the session's token in ``X-CSRF-Token``), with HTTP Basic
  (only over TLS), or, where ``bearer`` is set (``/metrics``), with ``Authorization: Bearer
  <[admin] metrics_token>``. Otherwise: ``401`` with ``WWW-Authenticate: Basic`` (left out for a
  page's script, i.e. ``Sec-Fetch-Dest: empty``, and when a stale session cookie came, so a
  dashboard whose session ended gets no browser password dialog), ``429`` with
  ``Retry-After`` for a throttled source, ``503`` when password checks are at their bound,
  ``403`` for a missing CSRF token or a cross-site origin. Error bodies are one JSON ``error``
  line: nothing about calls.
- ``/admin/session``: ``POST`` JSON ``{"user", "password"}`` (``application/json`` only, so a
  cross-site form cannot sign anybody in) signs in: ``200 {"user", "csrf"}`` and the cookie
  (``Secure; HttpOnly; SameSite=Strict; Path=/``); ``GET`` tells the signed-in page its user
  and CSRF token; ``DELETE`` (with the token) signs out.
- ``/admin/`` serves the sign-in page (``callgw/web/static/admin/``): textboxes "User name" and
  "Password", button "Sign in"; once signed in, who is signed in, "Sign out" and the operator
  dashboard (``dashboard.js``, its data from ``callgw.web.dashboard``).

Tests: tests/web/test_admin.py (over the site, and the page in Chromium) and
tests/web/test_admin_attacks.py (a real callgw process).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
from importlib import resources as pkg_resources

from twisted.logger import Logger
from twisted.web.resource import Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET

from callgw.connlimits import source_of

COOKIE = b"__Host-callgw-admin"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
REALM = b'Basic realm="callgw admin", charset="UTF-8"'
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
log = Logger()


def _answer(request, code: int, error: str, **extra) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps({"error": error, **extra}).encode("utf-8")


def _unauthorized(request, challenge: bool = True) -> bytes:
    if challenge:
        request.setHeader(b"www-authenticate", REALM)
    return _answer(request, 401, "authentication required: HTTP Basic over TLS, an admin "
                                 "session (/admin/), or for /metrics its bearer token")


def _verdict_answer(request, verdict) -> bytes:
    if verdict.kind == "throttled":
        request.setHeader(b"retry-after", str(verdict.retry_after).encode())
        return _answer(request, 429, "too many failed admin sign-ins from your address",
                       retry_after=verdict.retry_after)
    if verdict.kind == "busy":
        request.setHeader(b"retry-after", b"1")
        return _answer(request, 503, "busy checking passwords: try again", retry_after=1)
    return _unauthorized(request)


def same_origin(request) -> bool:
    """False for a browser's cross-site request (``Sec-Fetch-Site`` or an ``Origin`` that is not
    this site); True for same-site requests and for clients that send neither (curl, scripts)."""
    if (request.getHeader(b"sec-fetch-site") or b"").lower() == b"cross-site":
        return False
    origin = request.getHeader(b"origin")
    if origin is None:
        return True
    host = request.getHeader(b"host") or b""
    return origin.lower() == b"https://" + host.lower()


def basic_credentials(request) -> tuple[str, str] | None:
    """(name, password) from ``Authorization: Basic``; None without one; ("", "") when it is
    malformed (checked like any wrong password)."""
    header = request.getHeader(b"authorization") or b""
    scheme, _, value = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return "", ""
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else ("", "")


def _bearer(request) -> str | None:
    header = request.getHeader(b"authorization") or b""
    scheme, _, value = header.strip().partition(b" ")
    return value.strip().decode("latin-1") if scheme.lower() == b"bearer" else None


def _from_script(request) -> bool:
    """A browser page's fetch/XHR (not a navigation, not curl): no Basic dialog for it."""
    return (request.getHeader(b"sec-fetch-dest") or b"").lower() == b"empty"


def _session_of(request, auth):
    sid = request.getCookie(COOKIE)
    return auth.session(sid.decode("ascii", "replace")) if sid else None


def _csrf_ok(request, session) -> bool:
    token = request.getHeader(CSRF_HEADER) or b""
    return hmac.compare_digest(token, session.csrf.encode("ascii"))


class AdminGuard(Resource):
    """Serves ``resource`` (a tree) to admins only; see the module docstring."""

    isLeaf = True

    def __init__(self, resource: Resource, auth, bearer: bool = False):
        super().__init__()
        self.resource = resource
        self.auth = auth
        self.bearer = bearer

    def render(self, request):
        request.setHeader(b"cache-control", b"no-store")
        unsafe = request.method not in SAFE_METHODS
        if unsafe and not same_origin(request):
            return _answer(request, 403, "cross-site request refused")
        challenge = request.getCookie(COOKIE) is None and not _from_script(request)
        session = _session_of(request, self.auth)
        if session is not None:
            if unsafe and not _csrf_ok(request, session):
                return _answer(request, 403, "missing or wrong X-CSRF-Token")
            return self._serve(request)
        token = _bearer(request)
        if token is not None:
            if self.bearer and self.auth.bearer_ok(token):
                return self._serve(request)
            return _unauthorized(request, challenge)
        creds = basic_credentials(request)
        if creds is None or not request.isSecure():
            return _unauthorized(request, challenge)
        d = self.auth.check_password(creds[0], creds[1], source_of(request.getClientAddress()))
        now = []
        d.addCallback(now.append)
        if now:                                     # decided at once: cache, throttle, busy
            return self._serve(request) if now[0].ok else _verdict_answer(request, now[0])
        done = []
        request.notifyFinish().addBoth(done.append)
        d.addCallback(lambda _: self._decided(request, now[0], done))
        d.addErrback(lambda f: log.failure("admin guard", f) or request.processingFailed(f))
        return NOT_DONE_YET

    def _decided(self, request, verdict, done) -> None:
        if done:                                    # the client went away meanwhile
            return
        if verdict.ok:
            request.render(getChildForRequest(self.resource, request))
        else:
            request.write(_verdict_answer(request, verdict))
            request.finish()

    def _serve(self, request):
        return getChildForRequest(self.resource, request).render(request)


class SessionResource(Resource):
    """``/admin/session``: sign in (POST), who am I (GET), sign out (DELETE)."""

    isLeaf = True

    def __init__(self, auth):
        super().__init__()
        self.auth = auth

    def render_GET(self, request):
        session = _session_of(request, self.auth)
        if session is None:
            return _unauthorized(request, challenge=False)
        return self._signed_in(request, session)

    def render_POST(self, request):
        if not same_origin(request):
            return _answer(request, 403, "cross-site request refused")
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            return _answer(request, 415, "send the sign-in as application/json")
        try:
            body = json.loads(request.content.read())
            user, password = body["user"], body["password"]
            if not isinstance(user, str) or not isinstance(password, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):
            return _answer(request, 400, 'expected {"user": "...", "password": "..."}')
        source = source_of(request.getClientAddress())
        d = self.auth.check_password(user[:256], password[:1024], source)
        done = []
        request.notifyFinish().addBoth(done.append)
        d.addCallback(self._decided, request, source, done)
        d.addErrback(lambda f: log.failure("admin sign-in", f) or request.processingFailed(f))
        return NOT_DONE_YET

    def _decided(self, verdict, request, source, done) -> None:
        if done:
            return
        if verdict.ok:
            session = self.auth.open_session(verdict.admin)
            log.info("admin {admin} signed in from {source}", admin=verdict.admin, source=source)
            request.addCookie(COOKIE, session.sid, path=b"/", secure=True, httpOnly=True,
                              sameSite="strict",
                              max_age=str(int(self.auth.settings.session_lifetime)))
            body = self._signed_in(request, session)
        elif verdict.kind == "refused":
            body = _answer(request, 401, "wrong user name or password")
        else:
            body = _verdict_answer(request, verdict)
        request.write(body)
        request.finish()

    def render_DELETE(self, request):
        session = _session_of(request, self.auth)
        if session is None:
            return _unauthorized(request, challenge=False)
        if not same_origin(request) or not _csrf_ok(request, session):
            return _answer(request, 403, "missing or wrong X-CSRF-Token")
        self.auth.close_session(session.sid)
        request.addCookie(COOKIE, b"", path=b"/", secure=True, httpOnly=True,
                          sameSite="strict", max_age=b"0")
        request.setResponseCode(204)
        return b""

    @staticmethod
    def _signed_in(request, session) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"user": session.admin, "csrf": session.csrf}).encode("utf-8")


class _StaticFile(Resource):
    """One file of the sign-in page, with its type and a strict Content-Security-Policy."""

    isLeaf = True

    def __init__(self, body: bytes, content_type: bytes):
        super().__init__()
        self.body, self.content_type = body, content_type

    def render_GET(self, request):
        request.setHeader(b"content-type", self.content_type)
        request.setHeader(b"content-security-policy", CSP)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-cache")
        return self.body

    render_HEAD = render_GET


class AdminRoot(Resource):
    """``/admin``: the sign-in page at ``/admin/``, its files, ``/admin/session``."""

    FILES = {b"": ("index.html", b"text/html; charset=utf-8"),
             b"signin.js": ("signin.js", b"text/javascript; charset=utf-8"),
             b"admin.css": ("admin.css", b"text/css; charset=utf-8"),
             b"dashboard.js": ("dashboard.js", b"text/javascript; charset=utf-8"),
             b"charts.js": ("charts.js", b"text/javascript; charset=utf-8"),
             b"dashboard.css": ("dashboard.css", b"text/css; charset=utf-8")}

    def __init__(self, auth):
        super().__init__()
        folder = pkg_resources.files("callgw.web") / "static" / "admin"
        for path, (name, ctype) in self.FILES.items():
            self.putChild(path, _StaticFile((folder / name).read_bytes(), ctype))
        self.putChild(b"session", SessionResource(auth))

    def render_GET(self, request):
        """``/admin`` without its slash: on to ``/admin/``."""
        request.redirect(b"/admin/")
        return b""
