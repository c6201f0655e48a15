"""Anthropic's Messages API (`POST {base_url}/v1/messages`) as a `ChatProvider`.

The HTTP side (pooled session, size limits, timeouts, `retry-after`, key scrubbing) is the OpenAI provider's;
this module only changes the URL, the headers (`x-api-key`, `anthropic-version`) and the wire format, both
ways (`anthropic_format`). HTTP 529 (`overloaded_error`) is a retryable 5xx like any other. Streams are
translated event by event into OpenAI chunks, so failover, the first-token rule and the gateway's SSE
handler work unchanged: `message_start` gives the role header, `text_delta` content, `tool_use` blocks and
their `input_json_delta`s become `tool_calls` deltas, `message_delta` the finish reason, `message_stop` the
usage chunk and the end.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from gearshift.errors import ProviderError, UntranslatableError
from gearshift.providers.anthropic_format import (
    CLIENT_ERROR_TYPES,
    DEFAULT_VERSION,
    STOP_TO_FINISH,
    from_anthropic,
    openai_usage,
    to_anthropic,
)
from gearshift.providers.base import Deployment, StreamChunk
from gearshift.providers.openai_compat import OpenAICompatProvider, StreamTranslator
from gearshift.providers.sse import SSEEvent

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider(OpenAICompatProvider):
    """`ChatProvider` for the Anthropic Messages API. `base_url` is the API root (no `/v1`), as in Anthropic's SDK."""

    def __repr__(self) -> str:
        return f"AnthropicProvider(max_response_bytes={self.max_response_bytes})"

    def _url(self, deployment: Deployment, *, stream: bool) -> str:
        return (deployment.base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"

    def _headers(self, deployment: Deployment, *, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json",
                   "anthropic-version": deployment.api_version or DEFAULT_VERSION}
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        return headers

    def _payload(self, deployment: Deployment, request: dict[str, Any], *, stream: bool) -> bytes:
        try:
            body = to_anthropic(request, deployment.model, stream=stream)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:  # a malformed field the chat schema let by
            raise UntranslatableError(f"request cannot be sent to Anthropic: malformed field ({type(exc).__name__})"
                                      ) from None
        try:
            return orjson.dumps(body)
        except (TypeError, orjson.JSONEncodeError):
            return json.dumps(body, separators=(",", ":")).encode()

    def _answer(self, deployment: Deployment, obj: dict[str, Any], body: bytes, status: int) -> dict[str, Any]:
        if obj.get("type") == "error":
            raise self._invalid(deployment, f"error object: {_message(obj)}", status)
        try:
            return from_anthropic(obj)
        except ValueError as exc:
            raise self._invalid(deployment, str(exc), status) from None

    def _translator(self, deployment: Deployment, request: dict[str, Any], status: int) -> StreamTranslator:
        return _AnthropicStream(self, deployment, status)


def _message(obj: dict[str, Any]) -> str:
    err = obj.get("error")
    if isinstance(err, dict):
        return f"{err.get('type')}: {err.get('message')}"
    return str(err)


class _AnthropicStream:
    """One Messages stream's state: the message id and model, tool blocks' positions, the usage so far."""

    def __init__(self, provider: AnthropicProvider, deployment: Deployment, status: int) -> None:
        self._provider, self._deployment, self._status = provider, deployment, status
        self._id = ""
        self._model = deployment.model
        self._created = int(time.time())
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._usage: dict[str, Any] = {}
        self._finish: str | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> StreamChunk:
        return StreamChunk({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                            "model": self._model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        if event.event == "error":
            raise self._error(event)
        obj = self._provider._event_object(self._deployment, event, self._status)
        kind = obj.get("type")
        if kind == "message_start":
            msg = obj.get("message") or {}
            self._id, self._model = str(msg.get("id") or ""), str(msg.get("model") or self._model)
            self._usage.update(msg.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = obj.get("content_block") or {}
            if block.get("type") == "tool_use":
                n = self._tools[int(obj.get("index") or 0)] = len(self._tools)
                return [self._chunk({"tool_calls": [{"index": n, "id": block.get("id") or "", "type": "function",
                                                     "function": {"name": block.get("name") or "",
                                                                  "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = obj.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text") or ""})]
            if delta.get("type") == "input_json_delta":
                tool = self._tools.get(int(obj.get("index") or 0))
                if tool is None:
                    raise ProviderError(f"upstream {self._deployment.name!r} sent input_json_delta outside a tool "
                                        "block", upstream_status=self._status, retryable=True)
                args = delta.get("partial_json") or ""
                return [self._chunk({"tool_calls": [{"index": tool, "function": {"arguments": args}}]})]
            return []  # thinking and signature deltas: not part of an OpenAI answer
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
            reason = (obj.get("delta") or {}).get("stop_reason")
            if reason:
                self._finish = STOP_TO_FINISH.get(str(reason), "stop")
                return [self._chunk({}, self._finish)]
            return []
        if kind == "message_stop":
            usage = StreamChunk({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                                 "model": self._model, "choices": [], "usage": openai_usage(self._usage)})
            return [usage, StreamChunk(None, done=True)]
        return []  # ping, and event types added later

    def end(self) -> list[StreamChunk]:
        return []  # without message_stop the answer was cut

    def _error(self, event: SSEEvent) -> ProviderError:
        try:
            obj = json.loads(event.data)
        except ValueError:
            obj = {}
        err = obj.get("error") if isinstance(obj, dict) else None
        kind = err.get("type") if isinstance(err, dict) else None
        exc = self._provider._stream_error(self._deployment, event.data, self._status)
        if isinstance(kind, str):  # the error's type says more than its message ("Overloaded")
            exc = ProviderError(exc.message.replace("stream error: ", f"stream error: {kind[:40]}: ", 1),
                                upstream_status=self._status)
        exc.retryable = kind not in CLIENT_ERROR_TYPES
        if kind == "overloaded_error":
            exc.upstream_status = 529
        return exc
