"""Reading and validating a chat request body: size limit, JSON, then an OpenAI-shaped schema.

The schema checks only what the gateway relies on and allows every other field, so new OpenAI
parameters pass through to the upstream unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from gearshift.errors import InvalidRequestError, PayloadTooLargeError


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # no "1" -> true coercion (found by schemathesis)

    role: str = Field(min_length=1)
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # no "1" -> true coercion (found by schemathesis)

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # no "1" -> true coercion (found by schemathesis)

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    n: int | None = Field(default=None, ge=1)


#: the gateway operator's knob, named in the error so a client can ask for it by name
_RAISE_LIMIT = " (the gateway's [limits] max_body_bytes setting)"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) a declared or actual size over `limit` without buffering past it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {int(declared)} bytes exceeds the {limit}-byte limit"
                                   f"{_RAISE_LIMIT}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the {limit}-byte limit{_RAISE_LIMIT}")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:  # the json module decides (NaN, UTF-16...) and words the error
        payload = _json_loads(raw)
    if not isinstance(payload, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return payload


def _json_loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None


def validate_chat(payload: dict[str, Any]) -> ChatRequest:
    """Schema check; the error names the first offending field (`messages.0.role`) as `param`."""
    try:
        return ChatRequest.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise InvalidRequestError(f"invalid field '{loc}': {err['msg']}{more}", param=loc) from None
