"""The admin API's authorization rules and address books.

Owned by the web site; what may change is ``callgw.admin_service``'s (the CLI's ``rule`` and
``book`` commands go through it too), run on the store's writer thread (``IStore.write``).
Mounted by ``callgw.web.api.make_api`` behind the admin guard (a change from a session needs
its ``X-CSRF-Token``):

- ``GET /api/rules?user=&tenant=``: rules, of one user or tenant when given;
  ``POST /api/rules`` ``{"kind", "value", "user" | "tenant", "note"}`` (kinds as the CLI
  spells them: ``allow``, ``block``, ``max-concurrent``...; default the default tenant);
  ``DELETE /api/rules/<id>``;
- ``GET /api/books/<user>``: the user's address book; ``POST /api/books/<user>``
  ``{"name", "number"}``; ``DELETE /api/books/<user>/<name>``.

Mistakes are ``400`` with the CLI's one line, unknown rules, users and entries ``404``.

Tests: tests/web/test_rules_api.py.
"""
from __future__ import annotations

from urllib.parse import unquote

from twisted.web.resource import Resource

from callgw import admin_service
from callgw.web.dashboard import _arg, _json, _later
from callgw.web.gateways_api import body_of, change


def _same(row):
    return row


class Rules(Resource):
    """``/api/rules`` and ``/api/rules/<id>``."""

    def __init__(self, dashboard):
        super().__init__()
        self.dashboard = dashboard

    def getChild(self, path, request):
        if path == b"":
            return self
        return Rule(self.dashboard, path.decode("utf-8", "replace"))

    def render_GET(self, request):
        user, tenant = _arg(request, "user") or None, _arg(request, "tenant") or None
        return _later(request, self.dashboard.callpath.store.run(
            "list_rules", tenant=tenant, username=user), lambda rows: _json(request, rows))

    def render_POST(self, request):
        body = body_of(request)
        if isinstance(body, bytes):
            return body
        try:
            admin_service.check_types(body, admin_service.RULE_FIELDS, "rule")
            if not isinstance(body.get("kind"), str) or not isinstance(body.get("value"), str):
                raise admin_service.AdminError(
                    'expected {"kind": "block", "value": "+1900", "tenant": "default"}')
        except admin_service.AdminError as e:
            return _json(request, {"error": str(e)}, 400)
        owner = body.get("user") or body.get("tenant") or "default"
        return change(request, self.dashboard, f"rule {body['kind']} {body['value']} added "
                                               f"for {owner}",
                      lambda db: admin_service.add_rule(db, **body), code=201, render=_same)


class Rule(Resource):
    isLeaf = True

    def __init__(self, dashboard, rule_id: str):
        super().__init__()
        self.dashboard = dashboard
        self.rule_id = rule_id

    def render_DELETE(self, request):
        if request.postpath not in ([], [b""]) or not (
                self.rule_id.isascii() and self.rule_id.isdigit() and len(self.rule_id) < 19):
            return _json(request, {"error": "not found"}, 404)
        rule_id = int(self.rule_id)
        return change(request, self.dashboard, f"rule {rule_id} removed",
                      admin_service.remove_rule, rule_id, render=lambda _: {"removed": rule_id})


class Books(Resource):
    """``/api/books/<user>`` (and ``/<name>``)."""

    def __init__(self, dashboard):
        super().__init__()
        self.dashboard = dashboard

    def getChild(self, path, request):
        return Book(self.dashboard, unquote(path.decode("utf-8", "replace")))


class Book(Resource):
    isLeaf = True

    def __init__(self, dashboard, user: str):
        super().__init__()
        self.dashboard = dashboard
        self.user = user

    def _entry(self, request) -> str | None:
        if len(request.postpath) != 1 or not request.postpath[0]:
            return None
        return unquote(request.postpath[0].decode("utf-8", "replace"))

    def render_GET(self, request):
        if request.postpath not in ([], [b""]) or not self.user:
            return _json(request, {"error": "not found"}, 404)

        def listed(user_and_book):
            user, book = user_and_book
            if user is None:
                return _json(request, {"error": f"no user {self.user!r}"}, 404)
            return _json(request, book)
        store = self.dashboard.callpath.store
        d = store.run("get_user", self.user)
        d.addCallback(lambda user: store.run("book_list", self.user).addCallback(
            lambda book: (user, book)))
        return _later(request, d, listed)

    def render_POST(self, request):
        if request.postpath not in ([], [b""]) or not self.user:
            return _json(request, {"error": "not found"}, 404)
        body = body_of(request)
        if isinstance(body, bytes):
            return body
        if set(body) != {"name", "number"} or not all(isinstance(v, str)
                                                      for v in body.values()):
            return _json(request, {"error": 'expected {"name": "...", "number": "+..."}'}, 400)
        return change(request, self.dashboard, f"{self.user}'s address book: {body['name']} "
                                               "added", admin_service.book_add, self.user,
                      body["name"], body["number"], code=201, render=_same)

    def render_DELETE(self, request):
        name = self._entry(request)
        if name is None:
            return _json(request, {"error": "not found"}, 404)
        return change(request, self.dashboard, f"{self.user}'s address book: {name} removed",
                      admin_service.book_remove, self.user, name,
                      render=lambda _: {"removed": name})
