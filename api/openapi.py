"""The OpenAPI 3.0 description served at ``/openapi.json``.

Written by hand, checked by ``tests/test_api_shell.py`` against ``app.url_map``: every route
and method is documented, nothing else is, and each operation's ``x-roles`` and query
parameters match the guard on its view.
"""

from __future__ import annotations

from typing import Any

from recommender.domain import ID_PATTERN

JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


# an id in a JSON body (recommender.domain.check_id): inline, as OpenAPI 3.0 ignores what sits beside a $ref
ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": f"^{ID_PATTERN.pattern}$",
      "description": "1-128 letters, digits and . _ : @ -, starting with a letter or digit"}


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
UNKNOWN_PARAM = {"400": _error("Unknown query parameter, one given twice, or one out of range")}
SECTION_PARAMS = [
    _query_param("category", "Section filter: comma-separated category names, any case (e.g. politik,ekonomi). "
                             "Still personalized and diversified; an unknown or empty section answers an empty list "
                             "with `empty_reason`", {"type": "string"}),
    _query_param("region", "Regional edition filter: comma-separated region names (e.g. jawa-barat)",
                 {"type": "string"}),
]
SCOPE = {"type": "object", "required": ["list"], "additionalProperties": False, "properties": {
    "list": {"type": "string", "enum": ["feed", "related"]},
    "category": {"type": "string", "description": "feed: feeds filtered to this section; related: lists under its "
                                                  "articles (or filtered to it)"},
    "region": {"type": "string", "description": "as category, for a regional edition"},
    "article_id": {"type": "string", "description": "related only: the lists under this article"},
    "story": {"type": "string", "description": "related only: the lists under any article of this article's story"},
}, "description": "Which lists a rule covers. Only list: every feed (or every related list). Every key given "
                  "must match."}
PIN_ID = _path_param("pin_id", "Pin id from POST /v1/admin/pins")
RULE_ID = _path_param("rule_id", "Rule id from POST /v1/admin/rules")
RULE_RESPONSE = {"type": "object", "description": "The rule as stored; `active`: it applies now"}
BAD_PATH_ID = {"400": _error("Malformed id in the path (1-128 of letters, digits and . _ : @ -)")}

# what a served list inside an experiment adds beside model_version (absent outside experiments)
EXPERIMENT_FIELDS = {
    "experiment": {"type": "string", "description": "The experiment this list belongs to (only inside one)"},
    "variant": {"type": "string", "description": "The reader's variant; interleaving: both labels, e.g. A+B"},
    "teams": {"type": "array", "items": {"type": "string"},
              "description": "Interleaving only: the variant that contributed each item, in list order"},
}

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
            "empty_reason": {"type": "string", "description": "Only on an empty list: why (e.g. an unknown section)"},
            **EXPERIMENT_FIELDS,
        },
    },
    "Feed": {
        "type": "object", "required": ["user_id", "items", "strategy", "model_version", "list_id", "next_cursor"],
        "properties": {
            "user_id": {"type": "string"}, "items": {"type": "array", "items": _ref("RankedItem")},
            "strategy": {"type": "string"}, "model_version": {"type": "string", "nullable": True},
            "list_id": {"type": "string"}, **EXPERIMENT_FIELDS,
            "empty_reason": {"type": "string", "description": "Only on an empty list: why (e.g. an unknown section)"},
            "next_cursor": {"type": "string", "nullable": True,
                            "description": "Pass as cursor for this reader's next page: it names the articles the pages"
                                           " so far served, so the next one repeats none of them; null at the end"},
        },
    },
    "Event": {
        "type": "object", "required": ["user_id", "article_id", "event", "ts"], "additionalProperties": False,
        "properties": {
            "user_id": ID, "article_id": ID,
            "event": {"type": "string", "enum": ["impression", "click", "read", "share", "hide"]},
            "ts": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                   "description": "ISO-8601 (no offset = WIB) or epoch seconds"},
            "dwell_seconds": {"type": "number", "minimum": 0, "maximum": 86400, "nullable": True},
            "event_id": {**ID, "nullable": True, "description": "Idempotency key; a resent event counts once"},
            "list_id": {**ID, "nullable": True}, "position": {"type": "integer", "minimum": 0, "maximum": 10000,
                                                          "nullable": True},
            "history": {"type": "boolean", "nullable": True, "description": "null: false"},
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
            "article_id": ID, "title": {"type": "string", "maxLength": 1000},
            "body": {"type": "string", "maxLength": 200000, "nullable": True}, "category": {"type": "string"},
            "region": {"type": "string", "nullable": True},
            "tags": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "url": {"type": "string", "nullable": True},
            "language": {"type": "string", "default": "id", "nullable": True},
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
        "type": "array", "items": {"type": "string", "nullable": True},
        "nullable": True, "description": "A list (blank and null entries are ignored) or null; a string is 400",
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
                _query_param("user_id", "Leave out what this reader has read or hidden; a reader token implies its "
                                        "own reader and may not name another", {"type": "string"}),
                _query_param("anonymous_id", "The page view's visitor id: assigns a visitor without user_id to an "
                                             "experiment's variant (not stored)", {"type": "string"}), *SECTION_PARAMS],
    )},
    "/v1/users/{user_id}/feed": {"get": _op(
        "A reader's personalized feed (unknown readers get a cold-start list)", "lists", SITE_OR_READER,
        {"200": _ok(_ref("Feed")), "400": _error("Bad limit, unknown parameter or invalid cursor")},
        params=[USER_ID, LIMIT_FEED, _query_param("cursor", "next_cursor of the previous page, unchanged",
                                                  {"type": "string", "maxLength": 2048}), *SECTION_PARAMS],
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
    "/v1/admin/pins": {
        "post": _op(
            "Pin an article at a position of feeds or related lists, from starts_at until expires_at", "editorial",
            EDITOR, {"201": _ok({"type": "object", "properties": {"pin_id": {"type": "string"}}}, "Created"),
                     "404": _error("The store holds no such article (the pinned one, or the one whose related "
                                   "lists the scope names): publish it first"),
                     **BODY_ERRORS, **STORE_ERROR},
            body={"type": "object", "required": ["article_id", "position", "scope", "expires_at"],
                  "additionalProperties": False, "properties": {
                      "article_id": {"type": "string"},
                      "position": {"type": "integer", "minimum": 1, "maximum": 100, "description": "1 = first"},
                      "scope": SCOPE,
                      "starts_at": {"type": "string", "description": "ISO-8601 or epoch seconds; default now"},
                      "expires_at": {"type": "string", "description": "ISO-8601 or epoch seconds"}}},
            description="Every worker applies it within a second and drops it at expiry without a restart. A pin "
                        "is shown only where its article could be: published, not taken down or blocked, in the "
                        "section asked for, not read or hidden by the reader, not on an earlier page of the feed; "
                        "diversity rules order the rest of the list. Of two pins for one position the newer wins. "
                        "Audited (GET /v1/admin/audit)."),
        "get": _op("Pins in force (expired ones until deleted), with `active`", "editorial", EDITOR,
                   {"200": _ok({"type": "object", "properties": {"pins": {"type": "array",
                                                                          "items": RULE_RESPONSE}}})}),
    },
    "/v1/admin/pins/{pin_id}": {"delete": _op(
        "Remove a pin now (audited)", "editorial", EDITOR,
        {"200": _ok({"type": "object", "properties": {"pin_id": {"type": "string"}, "removed": {"type": "boolean"}}}),
         "404": _error("No such pin in force"), **BAD_PATH_ID}, params=[PIN_ID])},
    "/v1/admin/rules": {
        "post": _op(
            "Boost, bury or block articles, a category or a region in some lists", "editorial", EDITOR,
            {"201": _ok({"type": "object", "properties": {"rule_id": {"type": "string"}}}, "Created"),
             "404": _error("The scope names the related lists of an article the store does not hold: publish "
                           "it first (a target article may be one still to come)"),
             **BODY_ERRORS, **STORE_ERROR},
            body={"type": "object", "required": ["kind", "target", "scope"], "additionalProperties": False,
                  "properties": {
                      "kind": {"type": "string", "enum": ["boost", "bury", "block"]},
                      "target": {"type": "object", "description": 'exactly one of {"article_id"}, {"category"}, '
                                                                  '{"region"}'},
                      "scope": SCOPE,
                      "factor": {"type": "number", "description": "boost: above 1 (at most 100); bury: below 1 "
                                                                  "(at least 0.01); none for a block. Scales the "
                                                                  "score's distance above the list's lowest"},
                      "starts_at": {"type": "string"}, "expires_at": {"type": "string", "nullable": True}}},
            description="A block keeps matching articles out of the lists its scope covers (a per-section "
                        "blocklist: scope category/region). Without expires_at a rule stays until deleted."),
        "get": _op("Boosts, buries and blocks in force, with `active`", "editorial", EDITOR,
                   {"200": _ok({"type": "object", "properties": {"rules": {"type": "array",
                                                                           "items": RULE_RESPONSE}}})}),
    },
    "/v1/admin/rules/{rule_id}": {"delete": _op(
        "Remove a boost, bury or block now (audited)", "editorial", EDITOR,
        {"200": _ok({"type": "object", "properties": {"rule_id": {"type": "string"},
                                                      "removed": {"type": "boolean"}}}),
         "404": _error("No such rule in force"), **BAD_PATH_ID}, params=[RULE_ID])},
    "/v1/admin/audit": {"get": _op(
        "Every change to pins and rules, newest first: who (API key id), when, what", "editorial", EDITOR,
        {"200": _ok({"type": "object", "properties": {"audit": {"type": "array", "items": {"type": "object"}}}}),
         **UNKNOWN_PARAM},
        params=[_query_param("limit", "How many entries (1-1000)", {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                     "default": 100}),
                _query_param("rule_id", "Only this pin's or rule's entries", {"type": "string"})])},
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

SCHEMAS["ExperimentInput"] = {
    "type": "object", "required": ["name", "variants"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"},
        "variants": {"type": "array", "minItems": 2, "maxItems": 8, "description": "The first is the control",
                     "items": {"type": "object", "required": ["label", "model_version"], "properties": {
                         "label": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"},
                         "model_version": {"type": "string", "description": "A valid bundle in the models folder"},
                         "params": {"type": "object", "additionalProperties": {"type": "number"},
                                    "description": "RankingParams fields overriding the bundle's"},
                         "params_name": {"type": "string", "description": "Names the parameter set in config"}}}},
        "shares": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100},
                   "description": "Percent of readers per variant, summing to 100 (default equal; interleave "
                                  "mode splits every list 50/50 and refuses other shares)"},
        "lists": {"type": "array", "items": {"type": "string", "enum": ["feed", "related"]},
                  "description": "List types covered (default both)"},
        "mode": {"type": "string", "enum": ["ab", "interleave"], "default": "ab",
                 "description": "interleave: one list team-drafted from exactly two variants"},
        "salt": {"type": "string", "maxLength": 64, "description": "Default random"},
        "starts_at": {"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True,
                      "description": "Epoch seconds or ISO-8601 (answered as epoch seconds)"},
        "ends_at": {"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True,
                    "description": "Epoch seconds or ISO-8601 (answered as epoch seconds; when creating: in the future)"},
    },
}
SCHEMAS["Experiment"] = {
    "type": "object", "properties": {
        **SCHEMAS["ExperimentInput"]["properties"],
        "status": {"type": "string", "enum": ["scheduled", "running", "ended", "stopped"],
                   "description": "scheduled: before starts_at; ended: past ends_at; stopped: by hand"},
        "starts_at": {"type": "number", "nullable": True, "description": "Epoch seconds"},
        "ends_at": {"type": "number", "nullable": True, "description": "Epoch seconds"},
        "created_at": {"type": "number"}, "stopped_at": {"type": "number", "nullable": True},
    },
}
_VARIANT_REPORT = {"type": "object", "properties": {
    "lists": {"type": "integer"}, "impressions": {"type": "integer"}, "clicks": {"type": "integer"},
    "readers": {"type": "integer"}, "ctr": {"type": "number", "nullable": True},
    "ctr_ci": {"type": "array", "items": {"type": "number", "nullable": True}, "description": "95 % interval "
               "(delta method over readers, the randomization unit)"},
    "config": {"type": "string"}, "model_version": {"type": "string"},
    "by_position": {"type": "array", "items": {"type": "object", "properties": {
        "position": {"type": "integer"}, "shown": {"type": "integer"}, "clicks": {"type": "integer"},
        "ctr": {"type": "number"}, "ctr_ci": {"type": "array", "items": {"type": "number"}}}}},
}}
SCHEMAS["ExperimentReport"] = {
    "type": "object", "required": ["variants", "difference_ci", "srm_p"], "properties": {
        "experiment": {"type": "string"}, "mode": {"type": "string"},
        "status": {"type": "string", "enum": ["scheduled", "running", "ended", "stopped"]},
        "control": {"type": "string"},
        "variants": {"type": "object", "additionalProperties": _VARIANT_REPORT},
        "difference": {"type": "number", "nullable": True, "description": "CTR of the second variant minus the control's"},
        "difference_ci": {"type": "array", "items": {"type": "number", "nullable": True}},
        "differences": {"type": "object", "description": "Every variant against the control"},
        "srm_p": {"type": "number", "nullable": True,
                  "description": "Sample-ratio-mismatch chi-square p (interleaving: of the first pick's team); "
                                 "below 0.001 the split or the logging is broken"},
        "wins": {"type": "object", "description": "Interleaving only: lists won by each variant, ties, and the "
                                                  "second variant's share of decided lists with its 95 % interval"},
    },
}
EXPERIMENT_NAME = _path_param("name", "Experiment name")
PATHS["/v1/admin/experiments"] = {
    "post": _op("Create an experiment (every worker and replica assigns readers from then on)", "experiments", ADMIN,
                {"201": _ok(_ref("Experiment"), "Created"),
                 "409": _error("experiment_conflict: the name is taken, or a scheduled or running experiment "
                               "covers those lists at the same time"),
                 **BODY_ERRORS, **STORE_ERROR},
                body=_ref("ExperimentInput"),
                description="400 validation_error names the field to fix (also: a model version that is not a valid "
                            "bundle in the models folder, an ends_at not in the future, shares with interleave "
                            "mode)."),
    "get": _op("Every experiment (scheduled, running, ended or stopped)", "experiments", ADMIN,
               {"200": _ok({"type": "object", "properties": {"experiments": {"type": "array",
                                                                              "items": _ref("Experiment")}}})}),
}
PATHS["/v1/admin/experiments/{name}"] = {"get": _op(
    "One experiment's definition", "experiments", ADMIN,
    {"200": _ok(_ref("Experiment")), "404": _error("No experiment of that name"), **BAD_PATH_ID},
    params=[EXPERIMENT_NAME])}
PATHS["/v1/admin/experiments/{name}/stop"] = {"post": _op(
    "Stop an experiment: its readers get the normal lists again on every worker", "experiments", ADMIN,
    {"200": _ok(_ref("Experiment")), "404": _error("No experiment of that name"),
     "409": _error("experiment_conflict: stopped already, or past its end"), **BAD_PATH_ID, **STORE_ERROR},
    params=[EXPERIMENT_NAME], body={"type": "object"}, body_required=False)}
PATHS["/v1/admin/experiments/{name}/report"] = {"get": _op(
    "Lists, clicks, CTR with 95 % intervals, CTR by position, the difference to the control, the "
    "sample-ratio check and interleaving wins, counted from served lists and the clicks naming them",
    "experiments", ADMIN,
    {"200": _ok(_ref("ExperimentReport")), "404": _error("No experiment of that name"), **BAD_PATH_ID},
    params=[EXPERIMENT_NAME])}

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
