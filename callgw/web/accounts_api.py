"""The admin API's tenants (with their branding) and users.

Owned by the web site; what may change is ``callgw.admin_service``'s (the CLI's tenant and user
commands go through it too), run on the store's writer thread (``IStore.write``: a password's
scrypt key is derived there, off the reactor). Mounted at ``/api/tenants`` and ``/api/users`` by
``callgw.web.api.make_api``, behind the admin guard (a change from a session needs its
``X-CSRF-Token``):

- ``GET /api/tenants``; ``POST /api/tenants`` ``{"name", "timezone", "country", "branding"}``
  (a new tenant gets the shipped default rules; ``branding``: text values over the defaults);
  ``GET /api/tenants/<name>``; ``PATCH /api/tenants/<name>`` ``{"timezone", "country",
  "branding"}`` (branding merged into the tenant's, a ``null`` value removing a key);
  ``POST /api/tenants/<name>/disable`` (its users cannot log in, their sessions end within the
  reload interval) and ``.../enable``;
- ``GET /api/users``; ``POST /api/users`` ``{"name", "password", "tenant", "number",
  "country"}``; ``GET /api/users/<name>``; ``POST /api/users/<name>/password``
  ``{"password"}``; ``POST /api/users/<name>/disable`` and ``.../enable``.

No answer carries a password or its key. Mistakes are ``400`` with the CLI's one line, an
unknown tenant or user ``404`` (see ``callgw.web.gateways_api.change``).

Tests: tests/web/test_accounts_api.py.
"""
from __future__ import annotations

from twisted.web.resource import Resource

from callgw import admin_service
from callgw.web.dashboard import _json, _later
from callgw.web.gateways_api import body_of, change

_SHAPE = {"tenant": 'expected {"name": "...", "timezone": "UTC", "country": "1", '
                    '"branding": {...}}',
          "user": 'expected {"name": "...", "password": "...", "tenant": "default", ...}'}


def _same(row):
    return row


class _Collection(Resource):
    """``/api/<kind>s``: the list (GET), add (POST), one item (``_Item``)."""

    kind = ""
    fields: dict = {}

    def __init__(self, dashboard):
        super().__init__()
        self.dashboard = dashboard

    def getChild(self, path, request):
        if path == b"":
            return self
        return _Item(self.dashboard, self.kind, path.decode("utf-8", "replace"))

    def render_GET(self, request):
        read = "list_tenants" if self.kind == "tenant" else "list_users"
        public = _same if self.kind == "tenant" else admin_service.public_user
        return _later(request, self.dashboard.callpath.store.run(read),
                      lambda rows: _json(request, [public(r) for r in rows]))

    def render_POST(self, request):
        body = body_of(request)
        if isinstance(body, bytes):
            return body
        name = body.pop("name", None)
        if not isinstance(name, str):
            return _json(request, {"error": _SHAPE[self.kind]}, 400)
        try:
            admin_service.check_types(body, self.fields, self.kind)
        except admin_service.AdminError as e:
            return _json(request, {"error": str(e)}, 400)
        add = admin_service.add_tenant if self.kind == "tenant" else admin_service.add_user
        return change(request, self.dashboard, f"{self.kind} {name} added",
                      lambda db: add(db, name, **body), code=201, render=_same)


class Tenants(_Collection):
    kind = "tenant"
    fields = admin_service.TENANT_FIELDS


class Users(_Collection):
    kind = "user"
    fields = admin_service.USER_FIELDS


class _Item(Resource):
    """``/api/<kind>s/<name>`` and its ``disable``, ``enable`` (and a user's ``password``)."""

    isLeaf = True

    def __init__(self, dashboard, kind: str, name: str):
        super().__init__()
        self.dashboard = dashboard
        self.kind = kind
        self.name = name

    def render_GET(self, request):
        if request.postpath not in ([], [b""]):
            return _json(request, {"error": "not found"}, 404)
        read = "get_tenant" if self.kind == "tenant" else "get_user"
        public = _same if self.kind == "tenant" else admin_service.public_user

        def found(row):
            if row is None:
                return _json(request, {"error": f"no {self.kind} {self.name!r}"}, 404)
            return _json(request, public(row))
        return _later(request, self.dashboard.callpath.store.run(read, self.name), found)

    def render_PATCH(self, request):
        if request.postpath not in ([], [b""]) or self.kind != "tenant":
            return _json(request, {"error": "not found"}, 404)
        body = body_of(request)
        if isinstance(body, bytes):
            return body
        return change(request, self.dashboard, f"tenant {self.name} changed",
                      admin_service.change_tenant, self.name, body, render=_same)

    def render_POST(self, request):
        action = request.postpath
        name = self.name
        if action in ([b"disable"], [b"enable"]):
            enabled = action == [b"enable"]
            fn = (admin_service.set_tenant_enabled if self.kind == "tenant"
                  else admin_service.set_user_enabled)
            return change(request, self.dashboard,
                          f"{self.kind} {name} {'enabled' if enabled else 'disabled'}",
                          fn, name, enabled, render=_same)
        if action == [b"password"] and self.kind == "user":
            body = body_of(request)
            if isinstance(body, bytes):
                return body
            if set(body) != {"password"} or not isinstance(body["password"], str):
                return _json(request, {"error": 'expected {"password": "..."}'}, 400)
            return change(request, self.dashboard, f"user {name}'s password changed",
                          admin_service.set_user_password, name, body["password"],
                          render=_same)
        return _json(request, {"error": "not found"}, 404)
