"""`POST /v1/responses`: the OpenAI Responses API (stateless subset) as a surface on the one chat handler.

Translated at the edge (`responses_format`), then the chat-completions path unchanged: keys, limits,
routing, failover or cascade, the record. A stream is the Responses event sequence: `response.created`,
`response.in_progress`, then per output item `response.output_item.added`, its text
(`response.content_part.added`, `response.output_text.delta` ..., `.done`) or function-call arguments
(`response.function_call_arguments.delta` ..., `.done`), `response.output_item.done`, and finally
`response.completed` (or `response.incomplete`) carrying the whole response with its usage. Errors keep
the OpenAI error shape; one after the stream started is an `error` event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gearshift.gateway.chat import handle_chat
from gearshift.gateway.messages_format import obj
from gearshift.gateway.responses_format import call_item, message_item, response_object, to_chat_request, to_response
from gearshift.gateway.surface import StreamEncoder


class _ResponsesEncoder:
    """OpenAI chunks -> Responses events; one output item open at a time (text, or one function call)."""

    def __init__(self, request_id: str) -> None:
        self._id = f"resp_{request_id}"
        self._model = ""
        self._seq = 0
        self._started = False
        self._items: list[dict[str, Any]] = []  # finished output items
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._open_key: str | None = None
        self._finish: str | None = None
        self._usage: Any = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        self._seq += 1
        body = {"type": kind, "sequence_number": self._seq, **data}
        return f"event: {kind}\ndata: ".encode() + json.dumps(body, separators=(",", ":"),
                                                              ensure_ascii=False).encode() + b"\n\n"

    def _start(self, data: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        self._model = str(data.get("model") or "")
        shell = response_object(self._id, self._model, [], None, None, status="in_progress")
        return self._event("response.created", {"response": shell}) + self._event("response.in_progress",
                                                                                   {"response": shell})

    def _close(self) -> bytes:
        item, self._open, self._open_key = self._open, None, None
        if item is None:
            return b""
        index = len(self._items)
        if item["type"] == "message":
            text = item.pop("_text")
            done = message_item(item["id"], text)
            out = self._event("response.output_text.done", {"item_id": item["id"], "output_index": index,
                                                            "content_index": 0, "text": text, "logprobs": []})
            out += self._event("response.content_part.done", {"item_id": item["id"], "output_index": index,
                                                              "content_index": 0, "part": done["content"][0]})
        else:
            done = call_item(item["id"], item["call_id"], item["name"], item["arguments"])
            out = self._event("response.function_call_arguments.done", {"item_id": item["id"], "output_index": index,
                                                                        "arguments": item["arguments"]})
        self._items.append(done)
        return out + self._event("response.output_item.done", {"output_index": index, "item": done})

    def _open_item(self, key: str, item: dict[str, Any]) -> bytes:
        out = self._close()
        self._open, self._open_key = item, key
        index = len(self._items)
        shown = {k: v for k, v in item.items() if not k.startswith("_")}
        out += self._event("response.output_item.added", {"output_index": index, "item": shown})
        if item["type"] == "message":
            out += self._event("response.content_part.added", {
                "item_id": item["id"], "output_index": index, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}})
        return out

    def chunk(self, data: dict[str, Any]) -> bytes:
        out = self._start(data)
        if isinstance(data.get("usage"), dict):
            self._usage = data["usage"]
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = obj(choice.get("delta"))
            if isinstance(delta.get("content"), str) and delta["content"]:
                if self._open_key != "text":
                    out += self._open_item("text", {**message_item(f"msg_{uuid.uuid4().hex}", "", "in_progress"),
                                                    "_text": ""})
                item = self._open or {}
                item["_text"] = item.get("_text", "") + delta["content"]
                out += self._event("response.output_text.delta", {
                    "item_id": item.get("id"), "output_index": len(self._items), "content_index": 0,
                    "delta": delta["content"], "logprobs": []})
            for call in delta.get("tool_calls") or []:
                call, fn = obj(call), obj(obj(call).get("function"))
                key = f"call:{call.get('index', 0)}"
                if self._open_key != key:
                    out += self._open_item(key, call_item(f"fc_{uuid.uuid4().hex}", str(call.get("id") or ""),
                                                          str(fn.get("name") or ""), "", "in_progress"))
                if fn.get("arguments") and self._open is not None:
                    self._open["arguments"] += fn["arguments"]
                    out += self._event("response.function_call_arguments.delta", {
                        "item_id": self._open["id"], "output_index": len(self._items), "delta": fn["arguments"]})
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        return out

    def error(self, status: int, body: dict[str, Any]) -> bytes:
        err = obj(body.get("error"))
        return self._event("error", {"code": err.get("code"), "message": err.get("message") or "error",
                                     "param": err.get("param")})

    def done(self) -> bytes:
        out = self._start({}) + self._close()
        final = response_object(self._id, self._model, self._items, self._usage or {}, self._finish)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": final})


class ResponsesSurface:
    name = "responses"

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("authorization")

    def chat_request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return to_chat_request(payload)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return to_response(body)

    def error_body(self, status: int, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def encoder(self, request_id: str) -> StreamEncoder:
        return _ResponsesEncoder(request_id)


RESPONSES = ResponsesSurface()


async def responses(request: Request) -> Response:
    return await handle_chat(request, RESPONSES)
