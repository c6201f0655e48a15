"""`POST /v1/messages`: the Anthropic Messages API as a surface on the one chat handler.

The Anthropic SDK (and tools built on it) send their request here unchanged; it is translated into the
internal chat request at the edge (`messages_format`) and then takes exactly the chat-completions path
(keys, limits, routing, policy, failover or cascade, the record). Answers, streams and errors go back in
Anthropic's shapes: a stream is `message_start`, content blocks (`text_delta`, `tool_use` with
`input_json_delta`), `message_delta` with the stop reason and usage, `message_stop`; a failure after the
stream started is an `error` event. The key may come as `x-api-key` (the SDK's default) or a Bearer token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gearshift.gateway.chat import handle_chat
from gearshift.gateway.messages_format import (
    FINISH_TO_STOP,
    anthropic_usage,
    error_body,
    obj,
    to_chat_request,
    to_message,
)
from gearshift.gateway.surface import StreamEncoder


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(data, separators=(",", ":"),
                                                          ensure_ascii=False).encode() + b"\n\n"


class _MessagesEncoder:
    """OpenAI chunks -> Messages events. Text and each tool call are content blocks, opened when their first
    delta comes and closed when the next block starts or the message ends."""

    def __init__(self, request_id: str) -> None:
        self._id = f"msg_{request_id}"
        self._started = False
        self._block = -1  # index of the open content block (-1: none yet)
        self._open: str | None = None  # "text" or "tool:<openai index>"
        self._stop = "end_turn"
        self._usage: dict[str, Any] | None = None

    def _start(self, data: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        return _event("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": data.get("model") or "",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})

    def _switch(self, kind: str, block: dict[str, Any]) -> bytes:
        if self._open == kind:
            return b""
        out = self._close()
        self._block += 1
        self._open = kind
        return out + _event("content_block_start", {"type": "content_block_start", "index": self._block,
                                                    "content_block": block})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def chunk(self, data: dict[str, Any]) -> bytes:
        out = self._start(data)
        if isinstance(data.get("usage"), dict):
            self._usage = data["usage"]
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Messages has one answer
            delta = obj(choice.get("delta"))
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._switch("text", {"type": "text", "text": ""})
                out += _event("content_block_delta", {"type": "content_block_delta", "index": self._block,
                                                      "delta": {"type": "text_delta", "text": delta["content"]}})
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                out += self._switch(f"tool:{call.get('index', 0)}", {
                    "type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or "", "input": {}})
                if fn.get("arguments"):
                    out += _event("content_block_delta", {"type": "content_block_delta", "index": self._block,
                                                          "delta": {"type": "input_json_delta",
                                                                    "partial_json": fn["arguments"]}})
            if choice.get("finish_reason"):
                self._stop = FINISH_TO_STOP.get(str(choice["finish_reason"]), "end_turn")
        return out

    def error(self, status: int, body: dict[str, Any]) -> bytes:
        return _event("error", error_body(status, body))

    def done(self) -> bytes:
        out = self._start({}) + self._close()
        usage = anthropic_usage(self._usage)
        out += _event("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": self._stop, "stop_sequence": None},
                                        "usage": usage})
        return out + _event("message_stop", {"type": "message_stop"})


class MessagesSurface:
    name = "messages"

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization")
        key = headers.get("x-api-key")
        return auth if auth or not key else f"Bearer {key}"

    def chat_request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return to_chat_request(payload)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return to_message(body, uuid.uuid4().hex)

    def error_body(self, status: int, body: dict[str, Any]) -> dict[str, Any]:
        return error_body(status, body)

    def encoder(self, request_id: str) -> StreamEncoder:
        return _MessagesEncoder(request_id)


MESSAGES = MessagesSurface()


async def messages(request: Request) -> Response:
    return await handle_chat(request, MESSAGES)
