"""The client-facing wire format of a chat route: how its request becomes the internal (OpenAI) chat request,
and how the answer, the stream and errors go back out.

One chat handler (`gateway/chat.py`) serves every surface: authentication, validation, routing, the policy,
limits, the executor or cascade, and the record all run on the internal request. A surface only
translates at the edge, so `/v1/messages` cannot drift from `/v1/chat/completions`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import orjson


class StreamEncoder(Protocol):
    """One streamed answer's bytes on the wire, from the internal OpenAI chunks (holds that stream's state)."""

    def chunk(self, data: dict[str, Any]) -> bytes: ...

    def error(self, status: int, body: dict[str, Any]) -> bytes:
        """The event that ends a stream which failed after it started (`body` is the OpenAI error body)."""
        ...

    def done(self) -> bytes: ...


class Surface(Protocol):
    name: str

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        """The `Authorization` value the key checker reads (`Bearer <key>`)."""
        ...

    def chat_request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The internal chat request; raises `InvalidRequestError` for what this surface does not accept."""
        ...

    def answer(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def error_body(self, status: int, body: dict[str, Any]) -> dict[str, Any]: ...

    def encoder(self, request_id: str) -> StreamEncoder: ...


def sse_data(data: Any) -> bytes:
    """One `data:` event: compact UTF-8 JSON by orjson, the json module for what orjson refuses (huge integers)."""
    try:
        raw = orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError):
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return b"data: " + raw + b"\n\n"


class _OpenAIEncoder:
    def chunk(self, data: dict[str, Any]) -> bytes:
        return sse_data(data)

    def error(self, status: int, body: dict[str, Any]) -> bytes:
        return sse_data(body)

    def done(self) -> bytes:
        return b"data: [DONE]\n\n"


class OpenAISurface:
    """`/v1/chat/completions`: the internal format itself, so every method is the identity."""

    name = "chat"

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("authorization")

    def chat_request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def error_body(self, status: int, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def encoder(self, request_id: str) -> StreamEncoder:
        return _OpenAIEncoder()


OPENAI = OpenAISurface()
