"""The gateway's OpenAPI 3.1 description, served at `GET /openapi.json`.

Written by hand rather than generated: it documents what `requests.py` actually validates (and that
every other field passes through), so schemathesis can fuzz the real server against it and check that
bad input only ever meets a 4xx in the OpenAI error shape.
"""

from __future__ import annotations

from typing import Any

import gearshift
from gearshift.gateway.service import Gateway

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
    }},
}

_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "minLength": 1, "examples": ["user"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}, {"type": "null"}]},
    },
}

_CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "examples": ["gearshift/auto"]},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "stream_options": {"anyOf": [{"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
                                     {"type": "null"}]},
        "max_tokens": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
        "max_completion_tokens": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
        "n": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
    },
}

_COMPLETION = {
    "type": "object",
    "required": ["choices"],
    "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "model": {"type": "string"},
                   "choices": {"type": "array"}, "usage": {"type": "object"}},
}


_FEEDBACK = {
    "type": "object",
    "required": ["request_id", "signal"],
    "additionalProperties": False,
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "signal": {"type": "string", "enum": ["thumbs_up", "thumbs_down", "rating", "handoff"]},
        "value": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]},
        "comment": {"anyOf": [{"type": "string", "maxLength": 4000}, {"type": "null"}]},
    },
}

_LABEL = {"type": "object", "required": ["label"], "additionalProperties": False,
          "properties": {"label": {"type": "string", "enum": ["strong_needed", "cheap_ok", "skip"]}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "Invalid request", 401: "Missing or invalid API key", 403: "The key lacks the scope",
             404: "Unknown model or path", 413: "Request body too large",
             429: "Rate limit or budget exceeded, or every deployment rate-limited",
             502: "Every upstream deployment failed", 503: "Overloaded, draining, or decision log unavailable",
             504: "The request deadline passed", 500: "Server error (router reload: the old router keeps serving)"}
    return {str(c): {"description": words.get(c, "Error"),
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for c in codes}


def openapi_document(gw: Gateway | None = None) -> dict[str, Any]:
    """The document; `gw` adds the configured model ids as examples."""
    models = gw.resolver.model_ids() if gw is not None else ["gearshift/auto"]
    request = {**_CHAT_REQUEST, "properties": {**_CHAT_REQUEST["properties"],  # type: ignore[dict-item]
                                               "model": {"type": "string", "enum": models}}}
    secured: list[dict[str, list[str]]] = [{"bearer": []}] if gw is not None and gw.keys.enabled else []
    chat = {
        "summary": "OpenAI-compatible chat completion, routed between cheap and strong tiers",
        "operationId": "createChatCompletion",
        "security": secured,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}},
        "responses": {
            "200": {"description": "A completion (JSON) or, with `stream: true`, server-sent events",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
                                "text/event-stream": {"schema": {}}}},  # SSE: OpenAPI 3.1 cannot type events
            **_errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
        },
    }
    plain = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "gearshift gateway", "version": gearshift.__version__,
                 "description": "Routes OpenAI-style chat requests between cheap and strong models. "
                                f"Model ids: {', '.join(models)}."},
        "paths": {
            "/v1/chat/completions": {"post": chat},
            "/v1/models": {"get": {"operationId": "listModels", "security": secured,
                                   "responses": {"200": plain, **_errors(401)}}},
            "/healthz": {"get": {"operationId": "health", "security": [], "responses": {"200": plain}}},
            "/metrics": {"get": {"operationId": "metrics", "security": [], "responses": {"200": {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            **_closed_loop_paths(gw, secured),
            **_dashboard_paths(gw, secured),
            **_reload_paths(gw, secured),
        },
        "components": {
            "schemas": {"Error": _ERROR, "ChatCompletionRequest": request, "ChatCompletion": _COMPLETION,
                        "FeedbackRequest": _FEEDBACK, "TriageLabelRequest": _LABEL},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _closed_loop_paths(gw: Gateway | None, secured: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Feedback and triage exist only when the gateway runs a closed loop ([signals], [shadow] or [slo])."""
    if gw is None or getattr(gw, "closed_loop", None) is None:
        return {}
    obj = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/v1/feedback": {"post": {
            "summary": "Attach a user signal (thumbs, rating, hand-off) to the decision that produced an answer",
            "operationId": "createFeedback", "security": secured, "requestBody": _json_body("FeedbackRequest"),
            "responses": {"201": obj, **_errors(400, 401, 403, 404, 413)}}},
        "/v1/triage": {"get": {
            "summary": "The disagreement queue (needs the admin scope)", "operationId": "listTriage",
            "security": secured,
            "parameters": [
                {"name": "status", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["open", "labelled", "all"]}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": obj, **_errors(400, 401, 403)}}},
        "/v1/triage/{item_id}/label": {"post": {
            "summary": "Label one triage item (needs the admin scope)", "operationId": "labelTriageItem",
            "security": secured,
            "parameters": [{"name": "item_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}],
            "requestBody": _json_body("TriageLabelRequest"),
            "responses": {"200": obj, **_errors(400, 401, 403, 404, 413)}}},
    }


def _reload_paths(gw: Gateway | None, secured: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Router hot reload (gateway/reload.py): documented when the gateway serves a registered `[router] version`."""
    if gw is None or gw.settings.router.version is None:
        return {}
    return {"/v1/admin/router/reload": {"post": {
        "summary": "Serve the registry's current [router] version now (needs the admin scope)",
        "operationId": "reloadRouter", "security": secured,
        "responses": {"200": {"description": "old and new version refs",
                              "content": {"application/json": {"schema": {"type": "object"}}}},
                      **_errors(400, 401, 403, 500)}}}}


def _dashboard_paths(gw: Gateway | None, secured: list[dict[str, list[str]]]) -> dict[str, Any]:
    if gw is None or not gw.settings.dashboard.enabled:
        return {}
    since = [{"name": "since", "in": "query", "required": False,
              "schema": {"type": "string", "pattern": r"^\d+(\.\d+)?[smhd]$"},
              "examples": {"hour": {"value": "1h"}}}]
    return {
        "/dashboard": {"get": {
            "summary": "The operator dashboard (HTML; needs the admin scope)", "operationId": "dashboard",
            "security": secured, "parameters": since,
            "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 403)}}},
        "/dashboard/api/summary": {"get": {
            "summary": "The dashboard's data as JSON (needs the admin scope)", "operationId": "dashboardSummary",
            "security": secured, "parameters": since,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors(400, 401, 403)}}},
    }
