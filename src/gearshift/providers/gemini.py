"""Google's Gemini API (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`) as a `ChatProvider`.

HTTP handling is the OpenAI provider's; this module changes the address (the model is in the URL, the key in
`x-goog-api-key`) and the wire format (`gemini_format`). A Gemini stream is a series of whole
`GenerateContentResponse` objects and ends at the end of the body, with no `[DONE]`: it counts as complete
only when a candidate carried a `finishReason`, so a cut stream is still an error. Function calls arrive
whole in one part, so each becomes one `tool_calls` delta carrying all its arguments.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import orjson

from gearshift.errors import UntranslatableError
from gearshift.providers.base import Deployment, StreamChunk
from gearshift.providers.gemini_format import (
    BLOCKED,
    DEFAULT_VERSION,
    finish_reason,
    from_gemini,
    message_of,
    openai_usage,
    to_gemini,
)
from gearshift.providers.openai_compat import OpenAICompatProvider, StreamTranslator
from gearshift.providers.sse import SSEEvent

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class GeminiProvider(OpenAICompatProvider):
    """`ChatProvider` for the Gemini API. `base_url` is the API root; `api_version` defaults to v1beta."""

    def __repr__(self) -> str:
        return f"GeminiProvider(max_response_bytes={self.max_response_bytes})"

    def _url(self, deployment: Deployment, *, stream: bool) -> str:
        root = (deployment.base_url or DEFAULT_BASE_URL).rstrip("/")
        model = quote(deployment.model.removeprefix("models/"), safe="")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{root}/{deployment.api_version or DEFAULT_VERSION}/models/{model}:{method}"

    def _headers(self, deployment: Deployment, *, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if deployment.api_key:
            headers["x-goog-api-key"] = deployment.api_key
        return headers

    def _payload(self, deployment: Deployment, request: dict[str, Any], *, stream: bool) -> bytes:
        try:
            body = to_gemini(request)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:  # a malformed field the chat schema let by
            raise UntranslatableError(f"request cannot be sent to Gemini: malformed field ({type(exc).__name__})"
                                      ) from None
        try:
            return orjson.dumps(body)
        except (TypeError, orjson.JSONEncodeError):
            return json.dumps(body, separators=(",", ":")).encode()

    def _answer(self, deployment: Deployment, obj: dict[str, Any], body: bytes, status: int) -> dict[str, Any]:
        if obj.get("error"):
            raise self._stream_error(deployment, body.decode("utf-8", "replace"), status)
        try:
            answer = from_gemini(obj)
        except ValueError as exc:
            raise self._invalid(deployment, str(exc), status) from None
        answer["model"] = answer["model"] or deployment.model
        return answer

    def _translator(self, deployment: Deployment, request: dict[str, Any], status: int) -> StreamTranslator:
        return _GeminiStream(self, deployment, status)


class _GeminiStream:
    """One stream's state: the role headers sent, tool calls counted per candidate, the finish seen, the usage."""

    def __init__(self, provider: GeminiProvider, deployment: Deployment, status: int) -> None:
        self._provider, self._deployment, self._status = provider, deployment, status
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._model = deployment.model
        self._created = int(time.time())
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}
        self._finished = False
        self._usage: dict[str, Any] | None = None

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> StreamChunk:
        return StreamChunk({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                            "model": self._model, "choices": [{"index": index, "delta": delta,
                                                               "finish_reason": finish}]})

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        obj = self._provider._event_object(self._deployment, event, self._status)
        self._id = str(obj.get("responseId") or self._id)
        self._model = str(obj.get("modelVersion") or self._model)
        if isinstance(obj.get("usageMetadata"), dict):
            self._usage = openai_usage(obj["usageMetadata"])
        out: list[StreamChunk] = []
        candidates = obj.get("candidates") or []
        if not candidates and (obj.get("promptFeedback") or {}).get("blockReason"):
            self._finished = True
            return [self._chunk(0, {"role": "assistant", "content": ""}), self._chunk(0, {}, BLOCKED)]
        for pos, cand in enumerate(candidates):
            i = int(cand.get("index") or pos)
            if i not in self._started:
                self._started.add(i)
                out.append(self._chunk(i, {"role": "assistant", "content": ""}))
            text, calls = message_of(cand, self._calls.get(i, 0))
            if text:
                out.append(self._chunk(i, {"content": text}))
            if calls:
                self._calls[i] = self._calls.get(i, 0) + len(calls)
                out.append(self._chunk(i, {"tool_calls": calls}))
            if cand.get("finishReason"):
                self._finished = True
                out.append(self._chunk(i, {}, finish_reason(cand["finishReason"], bool(self._calls.get(i)))))
        return out

    def end(self) -> list[StreamChunk]:
        if not self._finished:
            return []  # no finishReason: the stream was cut
        usage = StreamChunk({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                             "model": self._model, "choices": [],
                             "usage": self._usage or openai_usage({})})
        return [usage, StreamChunk(None, done=True)]

