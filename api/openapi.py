"""The OpenAPI 3.0 description served at ``/openapi.json``.

Written by hand, checked by ``tests/test_api_shell.py`` against ``app.url_map``: every route
and method is documented, nothing else is, and each operation's ``x-roles`` and query
parameters match the guard on its view.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"}}


def _query_param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


AUTH_ERRORS = {
    "401": _error("No credentials, an unknown API key, or a malformed, tampered or expired reader token"),
    "403": _error("Authenticated but not allowed: a key whose role lacks the access (x-roles), or a token for "
                  "another reader"),
    "429": _error("Too many requests for this API key, reader token or (without valid credentials) client "
                  "address; retry after the `Retry-After` seconds"),
}
BODY_ERRORS = {
    "400": _error("Malformed JSON, unknown field or invalid record (batch: `details` lists each bad index)"),
    "413": _error("Body larger than MAX_CONTENT_LENGTH (1 MiB by default), chunked bodies included"),
    "415": _error("Body is not JSON (send Content-Type: application/json)"),
}
STORE_ERROR = {"503": _error("Database busy (Retry-After: 1) or its disk failing (Retry-After: 5; /readyz says "
                              "degraded meanwhile); nothing was stored, retry after the `Retry-After` seconds")}


def _op(summary: str, tag: str, roles: list[str] | None, responses: dict, *, params: list | None = None,
        body: dict | None = None, description: str | None = None, body_required: bool = True) -> dict:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": dict(responses)}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {JSON: {"schema": body}}}
    if roles is None:
        op["security"] = []
        op["x-roles"] = []
    else:
        security = [{"apiKey": []}]
        if "reader" in roles:
            security.append({"readerToken": []})
        op["security"] = security
        op["x-roles"] = roles
        op["responses"].update(AUTH_ERRORS)
    return op


LIMIT_RELATED = _query_param("limit", "How many articles (1-50)", {"type": "integer", "minimum": 1, "maximum": 50,
                                                                    "default": 10})
LIMIT_FEED = _query_param("limit", "How many articles (1-100)", {"type": "integer", "minimum": 1, "maximum": 100,
                                                                 "default": 20})
ARTICLE_ID = _path_param("article_id", "Article id as the CMS knows it")
USER_ID = _path_param("user_id", "Reader id as the site knows it (pseudonymous)")
UNKNOWN_PARAM = {"400": _error("Unknown query parameter, or a parameter out of range")}
BAD_PATH_ID = {"400": _error("Malformed id in the path (1-128 of letters, digits and . _ : @ -)")}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "Stable code, e.g. validation_error, unauthorized"},
            "message": {"type": "string", "description": "What went wrong and how to fix it"},
            "details": {"type": "array", "items": {
                "type": "object", "properties": {"index": {"type": "integer"}, "message": {"type": "string"}}}},
        },
    },
    "RankedItem": {
        "type": "object",
        "required": ["article_id", "title", "url", "category", "region", "published_at", "score", "reason"],
        "properties": {
            "article_id": {"type": "string"}, "title": {"type": "string"},
            "url": {"type": "string", "nullable": True}, "category": {"type": "string"},
            "region": {"type": "string", "nullable": True},
            "published_at": {"type": "string", "format": "date-time", "description": "ISO-8601 in WIB (+07:00)"},
            "score": {"type": "number", "nullable": True},
            "reason": {"type": "string", "description": "Why this article, in words a reader understands"},
        },
    },
    "RelatedList": {
        "type": "object", "required": ["article_id", "items", "strategy", "model_version", "list_id"],
        "properties": {
            "article_id": {"type": "string"}, "items": {"type": "array", "items": _ref("RankedItem")},
            "strategy": {"type": "string"}, "model_version": {"type": "string", "nullable": True},
            "list_id": {"type": "string", "description": "Send back as list_id on events for attribution"},
        },
    },
    "Feed": {
        "type": "object", "required": ["user_id", "items", "strategy", "model_version", "list_id", "next_cursor"],
        "properties": {
            "user_id": {"type": "string"}, "items": {"type": "array", "items": _ref("RankedItem")},
            "strategy": {"type": "string"}, "model_version": {"type": "string", "nullable": True},
            "list_id": {"type": "string"},
            "next_cursor": {"type": "string", "nullable": True,
                            "description": "Pass as cursor for this reader's next page: it names the articles the pages"
                                           " so far served, so the next one repeats none of them; null at the end"},
        },
    },
    "Event": {
        "type": "object", "required": ["user_id", "article_id", "event", "ts"], "additionalProperties": False,
        "properties": {
            "user_id": {"type": "string"}, "article_id": {"type": "string"},
            "event": {"type": "string", "enum": ["impression", "click", "read", "share"]},
            "ts": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                   "description": "ISO-8601 (no offset = WIB) or epoch seconds"},
            "dwell_seconds": {"type": "number", "minimum": 0, "maximum": 86400},
            "event_id": {"type": "string", "description": "Idempotency key; a resent event counts once"},
            "list_id": {"type": "string"}, "position": {"type": "integer", "minimum": 0, "maximum": 10000},
            "history": {"type": "boolean"},
        },
    },
    "EventBatch": {
        "oneOf": [_ref("Event"), {"type": "object", "required": ["events"], "additionalProperties": False,
                                  "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000,
                                                            "items": _ref("Event")}}}],
    },
    "Article": {
        "type": "object", "required": ["article_id", "title", "category", "published_at"],
        "additionalProperties": False,
        "properties": {
            "article_id": {"type": "string"}, "title": {"type": "string", "maxLength": 1000},
            "body": {"type": "string", "maxLength": 200000}, "category": {"type": "string"},
            "region": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
            "url": {"type": "string"}, "language": {"type": "string", "default": "id"},
            "published_at": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
        },
    },
    "ArticleBatch": {
        "oneOf": [_ref("Article"), {"type": "object", "required": ["articles"], "additionalProperties": False,
                                    "properties": {"articles": {"type": "array", "minItems": 1, "maxItems": 500,
                                                                "items": _ref("Article")}}}],
    },
    "PreferencesInput": {
        "type": "object", "additionalProperties": False,
        "properties": {"categories": _ref("Labels"), "regions": _ref("Labels"),
                       "user_id": {"type": "string", "nullable": True,
                                   "description": "Optional; must equal the path"}},
    },
    "Labels": {
        "oneOf": [{"type": "array", "items": {"type": "string", "nullable": True}},
                  {"type": "string", "description": "Separated by , | or ;"}],
        "nullable": True, "description": "A list (blank and null entries are ignored), a separated string, or null",
    },
    "Preferences": {
        "type": "object", "required": ["user_id", "categories", "regions"],
        "properties": {"user_id": {"type": "string"},
                       "categories": {"type": "array", "items": {"type": "string"}},
                       "regions": {"type": "array", "items": {"type": "string"}}},
    },
    "Status": {
        "type": "object", "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "degraded"]},
            "model_version": {"type": "string", "nullable": True}, "degraded": {"type": "boolean"},
            "live_version": {"type": "string", "nullable": True,
                             "description": "the version the database names live (what every replica should serve)"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "last_reload_error": {"type": "string", "nullable": True},
            "articles_in_window": {"type": "integer"},
        },
    },
}

SITE_OR_READER = ["admin", "site", "reader"]
CMS = ["admin", "editor", "cms"]
EDITOR = ["admin", "editor"]
ADMIN = ["admin"]

PATHS: dict[str, Any] = {
    "/v1/articles/{article_id}/related": {"get": _op(
        "Articles related to one article", "lists", SITE_OR_READER,
        {"200": _ok(_ref("RelatedList")), "404": _error("Unknown or taken-down article"), **UNKNOWN_PARAM},
        params=[ARTICLE_ID, LIMIT_RELATED,
                _query_param("user_id", "Leave out what this reader has read; a reader token implies its own "
                                        "reader and may not name another", {"type": "string"})],
    )},
    "/v1/users/{user_id}/feed": {"get": _op(
        "A reader's personalized feed (unknown readers get a cold-start list)", "lists", SITE_OR_READER,
        {"200": _ok(_ref("Feed")), "400": _error("Bad limit, unknown parameter or invalid cursor")},
        params=[USER_ID, LIMIT_FEED, _query_param("cursor", "next_cursor of the previous page, unchanged",
                                                  {"type": "string", "maxLength": 2048})],
        description="A reader token works for its own reader only.",
    )},
    "/v1/events": {"post": _op(
        "Record reader events (all-or-nothing; 200 only after a durable commit)", "events", SITE_OR_READER,
        {"200": _ok({"type": "object", "properties": {"accepted": {"type": "integer"},
                                                      "duplicates": {"type": "integer"}}}),
         **BODY_ERRORS, **STORE_ERROR},
        body=_ref("EventBatch"),
        description="1-1000 events. If any is invalid, nothing is stored and `details` lists each bad index, so "
                    "resending the fixed batch is safe. A reader token may only send its own reader's events. "
                    "A public `widget` key (the Artikel Terkait script) may only send clicks of user_id "
                    "`anonymous` with list_id and position (403 otherwise).",
    )},
    "/v1/articles": {"post": _op(
        "Publish or update articles (all-or-nothing)", "articles", CMS,
        {"200": _ok({"type": "object", "properties": {"accepted": {"type": "integer"}}}),
         **BODY_ERRORS, **STORE_ERROR},
        body=_ref("ArticleBatch"),
        description="For the newsroom's CMS: cms, editor and admin keys (site keys get 403). Publishing a "
                    "taken-down article again restores it. Titles and labels hold no control characters, bodies "
                    "only line breaks and tabs; url must be an http(s) link.",
    )},
    "/v1/articles/{article_id}": {"delete": _op(
        "Take an article down now", "articles", EDITOR,
        {"200": _ok({"type": "object", "properties": {"article_id": {"type": "string"},
                                                      "taken_down": {"type": "boolean"}}}),
         "404": _error("Unknown article"), **BAD_PATH_ID},
        params=[ARTICLE_ID],
        description="Sticky: publishing or re-importing the article keeps it down; only a restore brings it back.",
    )},
    "/v1/admin/articles/{article_id}/restore": {"post": _op(
        "Undo a takedown (every worker and host within a list request)", "articles", EDITOR,
        {"200": _ok({"type": "object", "properties": {"article_id": {"type": "string"},
                                                      "restored": {"type": "boolean"}}}),
         "404": _error("Unknown article"), **BAD_PATH_ID},
        params=[ARTICLE_ID],
    )},
    "/v1/users/{user_id}/preferences": {
        "get": _op("A reader's followed categories and regions", "users", SITE_OR_READER,
                   {"200": _ok(_ref("Preferences")), "404": _error("No preferences stored"), **BAD_PATH_ID},
                   params=[USER_ID], description="A reader token works for its own reader only."),
        "put": _op("Replace a reader's preferences", "users", SITE_OR_READER,
                   {"200": _ok(_ref("Preferences")), **BODY_ERRORS},
                   params=[USER_ID], body=_ref("PreferencesInput"),
                   description="A reader token works for its own reader only."),
    },
    "/v1/users/{user_id}": {"delete": _op(
        "Forget a reader: delete their events and preferences", "users", ADMIN,
        {"200": _ok({"type": "object", "properties": {"user_id": {"type": "string"},
                                                      "removed": {"type": "object"}}}), **BAD_PATH_ID},
        params=[USER_ID],
    )},
    "/v1/admin/reload": {"post": _op(
        "Load the live (or a given) model version beside the old one and swap; a given one is made live",
        "admin", ADMIN,
        {"200": _ok({"type": "object", "properties": {"model_version": {"type": "string"},
                                                      "previous_version": {"type": "string", "nullable": True}}}),
         "409": _error("reload_failed: the bundle cannot be loaded, the previous model keeps serving; "
                       "promotion_conflict: the live version is not the expected one, nothing changed"),
         **BODY_ERRORS},
        body={"type": "object", "additionalProperties": False, "properties": {
            "version": {"type": "string", "nullable": True, "description": "Omitted or null: the live version"},
            "expected": {"type": "string", "nullable": True,
                         "description": "With a version: only if this version (null: none) is live now "
                                        "(compare-and-set); default: the live version when the request arrives"}}},
        body_required=False,
        description="The body is optional. A given version that loads here is also made live in the database (like "
                    "`newsrec models promote`), so every worker of every replica serves it within seconds; one that "
                    "fails to load is never made live.",
    )},
    "/v1/admin/models": {"get": _op(
        "Model bundles on disk and the one this worker serves", "admin", ADMIN,
        {"200": _ok({"type": "object", "properties": {"models": {"type": "array", "items": {"type": "object"}},
                                                      "serving": {"type": "string", "nullable": True}}})},
    )},
    "/widget/articles/{article_id}/related": {"get": _op(
        "The Artikel Terkait box as an HTML fragment (public: no key; rate-limited per client address)", "widget",
        None,
        {"200": {"description": "HTML fragment, `Cache-Control: public, max-age=60`, CORS for any origin",
                 "content": {"text/html": {"schema": {"type": "string"}}}},
         "404": _error("Unknown or taken-down article"), **UNKNOWN_PARAM},
        params=[ARTICLE_ID, LIMIT_RELATED],
        description="The related list readers get (logged as the anonymous reader's), with section labels, "
                    "Indonesian relative times and headlines linking to the articles; every field escaped.",
    )},
    "/widget/embed.js": {"get": _op(
        "Script filling each `<div data-newsrec-related=ID>` with the fragment and reporting clicks", "widget",
        None, {"200": {"description": "JavaScript", "content": {"text/javascript": {"schema": {"type": "string"}}}}},
        description="Clicks go to POST /v1/events with the script tag's `data-newsrec-key`: a public `widget` "
                    "key, which may only post click events of user_id `anonymous` with list_id and position.",
    )},
    "/healthz": {"get": _op("Liveness: the process answers", "ops", None,
                            {"200": _ok({"type": "object", "properties": {"status": {"type": "string"}}})})},
    "/readyz": {"get": _op(
        "Readiness: 200 ready or degraded (no model loaded, the live version failed to load here, or "
        "writes failing at the disk; see reasons), 503 if the store cannot be reached", "ops", None,
        {"200": _ok(_ref("Status")), "503": _error("Store unreachable")},
    )},
    "/metrics": {"get": _op("Prometheus metrics (text exposition format)", "ops", None,
                            {"200": {"description": "Prometheus text", "content": {"text/plain": {
                                "schema": {"type": "string"}}}}})},
    "/openapi.json": {"get": _op("This document", "ops", None, {"200": _ok({"type": "object"})})},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "newsrec",
        "version": "1",
        "description": "Related articles and personalized feeds for an Indonesian news portal. Every error is "
                       '`{"error": code, "message": text}` (gunicorn\'s own 400/414/431 included); every response '
                       "carries X-Request-ID. Each API key, reader token and anonymous client address has a rate "
                       "limit on /v1 (429 with Retry-After). "
                       "`x-roles` on each operation lists who may call it: admin, editor, cms or site key, reader token. "
                       "Site keys read lists and post events and preferences; cms keys publish and edit articles; "
                       "editor keys also take them down.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "Key from 'newsrec keys add --role site|cms|editor|admin|widget'"},
            "readerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "v2.<b64u user>.<issued ms>.<expiry>.<b64u sig>",
                            "description": "HMAC-SHA256 reader token; see recommender/security.py"},
        },
    },
}
