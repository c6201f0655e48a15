"""SSE pass-through for `stream: true`.

The upstream stream is opened (with failover) *before* the response starts, so a request whose every
deployment fails still gets a proper HTTP 502. After the first token, a failure ends the stream with an
OpenAI-style error event and the record says "truncated": a cut answer is never logged as a success. A
client that goes away cancels the upstream read and is recorded as "client_disconnected".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gearshift.errors import ProviderError, openai_error_body
from gearshift.gateway.call import Call, finish, pin_conversation
from gearshift.gateway.requests import ChatRequest
from gearshift.gateway.service import Gateway
from gearshift.policy.decide import Decision
from gearshift.providers.registry import DeploymentSettings
from gearshift.providers.streaming import StreamExecution
from gearshift.records.usage import estimated_usage, usage_cost


class _SSEResponse(StreamingResponse):
    """Closes the event generator however the response ends, so its bookkeeping always runs."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


async def stream_completion(gw: Gateway, call: Call, req: ChatRequest, payload: dict[str, Any], decision: Decision,
                            prompt: str) -> Response:
    idx = decision.tier
    body = gw.upstream_request(payload, idx)
    body["stream"] = True
    client_wants_usage = bool(req.stream_options and req.stream_options.include_usage)
    body["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
    t0 = time.perf_counter()
    execution = await gw.executor.stream(list(decision.deployments), body, deadline_s=call.remaining_s(),
                                         attempts=call.attempts)
    dep = execution.deployment
    gw.metrics.upstream_latency.labels(deployment=dep.name, kind="first_token").observe(time.perf_counter() - t0)
    settings = gw.deployment_settings.get(dep.name)
    call.outcome.deployment, call.outcome.upstream_model = dep.name, dep.model
    headers = {**call.headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    events = _events(gw, call, execution, client_wants_usage, prompt, idx, t0, settings)
    return _SSEResponse(events, media_type="text/event-stream", headers=headers)


async def _events(gw: Gateway, call: Call, execution: StreamExecution, client_wants_usage: bool, prompt: str,
                  idx: int, t0: float, prices: DeploymentSettings | None) -> AsyncGenerator[bytes, None]:
    status = "client_disconnected"
    encoder = call.surface.encoder(call.request_id)
    error: BaseException | None = None
    usage: dict[str, Any] | None = None
    pieces: list[str] = []
    calls: list[str] = []  # tool call ids: the turn with their results comes back to this tier
    try:
        async for chunk in execution:
            if chunk.done:
                continue  # the execution ends right after [DONE]; letting it finish records the attempt as ok
            data = chunk.data or {}
            if isinstance(data.get("usage"), dict):
                usage = data["usage"]
                if not client_wants_usage:
                    if not data.get("choices"):
                        continue
                    data = {k: v for k, v in data.items() if k != "usage"}
            for i, choice in enumerate(data.get("choices") or []):
                if i == 0 and isinstance(choice, dict) and choice.get("finish_reason"):
                    call.outcome.finish_reason = str(choice["finish_reason"])  # tracing: the last chunk's
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    pieces.append(delta["content"])
                if i == 0 and isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                    tcs = [tc for tc in delta["tool_calls"] if isinstance(tc, dict)]
                    calls += [str(tc["id"]) for tc in tcs if tc.get("id")]
                    call.answer_tools += [str(fn["name"]) for fn in (tc.get("function") for tc in tcs)
                                          if isinstance(fn, dict) and fn.get("name")]  # implicit hand-off signals
            yield encoder.chunk(data)
        if usage is None and client_wants_usage:
            usage = estimated_usage(prompt, "".join(pieces))
            call.outcome.usage_estimated = True
            yield encoder.chunk({"id": f"chatcmpl-{call.request_id}", "object": "chat.completion.chunk",
                        "created": int(time.time()), "model": execution.deployment.model, "choices": [],
                        "usage": usage})
        call.answer = "".join(pieces)
        await pin_conversation(gw, call, idx, calls)  # before [DONE]: the next turn may go anywhere
        yield encoder.done()
        status = "ok"
    except ProviderError as exc:
        status = "truncated" if exc.after_first_token else "error"
        error = exc
        err_status, err_body = openai_error_body(exc)
        yield encoder.error(err_status, err_body)
    except (asyncio.CancelledError, GeneratorExit):  # the client left, or the SIGTERM grace ran out
        status = "cancelled_shutdown" if gw.draining else "client_disconnected"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await execution.aclose()
        _record(gw, call, execution, status, error, usage, prompt, "".join(pieces), idx, t0, prices)


def _record(gw: Gateway, call: Call, execution: StreamExecution, status: str, error: BaseException | None,
            usage: dict[str, Any] | None, prompt: str, answer: str, idx: int, t0: float,
            prices: DeploymentSettings | None) -> None:
    out = call.outcome
    call.answer = answer
    if usage is None:
        usage = estimated_usage(prompt, answer)
        out.usage_estimated = True
    tin, tout = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    upstream_s = time.perf_counter() - t0
    gw.metrics.upstream_latency.labels(deployment=execution.deployment.name, kind="stream").observe(upstream_s)
    out.tokens_in, out.tokens_out = tin, tout
    out.cost_usd = usage_cost(usage, prices) if prices is not None else 0.0
    out.upstream_latency_ms = round(upstream_s * 1000.0, 3)
    out.attempts = [a.to_dict() for a in execution.attempts]
    if execution.continued:  # mid-stream failover: the answer was finished by another deployment
        out.deployment, out.upstream_model = execution.deployment.name, execution.deployment.model
    finish(gw, call, status=status, exc=error, http_status=200)
