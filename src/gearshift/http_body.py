"""Reading a JSON request body with a size limit: the gateway's routes and the extensions' routes alike.

Whatever `parse_json` returns is safe for everything downstream (language detection, conversation pins,
records, export): no lone UTF-16 surrogate in any string (they cannot be encoded as UTF-8, so they would
crash the first `.encode()`, possibly after the upstream was paid) and no nesting deeper than a limit
(which would end in a `RecursionError`). Both are refused with a 400 here, before any upstream call.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import orjson
from starlette.requests import Request

from gearshift.errors import InvalidRequestError, PayloadTooLargeError

#: Deepest nesting of objects/arrays a body may have. OpenAI bodies (tools' JSON schemas included) stay far
#: below; the json module's fallback parser would raise RecursionError near 1000.
MAX_JSON_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


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


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A JSON object, or `InvalidRequestError` (400): bad JSON, too deep, or a lone surrogate."""
    try:
        payload = orjson.loads(raw)  # strict UTF-8: never returns a lone surrogate
        strict = True
    except orjson.JSONDecodeError:  # the json module decides (NaN, UTF-16, \\ud800 escapes...) and words the error
        payload = _json_loads(raw)
        strict = False
    if not isinstance(payload, dict):
        raise InvalidRequestError("request body must be a JSON object")
    # no object/array can be deeper than the count of opening brackets: the walk is skipped on ordinary bodies
    if not strict or raw.count(b"[") + raw.count(b"{") > max_depth:
        check_json_value(payload, max_depth=max_depth, check_text=not strict)
    return payload


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH, check_text: bool = True) -> None:
    """Raise a 400 naming the place (`messages.0.content`) of the first lone surrogate or too-deep nesting.

    Iterative (an explicit stack), so a deep value cannot exhaust the interpreter's recursion limit here.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if check_text and _SURROGATE.search(node):
                _surrogate_error(path)
            continue
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if len(path) >= max_depth:
            raise InvalidRequestError(f"request body is nested deeper than {max_depth} levels",
                                      param=".".join(path) or None)
        for key, child in items:
            if check_text and isinstance(key, str) and _SURROGATE.search(key):
                _surrogate_error(path)
            stack.append((child, (*path, str(key))))


def replace_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD.

    For JSON from upstreams, which cannot be refused once paid for: what the gateway forwards, records and
    hashes must encode as UTF-8. Unchanged (the same object) when there is nothing to replace.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value


def _surrogate_error(path: tuple[str, ...]) -> NoReturn:
    where = ".".join(path) or "body"
    raise InvalidRequestError(f"invalid string at '{where}': it contains a lone UTF-16 surrogate (an escape "
                              "such as \\ud800 without its pair), which is not Unicode text", param=where)


def _json_loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError("request body is nested too deeply to parse") from None
