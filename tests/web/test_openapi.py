"""The admin API's OpenAPI document (callgw/web/openapi.py): valid OpenAPI, and in step with the
routes ``make_api`` mounts (each static route documented, each documented route served)."""
from __future__ import annotations

from openapi_spec_validator import validate
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from callgw.web import accounts_api, dashboard, gateways_api, rules_api
from callgw.web.api import make_api
from callgw.web.openapi import DOCUMENT


class _CallPath:
    """Just what building the routes reads (nothing is served here)."""
    clock = Clock()


def test_the_document_is_valid_openapi():
    validate(DOCUMENT)


METHODS = ("get", "post", "put", "patch", "delete")


def _methods(resource) -> set[str]:
    return {m for m in METHODS if hasattr(resource, "render_" + m.upper())}


def _static_routes(resource, prefix="/api"):
    """``{path: resource}`` of every static child with something to render, at any depth."""
    routes = {}
    for name, child in resource.children.items():
        path = f"{prefix}/{name.decode()}"
        if _methods(child):
            routes[path] = child
        routes.update(_static_routes(child, path))
    return routes


def test_the_document_and_the_routes_agree():
    root = make_api(_CallPath())
    static = _static_routes(root)
    documented = set(DOCUMENT["paths"])
    assert set(static) <= documented, set(static) - documented
    for path in documented:
        parts = path.split("/")[2:]
        if path in static:
            continue
        resource = root.children[parts[0].encode()]
        child = resource.getChild(parts[1].encode(), DummyRequest([]))
        if parts[0] == "gateways":
            assert parts[1] == "{name}" and isinstance(child, gateways_api.Gateway), path
            if len(parts) == 3:
                assert parts[2] in ("drain", "enable") and set(DOCUMENT["paths"][path]) == {
                    "post"}, path
            else:                   # its POST is .../drain and .../enable
                assert set(DOCUMENT["paths"][path]) == _methods(child) - {"post"}, path
                assert {path + "/drain", path + "/enable"} <= documented
            continue
        if parts[0] in ("tenants", "users"):
            assert parts[1] == "{name}" and isinstance(child, accounts_api._Item), path
            if len(parts) == 3:
                assert parts[2] in ("disable", "enable", "password"), path
                assert parts[2] != "password" or parts[0] == "users", path
                assert set(DOCUMENT["paths"][path]) == {"post"}, path
            else:                   # PATCH: tenants only
                assert set(DOCUMENT["paths"][path]) == _methods(child) - {"post"} - (
                    {"patch"} if parts[0] == "users" else set()), path
            continue
        if parts[0] == "rules":
            assert parts[1] == "{id}" and isinstance(child, rules_api.Rule), path
            assert set(DOCUMENT["paths"][path]) == _methods(child) == {"delete"}, path
            continue
        if parts[0] == "books":
            assert parts[1] == "{user}" and isinstance(child, rules_api.Book), path
            if len(parts) == 3:                 # DELETE of an entry, by its name
                assert parts[2] == "{name}" and set(DOCUMENT["paths"][path]) == {"delete"}
            else:
                assert set(DOCUMENT["paths"][path]) == _methods(child) - {"delete"}, path
            continue
        assert parts[0] == "calls", path
        if parts[1] == "stream":
            assert isinstance(child, dashboard.Stream)
        else:
            assert parts[1] == "{call_id}" and isinstance(child, dashboard.Call)
            if len(parts) == 3:
                assert parts[2] == "end" and "post" in DOCUMENT["paths"][path]
    for path, resource in static.items():
        assert _methods(resource) <= set(DOCUMENT["paths"][path]), path
