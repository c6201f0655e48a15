"""Reading a JSON request body with a size limit: the gateway's routes and the extensions' routes alike."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request

from gearshift.errors import InvalidRequestError, PayloadTooLargeError


async def read_body(request: Request, limit: int, setting: str | None = None) -> bytes:
    """The body, refusing (413) a declared or actual size over `limit` without buffering past it.

    `setting` names the config key that raises the limit, so the error tells the client what to ask for.
    """
    knob = f" (the gateway's {setting} setting)" if setting else ""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {int(declared)} bytes exceeds the {limit}-byte limit{knob}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the {limit}-byte limit{knob}")
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
