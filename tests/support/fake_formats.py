"""Fake Anthropic and Gemini upstreams: real HTTP servers on 127.0.0.1 speaking each provider's own wire format.

Written from the providers' API references (Anthropic Messages: `POST /v1/messages`, `x-api-key`,
`anthropic-version`, content blocks, the `message_start` ... `message_stop` event stream; Gemini:
`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, `x-goog-api-key`,
`contents`/`parts`, `usageMetadata`). They share `FakeUpstream`'s thread, recording and `script(...)`;
of its behaviours they play `Behaviour()` (with `text`, `finish_reason` in the provider's own terms, e.g.
"max_tokens" or "SAFETY"), `status_code(...)` (the provider's error body, `retry-after`), `error_event()`
(Anthropic: an `overloaded_error` event after `message_start`), `cut_stream(after_chunks=N)`, and
`latency_s`. Like the real services they refuse a request without a key or with a malformed body (400),
so a wrong translation fails the test. `tool_calls = [(name, args), ...]` makes the next answers call tools;
`cache_read`/`cache_write` set reported cache usage; Gemini's `block_prompt = "SAFETY"` blocks the prompt.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import web

from support.fake_upstream import Behaviour, FakeUpstream

ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                         404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                         500: "api_error", 529: "overloaded_error"}
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()


class _FormatUpstream(FakeUpstream):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tool_calls: list[tuple[str, dict[str, Any]]] = []
        self.cache_read = 0
        self.cache_write = 0

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:  # FakeUpstream's, with this format's routes
        import asyncio
        import socket

        self._stop = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _stream_out(self, request: web.Request, events: list[bytes], b: Behaviour) -> web.StreamResponse:
        if b.kind in ("cut_stream", "stall_stream"):
            events = events[: b.after_chunks]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for ev in events:
            await resp.write(ev)
        if b.kind == "stall_stream":
            await self._sleep(b.stall_s)
        await resp.write_eof()
        return resp


class FakeAnthropic(_FormatUpstream):
    """The Messages API at `root_url` (`POST /v1/messages`)."""

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    @staticmethod
    def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message}}
        return web.json_response(body, status=status, headers=headers)

    def _problem(self, request: web.Request, req: Any) -> str | None:
        if not request.headers.get("x-api-key") or not request.headers.get("anthropic-version"):
            return "x-api-key and anthropic-version headers are required"
        if not isinstance(req, dict) or not isinstance(req.get("max_tokens"), int):
            return "max_tokens: Field required"
        msgs = req.get("messages")
        if not isinstance(msgs, list) or not msgs or msgs[0].get("role") != "user":
            return "messages: first message must use the user role"
        for a, b in itertools.pairwise(msgs):
            if a.get("role") == b.get("role") or b.get("role") not in ("user", "assistant"):
                return "messages: roles must alternate between user and assistant"
        for m in msgs:
            if not isinstance(m.get("content"), (str, list)):
                return "messages: content must be a string or a list of blocks"
        if "system" in req and not isinstance(req["system"], (str, list)):
            return "system: must be a string or text blocks"
        return None

    def _usage(self, req: dict[str, Any], output_tokens: int) -> dict[str, int]:
        words = len(json.dumps(req.get("messages")).split())
        return {"input_tokens": words, "output_tokens": output_tokens,
                "cache_creation_input_tokens": self.cache_write, "cache_read_input_tokens": self.cache_read}

    def _stop_reason(self, b: Behaviour) -> str:
        if self.tool_calls:
            return "tool_use"
        return "end_turn" if b.finish_reason == "stop" else b.finish_reason

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        req = await self._record(request)
        b = self._next()
        if b.latency_s:
            await self._sleep(b.latency_s)
        problem = self._problem(request, req)
        if problem is not None:
            return self._error(401 if "header" in problem else 400, problem)
        if b.kind == "status":
            headers = {"retry-after": b.retry_after} if b.retry_after is not None else {}
            return self._error(b.status, f"fake anthropic status {b.status}", headers)
        text = json.dumps(req) if b.echo else (b.text if b.text is not None else self.answer)
        words = text.split(" ")
        if req.get("stream"):
            return await self._stream_out(request, self._events(req, b, words), b)
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content += [{"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a}
                    for i, (n, a) in enumerate(self.tool_calls)]
        return web.json_response({"id": "msg_fake", "type": "message", "role": "assistant",
                                  "model": req["model"], "content": content, "stop_reason": self._stop_reason(b),
                                  "stop_sequence": None, "usage": self._usage(req, len(words))})

    def _events(self, req: dict[str, Any], b: Behaviour, words: list[str]) -> list[bytes]:
        usage = self._usage(req, 1)
        events = [_event("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": req["model"], "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})]
        if b.kind == "error_event":
            return [*events, _event("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                           "message": "Overloaded"}})]
        events.append(_event("ping", {"type": "ping"}))
        index = 0
        if words != [""]:
            events.append(_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                         "content_block": {"type": "text", "text": ""}}))
            for i, w in enumerate(words):
                events.append(_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "text_delta", "text": w if i == 0 else " " + w}}))
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for i, (name, args) in enumerate(self.tool_calls):
            raw = json.dumps(args)
            events.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                         "content_block": {"type": "tool_use", "id": f"toolu_{i}",
                                                                           "name": name, "input": {}}}))
            for piece in (raw[: len(raw) // 2], raw[len(raw) // 2:]):
                events.append(_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                             "delta": {"type": "input_json_delta",
                                                                       "partial_json": piece}}))
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        events.append(_event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": self._stop_reason(b), "stop_sequence": None}, "usage": {"output_tokens": len(words)}}))
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events


class FakeGemini(_FormatUpstream):
    """The Gemini API at `root_url` (`/v1beta/models/{model}:generateContent` and `:streamGenerateContent`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.block_prompt: str | None = None
        self.signature = "c2lnbmF0dXJlIQ+/"  # a thoughtSignature with base64's + and / in it

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call}", self._generate)

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": {"code": status, "message": message,
                                            "status": GEMINI_STATUS.get(status, "INTERNAL")}}, status=status)

    @staticmethod
    def _problem(request: web.Request, req: Any) -> str | None:
        if not request.headers.get("x-goog-api-key"):
            return "API key not valid. Please pass a valid API key."
        contents = req.get("contents") if isinstance(req, dict) else None
        if not isinstance(contents, list) or not contents:
            return "* GenerateContentRequest.contents: contents is not specified"
        for c in contents:
            if c.get("role") not in ("user", "model") or not c.get("parts"):
                return "* GenerateContentRequest.contents: role must be user or model, parts must not be empty"
        return None

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        req = await self._record(request)
        b = self._next()
        if b.latency_s:
            await self._sleep(b.latency_s)
        model, _, method = request.match_info["call"].partition(":")
        problem = self._problem(request, req)
        if problem is not None:
            return self._error(401 if "API key" in problem else 400, problem)
        if b.kind == "status":
            resp = self._error(b.status, f"fake gemini status {b.status}")
            if b.retry_after is not None:
                resp.headers["Retry-After"] = b.retry_after
            return resp
        text = json.dumps(req) if b.echo else (b.text if b.text is not None else self.answer)
        words = text.split(" ")
        usage = {"promptTokenCount": len(json.dumps(req["contents"]).split()) + self.cache_read,
                 "candidatesTokenCount": len(words), "cachedContentTokenCount": self.cache_read}
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        finish = "STOP" if b.finish_reason == "stop" else b.finish_reason
        calls = [{"functionCall": {"name": n, "args": a}, "thoughtSignature": self.signature}
                 for n, a in self.tool_calls]
        if method == "generateContent":
            if self.block_prompt:
                return web.json_response({"promptFeedback": {"blockReason": self.block_prompt},
                                          "usageMetadata": usage, "modelVersion": model})
            parts = ([{"text": text}] if text else []) + calls
            return web.json_response({"candidates": [{"content": {"role": "model", "parts": parts},
                                                      "finishReason": finish, "index": 0}],
                                      "usageMetadata": usage, "modelVersion": model, "responseId": "resp-fake"})
        if method != "streamGenerateContent" or request.query.get("alt") != "sse":
            return self._error(404, f"unknown method {method!r} (or no alt=sse)")
        def data(obj: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(obj)}\r\n\r\n".encode()  # the real service ends lines with \r\n

        if self.block_prompt:
            events = [data({"promptFeedback": {"blockReason": self.block_prompt}, "usageMetadata": usage})]
            return await self._stream_out(request, events, b)
        events = []
        for i, w in enumerate(words):
            events.append(data({"candidates": [{"content": {"role": "model", "parts": [
                {"text": w if i == 0 else " " + w}]}, "index": 0}], "modelVersion": model,
                "responseId": "resp-fake"}))
        if calls:
            events.append(data({"candidates": [{"content": {"role": "model", "parts": calls}, "index": 0}],
                                "modelVersion": model, "responseId": "resp-fake"}))
        events.append(data({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                            "finishReason": finish, "index": 0}],
                            "usageMetadata": usage, "modelVersion": model, "responseId": "resp-fake"}))
        return await self._stream_out(request, events, b)


class FakeAzure(_FormatUpstream):
    """Azure OpenAI at `root_url`: `/openai/deployments/{deployment}/chat/completions?api-version=...` with an
    `api-key` header; the answers are FakeUpstream's OpenAI ones."""

    def __init__(self, *, deployments: tuple[str, ...] = ("gpt-4o-mini-prod",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployments = deployments

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure_chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._azure_embed)

    async def _azure_embed(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("api-key") or not request.query.get("api-version"):
            return web.json_response({"error": {"code": "401", "message": "Access denied"}}, status=401)
        return await embeddings_answer(self, request)

    async def _azure_chat(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("api-key"):
            return web.json_response({"error": {"code": "401", "message": "Access denied: missing api-key"}},
                                     status=401)
        if not request.query.get("api-version"):
            return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
        if request.match_info["deployment"] not in self.deployments:
            return web.json_response({"error": {"code": "DeploymentNotFound", "message": "no such deployment"}},
                                     status=404)
        return await self._chat(request)


async def embeddings_answer(up: FakeUpstream, request: web.Request) -> web.StreamResponse:
    """An OpenAI embeddings answer: one 3-number vector per input string, usage = words in the input."""
    req = await up._record(request)
    b = up._next()
    if b.kind == "status":
        return up._status(b)
    inputs = req.get("input") if isinstance(req, dict) else None
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return web.json_response({"error": {"message": "'input' is required", "type": "invalid_request_error"}},
                                 status=400)
    data = [{"object": "embedding", "index": i, "embedding": [float(len(str(x))), 0.5, -0.5]}
            for i, x in enumerate(inputs)]
    words = sum(len(str(x).split()) for x in inputs)
    return web.json_response({"object": "list", "data": data, "model": req["model"],
                              "usage": {"prompt_tokens": words, "total_tokens": words}})


class FakeEmbeddings(_FormatUpstream):
    """An OpenAI-compatible `POST /v1/embeddings` at `base_url` (Bearer key required)."""

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/embeddings", self._embed)

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response({"error": {"message": "no key", "type": "invalid_request_error"}}, status=401)
        return await embeddings_answer(self, request)
