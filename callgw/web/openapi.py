"""The admin JSON API described as an OpenAPI 3.1 document, served at ``/api/openapi.json``
(behind the same admin guard as the rest of ``/api``).

Owned by the web site. ``DOCUMENT`` lists every route ``callgw.web.api.make_api`` mounts (with
the dashboard's, ``callgw.web.dashboard``); a test walks the resource tree and the document
together so neither gains a route the other lacks, and validates the document. Security: HTTP
Basic, or the admin session cookie (changes also need ``X-CSRF-Token``).

Tests: tests/web/test_openapi.py.
"""
from __future__ import annotations

import json

from twisted.web.resource import Resource


def _ok(description: str, schema: dict | None = None, kind: str = "application/json") -> dict:
    return {"200": {"description": description,
                    "content": {kind: {"schema": schema or {"type": "object"}}}}}


_ARRAY = {"type": "array", "items": {"type": "object"}}
_CALL_ID = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NOT_FOUND = {"404": {"description": "no such call"}}
_CSRF = {"name": "X-CSRF-Token", "in": "header", "required": False,
         "schema": {"type": "string"}, "description": "the session's token (session only)"}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_NO_GATEWAY = {"404": {"description": "no such gateway"}}
_MISTAKE = {"400": {"description": "a field is wrong (one line saying which)"},
            "415": {"description": "the body is not application/json"}}
_GATEWAY_FIELDS = {"type": "object", "additionalProperties": False, "properties": {
    "host": {"type": "string"}, "port": {"type": ["integer", "null"]},
    "prefixes": {"type": "array", "items": {"type": "string"}},
    "capacity": {"type": "integer"}, "priority": {"type": "integer"},
    "weight": {"type": "integer"}, "strip_digits": {"type": "integer"},
    "prepend": {"type": "string"}, "keep_plus": {"type": "boolean"},
    "caller_id": {"type": "string"},
    "options": {"type": "object", "description": "the protocol's own options"},
    "probe": {"type": ["string", "null"]}, "probe_interval": {"type": ["number", "null"]},
    "down_after": {"type": "integer"}, "up_after": {"type": "integer"}}}
_GATEWAY_ADD = {**_GATEWAY_FIELDS, "required": ["name", "protocol", "host", "prefixes"],
                "properties": {**_GATEWAY_FIELDS["properties"], "name": {"type": "string"},
                               "protocol": {"type": "string"}}}
_TENANT = {"type": "object", "required": ["name"], "additionalProperties": False,
           "properties": {"name": {"type": "string"}, "timezone": {"type": "string"},
                          "country": {"type": "string"},
                          "branding": {"type": "object",
                                       "additionalProperties": {"type": "string"}}}}
_USER = {"type": "object", "required": ["name", "password"], "additionalProperties": False,
         "properties": {"name": {"type": "string"}, "password": {"type": "string"},
                        "tenant": {"type": "string"},
                        "number": {"type": ["string", "null"]},
                        "country": {"type": ["string", "null"]}}}
_RULE = {"type": "object", "required": ["kind", "value"], "additionalProperties": False,
         "properties": {"kind": {"type": "string", "description": "allow, block, "
                                                                  "max-concurrent, ..."},
                        "value": {"type": "string"}, "user": {"type": ["string", "null"]},
                        "tenant": {"type": ["string", "null"]}, "note": {"type": "string"}}}
_USER_NAME = {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}}
_GATEWAY = {"type": "object", "properties": {**_GATEWAY_ADD["properties"],
                                             "enabled": {"type": "boolean"},
                                             "status": {"type": "string"}}}


def _query(name: str, kind: str = "string", description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind},
            "description": description}


DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "callgw admin API", "version": "1",
             "description": "Live calls, call records and gateways of one callgw process "
                            "(docs/operations.md, 'The operator dashboard')."},
    "components": {"securitySchemes": {
        "basic": {"type": "http", "scheme": "basic"},
        "session": {"type": "apiKey", "in": "cookie", "name": "__Host-callgw-admin"}}},
    "security": [{"basic": []}, {"session": []}],
    "paths": {
        "/api/calls": {"get": {"summary": "live calls and the newest records",
                               "parameters": [_query("limit", "integer")],
                               "responses": _ok("active and recent calls")}},
        "/api/calls/stream": {"get": {
            "summary": "Server-Sent Events: a 'state' event a second (now, active, gateways, "
                       "servers)",
            "responses": _ok("an event stream", {"type": "string"}, "text/event-stream")}},
        "/api/calls/{call_id}": {"get": {
            "summary": "a call's story: live row, events, both legs' messages, record, routing",
            "parameters": [_CALL_ID],
            "responses": {**_ok("the call's story"), **_NOT_FOUND}}},
        "/api/calls/{call_id}/end": {"post": {
            "summary": "end a live call: both legs released, cause 16",
            "parameters": [_CALL_ID, _CSRF],
            "responses": {**_ok("the call was ended"), **_NOT_FOUND}}},
        "/api/cdrs": {"get": {
            "summary": "call records by filter, newest first",
            "parameters": [_query("user"), _query("tenant"),
                           _query("prefix", description="target prefix, e.g. +4930"),
                           _query("gateway"), _query("cause", "integer"),
                           _query("since", "number", "placed at or after (epoch seconds)"),
                           _query("until", "number", "placed at or before (epoch seconds)"),
                           _query("limit", "integer"),
                           {"name": "format", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["json", "csv"]}}],
            "responses": {"200": {"description": "records", "content": {
                "application/json": {"schema": _ARRAY},
                "text/csv": {"schema": {"type": "string"}}}},
                "400": {"description": "a filter is malformed"}}}},
        "/api/refused": {"get": {
            "summary": "attempts the call director refused, with reasons",
            "parameters": [_query("since", "number"), _query("limit", "integer")],
            "responses": _ok("refused attempts", _ARRAY)}},
        "/api/gateways": {
            "get": {"summary": "gateways: status, probe RTT, calls, failures",
                    "responses": _ok("gateways", _ARRAY)},
            "post": {"summary": "add a gateway (checked like `callgw gateway add`)",
                     "parameters": [_CSRF],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _GATEWAY_ADD}}},
                     "responses": {"201": {"description": "the stored gateway", "content": {
                         "application/json": {"schema": _GATEWAY}}}, **_MISTAKE}}},
        "/api/gateways/{name}": {
            "get": {"summary": "a gateway's stored configuration (passwords left out)",
                    "parameters": [_NAME],
                    "responses": {**_ok("the stored gateway", _GATEWAY), **_NO_GATEWAY}},
            "patch": {"summary": "change the fields given; the rest stays",
                      "parameters": [_NAME, _CSRF],
                      "requestBody": {"required": True, "content": {"application/json": {
                          "schema": _GATEWAY_FIELDS}}},
                      "responses": {**_ok("the stored gateway", _GATEWAY), **_MISTAKE,
                                    **_NO_GATEWAY}},
            "delete": {"summary": "remove a gateway (its calls go on)",
                       "parameters": [_NAME, _CSRF],
                       "responses": {**_ok("removed"), **_NO_GATEWAY}}},
        "/api/gateways/{name}/drain": {"post": {
            "summary": "drain a gateway: no new calls, its calls go on",
            "parameters": [_NAME, _CSRF],
            "responses": {**_ok("the stored gateway", _GATEWAY), **_NO_GATEWAY}}},
        "/api/gateways/{name}/enable": {"post": {
            "summary": "take new calls again",
            "parameters": [_NAME, _CSRF],
            "responses": {**_ok("the stored gateway", _GATEWAY), **_NO_GATEWAY}}},
        "/api/tenants": {
            "get": {"summary": "tenants (with their branding)",
                    "responses": _ok("tenants", _ARRAY)},
            "post": {"summary": "add a tenant (with the shipped default rules)",
                     "parameters": [_CSRF],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _TENANT}}},
                     "responses": {"201": {"description": "the tenant", "content": {
                         "application/json": {"schema": {"type": "object"}}}}, **_MISTAKE}}},
        "/api/tenants/{name}": {
            "get": {"summary": "a tenant", "parameters": [_NAME],
                    "responses": {**_ok("the tenant"),
                                  "404": {"description": "no such tenant"}}},
            "patch": {"summary": "change a tenant's time zone, country or branding (merged; "
                                 "a null value removes a key)",
                      "parameters": [_NAME, _CSRF],
                      "requestBody": {"required": True, "content": {"application/json": {
                          "schema": {"type": "object", "additionalProperties": False,
                                     "properties": {k: v for k, v in _TENANT["properties"]
                                                    .items() if k != "name"}}}}},
                      "responses": {**_ok("the tenant"), **_MISTAKE,
                                    "404": {"description": "no such tenant"}}}},
        "/api/users": {
            "get": {"summary": "users (no password keys)", "responses": _ok("users", _ARRAY)},
            "post": {"summary": "add a user (the password kept only as its scrypt key)",
                     "parameters": [_CSRF],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _USER}}},
                     "responses": {"201": {"description": "the user", "content": {
                         "application/json": {"schema": {"type": "object"}}}}, **_MISTAKE}}},
        "/api/users/{name}": {"get": {
            "summary": "a user", "parameters": [_NAME],
            "responses": {**_ok("the user"), "404": {"description": "no such user"}}}},
        "/api/users/{name}/password": {"post": {
            "summary": "set a user's password", "parameters": [_NAME, _CSRF],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["password"],
                "properties": {"password": {"type": "string"}}}}}},
            "responses": {**_ok("the user"), **_MISTAKE,
                          "404": {"description": "no such user"}}}},
        **{f"/api/{kind}/{{name}}/{action}": {"post": {
            "summary": f"{text} a {kind[:-1]}", "parameters": [_NAME, _CSRF],
            "responses": {**_ok(f"the {kind[:-1]}"),
                          "404": {"description": f"no such {kind[:-1]}"}}}}
           for kind in ("tenants", "users")
           for action, text in (("disable", "disable (sessions end within the reload "
                                            "interval)"), ("enable", "enable again"))},
        "/api/rules": {
            "get": {"summary": "authorization rules, of one user or tenant when given",
                    "parameters": [_query("user"), _query("tenant")],
                    "responses": _ok("rules", _ARRAY)},
            "post": {"summary": "add a rule for a user or a tenant (default: the default "
                                "tenant)",
                     "parameters": [_CSRF],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _RULE}}},
                     "responses": {"201": {"description": "the rule", "content": {
                         "application/json": {"schema": {"type": "object"}}}}, **_MISTAKE}}},
        "/api/rules/{id}": {"delete": {
            "summary": "remove a rule",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}, _CSRF],
            "responses": {**_ok("removed"), "404": {"description": "no such rule"}}}},
        "/api/books/{user}": {
            "get": {"summary": "a user's address book", "parameters": [_USER_NAME],
                    "responses": {**_ok("entries", _ARRAY),
                                  "404": {"description": "no such user"}}},
            "post": {"summary": "add an address-book entry",
                     "parameters": [_USER_NAME, _CSRF],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "required": ["name", "number"],
                                    "additionalProperties": False, "properties": {
                                        "name": {"type": "string"},
                                        "number": {"type": "string"}}}}}},
                     "responses": {"201": {"description": "the entry", "content": {
                         "application/json": {"schema": {"type": "object"}}}}, **_MISTAKE,
                         "404": {"description": "no such user"}}}},
        "/api/books/{user}/{name}": {"delete": {
            "summary": "remove an address-book entry",
            "parameters": [_USER_NAME, _NAME, _CSRF],
            "responses": {**_ok("removed"), "404": {"description": "no such entry"}}}},
        "/api/stats/calls": {"get": {
            "summary": "counters per minute from the call records: calls by outcome, "
                       "answer-seizure ratio, set-up latency",
            "parameters": [_query("since", "number", "from (epoch seconds; default: an hour "
                                                     "before until)"),
                           _query("until", "number", "to (epoch seconds; default: now)")],
            "responses": {**_ok("one entry per minute, oldest first", {
                "type": "object", "properties": {
                    "since": {"type": "number"}, "until": {"type": "number"},
                    "minutes": {"type": "array", "items": {
                        "type": "object", "properties": {
                            "minute": {"type": "integer"}, "calls": {"type": "integer"},
                            "outcomes": {"type": "object", "additionalProperties": {
                                "type": "integer"}},
                            "seized": {"type": "integer"}, "answered": {"type": "integer"},
                            "asr": {"type": ["number", "null"]},
                            "setup_avg": {"type": ["number", "null"]},
                            "setup_max": {"type": ["number", "null"]}}}}}}),
                "400": {"description": "a malformed time or a window over a day"}}}},
        "/api/servers": {"get": {"summary": "call servers: state and load",
                                 "responses": _ok("call servers", _ARRAY)}},
        "/api/openapi.json": {"get": {"summary": "this document",
                                      "responses": _ok("the OpenAPI document")}},
    },
}


class OpenApi(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(DOCUMENT).encode("utf-8")
